"""Fixed points and depth scales of the mean-field recursion ("depth scales" picture).

For a single input the diagonal recursion (Eq. 57 for ReLU) reads::

    q_{a+1} = sigma^2 + g^2 <phi(h)^2>,   h ~ N(0, q_a)

Its stable fixed point ``q*`` defines

* ``F   = g^2 d<phi^2>/dc`` at ``q*`` (Eq. 41); ``tau_F = -1/ln F`` is the depth
  scale of the paper (ReLU: ``(ln 2 - 2 ln g)^-1``) and of the variance
  fluctuations (Fig. 3b); it equals Schoenholz et al.'s ``xi_q``.
* ``chi1 = g^2 <phi'(h)^2>`` at ``q*``; the correlation depth scale
  ``xi_c = -1/ln chi_c`` with ``chi_c = g^2 <phi'(u) phi'(v)>`` at the stable
  correlation fixed point ``c*`` (Schoenholz et al. 2017, "Deep information
  propagation").  In the ordered phase ``chi1 < 1`` and ``c* = 1`` so
  ``chi_c = chi1``; in the chaotic phase ``chi1 > 1`` and ``c* < 1`` is found
  by a safeguarded Newton/bisection on ``[0, q*)``.

NaN conventions of :func:`phase_diagram`: every quantity is NaN where no
fixed point ``q*`` exists (unbounded growth, e.g. ReLU ``g^2 >= 2``); a depth
scale ``-1/ln x`` is NaN where it diverges (``x >= 1``, the critical line).
Nothing else is NaN.
"""

from __future__ import annotations

import math

import numpy as np

from . import gaussian
from .gaussian import DEFAULT_QUAD_TOL
from .gaussian import get_activation
from .prior import check_nonneg_scalar

_Q_DIVERGED = 1e10


