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


def _mmd2_kernel_matrix(samples, K, lengthscale) -> np.ndarray:
    """U-statistic kernel ``H_ij = k(t_i, t_j) - e_i - e_j + c`` (zero diagonal), so that MMD^2 = mean_{i != j} H_ij."""
    K = _check_covariance(K)
    T = _check_samples(samples, K.shape[0])
    embed = gaussian_embedding(T, K, lengthscale)
    H = rbf_gram(T, T, lengthscale) - embed[:, None] - embed[None, :] + gaussian_self_term(K, lengthscale)
    np.fill_diagonal(H, 0.0)
    return H


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
    H = _mmd2_kernel_matrix(samples, K, lengthscale)
    m = H.shape[0]
    return float(np.sum(H) / (m * (m - 1)))


def mmd2_gaussian_with_se(samples, K, lengthscale: float = DEFAULT_LENGTHSCALE) -> tuple[float, float]:
    """:func:`mmd2_gaussian` and its standard error over the samples (Hoeffding decomposition).

    The estimate ``U = mean_{i != j} h(t_i, t_j)`` is a U-statistic of order 2 with
    kernel ``h(s, t) = k(s, t) - e(s) - e(t) + c`` (``e = E_{s ~ N(0,K)} k(s, .)``,
    ``c`` the self term).  Its variance is exactly (Hoeffding)::

        Var U = (4 (m-2) zeta_1 + 2 zeta_2) / (m (m-1)),
        zeta_1 = E[h12 h13] - theta^2,   zeta_2 = E[h12^2] - theta^2,   theta = E U,

    and ``E[h12 h13]``, ``E[h12^2]`` and ``theta^2`` have unbiased estimates as
    averages over distinct index triples, pairs and quadruples (computed in
    ``O(m^2)`` from the kernel matrix).  Each ``zeta`` estimate is clipped at 0
    (a variance), which makes the SE slightly conservative where ``zeta_1 = 0``
    (MMD^2 = 0, degenerate U-statistic; about +9 % in the SE) and leaves it
    unbiased in variance otherwise.  Unlike the delete-one jackknife, which
    doubles the degenerate part, it stays calibrated at the noise floor.  This
    is the sampling error *given* the distribution of the samples (here: given
    the network's inputs), from the finite number ``m`` of weight realizations.

    Parameters
    ----------
    samples : array_like of float, shape (m, P)
        ``m >= 2`` i.i.d. sample vectors.
    K : array_like of float, shape (P, P)
    lengthscale : float

    Returns
    -------
    value : float
        Same as :func:`mmd2_gaussian`.
    se : float
        ``sqrt`` of the variance estimate above; NaN for m < 4 (no distinct quadruples).
    """
    return u_statistic_with_se(_mmd2_kernel_matrix(samples, K, lengthscale))


def mmd2_gaussian_sum_with_se(samples_seq, K_seq, lengthscale: float = DEFAULT_LENGTHSCALE) -> tuple[float, float]:
    """Sum of several MMD^2 estimates on the *same* realizations, with its joint SE.

    Sample ``i`` of every term comes from one realization (e.g. the readouts of
    one network after several depths, ``y_steps`` of :func:`mcsim.sample`), so
    the terms are correlated and their SEs do not add in quadrature.  The sum
    ``sum_d U_d = mean_{i != j} sum_d h_d(t_i^d, t_j^d)`` is itself a U-statistic
    of order 2 over the realizations, with kernel ``sum_d h_d``; its SE is that
    of :func:`mmd2_gaussian_with_se` (Hoeffding) for the summed kernel matrix,
    i.e. it uses the per-realization first-order projections of all terms jointly.

    Parameters
    ----------
    samples_seq : sequence of array_like of float, each shape (m, P_d)
        Term d's samples; row i of every term from realization i.
    K_seq : sequence of array_like of float, each shape (P_d, P_d)
        Term d's Gaussian covariance.
    lengthscale : float

    Returns
    -------
    value : float
        ``sum_d mmd2_gaussian(samples_seq[d], K_seq[d])`` (up to rounding).
    se : float
        Its standard error over realizations; NaN for m < 4.
    """
    if len(samples_seq) != len(K_seq) or not len(samples_seq):
        raise ValueError(f"samples_seq, K_seq: need equal non-zero lengths, got {len(samples_seq)}, {len(K_seq)}")
    H = None
    for samples, K in zip(samples_seq, K_seq):
        Hd = _mmd2_kernel_matrix(samples, K, lengthscale)
        if H is not None and Hd.shape != H.shape:
            raise ValueError(f"samples_seq: every term needs the same number of realizations, got {H.shape[0]} "
                             f"and {Hd.shape[0]}")
        H = Hd if H is None else H + Hd
    return u_statistic_with_se(H)


def u_statistic_with_se(H) -> tuple[float, float]:
    """Order-2 U-statistic ``mean_{i != j} H_ij`` and its SE (Hoeffding; see :func:`mmd2_gaussian_with_se`).

    Parameters
    ----------
    H : ndarray of float64, shape (m, m)
        Symmetric kernel matrix with zero diagonal.

    Returns
    -------
    value, se : float
        SE NaN for m < 4.
    """
    m = H.shape[0]
    if m < 4:
        return float(np.sum(H) / (m * (m - 1))), float("nan")
    rows = np.sum(H, axis=1)
    total, sq, rows_sq = float(np.sum(rows)), float(np.sum(H * H)), float(np.sum(rows * rows))
    pairs = m * (m - 1)
    h12_h13 = (rows_sq - sq) / (pairs * (m - 2))  # distinct triples (i, j, k)
    h12_sq = sq / pairs  # distinct pairs
    theta_sq = (total * total - 4.0 * rows_sq + 2.0 * sq) / (pairs * (m - 2) * (m - 3))  # distinct quadruples
    var = (4.0 * (m - 2) * max(h12_h13 - theta_sq, 0.0) + 2.0 * max(h12_sq - theta_sq, 0.0)) / pairs
    return total / pairs, math.sqrt(var)


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
