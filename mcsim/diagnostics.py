"""MCMC convergence diagnostics: rank-normalised split-R-hat and bulk/tail ESS (Vehtari et al. 2021).

Vehtari, Gelman, Simpson, Carpenter, Buerkner, "Rank-normalization, folding,
and localization: an improved R-hat for assessing convergence of MCMC",
Bayesian Analysis 16 (2021) 667.  The estimators follow the paper (and Stan /
ArviZ): chains are split in halves, values are rank-normalised (``z``-scores
of fractional ranks ``(r - 3/8) / (S + 1/4)``), the autocorrelation sum is
truncated by Geyer's initial monotone positive sequence.

Implemented here (about 100 lines, tested in ``tests/test_posterior_diagnostics.py``)
rather than imported from ArviZ, which would pull xarray, pandas and its
plotting stack into a numerics package for three functions.

All functions take ``draws`` of shape (M chains, N draws) (float64) and return
a float.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


def _as_chains(draws) -> np.ndarray:
    x = np.asarray(draws, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 4:
        raise ValueError(f"draws: expected shape (chains, draws >= 4), got {x.shape}")
    return x


def split_chains(draws) -> np.ndarray:
    """Split each chain in two halves (the middle draw of an odd chain is dropped): (M, N) -> (2M, N // 2)."""
    x = _as_chains(draws)
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalise(draws) -> np.ndarray:
    """Normal scores of the pooled fractional ranks (ties averaged), same shape as ``draws``."""
    x = np.asarray(draws, dtype=float)
    r = rankdata(x, method="average").reshape(x.shape)
    return ndtri((r - 0.375) / (x.size + 0.25))


def _rhat(x: np.ndarray) -> float:
    M, N = x.shape
    within = float(np.mean(np.var(x, axis=1, ddof=1)))
    between = N * float(np.var(np.mean(x, axis=1), ddof=1)) if M > 1 else 0.0
    if within == 0.0:
        return math.nan
    return math.sqrt(((N - 1) / N * within + between / N) / within)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance per chain via FFT, (M, N)."""
    M, N = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * N - 1).bit_length()
    f = np.fft.rfft(xc, n=nfft, axis=1)
    return np.fft.irfft(f * np.conj(f), n=nfft, axis=1)[:, :N] / N


def ess(draws) -> float:
    """Effective sample size of the mean of ``draws`` (M, N), no splitting or ranking (Geyer IMPS)."""
    x = _as_chains(draws)
    M, N = x.shape
    acov = _autocovariance(x)
    chain_mean = x.mean(axis=1)
    mean_var = float(np.mean(acov[:, 0])) * N / (N - 1)
    var_plus = mean_var * (N - 1) / N
    if M > 1:
        var_plus += float(np.var(chain_mean, ddof=1))
    if var_plus == 0.0:
        return math.nan
    rho = np.zeros(N)
    rho[0] = 1.0
    rho_even = 1.0
    rho_odd = 1.0 - (mean_var - float(np.mean(acov[:, 1]))) / var_plus
    rho[1] = rho_odd
    t = 1
    while t < N - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - float(np.mean(acov[:, t + 1]))) / var_plus
        rho_odd = 1.0 - (mean_var - float(np.mean(acov[:, t + 2]))) / var_plus
        if rho_even + rho_odd >= 0.0:
            rho[t + 1] = rho_even
            rho[t + 2] = rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0.0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:  # initial monotone sequence
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    tau = -1.0 + 2.0 * float(np.sum(rho[: max_t + 1])) + rho[max_t + 1]
    tau = max(tau, 1.0 / math.log10(M * N))
    return M * N / tau


def ess_bulk(draws) -> float:
    """Bulk ESS: :func:`ess` of the rank-normalised split chains."""
    return ess(rank_normalise(split_chains(draws)))


def ess_tail(draws) -> float:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators (split chains)."""
    x = split_chains(draws)
    q05, q95 = np.quantile(x, [0.05, 0.95])
    return min(ess((x <= q05).astype(float)), ess((x >= q95).astype(float)))


def rhat(draws) -> float:
    """Rank-normalised split-R-hat: max of the bulk and the folded (tail) R-hat."""
    x = split_chains(draws)
    bulk = _rhat(rank_normalise(x))
    tail = _rhat(rank_normalise(np.abs(x - np.median(x))))
    return max(bulk, tail)


def summarise(draws) -> dict:
    """``{"rhat", "ess_bulk", "ess_tail", "ess_mean", "mean", "mcse"}`` of one scalar's draws (M, N).

    ``mcse`` is the Monte Carlo standard error of the mean, ``sd / sqrt(ess_mean)``.
    """
    x = _as_chains(draws)
    e = ess(x)
    return {
        "rhat": rhat(x),
        "ess_bulk": ess_bulk(x),
        "ess_tail": ess_tail(x),
        "ess_mean": e,
        "mean": float(x.mean()),
        "mcse": float(x.std(ddof=1) / math.sqrt(e)) if math.isfinite(e) and e > 0 else math.nan,
    }
