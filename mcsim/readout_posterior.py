"""The readout integrated out: Gaussian likelihood and conditional predictor (theory-notes Sec. 9.1).

Given all hidden parameters Theta, the readout weights ``W^(out)`` and bias
``xi^(A+1)`` are Gaussian, so each output column ``f_o = gamma0^{-1/2} y_o``
on all patterns is Gaussian with covariance

    K(Theta) = Caux^(A+1,A+1)(Theta) / gamma0          (P, P)

(``caux_readout`` of :func:`mcsim.sample`).  With targets ``Y`` on the
training patterns D and noise ``kappa``:

    ln p(Y | Theta) = sum_o ln N(Y_o | 0, K_DD + kappa I)
    E[f_* | Theta, Y] = K_*D (K_DD + kappa I)^-1 Y

Both are computed here once, batched over realizations, for the importance
weights (:mod:`mcsim.importance`) and for HMC (:mod:`mcsim.hmc_network`).
``kappa = inf`` switches the data term off (the posterior is the prior).
All linear algebra is via Cholesky factors; a factorisation that fails
(``K_DD + kappa I`` not positive definite, e.g. ``kappa = 0`` and
``P_D > n``) raises :class:`ReadoutCholeskyError`, naming the realization.
"""

from __future__ import annotations

import math

import numpy as np


class ReadoutCholeskyError(ValueError):
    """``K_DD + kappa I`` is not numerically positive definite."""


def check_kappa_gamma0(kappa, gamma0) -> tuple[float, float]:
    """Validate the noise ``kappa`` (>= 0, may be ``inf``) and the output scale ``gamma0`` (> 0, finite).

    Returns
    -------
    kappa, gamma0 : float

    Raises
    ------
    ValueError
        ``kappa: ...`` or ``gamma0: ...``.
    """
    try:
        k = float(kappa)
    except (TypeError, ValueError):
        raise ValueError(f"kappa: must be a number >= 0 (inf switches the data term off), got {kappa!r}") from None
    if math.isnan(k) or k < 0:
        raise ValueError(f"kappa: must be >= 0 (inf switches the data term off), got {kappa!r}")
    try:
        g = float(gamma0)
    except (TypeError, ValueError):
        raise ValueError(f"gamma0: must be a positive finite number, got {gamma0!r}") from None
    if not math.isfinite(g) or g <= 0:
        raise ValueError(f"gamma0: must be a positive finite number, got {gamma0!r}")
    return k, g


def _cholesky(C: np.ndarray) -> np.ndarray:
    """Batched lower Cholesky factor of (R, m, m); raises :class:`ReadoutCholeskyError` naming the first failure."""
    try:
        return np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        bad = [r for r in range(C.shape[0]) if not _is_pd(C[r])]
        raise ReadoutCholeskyError(
            f"kappa: K_DD + kappa I is not positive definite for realization(s) {bad[:5]} "
            f"({len(bad)} of {C.shape[0]}); use kappa > 0 or fewer training patterns than the width"
        ) from None


