"""Multi-pattern, cross-layer O(1/n) prior covariances of Caux and Chat (theory-notes Sec. 6, 9.3).

Generalises :func:`theory.nlo.nlo_covariance` (one input, equal-layer blocks)
to ``P`` patterns and every layer pair: for each observable
``O in {Caux^(a,b)_{alpha beta}, Chat^(a,b)_{alpha beta}}``, ``a, b = 0..A+1``,
and each *target* entry ``T = Caux^(c,d)_{gamma delta}`` (default: the readout
kernel ``Caux^(A+1,A+1)``), :func:`nlo_cross_covariance` returns
``Cov_prior(O, T)`` at leading order, ``O(1/n)``.

Derivation
----------
Per unit ``i``, the hidden pre-activations of all layers/steps and patterns
form the vector ``h_i = (h_i^(a)_alpha)``, ``a = 0..A``, of dimension
``D = (A+1) P``.  At leading order the units are independent and ``h_i`` is
centred Gaussian with the mean-field covariance ``C^(a,b)_{alpha beta}``
(:func:`theory.kernel`; cross-layer entries are zero for the DNN with
uncorrelated bias, ``sigma^2`` for static bias, the cross-time kernel for the
RNN).  The per-unit *features* are ``f_i = (phi(h_i), h_i)`` (``2D`` of them).

*Sources.*  ``Caux^(a,b) = B_ab + S_ab g_a^2 / n_{a-1} sum_i phi(h_i^(a-1)) phi(h_i^(b-1))^T + I_ab ...``
(the readout ``a = b = A+1`` with ``g_{A+1}^2`` and ``phi(h^(A))``) and
``Chat^(a,b) = (1/n) sum_i h_i^(a) h_i^(b)^T``.  Their fluctuations about the
conditional means are the unit sums of centred feature products::

    eta^(a,b)_{alpha beta} = S_ab g_a^2 (1/n) sum_i [phi_i^(a-1)_alpha phi_i^(b-1)_beta - E]
    eps^(a,b)_{alpha beta} =          (1/n) sum_i [h_i^(a)_alpha    h_i^(b)_beta    - E]

with covariance ``Cov(f_i f_j, f_k f_l) / n`` per pair of sources (the
*per-unit four-point cumulant* under the mean-field Gaussian).  For the DNN
with relative widths ``nu`` each feature of layer ``p`` carries a factor
``nu_p^(-1/4)`` so that a same-layer source has variance ``1/(nu_p n)``
(units of different layers are independent when the widths differ).

*Propagation.*  Linearising the conditional mean ``g^2 <phi(u) phi(v)>`` in
the auxiliary covariance of the previous layer (Price's theorem, and
``d<phi(u)phi(v)>/dc_uu = <phi''(u) phi(v)>/2``)::

    dCaux^(a,b)_{ab} = S_ab g_a^2 [ <phi'phi'> dCaux^(a-1,b-1)_{ab}
                                   + 1/2 <phi''(u)phi(v)> dCaux^(a-1,a-1)_{aa}
                                   + 1/2 <phi(u)phi''(v)> dCaux^(b-1,b-1)_{bb} ] + eta^(a,b)_{ab}
    dChat^(a,b) = dCaux^(a,b) + eps^(a,b)                         (a, b <= A)

``(u, v) = (h^(a-1)_alpha, h^(b-1)_beta)`` under the mean-field Gaussian.  On
the single-pattern diagonal the three terms add up to
``F_{a-1} = g_a^2 <phi'^2 + phi phi''>`` of :mod:`theory.nlo`, which this module
reproduces for one pattern (tested).  ``Caux^(0,0)``, DNN cross-layer
``Caux^(a,b)`` and every ``Caux^(A+1,b)``, ``b <= A``, are deterministic.
``Chat^(A+1,A+1) = y y^T / n_out`` has the conditional mean ``Caux^(A+1,A+1)``
given the hidden weights and ``Chat^(A+1,b) = y h^(b)`` the conditional mean 0,
so their covariances with any hidden-weight function are those of their
conditional means.

Each observable is thus a linear functional ``sum_ij L[i,j] f_i f_j`` of the
per-unit feature products (coefficient matrices ``L``, shape ``(2D, 2D)``), and::

    Cov(O, T) = (1/n) Cov_unit( f^T L_O f, f^T L_T f ).

Evaluation of the four-point moments
------------------------------------
* ``method="isserlis"`` (linear activation, exact): ``f`` is Gaussian, so
  ``Cov(f^T L_O f, f^T L_T f) = <L_O, Cf (L_T + L_T^T) Cf>`` in closed form.
* ``method="rqmc"`` (any activation): randomised quasi-Monte Carlo over the
  ``D``-dimensional per-unit Gaussian: ``replicates`` independently scrambled
  Sobol' point sets of ``points`` points each.  The estimate is the mean over
  replicates and its error estimate the standard error over replicates
  (an unbiased, honest error estimate: the replicates are i.i.d.).  All
  ``O(1/n)`` outputs are linear in the per-unit moments, so the same
  replicates give the error of any derived quantity (see
  :func:`theory.adaptation`).  With the defaults (8 x 2^14 points) the
  relative standard error of the readout variance is about 1e-3 for relu/erf;
  it falls like ``(points * replicates)^-1/2`` or faster.
* ``method="auto"``: ``isserlis`` for the linear activation, else ``rqmc``.

The two-point derivatives ``<phi'phi'>`` and ``<phi''phi>`` use the closed
forms / controlled quadrature of :mod:`theory.gaussian` (for relu, whose
``phi''`` is a delta function, Stein's lemma gives
``<phi''(u)phi(v)> = (<phi(u)phi(v)> - c_uv <phi'(u)phi'(v)>) / c_uu``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, qmc

from . import gaussian
from .gaussian import DEFAULT_QUAD_TOL
from .kernel import _check_prior, check_finite, kernel
from .nlo import _check_width
from .prior import Prior, check_inputs

#: Default RQMC points per replicate and number of replicates.
DEFAULT_POINTS = 2**14
DEFAULT_REPLICATES = 8

#: Largest coefficient tensor (observables x features^2) built in memory.
_MAX_ELEMS = 60_000_000


@dataclass
class NLOCrossCovariance:
    """``Cov_prior(O, T)`` at ``O(1/n)`` for all Caux/Chat entries ``O`` and targets ``T``.

    Attributes
    ----------
    caux, chat : ndarray of float64, shape (A+2, A+2, P, P, m)
        ``Cov(Caux^(a,b)_{alpha beta}, T_t)`` and ``Cov(Chat^(a,b)_{alpha beta}, T_t)``
        for the ``m`` targets (the estimate; mean over replicates for RQMC).
    caux_se, chat_se : ndarray of float64, same shapes
        Standard error of the estimate (zero for the exact ``isserlis`` method).
    caux_replicates, chat_replicates : ndarray of float64, shape (R, A+2, A+2, P, P, m) or None
        Per-replicate RQMC estimates (``None`` for ``isserlis``); any linear
        functional's error is its standard error over this axis.
    targets : ndarray of int, shape (m, 4)
        ``(c, d, gamma, delta)`` of each target ``Caux^(c,d)_{gamma delta}``.
    method : str
        ``"isserlis"`` or ``"rqmc"``.
    width : float
        The reference width ``n`` (covariances include the factor ``1/n``).
    """

    caux: np.ndarray
    chat: np.ndarray
    caux_se: np.ndarray
    chat_se: np.ndarray
    caux_replicates: np.ndarray | None
    chat_replicates: np.ndarray | None
    targets: np.ndarray
    method: str
    width: float


def readout_targets(prior: Prior, patterns) -> np.ndarray:
    """Target list ``(A+1, A+1, gamma, delta)`` for all ordered pairs of ``patterns``.

    Parameters
    ----------
    prior : Prior
    patterns : array_like of int, shape (k,)

    Returns
    -------
    ndarray of int, shape (k*k, 4)
        Row ``gamma_index * k + delta_index``.
    """
    p = np.asarray(patterns, dtype=int).ravel()
    A1 = prior.depth + 1
    g, d = np.meshgrid(p, p, indexing="ij")
    return np.stack([np.full(g.size, A1), np.full(g.size, A1), g.ravel(), d.ravel()], axis=1)


def _check_targets(prior: Prior, targets, P: int) -> np.ndarray:
    t = np.asarray(targets)
    if t.ndim != 2 or t.shape[1] != 4 or t.shape[0] < 1 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"targets: must be an integer array of shape (m, 4) rows (c, d, gamma, delta), "
                         f"got shape {t.shape} dtype {t.dtype}")
    A = prior.depth
    if np.any(t[:, :2] < 0) or np.any(t[:, :2] > A + 1) or np.any(t[:, 2:] < 0) or np.any(t[:, 2:] >= P):
        raise ValueError(f"targets: layer indices must lie in [0, {A + 1}] and pattern indices in [0, {P})")
    return t.astype(np.intp)


def _method(prior: Prior, method: str) -> str:
    if method not in ("auto", "isserlis", "rqmc"):
        raise ValueError(f"method: must be 'auto', 'isserlis' or 'rqmc', got {method!r}")
    linear = prior.act.name == "linear"
    if method == "isserlis" and not linear:
        raise ValueError(f"method: 'isserlis' is exact only for the linear activation, got {prior.activation_name!r}")
    if method == "auto":
        return "isserlis" if linear else "rqmc"
    return method


def _second_derivative_pair(act, c_uu, c_vv, c_uv, quad_tol) -> np.ndarray:
    """``<phi''(u) phi(v)>`` (broadcast shapes; ``c_uu > 0``)."""
    if act.name == "linear":
        return np.zeros(np.broadcast(c_uu, c_vv, c_uv).shape)
    if act.name == "relu":  # phi'' is a delta function: Stein's lemma on E[u phi'(u) phi(v)] = E[phi(u) phi(v)]
        p = gaussian.pair(act, c_uu, c_vv, c_uv, None, quad_tol)
        dp = gaussian.derivative_pair(act, c_uu, c_vv, c_uv, None, quad_tol)
        return (p - c_uv * dp) / c_uu
    c_uu, c_vv, c_uv = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in (c_uu, c_vv, c_uv)))
    return gaussian.quad_2d(act.derivative(2), act.numpy, c_uu, c_vv, c_uv, None, quad_tol)


def _coefficients(prior: Prior, C: np.ndarray, quad_tol: float):
    """Coefficient matrices of every Caux and Chat entry on the per-unit feature products.

    Returns
    -------
    Lcaux, Lchat : ndarray of float64, shape (A+2, A+2, P, P, 2D, 2D)
        Features ``0..D-1`` are ``phi(h^(a)_alpha)`` at ``a * P + alpha``,
        ``D..2D-1`` the pre-activations ``h^(a)_alpha``.
    """
    A = prior.depth
    P = C.shape[-1]
    D = (A + 1) * P
    g2 = prior.g2_layers
    act = prior.act
    rnn = prior.is_rnn
    diag = np.stack([np.diagonal(C[a, a]) for a in range(A + 1)])  # (A+1, P)
    if np.any(diag <= 0):
        a, al = np.argwhere(diag <= 0)[0]
        raise ValueError(f"X: the mean-field variance C^({a},{a}) of pattern {al} is zero; the O(1/n) "
                         f"response needs positive variances (non-zero input or bias)")
    # two-point derivative tables over hidden layers p, q = 0..A: D1[p,q,al,be] = <phi'(u)phi'(v)>,
    # D2[p,q,al,be] = <phi''(u)phi(v)>, u = h^(p)_al, v = h^(q)_be
    H = C[: A + 1, : A + 1]
    cuu = diag[:, None, :, None]
    cvv = diag[None, :, None, :]
    if rnn:
        D1 = gaussian.derivative_pair(act, cuu, cvv, H, None, quad_tol)
        D2 = _second_derivative_pair(act, cuu, cvv, H, quad_tol)
    else:  # the DNN only needs equal-layer blocks
        D1 = np.zeros_like(H)
        D2 = np.zeros_like(H)
        for p in range(A + 1):
            D1[p, p] = gaussian.derivative_pair(act, diag[p][:, None], diag[p][None, :], H[p, p], None, quad_tol)
            D2[p, p] = _second_derivative_pair(act, diag[p][:, None], diag[p][None, :], H[p, p], quad_tol)
    F2 = 2 * D
    if (A + 2) ** 2 * P * P * F2 * F2 > _MAX_ELEMS:
        raise ValueError(f"X: {P} patterns at depth {A} need {(A + 2) ** 2 * P * P * F2 * F2:.3g} coefficients "
                         f"(limit {_MAX_ELEMS:.3g}); use fewer patterns or a smaller depth")
    L = np.zeros((A + 2, A + 2, P, P, F2, F2))
    ia = np.arange(P)

    def phi_index(a):
        return a * P + ia

    def fill(a, b, gab):
        """Caux^(a,b) for a, b >= 1 from layer a-1, b-1 (b <= a)."""
        p, q = a - 1, b - 1
        src = L[a, b]  # (P, P, F2, F2)
        src[ia[:, None], ia[None, :], phi_index(p)[:, None], phi_index(q)[None, :]] += gab
        # response
        dpq = D1[p, q][:, :, None, None]
        src += gab * dpq * L[p, q]
        d2 = D2[p, q][:, :, None, None]  # <phi''(u) phi(v)>, derivative w.r.t. c_uu = Caux^(p,p)_{al al}
        Lpp = L[p, p][ia, ia]  # (P, F2, F2)
        src += 0.5 * gab * d2 * Lpp[:, None]
        d2t = D2[q, p].transpose(1, 0)[:, :, None, None]  # <phi(u) phi''(v)>
        Lqq = L[q, q][ia, ia]
        src += 0.5 * gab * d2t * Lqq[None, :]
        if b != a:
            L[b, a] = src.transpose(1, 0, 2, 3)

    for a in range(1, A + 1):
        for b in range(1, a + 1):
            if b == a or rnn:
                fill(a, b, g2[a])
    fill(A + 1, A + 1, g2[A + 1])
    # symmetrise the pair coefficients (f_i f_j = f_j f_i) and build Chat
    L = 0.5 * (L + L.swapaxes(-1, -2))
    Lchat = L.copy()
    for a in range(A + 1):
        for b in range(A + 1):
            hi = D + a * P + ia
            hj = D + b * P + ia
            Lchat[a, b][ia[:, None], ia[None, :], hi[:, None], hj[None, :]] += 0.5
            Lchat[a, b][ia[:, None], ia[None, :], hj[None, :], hi[:, None]] += 0.5
    Lchat[A + 1, : A + 1] = 0.0  # Chat^(A+1,b) = y h^(b): conditional mean 0
    Lchat[: A + 1, A + 1] = 0.0
    return L, Lchat


def _unit_covariance(prior: Prior, C: np.ndarray, drop_cross_layer: bool) -> np.ndarray:
    """Per-unit covariance of the hidden pre-activations, shape (D, D), index ``a * P + alpha``."""
    A = prior.depth
    P = C.shape[-1]
    H = C[: A + 1, : A + 1].transpose(0, 2, 1, 3).reshape((A + 1) * P, (A + 1) * P)
    H = 0.5 * (H + H.T)
    if drop_cross_layer:  # negative-control variant: no cross-layer/cross-time per-unit correlation
        layer = np.repeat(np.arange(A + 1), P)
        H = np.where(layer[:, None] == layer[None, :], H, 0.0)
    return H


def _feature_scale(prior: Prior, P: int) -> np.ndarray:
    """``nu_p^(-1/4)`` per feature (see module docstring), shape (2D,)."""
    s = np.repeat(prior.nu_layers ** -0.25, P)
    return np.concatenate([s, s])


def _sqrt_psd(H: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(H)
    if w.min() < -1e-10 * max(w.max(), 1e-300):
        raise ValueError("X: the mean-field per-unit covariance is not positive semi-definite")
    return V * np.sqrt(np.clip(w, 0.0, None))


def _isserlis(Lo: np.ndarray, Lt: np.ndarray, Cf: np.ndarray) -> np.ndarray:
    """``Cov_unit(f^T Lo f, f^T Lt f)`` for Gaussian ``f``: Lo (k, F, F), Lt (m, F, F) -> (k, m)."""
    M = np.einsum("ij,tjk,kl->til", Cf, Lt + Lt.transpose(0, 2, 1), Cf, optimize=True)
    return Lo.reshape(Lo.shape[0], -1) @ M.reshape(M.shape[0], -1).T


def _rqmc_replicate(prior, root, scale, Lo, Lt, points, rng) -> np.ndarray:
    """One scrambled-Sobol' estimate of ``Cov_unit(f^T Lo f, f^T Lt f)``, shape (k, m)."""
    D = root.shape[0]
    u = qmc.Sobol(d=D, scramble=True, seed=rng).random(points)
    z = norm.ppf(np.clip(u, 1e-300, 1.0 - 1e-16))
    h = z @ root.T
    f = np.concatenate([prior.act.numpy(h), h], axis=1) * scale  # (N, 2D)
    m, F2 = Lt.shape[0], f.shape[1]
    # psi_t = f^T Lt f per point, as one GEMM (N, F2) x (F2, m F2)
    psi = ((f @ Lt.transpose(1, 0, 2).reshape(F2, m * F2)).reshape(-1, m, F2) * f[:, None, :]).sum(axis=2)
    psi -= psi.mean(axis=0)
    M = np.empty((m, F2, F2))
    for t in range(m):  # E[f_i f_j (psi_t - E psi_t)], one GEMM each
        M[t] = (f * psi[:, t : t + 1]).T @ f
    M /= points
    return Lo.reshape(Lo.shape[0], -1) @ M.reshape(M.shape[0], -1).T


