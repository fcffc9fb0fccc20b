"""Maximum mean discrepancy between samples and a centred Gaussian N(0, K).

Implements the Fig. 2 convergence measure of theory-notes Sec. 7: the squared
MMD with the RBF kernel ``k(s, t) = exp(-|s - t|^2 / (2 l^2))`` between the
empirical joint distribution of ``m`` sample vectors ``t_1..t_m`` in R^P and the
Gaussian N(0, K).  The Gaussian-side expectations have closed forms::

    E_{s ~ N(0,K)} k(s, t)   = det(I + K/l^2)^(-1/2) exp(-t^T (K + l^2 I)^(-1) t / 2)
    E_{s,s' ~ N(0,K)} k(s,s') = det(I + 2K/l^2)^(-1/2)

so the unbiased estimator is::

    MMD^2 = 1/(m(m-1)) sum_{i != j} k(t_i, t_j) - (2/m) sum_i E_s k(s, t_i) + E_{s,s'} k(s, s').

Its expectation is exactly the population MMD^2 (zero iff the sample law is
N(0, K)); single estimates can be negative.  :func:`mmd2_noise_floor` gives the
distribution of the estimator on exact Gaussian samples of the same size, to
tell convergence apart from estimator noise.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_LENGTHSCALE = 0.5


def _check_lengthscale(lengthscale: float) -> float:
    lengthscale = float(lengthscale)
    if not np.isfinite(lengthscale) or lengthscale <= 0:
        raise ValueError(f"lengthscale: must be a positive finite number, got {lengthscale!r}")
    return lengthscale


def _check_covariance(K) -> np.ndarray:
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 1:
        raise ValueError(f"K: must be a square (P, P) matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K: must be finite")
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.max(np.abs(K))))):
        raise ValueError("K: must be symmetric")
    if np.min(np.linalg.eigvalsh(K)) < -1e-10 * max(1.0, float(np.max(np.abs(K)))):
        raise ValueError("K: must be positive semi-definite")
    return 0.5 * (K + K.T)


def _check_samples(samples, P: int | None = None, name: str = "samples") -> np.ndarray:
    T = np.asarray(samples, dtype=float)
    if T.ndim == 1:
        T = T[:, None]
    if T.ndim != 2:
        raise ValueError(f"{name}: must have shape (m, P), got {T.shape}")
    if T.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 samples for the unbiased estimator, got {T.shape[0]}")
    if P is not None and T.shape[1] != P:
        raise ValueError(f"{name}: dimension {T.shape[1]} does not match K of size {P}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name}: must be finite (drop overflowed realizations first)")
    return T


def rbf_gram(S, T, lengthscale: float = DEFAULT_LENGTHSCALE) -> np.ndarray:
    """RBF kernel matrix ``k(s_i, t_j) = exp(-|s_i - t_j|^2 / (2 l^2))``.

    Parameters
    ----------
    S : array_like of float, shape (m, P)
    T : array_like of float, shape (k, P)
    lengthscale : float
        ``l > 0``.

    Returns
    -------
    ndarray of float64, shape (m, k)
    """
    lengthscale = _check_lengthscale(lengthscale)
    S = np.atleast_2d(np.asarray(S, dtype=float))
    T = np.atleast_2d(np.asarray(T, dtype=float))
    sq = np.sum(S**2, axis=1)[:, None] + np.sum(T**2, axis=1)[None, :] - 2.0 * S @ T.T
    np.maximum(sq, 0.0, out=sq)
    return np.exp(-sq / (2.0 * lengthscale**2))


def gaussian_embedding(T, K, lengthscale: float = DEFAULT_LENGTHSCALE) -> np.ndarray:
    """Closed-form ``E_{s ~ N(0,K)} k(s, t)`` for each row ``t`` of ``T``.

    Parameters
    ----------
    T : array_like of float, shape (m, P)
    K : array_like of float, shape (P, P)
        Symmetric positive semi-definite covariance.
    lengthscale : float

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    lengthscale = _check_lengthscale(lengthscale)
    K = _check_covariance(K)
    P = K.shape[0]
    T = np.atleast_2d(np.asarray(T, dtype=float))
    if T.shape[1] != P:
        raise ValueError(f"T: dimension {T.shape[1]} does not match K of size {P}")
    M = K + lengthscale**2 * np.eye(P)
    L = np.linalg.cholesky(M)
    Z = np.linalg.solve(L, T.T)  # (P, m); t^T M^-1 t = |L^-1 t|^2
    quad = np.sum(Z**2, axis=0)
    _, logdet = np.linalg.slogdet(np.eye(P) + K / lengthscale**2)
    return np.exp(-0.5 * logdet - 0.5 * quad)


