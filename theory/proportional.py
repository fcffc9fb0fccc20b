"""Deep linear networks in the proportional limit ``P = alpha n -> infinity`` (theory-notes Sec. 9.4).

Conventions (derived here; the slides' ``g_l`` is our weight *variance* ``g_l^2``)
-------------------------------------------------------------------------------
DNN, linear activation, no hidden or readout bias (``sigma^2 = 0``), equal
widths ``n``, one output (``n_out = 1``), readout ``f = gamma_0^{-1/2} W_out h^(A)``.
Write ``C_l := Caux^(l,l)`` on the ``P`` training patterns, ``l = 0..L`` with
``L = A+1`` (the readout kernel).  ``C_0 = g_0^2/n_in X X^T`` is deterministic and,
because ``Caux^(l) = g_l^2 Chat^(l-1)`` and the ``n`` units of layer ``l-1`` are
i.i.d. ``N(0, C_{l-1})`` given the layers below,
``C_l | C_{l-1} ~ Wishart_P(n, g_l^2 C_{l-1} / n)`` exactly, ``l = 1..L``.  The data
term is ``S_D(C_L) = ln N(Y | 0, C_L / gamma_0 + kappa I)``.

*Forward-backward (MAP) equations.*  Replacing ``-ln p(C_l | C_{l-1})`` by its
large-deviation rate ``Gamma_l = n KL(N(0, C_l) || N(0, g_l^2 C_{l-1}))`` (the
slides' choice; it drops the Wishart volume term ``(P+1)/2 ln det C_l``) and
setting ``dS/dC_l = 0`` for ``S = S_D(C_L) - sum_l Gamma_l`` gives, with
``Ctilde_l := dGamma_l/dC_l = (n/2) [ (g_l^2 C_{l-1})^-1 - C_l^-1 ]``::

    C_l      = g_l^2 [ C_{l-1}^-1 - (2 g_l^2 / n) Ctilde_l ]^-1 = C_{l-1} T_l
    T_l      = g_l^2 [ I - (2 g_l^2 / n) Ctilde_l C_{l-1} ]^-1
    Ctilde_{l-1} = T_l Ctilde_l                       (from dGamma_l/dC_{l-1} = -Ctilde_{l-1})
    Ctilde_L = dS_D/dC_L = (1 / (2 gamma_0)) (M Y Y^T M - M),   M = (C_L/gamma_0 + kappa I)^-1

i.e. the slides' equations with ``g_l -> g_l^2`` and the factor 2 from the
Gaussian ``1/2``.  :func:`map_kernels` solves them by a damped fixed-point
iteration (forward sweep for ``C`` given ``Ctilde``, backward sweep for ``Ctilde``
given ``C``), reporting the iterations and the final residual and raising
:class:`ConvergenceError` when it does not converge.

*Li & Sompolinsky (PRX 11, 031059, 2021), scalar renormalisation.*  Integrate the
weights from the readout down: ``W_out a`` with ``a ~ N(0, I_n)`` enters only
through ``|a|``, and each ``W^(l)`` through the norm of an ``n``-vector, so exactly
``Y ~ N(0, u Kbar + kappa I)`` with ``Kbar = prod_l g_l^2 C_0 / gamma_0`` (the NNGP
kernel) and ``u = prod_{l=1}^{L} q_l``, ``q_l ~ chi^2_n / n`` independent.  For
``P = alpha n -> infinity`` the ``q_l`` integral is a saddle point, all ``q_l``
equal ``q``, with::

    q = 1 + (1/n) [ Y^T M u Kbar M Y - tr(M u Kbar) ],   u = q^L,   M = (u Kbar + kappa I)^-1

(:func:`li_sompolinsky`).  The posterior-mean predictor on the training
patterns is ``u Kbar M Y``; the MAP kernels give ``C_L/gamma_0 (C_L/gamma_0 + kappa)^-1 Y``.
Both are O(1)-different from the NNGP at finite ``alpha``; their agreement is
tested in ``tests/test_theory_proportional.py``.

*Posterior-mean kernels (exact identity, evaluated at the saddle point).*  Write
``r_A = W_out`` and ``r_{l-1} = W_l^T r_l``, so that ``f = gamma_0^{-1/2} r_l . h^(l)``
for every layer ``l = 0..A`` (``h^(l)``: the ``n`` pre-activations of layer ``l`` on the
``P`` patterns).  Rotate the units of layer ``l`` so that ``r_l = |r_l| e_1``: given
the layers below, the rotated units are still i.i.d. ``N(0, C_l)``, the data see only
the first one, ``h'_1 = f / s_l`` with ``s_l^2 = |r_l|^2 / gamma_0 = prod_{k=l+1}^{L} g_k^2 q_k / gamma_0``,
and ``C_{l+1} = (g_{l+1}^2 / n) sum_j h'_j h'_j^T``.  Hence, exactly at every ``n``::

    E[C_{l+1} | Y] = g_{l+1}^2 [ (n-1)/n E[C_l | Y] + (1/n) E[f f^T / s_l^2 | Y] ],   C_0 = g_0^2/n_in X X^T

Given ``u`` the output ``f`` is Gaussian, ``f | Y, u ~ N(m_u, u Kbar - u Kbar (u Kbar + kappa I)^-1 u Kbar)``,
``m_u = u Kbar (u Kbar + kappa I)^-1 Y``.  :func:`posterior_kernels` evaluates
``E[f f^T / s_l^2 | Y]`` at the Li-Sompolinsky saddle point (all ``q_l = q``), which
is exact for ``P = alpha n -> infinity`` up to O(1/n).  The learning signal enters
each layer as the rank-one ``m_u m_u^T / (n s_l^2)``, whose projection on ``Y Y^T``
is O(alpha).

*MAP kernels are not the posterior mean at finite alpha.*  At fixed ``P`` and
``n -> infinity`` :func:`map_kernels` and :func:`posterior_kernels` agree to first
order in 1/n (both equal :func:`theory.adaptation`).  At fixed ``alpha`` they
differ at O(1): the saddle point of the action over the ``P x P`` kernels drops
the fluctuation (one-loop) determinant, which with ``P^2/2 = O(n^2)`` kernel degrees
of freedom is as large as the action itself.  Measured (deep linear, A = 1,
alpha = 0.5, kappa = 0.05, n = 32): the projection of ``C_2`` on the unit target
direction is 1.691 (MAP), 1.910 (:func:`posterior_kernels`), 1.933 +- 0.015 (HMC) in
units of the NNGP value; the MAP value stays 6-10 % low as ``n`` grows
(``tests/test_proportional_hmc.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.signal

from .adaptation import check_output_scale
from .kernel import _check_prior, kernel
from .nlo import _check_width
from .prior import Prior, check_nonneg_scalar


class ConvergenceError(RuntimeError):
    """The self-consistent iteration did not converge (message: iterations, residual, settings)."""


@dataclass
class MAPKernels:
    """Solution of the deep-linear forward-backward equations.

    Attributes
    ----------
    C : ndarray of float64, shape (L+1, P, P)
        ``C_l = Caux^(l,l)`` on the training patterns, ``l = 0..L = A+1``.
    Ctilde : ndarray of float64, shape (L+1, P, P)
        Conjugate kernels (``Ctilde_0`` is the back-propagated signal at the input).
    nngp : ndarray of float64, shape (L+1, P, P)
        The infinite-width (``Ctilde = 0``) kernels.
    predictor : ndarray of float64, shape (P, n_out)
        ``C_L/gamma_0 (C_L/gamma_0 + kappa I)^-1 Y``.
    iterations : int
    residual : float
        Final max relative change of the kernels in one iteration.
    """

    C: np.ndarray
    Ctilde: np.ndarray
    nngp: np.ndarray
    predictor: np.ndarray
    iterations: int
    residual: float


@dataclass
class LiSompolinsky:
    """Scalar kernel renormalisation of Li & Sompolinsky (2021).

    Attributes
    ----------
    q : float
        Per-layer renormalisation (saddle point of ``|a|^2/n``).
    u : float
        ``q^L``: the readout kernel is ``u Kbar``.
    predictor : ndarray of float64, shape (P, 1)
    """

    q: float
    u: float
    predictor: np.ndarray


def _setup(prior, X, y, kappa, width, gamma0):
    prior = _check_prior(prior)
    if prior.arch != "dnn" or prior.act.name != "linear":
        raise ValueError(f"prior: the proportional-limit solver is for the deep linear DNN, got "
                         f"arch={prior.arch}, activation={prior.activation_name}")
    if np.any(prior.sigma2_layers != 0):
        raise ValueError("prior: the proportional-limit solver needs sigma2 = 0 and sigma2_out = 0 (no biases)")
    if np.any(prior.nu_layers != 1):
        raise ValueError("prior: the proportional-limit solver needs equal widths (nu = 1)")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X: must have shape (P, n_in) (single inputs), got {X.shape}")
    C = kernel(prior, X)
    P = X.shape[0]
    Y = np.asarray(y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape != (P, 1) or not np.all(np.isfinite(Y)):
        raise ValueError(f"y: must be finite with shape ({P},) or ({P}, 1) (one output), got {np.shape(y)}")
    kappa = check_nonneg_scalar("kappa", kappa)
    if kappa <= 0:
        raise ValueError(f"kappa: must be > 0, got {kappa!r}")
    gamma0 = check_output_scale(gamma0)
    n = _check_width(width)
    L = prior.depth + 1
    C0 = C[0, 0]
    try:
        np.linalg.cholesky(C0 - 1e-12 * np.abs(C0).max() * np.eye(P))
    except np.linalg.LinAlgError:
        raise ValueError("X: the input kernel g_0^2/n_in X X^T must be positive definite (P <= n_in, "
                         "linearly independent patterns)") from None
    nngp = np.stack([C[a, a] for a in range(L + 1)])
    return prior, Y, kappa, gamma0, n, L, nngp


def _data_gradient(CL, Y, kappa, gamma0):
    P = CL.shape[0]
    M = np.linalg.inv(CL / gamma0 + kappa * np.eye(P))
    MY = M @ Y
    G = (MY @ MY.T - Y.shape[1] * M) / (2.0 * gamma0)
    return 0.5 * (G + G.T)


def map_kernels(prior: Prior, X, y, kappa, width, gamma0: float = 1.0, damping: float = 0.5,
        tol: float = 1e-10, max_iter: int = 10000) -> MAPKernels:
    """Solve the deep-linear forward-backward MAP kernel equations (module docstring).

    Parameters
    ----------
    prior : Prior
        DNN, linear, ``sigma^2 = 0``, ``nu = 1``; ``g2`` per layer allowed.
    X : array_like, shape (P, n_in)
        Training inputs (``P <= n_in``, linearly independent).
    y : array_like, shape (P,) or (P, 1)
    kappa : float
        Observation noise ``> 0``.
    width : float
        ``n``; ``alpha = P / n``.
    gamma0 : float, optional
        Output scale.
    damping : float, optional
        Step ``0 < eta <= 1`` of the damped update of the data signal
        ``Ctilde_L <- (1-eta) Ctilde_L + eta dS_D/dC_L``.
    tol : float, optional
        Convergence when the max relative change of the kernels and of the
        data signal in one iteration is below ``tol``.
    max_iter : int, optional

    Returns
    -------
    MAPKernels

    Raises
    ------
    ValueError
        Bad arguments.
    ConvergenceError
        Not converged within ``max_iter`` iterations, or a kernel lost positive
        definiteness (learning signal too strong for the iteration).
    """
    prior, Y, kappa, gamma0, n, L, nngp = _setup(prior, X, y, kappa, width, gamma0)
    if not (0 < damping <= 1):
        raise ValueError(f"damping: must lie in (0, 1], got {damping!r}")
    g2 = prior.g2_layers[1:]  # g_l^2, l = 1..L (L = A+1: the readout uses g_out^2)
    P = nngp.shape[1]
    Cs = nngp.copy()
    Ct = np.zeros_like(Cs)
    resid = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        # damped data signal, then one backward and one forward sweep
        target = _data_gradient(Cs[L], Y, kappa, gamma0)
        dsig = np.abs(target - Ct[L]).max() / max(np.abs(target).max(), 1e-300)
        Ct[L] = (1.0 - damping) * Ct[L] + damping * target
        for l in range(L, 0, -1):  # backward: Ctilde_{l-1} = T_l Ctilde_l
            T = g2[l - 1] * np.linalg.inv(np.eye(P) - (2.0 * g2[l - 1] / n) * Ct[l] @ Cs[l - 1])
            c = T @ Ct[l]
            Ct[l - 1] = 0.5 * (c + c.T)
        new = Cs.copy()
        for l in range(1, L + 1):  # forward: C_l = g_l^2 [C_{l-1}^-1 - (2 g_l^2/n) Ctilde_l]^-1
            A_ = np.linalg.inv(new[l - 1]) - (2.0 * g2[l - 1] / n) * Ct[l]
            c = g2[l - 1] * np.linalg.inv(A_)
            new[l] = 0.5 * (c + c.T)
        if not np.all(np.isfinite(new)) or any(np.linalg.eigvalsh(new[l]).min() <= 0 for l in range(L + 1)):
            raise ConvergenceError(f"map_kernels: a kernel lost positive definiteness at iteration {it} "
                                   f"(alpha = {P / n:.3g}, gamma0 = {gamma0:g}, kappa = {kappa:g}, "
                                   f"damping = {damping:g}); the learning signal is too strong for the "
                                   f"iteration: try a smaller damping")
        scale = np.abs(new).max(axis=(1, 2))
        resid = float(max(np.max(np.abs(new - Cs).max(axis=(1, 2)) / scale), dsig))
        Cs = new
        if resid < tol:
            break
    else:
        raise ConvergenceError(f"map_kernels: not converged after {max_iter} iterations (residual {resid:.3g} "
                               f"> tol {tol:g}; alpha = {P / n:.3g}, damping = {damping:g})")
    Ct[L] = _data_gradient(Cs[L], Y, kappa, gamma0)
    KL = Cs[L] / gamma0
    pred = KL @ np.linalg.solve(KL + kappa * np.eye(P), Y)
    return MAPKernels(C=Cs, Ctilde=Ct, nngp=nngp, predictor=pred, iterations=it, residual=resid)


def _saddle_logq(lam, w2, kappa, n, L) -> float:
    """``ln q`` at the Li-Sompolinsky saddle point (eigenvalues ``lam`` of Kbar, squared target projections ``w2``)."""

    def residual(logq):
        q = np.exp(logq)
        u = q**L
        d = u * lam + kappa
        return q - 1.0 - (np.sum(w2 * u * lam / d**2) - np.sum(u * lam / d)) / n

    lo, hi = -30.0, 30.0
    if residual(lo) * residual(hi) > 0:
        raise ConvergenceError("li_sompolinsky: no root of the saddle-point equation in q in [e^-30, e^30]")
    return float(scipy.optimize.brentq(residual, lo, hi, xtol=1e-15, rtol=1e-15))


def li_sompolinsky(prior: Prior, X, y, kappa, width, gamma0: float = 1.0) -> LiSompolinsky:
    """Scalar renormalisation ``u = q^L`` of the deep linear network (module docstring).

    Parameters
    ----------
    prior, X, y, kappa, width, gamma0
        As :func:`map_kernels`.

    Returns
    -------
    LiSompolinsky

    Raises
    ------
    ValueError
        Bad arguments.
    ConvergenceError
        No root of the saddle-point equation was bracketed.
    """
    prior, Y, kappa, gamma0, n, L, nngp, Kbar, q, u = _saddle_point(prior, X, y, kappa, width, gamma0)
    pred = u * Kbar @ np.linalg.solve(u * Kbar + kappa * np.eye(Kbar.shape[0]), Y)
    return LiSompolinsky(q=q, u=float(u), predictor=pred)


def _saddle_point(prior, X, y, kappa, width, gamma0):
    """Checked arguments (:func:`_setup`) and the Li-Sompolinsky saddle point of :func:`li_sompolinsky` and
    :func:`posterior_kernels`.

    Returns
    -------
    prior, Y, kappa, gamma0, n, L, nngp
        As :func:`_setup` (``Y``: float64, shape (P, 1); ``nngp``: float64, shape (L+1, P, P)).
    Kbar : ndarray of float64, shape (P, P)
        ``nngp[L] / gamma0``, the NNGP readout kernel in units of ``f = y / sqrt(gamma0)``.
    q : float
        Per-layer renormalisation at the saddle point.
    u : float
        ``q^L``.
    """
    prior, Y, kappa, gamma0, n, L, nngp = _setup(prior, X, y, kappa, width, gamma0)
    Kbar = nngp[L] / gamma0
    lam, V = np.linalg.eigh(Kbar)
    q = float(np.exp(_saddle_logq(lam, (V.T @ Y[:, 0]) ** 2, kappa, n, L)))
    return prior, Y, kappa, gamma0, n, L, nngp, Kbar, q, q**L


@dataclass
class ExactPredictor:
    """Exact finite-width posterior-mean predictor of the deep linear network (one output).

    Attributes
    ----------
    predictor : ndarray of float64, shape (P, 1)
        ``E_post[f]`` on the training patterns.
    u_mean : float
        Posterior mean of the kernel scale ``u = prod_l q_l``.
    error : float
        Quadrature error estimate of ``predictor`` (max abs difference to the
        estimate on the grid with twice the step).
    """

    predictor: np.ndarray
    u_mean: float
    error: float


def exact_predictor(prior: Prior, X, y, kappa, width, gamma0: float = 1.0, step: float | None = None) -> ExactPredictor:
    """Exact ``E_post[f]`` of the deep linear network at finite ``n`` (scalar mixture, module docstring).

    ``Y ~ N(0, u Kbar + kappa I)`` with ``u = prod_{l=1}^L q_l``, ``q_l ~ chi^2_n/n``
    i.i.d.: the density of ``s = ln u`` is the ``L``-fold convolution of the
    log-gamma density on a uniform grid, and ``E_post[F(u)]`` a 1-D sum over
    ``s``.  The error estimate compares with the sum on every second node.

    Parameters
    ----------
    prior, X, y, kappa, width, gamma0
        As :func:`map_kernels` (``width`` need not be an integer).
    step : float, optional
        Grid step in ``s``; default ``0.02 / sqrt(width)``.

    Returns
    -------
    ExactPredictor
    """
    prior, Y, kappa, gamma0, n, L, nngp = _setup(prior, X, y, kappa, width, gamma0)
    Kbar = nngp[L] / gamma0
    lam, V = np.linalg.eigh(Kbar)
    b = V.T @ Y[:, 0]
    k = n / 2.0
    h = 0.02 / np.sqrt(n) if step is None else float(step)
    # exponential tilting: each log-gamma factor is multiplied by exp(theta t) so that it peaks at the
    # saddle point ln q*; the FFT convolution is then accurate (relative to its peak) where the
    # posterior lives, and the tilt exp(theta s) is divided out exactly afterwards
    t_star = _saddle_logq(lam, b**2, kappa, n, L)
    theta = -k * (1.0 - np.exp(t_star))
    half = 4 * int(np.ceil((3.0 + 40.0 * np.sqrt(L / n)) / h / 4))
    s = L * t_star + h * np.arange(-half, half + 1)  # grid of s = ln u, centred at the saddle
    t = t_star + h * np.arange(-half, half + 1)  # grid of one factor t = ln q
    logp1 = k * t - k * np.exp(np.clip(t, None, 50.0)) + theta * t  # tilted log-gamma (+ const)
    p1 = np.exp(logp1 - logp1.max())
    p = p1.copy()
    for _ in range(L - 1):  # L-fold convolution; the centres add up: grid of s
        p = scipy.signal.fftconvolve(p, p1, mode="same")
        p = np.where(p > 1e-13 * p.max(), p, 0.0)  # below the FFT round-off: zero
        p /= p.max()
    with np.errstate(divide="ignore"):
        logps = np.log(p) - theta * (s - L * t_star)  # untilt (up to a constant)
    u = np.exp(s)
    d = u[:, None] * lam[None, :] + kappa  # (S, P)
    logw = -0.5 * np.sum(b**2 / d, axis=1) - 0.5 * np.sum(np.log(d), axis=1)
    logt = logps + logw
    wt = np.exp(logt - logt.max())
    if max(wt[0], wt[-1]) > 1e-14:
        raise ConvergenceError(f"exact_predictor: the posterior of ln u reaches the grid edge |ln u| = {s[-1]:.3g} "
                               "(learning signal too strong for the grid)")
    coef = u[:, None] * lam[None, :] * b[None, :] / d  # predictor in the eigenbasis

    def est(wv, idx):
        w = wv[idx] / wv[idx].sum()
        return V @ (w @ coef[idx]), float(w @ u[idx])

    full, um = est(wt, slice(None))
    coarse, _ = est(wt, slice(None, None, 2))
    return ExactPredictor(predictor=full[:, None], u_mean=um, error=float(np.abs(full - coarse).max()))


@dataclass
class PosteriorKernels:
    """Posterior-mean kernels of the deep linear network in the proportional limit.

    Attributes
    ----------
    C : ndarray of float64, shape (L+1, P, P)
        ``E[Caux^(l,l) | Y]`` on the training patterns, ``l = 0..L = A+1``.
    nngp : ndarray of float64, shape (L+1, P, P)
        The infinite-width kernels.
    output_moment : ndarray of float64, shape (P, P)
        ``E[f f^T | Y]`` at the saddle point (units of ``f = y / sqrt(gamma0)``).
    q : float
        Li-Sompolinsky per-layer renormalisation at the saddle point.
    u : float
        ``q^L``.
    """

    C: np.ndarray
    nngp: np.ndarray
    output_moment: np.ndarray
    q: float
    u: float


def posterior_kernels(prior: Prior, X, y, kappa, width, gamma0: float = 1.0) -> PosteriorKernels:
    """Posterior means ``E[Caux^(l,l) | Y]`` of the deep linear DNN for ``P = alpha n`` (module docstring).

    The exact layer recursion ``E[C_{l+1}|Y] = g_{l+1}^2 [(n-1)/n E[C_l|Y] + E[f f^T/s_l^2|Y]/n]``
    with the output moment and the scales ``s_l`` at the Li-Sompolinsky saddle
    point; the error is O(1/n) at fixed ``alpha = P/n``.

    Parameters
    ----------
    prior, X, y, kappa, width, gamma0
        As :func:`map_kernels`.

    Returns
    -------
    PosteriorKernels

    Raises
    ------
    ValueError
        Bad arguments.
    ConvergenceError
        No root of the saddle-point equation was bracketed.
    """
    prior, Y, kappa, gamma0, n, L, nngp, _, q, u = _saddle_point(prior, X, y, kappa, width, gamma0)
    P = nngp.shape[1]
    uK = u * nngp[L] / gamma0
    B = np.linalg.solve(uK + kappa * np.eye(P), uK).T  # u Kbar (u Kbar + kappa I)^-1 (symmetric inputs)
    m = B @ Y
    moment = m @ m.T + uK - B @ uK
    moment = 0.5 * (moment + moment.T)
    g2 = prior.g2_layers
    C = np.empty_like(nngp)
    C[0] = nngp[0]
    for l in range(L):  # C_{l+1} from C_l; s_l^2 = prod_{k=l+1}^{L} g_k^2 q / gamma0
        s2 = float(np.prod(g2[l + 1:L + 1])) * q ** (L - l) / gamma0
        C[l + 1] = g2[l + 1] * ((n - 1.0) / n * C[l] + moment / (n * s2))
    return PosteriorKernels(C=C, nngp=nngp, output_moment=moment, q=q, u=float(u))