def nlo_cross_covariance(prior: Prior, X, width, targets=None, method: str = "auto",
        points: int = DEFAULT_POINTS, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
        quad_tol: float = DEFAULT_QUAD_TOL, _drop_cross_layer: bool = False) -> NLOCrossCovariance:
    """Leading-order prior covariance ``Cov(O, T)`` of all Caux/Chat entries with target Caux entries.

    Parameters
    ----------
    prior : Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        All patterns (single inputs at ``a = 0`` or sequences).
    width : float
        Reference width ``n`` (>= 1); DNN widths ``nu_a n``.
    targets : array_like of int, shape (m, 4), optional
        Rows ``(c, d, gamma, delta)`` naming ``Caux^(c,d)_{gamma delta}``;
        default: the readout kernel on all patterns (:func:`readout_targets`).
    method : {"auto", "isserlis", "rqmc"}
        Exact Gaussian (linear activation) or randomised QMC (module docstring).
    points, replicates : int
        RQMC points per replicate (a power of 2 >= 256) and replicates (>= 2).
    seed : int
        Seed of the RQMC scrambling (results are a function of it).
    quad_tol : float
        Tolerance of the two-point quadratures (:mod:`theory.gaussian`).

    Returns
    -------
    NLOCrossCovariance
        Arrays of shape (A+2, A+2, P, P, m).

    Raises
    ------
    ValueError
        Bad ``prior``, ``X``, ``width``, ``targets``, ``method``, ``points``,
        ``replicates`` or ``seed``; a zero mean-field variance.
    NonFiniteTheoryError
        The kernel overflows.
    """
    prior = _check_prior(prior)
    n = _check_width(width)
    seq = check_inputs(prior, X)
    P = seq.shape[0]
    method = _method(prior, method)
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 256 or points & (points - 1):
        raise ValueError(f"points: must be a power of 2 >= 256, got {points!r}")
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 2:
        raise ValueError(f"replicates: must be an integer >= 2, got {replicates!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: must be an integer >= 0, got {seed!r}")
    tgt = readout_targets(prior, np.arange(P)) if targets is None else _check_targets(prior, targets, P)
    C = kernel(prior, seq, None, quad_tol)
    with np.errstate(over="ignore", invalid="ignore"):
        Lcaux, Lchat = _coefficients(prior, C, quad_tol)
    A = prior.depth
    shape = (A + 2, A + 2, P, P)
    F2 = Lcaux.shape[-1]
    Lt = Lcaux[tgt[:, 0], tgt[:, 1], tgt[:, 2], tgt[:, 3]]  # (m, F2, F2)
    Lo = np.concatenate([Lcaux.reshape(-1, F2, F2), Lchat.reshape(-1, F2, F2)])
    k = Lo.shape[0] // 2
    H = _unit_covariance(prior, C, _drop_cross_layer)
    scale = _feature_scale(prior, P)
    m = tgt.shape[0]
    if method == "isserlis":
        Cf = np.tile(H, (2, 2)) * scale[:, None] * scale[None, :]  # phi = identity: f = (h, h)
        cov = _isserlis(Lo, Lt, Cf) / n
        reps = None
        se = np.zeros_like(cov)
    else:
        root = _sqrt_psd(H)
        ss = np.random.SeedSequence([seed, 0x4E4C4F])
        reps = np.stack([_rqmc_replicate(prior, root, scale, Lo, Lt, int(points), np.random.default_rng(s))
                         for s in ss.spawn(int(replicates))]) / n
        cov = reps.mean(axis=0)
        se = reps.std(axis=0, ddof=1) / np.sqrt(reps.shape[0])
    cov = check_finite(prior, "nlo_cross_covariance", cov)

    def split(a):
        return a[:k].reshape(shape + (m,)), a[k:].reshape(shape + (m,))

    caux, chat = split(cov)
    caux_se, chat_se = split(se)
    if reps is not None:
        caux_r = reps[:, :k].reshape((-1,) + shape + (m,))
        chat_r = reps[:, k:].reshape((-1,) + shape + (m,))
    else:
        caux_r = chat_r = None
    # Chat^(A+1,A+1) = y y^T / n_out has conditional mean Caux^(A+1,A+1) (module docstring)
    return NLOCrossCovariance(caux, chat, caux_se, chat_se, caux_r, chat_r, tgt, method, n)