def gaussian_self_term(K, lengthscale: float = DEFAULT_LENGTHSCALE) -> float:
    """Closed-form ``E_{s, s' ~ N(0,K)} k(s, s') = det(I + 2K/l^2)^(-1/2)``.

    Parameters
    ----------
    K : array_like of float, shape (P, P)
    lengthscale : float

    Returns
    -------
    float
    """
    lengthscale = _check_lengthscale(lengthscale)
    K = _check_covariance(K)
    _, logdet = np.linalg.slogdet(np.eye(K.shape[0]) + 2.0 * K / lengthscale**2)
    return float(np.exp(-0.5 * logdet))


def _mmd2_gaussian_terms(samples, K, lengthscale):
    """Per-sample pieces of :func:`mmd2_gaussian`: Gram row sums (diagonal excluded), embeddings, self term."""
    K = _check_covariance(K)
    T = _check_samples(samples, K.shape[0])
    G = rbf_gram(T, T, lengthscale)
    rows = np.sum(G, axis=1) - np.diag(G)  # r_i = sum_{j != i} k(t_i, t_j)
    return rows, gaussian_embedding(T, K, lengthscale), gaussian_self_term(K, lengthscale)


def _mmd2_from_terms(rows, embed, self_term) -> float:
    m = rows.size
    return float(np.sum(rows) / (m * (m - 1)) - 2.0 * np.mean(embed) + self_term)


def mmd2_gaussian(samples, K, lengthscale: float = DEFAULT_LENGTHSCALE) -> float:
    """Unbiased MMD^2 between samples and N(0, K) with Gaussian terms in closed form.

    Parameters
    ----------
    samples : array_like of float, shape (m, P)
        ``m >= 2`` i.i.d. sample vectors (e.g. the outputs ``y_1..y_P`` of one
        network realization per row).
    K : array_like of float, shape (P, P)
        Covariance of the reference Gaussian.
    lengthscale : float
        RBF length scale ``l`` (paper: 1/2).

    Returns
    -------
    float
        The unbiased estimate (can be slightly negative).
    """
    return _mmd2_from_terms(*_mmd2_gaussian_terms(samples, K, lengthscale))


