"""Numerics of the Monte Carlo vs theory comparisons (the workflow's compare scripts call these).

- :func:`z_score`: standardised deviation with deterministic entries as NaN.
- :func:`pool_input_sets`: MMD^2 and its noise floor averaged over input sets (Fig. 2).
- :func:`weight_average`, :func:`input_spread`: Fig. 3c,d, the spread over input
  draws of weight-averaged overlaps, its finite-realization weight noise and the
  linear-response prediction (Eq. 42).  ``mcsim.weight_averaged_overlaps`` returns
  per-draw ``mean``/``sem`` with the same definition as :func:`weight_average`,
  so its output can be passed to :func:`input_spread` unchanged.

All functions are pure (arrays in, arrays out).
"""

from __future__ import annotations

import numpy as np

from .resampling import jackknife, sem


def z_score(mc, theory, se):
    """``(mc - theory) / se`` elementwise; NaN where ``se`` is zero up to round-off.

    An entry is *deterministic* (not resolvable) when ``se <= 1e-9 * max(|mc|, |theory|)``
    (or ``se <= 1e-9`` when both are 0): its z score would be round-off / round-off.

    Parameters
    ----------
    mc, theory, se : array_like of float (broadcastable)

    Returns
    -------
    float or ndarray of float
        A Python float for scalar input.
    """
    mc, theory, se = (np.asarray(v, dtype=float) for v in (mc, theory, se))
    scale = np.maximum(np.abs(mc), np.abs(theory))
    resolvable = se > 1e-9 * np.where(scale > 0, scale, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(resolvable, (mc - theory) / np.where(resolvable, se, 1.0), np.nan)
    return out.item() if out.ndim == 0 else out


def pool_input_sets(mmd2, noise_floor_mean, noise_floor_std, mmd2_se=None) -> dict:
    """Average per-input-set MMD^2 values and their noise floors over S input sets.

    Parameters
    ----------
    mmd2, noise_floor_mean, noise_floor_std : array_like of float, shape (S,)
        Per input set: the MMD^2 estimate, and the mean and std of the
        estimator on exact N(0, K) samples of the same size (the noise floor,
        :func:`theory.mmd.mmd2_null_moments`: mean 0, exact std).
    mmd2_se : array_like of float, shape (S,), optional
        Per input set: the SE of the MMD^2 estimate over weight realizations
        (:func:`theory.mmd.mmd2_gaussian_with_se`; NaN where it is not
        available, e.g. fewer than 4 realizations: the pooled SE is then NaN).

    Returns
    -------
    dict
        ``mmd2_mean`` (mean over sets), ``mmd2_sem`` (SEM over sets, NaN for S = 1),
        ``noise_floor_mean`` (mean over sets) and ``noise_floor_std``
        ``= sqrt(mean(noise_floor_std^2) / S)`` (std of the mean of S independent
        null estimates, i.e. of ``mmd2_mean`` at perfect convergence),
        ``input_sets`` (S); with ``mmd2_se`` also ``mmd2_se_within``
        ``= sqrt(sum(mmd2_se^2)) / S``: the SE of ``mmd2_mean`` given the S input
        sets (finite realizations only; the sets are independent simulations).
    """
    values = np.asarray(mmd2, dtype=float).ravel()
    floor = np.asarray(noise_floor_mean, dtype=float).ravel()
    floor_std = np.asarray(noise_floor_std, dtype=float).ravel()
    S = values.size
    if S < 1 or floor.size != S or floor_std.size != S:
        raise ValueError(f"mmd2, noise_floor_mean, noise_floor_std: need equal non-zero lengths, got "
                         f"{values.size}, {floor.size}, {floor_std.size}")
    out = {
        "input_sets": S,
        "mmd2_mean": float(values.mean()),
        "mmd2_sem": float(sem(values)) if S > 1 else float("nan"),
        "noise_floor_mean": float(floor.mean()),
        "noise_floor_std": float(np.sqrt(np.mean(floor_std**2) / S)),
    }
    if mmd2_se is not None:
        se = np.asarray(mmd2_se, dtype=float).ravel()
        if se.size != S:
            raise ValueError(f"mmd2_se: need length {S} (one SE per input set), got {se.size}")
        if np.any(se < 0) or np.any(np.isinf(se)):
            raise ValueError(f"mmd2_se: must be >= 0 and not infinite, got {se}")
        out["mmd2_se_within"] = float(np.sqrt(np.sum(se**2)) / S)
    return out


def weight_average(samples) -> tuple[np.ndarray, np.ndarray]:
    """Mean over weight realizations (axis 0) and its standard error ``std(ddof=1)/sqrt(R)``.

    Parameters
    ----------
    samples : array_like of float, shape (R, ...)
        One observable (e.g. ``Caux^(a,a)``, shape (R, A+2)) per realization,
        overflowed realizations already removed.

    Returns
    -------
    mean, sem : ndarray of float64, shape ``samples.shape[1:]``
    """
    x = np.asarray(samples, dtype=float)
    return x.mean(axis=0), sem(x)


def _std_over_sets(x):
    return np.std(x, axis=0, ddof=1)


def input_spread(means, sems, kernels, propagation) -> dict:
    """Spread over input draws of weight-averaged overlaps vs mean-field and linear response (Fig. 3c,d).

    Parameters
    ----------
    means, sems : array_like of float, shape (S, L)
        Per input draw s and layer a: the weight-averaged overlap and its
        standard error (:func:`weight_average`, or ``mcsim.weight_averaged_overlaps``
        ``"mean"``/``"sem"``).  S >= 2.
    kernels : array_like of float, shape (S, L)
        Mean-field ``C^(a,a)(x_s)``.
    propagation : array_like of float, shape (S, L)
        ``input_propagation[a]`` (prod_{k<a} F_k, Eq. 42) at each draw.

    Returns
    -------
    dict of ndarray, shape (L,)
        ``mc_std``: std (ddof=1) over draws of ``means``;
        ``mc_std_se``: its jackknife SE over draws (NaN for S < 3);
        ``weight_noise``: ``sqrt(mean_s sems^2)``, the part of ``mc_std`` due to finite R;
        ``mc_std_corrected``: ``sqrt(max(mc_std^2 - weight_noise^2, 0))``;
        ``mft_std``: std over draws of ``kernels``;
        ``linear_response``: ``mean_s propagation * mft_std[0]`` (Eq. 42).
    """
    means, sems, kernels, props = (np.asarray(v, dtype=float) for v in (means, sems, kernels, propagation))
    if means.ndim != 2 or means.shape[0] < 2:
        raise ValueError(f"means: need shape (S >= 2, L), got {means.shape}")
    for name, arr in (("sems", sems), ("kernels", kernels), ("propagation", props)):
        if arr.shape != means.shape:
            raise ValueError(f"{name}: shape {arr.shape} differs from means {means.shape}")
    mc_std = _std_over_sets(means)
    mc_std_se = jackknife(means, _std_over_sets)[1] if means.shape[0] >= 3 else np.full_like(mc_std, np.nan)
    weight_noise = np.sqrt(np.mean(sems**2, axis=0))
    corrected = np.sqrt(np.clip(mc_std**2 - weight_noise**2, 0.0, None))
    mft_std = _std_over_sets(kernels)
    return {
        "mc_std": mc_std,
        "mc_std_se": mc_std_se,
        "weight_noise": weight_noise,
        "mc_std_corrected": corrected,
        "mft_std": mft_std,
        "linear_response": props.mean(axis=0) * mft_std[0],
    }