def _is_pd(M: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(M)
        return bool(np.all(np.isfinite(M)))
    except np.linalg.LinAlgError:
        return False


def _factor(caux_readout: np.ndarray, train: np.ndarray, kappa: float, gamma0: float):
    """``K = caux_readout / gamma0`` (R, P, P) and the Cholesky factor of ``K_DD + kappa I`` (R, P_D, P_D)."""
    K = caux_readout / gamma0
    L = _cholesky(K[:, train][:, :, train] + kappa * np.eye(train.size))
    return K, L


def _solve_lower(L: np.ndarray, B: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``L^-1 B`` (or ``L^-T B``) for batched lower-triangular L (R, m, m) and B (R, m, k).

    Forward (back) substitution over the m rows, vectorised over the R
    realizations and k columns: m is the number of training patterns (small),
    R up to 10^5 or more, so one NumPy operation per row replaces R LAPACK
    calls (a Python loop of ``scipy.linalg.solve_triangular`` took about 10 us
    per realization).

    Parameters
    ----------
    L : ndarray of float64, shape (R, m, m)
        Lower triangular, non-zero diagonal.
    B : ndarray of float64, shape (R, m, k)
    transpose : bool
        Solve ``L^T X = B`` instead of ``L X = B``.

    Returns
    -------
    ndarray of float64, shape (R, m, k)
    """
    m = L.shape[1]
    X = np.empty((L.shape[0], m, B.shape[2]))
    rows = range(m - 1, -1, -1) if transpose else range(m)
    for i in rows:
        rhs = B[:, i, :]
        if transpose and i + 1 < m:  # row i of L^T: entries L[j, i], j > i
            rhs = rhs - np.einsum("rj,rjk->rk", L[:, i + 1:, i], X[:, i + 1:, :])
        elif not transpose and i > 0:
            rhs = rhs - np.einsum("rj,rjk->rk", L[:, i, :i], X[:, :i, :])
        X[:, i, :] = rhs / L[:, i, i, None]
    return X


def log_likelihood(caux_readout: np.ndarray, Y: np.ndarray, train: np.ndarray, kappa: float,
                   gamma0: float = 1.0) -> np.ndarray:
    """``sum_o ln N(Y_o | 0, K_DD + kappa I)`` per realization.

    Parameters
    ----------
    caux_readout : ndarray of float64, shape (R, P, P)
        ``Caux^(A+1,A+1)`` on all patterns, per realization.
    Y : ndarray of float64, shape (P_D, n_out)
        Targets on the training patterns.
    train : ndarray of int64, shape (P_D,)
        Indices of the training patterns in ``0..P-1``.
    kappa : float
        Observation noise (``inf``: the data term is 0).
    gamma0 : float
        Output scale (``K = caux_readout / gamma0``).

    Returns
    -------
    ndarray of float64, shape (R,)

    Raises
    ------
    ReadoutCholeskyError
        If some ``K_DD + kappa I`` is not positive definite.
    """
    R = caux_readout.shape[0]
    if math.isinf(kappa):
        return np.zeros(R)
    PD, n_out = Y.shape
    _, L = _factor(caux_readout, train, kappa, gamma0)
    B = _solve_lower(L, np.broadcast_to(Y, (R, PD, n_out)))
    logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    return -0.5 * (np.einsum("rpo,rpo->r", B, B) + n_out * logdet + n_out * PD * math.log(2 * math.pi))


def conditional_mean(caux_readout: np.ndarray, Y: np.ndarray, train: np.ndarray, kappa: float,
                     gamma0: float = 1.0) -> np.ndarray:
    """Posterior-mean predictor ``K_.D (K_DD + kappa I)^-1 Y`` on all patterns, per realization.

    Parameters
    ----------
    caux_readout, Y, train, kappa, gamma0
        As in :func:`log_likelihood`.

    Returns
    -------
    ndarray of float64, shape (R, P, n_out)
        In units of ``f = gamma0^{-1/2} y`` (zero for ``kappa = inf``).
    """
    R, P, _ = caux_readout.shape
    if math.isinf(kappa):
        return np.zeros((R, P, Y.shape[1]))
    return _factor_and_mean(caux_readout, Y, train, kappa, gamma0)[2]


def _factor_and_mean(caux_readout, Y, train, kappa, gamma0):
    """:func:`_factor` (``K``, ``L``) and the conditional mean ``m = K_.D (K_DD + kappa I)^-1 Y`` (R, P, n_out).

    One factorisation serves :func:`conditional_mean` and :func:`conditional_output_gram`.
    """
    R = caux_readout.shape[0]
    PD, n_out = Y.shape
    K, L = _factor(caux_readout, train, kappa, gamma0)
    alpha = _solve_lower(L, _solve_lower(L, np.broadcast_to(Y, (R, PD, n_out))), transpose=True)
    return K, L, np.einsum("rpd,rdo->rpo", K[:, :, train], alpha)


def conditional_output_gram(caux_readout: np.ndarray, Y: np.ndarray, train: np.ndarray, kappa: float,
                            gamma0: float = 1.0) -> np.ndarray:
    """``E[(1/n_out) y y^T | Theta, Y]`` on all patterns, per realization (the readout block of ``chat``).

    ``y = gamma0^{1/2} f`` with ``f_o | Theta, Y ~ N(m_o, S)``,
    ``S = K - K_.D (K_DD + kappa I)^-1 K_D.``: the result is
    ``gamma0 (S + (1/n_out) sum_o m_o m_o^T)`` (``Caux^(A+1,A+1)`` for ``kappa = inf``).
    Importance weighting uses it in place of the prior outputs' ``chat`` readout
    block, which is not conditioned on the data (Rao-Blackwellised: same posterior mean).

    Parameters
    ----------
    caux_readout, Y, train, kappa, gamma0
        As in :func:`log_likelihood`.

    Returns
    -------
    ndarray of float64, shape (R, P, P)
    """
    if math.isinf(kappa):
        return caux_readout.copy()
    n_out = Y.shape[1]
    K, L, m = _factor_and_mean(caux_readout, Y, train, kappa, gamma0)
    V = _solve_lower(L, K[:, train, :])  # L^-1 K_D. (R, P_D, P): K_.D C^-1 K_D. = V^T V
    S = K - np.einsum("rdp,rdq->rpq", V, V)
    return gamma0 * (S + np.einsum("rpo,rqo->rpq", m, m) / n_out)


def loglik_and_dK(K_DD: np.ndarray, Y: np.ndarray, kappa: float) -> tuple[float, np.ndarray]:
    """``l = sum_o ln N(Y_o | 0, K_DD + kappa I)`` and ``G = dl/dK_DD`` (one realization, for HMC).

    ``G = (1/2) (alpha alpha^T - n_out C^-1)`` with ``C = K_DD + kappa I`` and
    ``alpha = C^-1 Y`` (theory-notes Sec. 9.3), as a symmetric matrix (the
    derivative with respect to each ordered pair).

    Parameters
    ----------
    K_DD : ndarray of float64, shape (P_D, P_D)
        Readout kernel on the training patterns (already divided by gamma0).
    Y : ndarray of float64, shape (P_D, n_out)
    kappa : float
        Finite, >= 0.

    Returns
    -------
    l : float
        ``-inf`` if ``C`` is not positive definite (then ``G`` is all NaN).
    G : ndarray of float64, shape (P_D, P_D)
    """
    from scipy.linalg import cho_solve

    PD, n_out = Y.shape
    C = K_DD + kappa * np.eye(PD)
    try:
        L = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        return -math.inf, np.full((PD, PD), np.nan)
    alpha = cho_solve((L, True), Y, check_finite=False)
    Cinv = cho_solve((L, True), np.eye(PD), check_finite=False)
    logdet = 2.0 * float(np.log(np.diagonal(L)).sum())
    ll = -0.5 * (float(np.sum(Y * alpha)) + n_out * logdet + n_out * PD * math.log(2 * math.pi))
    G = 0.5 * (alpha @ alpha.T - n_out * Cinv)
    return ll, G


def draw_outputs(caux_readout: np.ndarray, Y: np.ndarray, train: np.ndarray, kappa: float, gamma0: float,
                 rng: np.random.Generator) -> np.ndarray:
    """One draw of the network outputs ``y`` on all patterns from their posterior given Theta and Y.

    Matheron's rule (exact, stable for any ``kappa >= 0``): draw ``f ~ N(0, K)``
    on all patterns and ``e ~ N(0, kappa I)`` on D, then
    ``f + K_.D (K_DD + kappa I)^-1 (Y - f_D - e)``; ``y = gamma0^{1/2} f`` (the
    units of ``mcsim.sample``'s ``y``).  For ``kappa = inf`` this is the prior
    draw ``y ~ N(0, Caux^(A+1,A+1))``.

    Parameters
    ----------
    caux_readout : ndarray of float64, shape (P, P)
    Y, train, kappa, gamma0
        As in :func:`log_likelihood`.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of float64, shape (P, n_out)
    """
    P = caux_readout.shape[0]
    PD, n_out = Y.shape
    K = caux_readout / gamma0
    w, V = np.linalg.eigh(K)
    S = V * np.sqrt(np.clip(w, 0.0, None))
    f = S @ rng.standard_normal((P, n_out))
    if not math.isinf(kappa):
        e = math.sqrt(kappa) * rng.standard_normal((PD, n_out))
        resid = Y - f[train] - e
        from scipy.linalg import cho_solve

        C = K[np.ix_(train, train)] + kappa * np.eye(PD)
        L = _cholesky(C[None])[0]
        f = f + K[:, train] @ cho_solve((L, True), resid, check_finite=False)
    return math.sqrt(gamma0) * f