def _check_grid(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.shape[0] < 1:
        raise ValueError(f"{name}: must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: values must be non-negative and finite")
    return arr


def _fixed_points(act, g2, s2, quad_order=None, quad_tol=DEFAULT_QUAD_TOL, maxiter: int = 400) -> np.ndarray:
    """Vectorised stable diagonal fixed point; NaN where none exists."""
    g2, s2 = np.broadcast_arrays(np.asarray(g2, dtype=float), np.asarray(s2, dtype=float))
    if act.closed is not None and act.closed.fixed_point is not None:
        return np.asarray(act.closed.fixed_point(g2, s2), dtype=float)
    activation = act
    q = np.ones(g2.shape)
    done = np.zeros(g2.shape, bool)
    for _ in range(maxiter):
        Tq = s2 + g2 * gaussian.second_moment(activation, q, quad_order, quad_tol)
        dT = g2 * gaussian.d_second_moment(activation, q, quad_order, quad_tol)
        resid = Tq - q
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = q - resid / (dT - 1.0)
        use_newton = (dT < 1.0) & np.isfinite(newton) & (newton >= 0)
        # converged when the step (Newton: an error estimate) is below 1e-13 relative;
        # the residual alone is not enough at marginal fixed points (F -> 1)
        step = np.where(use_newton, np.abs(newton - q), np.abs(resid))
        done = (step <= 1e-13 * (1.0 + np.abs(q))) & (np.abs(resid) <= 1e-13 * (1.0 + np.abs(q)))
        if np.all(done | (q > _Q_DIVERGED)):
            break
        q = np.where(done, q, np.where(use_newton, newton, np.maximum(Tq, 0.0)))
    return np.where(done & (q <= _Q_DIVERGED), q, np.nan)


def _correlation_fixed_point(activation, g2, s2, q, chi1, quad_order=None, quad_tol=DEFAULT_QUAD_TOL,
                             iters: int = 60) -> np.ndarray:
    """Stable fixed point ``q12*`` of the covariance map at variance ``q*`` (vectorised)."""
    q12 = q.copy()  # ordered phase: c* = 1
    chaotic = np.isfinite(q) & (chi1 > 1.0) & (q > 0)
    if not np.any(chaotic):
        return q12
    g, s, qq = g2[chaotic], s2[chaotic], q[chaotic]
    lo = np.zeros_like(qq)  # f(lo) >= 0
    hi = qq.copy()  # f just below q* < 0
    x = 0.5 * qq
    for _ in range(iters):
        f = s + g * gaussian.pair(activation, qq, qq, x, quad_order, quad_tol) - x
        df = g * gaussian.derivative_pair(activation, qq, qq, x, quad_order, quad_tol) - 1.0
        lo = np.where(f >= 0, x, lo)
        hi = np.where(f < 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x - f / df
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi)
        x_new = np.where(ok, newton, 0.5 * (lo + hi))
        settled = np.all(np.abs(x_new - x) <= 1e-14 * qq)
        x = x_new
        if settled:
            break
    q12[chaotic] = x
    return q12


def _neg_inv_log(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((x > 0) & (x < 1.0), -1.0 / np.log(np.where(x > 0, x, 0.5)), np.where(x <= 0, 0.0, np.nan))


def fixed_point(activation, g2: float, sigma2: float, quad_order: int | None = None,
                quad_tol: float = DEFAULT_QUAD_TOL) -> float:
    """Stable fixed point ``q*`` of the diagonal recursion ``q -> sigma2 + g2 <phi^2>_q``.

    Parameters
    ----------
    activation : str or callable
    g2, sigma2 : float
        Weight and bias variance (>= 0).
    quad_order : int, optional

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``g2: ...`` when ``g2`` is beyond the stable range so that no fixed
        point exists (ReLU ``g2 >= 2``, linear ``g2 >= 1``, diverging
        iteration for callables); negative or non-finite ``g2``/``sigma2``;
        unknown activation.
    """
    act = get_activation(activation)
    g2 = check_nonneg_scalar("g2", g2)
    sigma2 = check_nonneg_scalar("sigma2", sigma2)
    gaussian.check_quadrature(quad_order, quad_tol)
    q = float(_fixed_points(act, g2, sigma2, quad_order, quad_tol))
    if not np.isfinite(q):
        bound = f" ({act.closed.stable_range})" if act.closed is not None and act.closed.stable_range else ""
        raise ValueError(f"g2: {g2} is beyond the stable range, the variance grows without bound and no fixed point exists{bound}")
    return q


def chi1(activation, g2: float, sigma2: float, quad_order: int | None = None,
         quad_tol: float = DEFAULT_QUAD_TOL) -> float:
    """``chi_1 = g^2 <phi'(h)^2>`` at the fixed point ``q*``.

    Raises
    ------
    ValueError
        As :func:`fixed_point`.
    """
    q = fixed_point(activation, g2, sigma2, quad_order, quad_tol)
    return float(g2 * gaussian.derivative_pair(activation, q, q, q, quad_order, quad_tol))


def depth_scale(activation, g2: float, sigma2: float, quad_order: int | None = None,
                quad_tol: float = DEFAULT_QUAD_TOL) -> float:
    """Depth scale ``tau = -1/ln F`` with ``F = g^2 d<phi^2>/dc`` at ``q*``.

    This is the paper's ``tau`` (ReLU: ``(ln 2 - 2 ln g)^-1``).  Returns
    ``inf`` where ``F = 1`` (marginal fixed point).

    Raises
    ------
    ValueError
        As :func:`fixed_point`.
    """
    q = fixed_point(activation, g2, sigma2, quad_order, quad_tol)
    F = float(g2 * gaussian.d_second_moment(activation, q, quad_order, quad_tol))
    if F <= 0:
        return 0.0
    return math.inf if F >= 1.0 else -1.0 / math.log(F)


def phase_diagram(activation, g2_values, sigma2_values, quad_order: int | None = None,
                  quad_tol: float = DEFAULT_QUAD_TOL) -> dict:
    """Fixed point and depth scales on a ``(g2, sigma2)`` grid.

    Parameters
    ----------
    activation : str or callable
    g2_values : array_like, shape (G,)
    sigma2_values : array_like, shape (S,)
    quad_order : int, optional

    Returns
    -------
    dict of str -> ndarray of float64, each of shape (G, S) (axis 0: g2, axis 1: sigma2)
        ``"g2"``, ``"sigma2"`` (meshgrids), ``"q_star"``, ``"chi1"``,
        ``"F"``, ``"c_star"`` (correlation coefficient of the stable
        correlation fixed point), ``"chi_c"``, ``"tau"`` (correlation depth
        scale ``xi_c = -1/ln chi_c``), ``"tau_F"`` (``-1/ln F``).  NaN as
        documented in the module docstring.
    """
    activation = get_activation(activation)
    gv = _check_grid("g2_values", g2_values)
    sv = _check_grid("sigma2_values", sigma2_values)
    gaussian.check_quadrature(quad_order, quad_tol)
    G2, S2 = np.meshgrid(gv, sv, indexing="ij")
    q = _fixed_points(activation, G2, S2, quad_order, quad_tol)
    valid = np.isfinite(q)
    qs = np.where(valid, q, 1.0)
    chi = np.where(valid, G2 * gaussian.derivative_pair(activation, qs, qs, qs, quad_order, quad_tol), np.nan)
    F = np.where(valid, G2 * gaussian.d_second_moment(activation, qs, quad_order, quad_tol), np.nan)
    q12 = _correlation_fixed_point(activation, G2, S2, q, chi, quad_order, quad_tol)
    q12s = np.where(valid, q12, 1.0)
    chi_c = np.where(
        valid & (chi > 1.0), G2 * gaussian.derivative_pair(activation, qs, qs, q12s, quad_order, quad_tol), chi
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        c_star = np.where(valid, np.where(qs > 0, q12s / qs, 1.0), np.nan)
    return {
        "g2": G2,
        "sigma2": S2,
        "q_star": q,
        "chi1": chi,
        "F": F,
        "c_star": c_star,
        "chi_c": chi_c,
        "tau": np.where(valid, _neg_inv_log(chi_c), np.nan),
        "tau_F": np.where(valid, _neg_inv_log(F), np.nan),
    }
