"""Standard errors of Monte Carlo estimates: SEM, jackknife and bootstrap.

All functions treat axis 0 as the sample axis (independent weight realizations
or independent input draws) and are vectorised over the remaining axes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _as_samples(x, name: str = "x", minimum: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        raise ValueError(f"{name}: must have a sample axis 0, got a scalar")
    if x.shape[0] < minimum:
        raise ValueError(f"{name}: need at least {minimum} samples along axis 0, got {x.shape[0]}")
    return x


def sem(x) -> np.ndarray:
    """Standard error of the mean along axis 0, ``std(ddof=1) / sqrt(R)``.

    Parameters
    ----------
    x : array_like of float, shape (R, ...)

    Returns
    -------
    ndarray of float64, shape (...)
    """
    x = _as_samples(x)
    return np.std(x, axis=0, ddof=1) / np.sqrt(x.shape[0])


def unbiased_variance(x) -> np.ndarray:
    """Unbiased sample variance (ddof=1) along axis 0, shape ``x.shape[1:]``."""
    return np.var(_as_samples(x), axis=0, ddof=1)


def excess_kurtosis(x) -> np.ndarray:
    """Sample excess kurtosis ``m4 / m2^2 - 3`` along axis 0 (plug-in moments).

    Parameters
    ----------
    x : array_like of float, shape (R, ...)

    Returns
    -------
    ndarray of float64, shape (...)
        NaN where the sample is constant (zero variance: the kurtosis is
        undefined there).  Other entries are unaffected, so one degenerate
        column does not spoil a vectorised call; tables and plots show such
        entries as NaN (missing), never as a number.
    """
    x = _as_samples(x, minimum=4)
    d = x - np.mean(x, axis=0)
    m2 = np.mean(d**2, axis=0)
    m4 = np.mean(d**4, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m4 / m2**2 - 3.0


def jackknife(x, statistic: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Delete-one jackknife estimate and standard error of ``statistic``.

    Parameters
    ----------
    x : array_like of float, shape (R, ...)
        Independent samples along axis 0.
    statistic : callable
        ``statistic(samples) -> ndarray`` reducing axis 0 (vectorised over the
        other axes), e.g. :func:`unbiased_variance`.

    Returns
    -------
    estimate : ndarray of float64
        Bias-corrected jackknife estimate ``R theta - (R-1) mean(theta_(i))``.
    se : ndarray of float64
        ``sqrt((R-1)/R sum_i (theta_(i) - mean theta_(.))^2)``.
    """
    x = _as_samples(x, minimum=3)
    R = x.shape[0]
    full = np.asarray(statistic(x), dtype=float)
    mask = np.ones(R, dtype=bool)
    leave_one_out = np.empty((R,) + full.shape)
    for i in range(R):
        mask[i] = False
        leave_one_out[i] = statistic(x[mask])
        mask[i] = True
    mean_loo = np.mean(leave_one_out, axis=0)
    se = np.sqrt((R - 1) / R * np.sum((leave_one_out - mean_loo) ** 2, axis=0))
    estimate = R * full - (R - 1) * mean_loo
    return estimate, se


def bootstrap(
    x, statistic: Callable[[np.ndarray], np.ndarray], resamples: int = 1000, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Nonparametric bootstrap standard error of ``statistic``.

    Parameters
    ----------
    x : array_like of float, shape (R, ...)
    statistic : callable
        ``statistic(samples) -> ndarray`` reducing axis 0.
    resamples : int
        Number of bootstrap resamples (>= 2).
    seed : int or sequence of int
        Seed for ``numpy.random.default_rng``.

    Returns
    -------
    estimate : ndarray of float64
        ``statistic(x)`` on the full sample.
    se : ndarray of float64
        Standard deviation (ddof=1) of the statistic over resamples.
    """
    x = _as_samples(x)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 2:
        raise ValueError(f"resamples: must be an integer >= 2, got {resamples!r}")
    rng = np.random.default_rng(seed)
    R = x.shape[0]
    full = np.asarray(statistic(x), dtype=float)
    values = np.empty((int(resamples),) + full.shape)
    for b in range(int(resamples)):
        values[b] = statistic(x[rng.integers(0, R, size=R)])
    return full, np.std(values, axis=0, ddof=1)


def variance_with_se(x) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased variance along axis 0 with its jackknife standard error.

    The unbiased variance is a U-statistic, so the jackknife bias correction is
    zero; the returned estimate equals ``var(x, ddof=1)``.

    Returns
    -------
    variance, se : ndarray of float64, shape ``x.shape[1:]``
    """
    x = _as_samples(x, minimum=3)
    _, se = jackknife(x, unbiased_variance)
    return unbiased_variance(x), se


def excess_kurtosis_with_se(x) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in excess kurtosis along axis 0 with its jackknife standard error.

    Returns
    -------
    kurtosis, se : ndarray of float64, shape ``x.shape[1:]``
    """
    x = _as_samples(x, minimum=4)
    _, se = jackknife(x, excess_kurtosis)
    return excess_kurtosis(x), se