def mmd2_gaussian_with_se(samples, K, lengthscale: float = DEFAULT_LENGTHSCALE) -> tuple[float, float]:
    """:func:`mmd2_gaussian` and its delete-one jackknife standard error over the samples.

    The estimate is a U-statistic, so each leave-one-out value has a closed form
    (``O(m)`` from the Gram row sums ``r_i``)::

        U_(i) = (W - 2 r_i) / ((m-1)(m-2)) - 2 (E - e_i) / (m-1) + c,

    with ``W = sum_i r_i``, ``e_i = E_s k(s, t_i)``, ``E = sum_i e_i``.  The
    jackknife variance of a symmetric statistic is conservative in expectation
    (Efron-Stein inequality), also when MMD^2 = 0 (degenerate U-statistic).
    This is the sampling error of the estimate *given* the distribution of the
    samples (here: given the network's inputs), from the finite number ``m``
    of samples (weight realizations).

    Parameters
    ----------
    samples : array_like of float, shape (m, P)
        ``m >= 3`` i.i.d. sample vectors.
    K : array_like of float, shape (P, P)
    lengthscale : float

    Returns
    -------
    value : float
        Same as :func:`mmd2_gaussian`.
    se : float
        ``sqrt((m-1)/m sum_i (U_(i) - mean_i U_(i))^2)``.
    """
    rows, embed, self_term = _mmd2_gaussian_terms(samples, K, lengthscale)
    m = rows.size
    if m < 3:
        raise ValueError(f"samples: need at least 3 samples for a jackknife SE, got {m}")
    loo = (np.sum(rows) - 2.0 * rows) / ((m - 1) * (m - 2)) - 2.0 * (np.sum(embed) - embed) / (m - 1) + self_term
    se = math.sqrt((m - 1) / m * float(np.sum((loo - loo.mean()) ** 2)))
    return _mmd2_from_terms(rows, embed, self_term), se


def mmd2_two_sample(samples_x, samples_y, lengthscale: float = DEFAULT_LENGTHSCALE) -> float:
    """Unbiased two-sample MMD^2 (U-statistic) between two sample sets.

    Parameters
    ----------
    samples_x : array_like of float, shape (m, P)
    samples_y : array_like of float, shape (k, P)
    lengthscale : float

    Returns
    -------
    float
    """
    X = _check_samples(samples_x, name="samples_x")
    Y = _check_samples(samples_y, X.shape[1], name="samples_y")
    m, k = X.shape[0], Y.shape[0]
    Gxx = rbf_gram(X, X, lengthscale)
    Gyy = rbf_gram(Y, Y, lengthscale)
    Gxy = rbf_gram(X, Y, lengthscale)
    return float(
        (np.sum(Gxx) - np.trace(Gxx)) / (m * (m - 1))
        + (np.sum(Gyy) - np.trace(Gyy)) / (k * (k - 1))
        - 2.0 * np.mean(Gxy)
    )


def mmd2_noise_floor(
    K, m: int, repetitions: int = 5, lengthscale: float = DEFAULT_LENGTHSCALE, seed=0
) -> tuple[float, float, np.ndarray]:
    """MMD^2 estimates of exact Gaussian samples: the estimator's noise floor.

    Draws ``repetitions`` independent sets of ``m`` samples from N(0, K) and
    evaluates :func:`mmd2_gaussian` on each.  Their mean scatters around 0 (the
    estimator is unbiased); their standard deviation is the resolution below
    which a measured MMD^2 cannot be told apart from perfect convergence.

    Parameters
    ----------
    K : array_like of float, shape (P, P)
    m : int
        Sample count (use the number of realizations of the measurement).
    repetitions : int
        Number of independent Gaussian sample sets (>= 2).
    lengthscale : float
    seed : int or sequence of int
        Seed for ``numpy.random.default_rng``.

    Returns
    -------
    mean : float
    std : float
        Sample standard deviation (ddof=1) over repetitions.
    values : ndarray of float64, shape (repetitions,)
    """
    K = _check_covariance(K)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
        raise ValueError(f"m: must be an integer >= 2, got {m!r}")
    if isinstance(repetitions, bool) or not isinstance(repetitions, (int, np.integer)) or repetitions < 2:
        raise ValueError(f"repetitions: must be an integer >= 2, got {repetitions!r}")
    rng = np.random.default_rng(seed)
    P = K.shape[0]
    w, V = np.linalg.eigh(K)
    root = V * np.sqrt(np.clip(w, 0.0, None))  # K = root root^T, works for singular K
    values = np.empty(int(repetitions))
    for i in range(int(repetitions)):
        S = rng.standard_normal((int(m), P)) @ root.T
        values[i] = mmd2_gaussian(S, K, lengthscale)
    return float(np.mean(values)), float(np.std(values, ddof=1)), values
