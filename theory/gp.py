"""Gaussian-process (Bayesian) prediction with the network kernel (Eqs. 37-38)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .prior import check_nonneg_scalar


def _index_array(name: str, idx, P: int) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError(f"{name}: must be a non-empty 1-D index array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: must contain integer indices, got dtype {arr.dtype}")
    if np.any(arr < 0) or np.any(arr >= P):
        raise ValueError(f"{name}: indices must lie in [0, {P}), got {arr.tolist()}")
    if np.unique(arr).shape[0] != arr.shape[0]:
        raise ValueError(f"{name}: indices must be unique")
    return arr.astype(np.intp)


def gp_predict(K, y_train, train, test, noise: float = 0.0):
    """Posterior mean and covariance of the network GP at test patterns.

    ``mean = K_*D (K_DD + noise I)^-1 y_D`` and
    ``cov = K_** - K_*D (K_DD + noise I)^-1 K_D*``, solved with a Cholesky
    factorisation (no explicit inverse).

    Parameters
    ----------
    K : array_like, shape (P, P)
        Symmetric kernel over all patterns (e.g. ``kernel(prior, X)[A+1, A+1]``).
    y_train : array_like, shape (D,) or (D, n_out)
        Training targets, one row per entry of ``train``.
    train, test : array_like of int, shapes (D,) and (T,)
        Indices into ``K``.
    noise : float, optional
        Observation noise variance ``kappa >= 0`` added to ``K_DD``.

    Returns
    -------
    mean : ndarray of float64, shape (T,) or (T, n_out)
    cov : ndarray of float64, shape (T, T)

    Raises
    ------
    ValueError
        For a non-square/non-finite/asymmetric ``K``, bad index arrays, a
        ``y_train`` whose length differs from ``train``, negative ``noise``,
        or a ``K_DD + noise I`` that is not positive definite.
    """
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K: must be a square (P, P) matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K: must be finite")
    scale = max(1.0, float(np.max(np.abs(K)))) if K.size else 1.0
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValueError("K: must be symmetric")
    P = K.shape[0]
    train = _index_array("train", train, P)
    test = _index_array("test", test, P)
    noise = check_nonneg_scalar("noise", noise)
    y = np.asarray(y_train, dtype=float)
    if y.ndim not in (1, 2) or y.shape[0] != train.shape[0]:
        raise ValueError(
            f"y_train: must have shape (D,) or (D, n_out) with D = len(train) = {train.shape[0]}, got {y.shape}"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError("y_train: must be finite")
    K_DD = K[np.ix_(train, train)] + noise * np.eye(train.shape[0])
    K_sD = K[np.ix_(test, train)]
    K_ss = K[np.ix_(test, test)]
    try:
        factor = scipy.linalg.cho_factor(K_DD, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError(
            "K: the training block K_DD + noise*I is not positive definite "
            "(duplicate or degenerate training inputs?); add a small noise > 0"
        ) from None
    mean = K_sD @ scipy.linalg.cho_solve(factor, y, check_finite=False)
    cov = K_ss - K_sD @ scipy.linalg.cho_solve(factor, K_sD.T, check_finite=False)
    return mean, 0.5 * (cov + cov.T)
