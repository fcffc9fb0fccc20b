"""Gaussian expectations of activation functions (theory-notes Sec. 3 and 6).

All functions are vectorised: the variance arguments broadcast against each
other as NumPy arrays and the result has the broadcast shape (float64).  No
Python loop runs over pattern pairs.

Closed forms are used for ``"relu"`` (arc-cosine kernels, Eqs. 55 and 69),
``"erf"`` (meaning ``erf(sqrt(pi)/2 x)``, arcsin formula) and ``"linear"``.
Every other activation (``"tanh"``, user callables) is integrated by
tensor-product Gauss-Hermite quadrature of order ``quad_order`` (module default
:data:`DEFAULT_QUAD_ORDER`).  For a bivariate centred Gaussian ``(u, v)`` with
``var u = c_uu``, ``var v = c_vv``, ``cov = c_uv`` we use the Cholesky map::

    u = sqrt(c_uu) z1,   v = (c_uv / sqrt(c_uu)) z1 + sqrt(c_vv - c_uv^2 / c_uu) z2

with ``z1, z2`` on the probabilists' Hermite grid (computed once per order and
cached, via :func:`scipy.special.roots_hermitenorm`).

Accuracy (measured): Gauss-Hermite converges only like ``exp(-d sqrt(2N))``
where ``d = pi / (2 sqrt(c))`` is the distance of the nearest complex
singularity of ``tanh(sqrt(c) z)``, so the error grows with the variance.
Order 40, max abs error of ``<phi(u) phi(v)>``: erf ~1e-11 (c <= 1),
~1e-5 (c <= 3); tanh ~4e-8 (c <= 1), ~1.5e-4 (c <= 3); relu (kink, algebraic
convergence) ~2e-3 (c <= 1), ~9e-3 (c <= 3) -- the closed forms are used for
relu/erf/linear in practice.  Full RNN tanh kernel (A = 30, P = 10,
g^2 = 1.6, sigma^2 = 0.2, max C ~ 3.2): max abs error 6e-4 (order 40),
6e-5 (60), 9e-6 (80).  Pass a larger ``quad_order`` for large variances.

Derivatives
-----------
``d<phi(h)^2>/dc`` (the ``F_k`` of Eq. 41 divided by ``g^2``) is computed
for ``"tanh"`` from Price's theorem ``<phi'^2 + phi phi''>`` with analytic
derivatives, and for user callables without differentiating ``phi``: differentiating the Gaussian density in its
variance gives the exact identity (equivalent to Price's theorem)::

    d/dc E[f(h)] = E[f(h) (h^2 - c)] / (2 c^2),   h ~ N(0, c),

evaluated by quadrature with ``f = phi^2``.  At ``c = 0`` it falls back to
``(phi^2)''(0) / 2`` by central finite differences.  ``<phi'(u) phi'(v)>``
(for ``chi_1`` and the correlation depth scale) uses the analytic derivative
for the built-in activations and a central finite difference of ``phi`` (step
``1e-5``) for user callables.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Union

import numpy as np
import scipy.special

from .prior import activation_function

#: Default Gauss-Hermite order per dimension for quadrature-based activations.
DEFAULT_QUAD_ORDER = 40

#: Maximum number of (pair x node x node) evaluations per chunk (memory bound).
_CHUNK_EVALS = 2_000_000

#: Activations with closed-form expectations.
CLOSED_FORM = ("relu", "erf", "linear")

Activation = Union[str, Callable]


@lru_cache(maxsize=16)
def hermite_grid(quad_order: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to N(0, 1).

    Parameters
    ----------
    quad_order : int
        Number of nodes (>= 1).

    Returns
    -------
    nodes, weights : ndarray of float64, shape (quad_order,)
        ``sum(weights * f(nodes))`` approximates ``E[f(z)]``, ``z ~ N(0, 1)``.
    """
    # scipy's rule stays finite for large orders (numpy's hermegauss overflows beyond ~300)
    z, w = scipy.special.roots_hermitenorm(int(quad_order))
    z = np.ascontiguousarray(z, dtype=float)
    w = np.ascontiguousarray(w / w.sum(), dtype=float)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


def _order(quad_order) -> int:
    q = DEFAULT_QUAD_ORDER if quad_order is None else quad_order
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 2:
        raise ValueError(f"quad_order: must be an integer >= 2, got {quad_order!r}")
    return int(q)


def _is(activation: Activation, name: str) -> bool:
    return isinstance(activation, str) and activation == name


def _derivative_function(activation: Activation) -> Callable[[np.ndarray], np.ndarray]:
    """phi' for built-ins (analytic) or central finite differences for callables."""
    if _is(activation, "relu"):
        return lambda x: (np.asarray(x) > 0).astype(float)
    if _is(activation, "erf"):
        return lambda x: np.exp(-0.25 * math.pi * np.asarray(x) ** 2)
    if _is(activation, "linear"):
        return lambda x: np.ones_like(np.asarray(x, dtype=float))
    if _is(activation, "tanh"):
        return lambda x: 1.0 - np.tanh(x) ** 2
    phi = activation_function(activation)
    step = 1e-5

    def dphi(x):
        x = np.asarray(x, dtype=float)
        return (phi(x + step) - phi(x - step)) / (2 * step)

    return dphi


# --------------------------------------------------------------------- quadrature
def quad_1d(f: Callable, c, quad_order=None) -> np.ndarray:
    """``E[f(h)]`` for ``h ~ N(0, c)`` by Gauss-Hermite quadrature.

    Parameters
    ----------
    f : callable
        Vectorised function.
    c : array_like
        Variances (>= 0), any shape.
    quad_order : int, optional

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    z, w = hermite_grid(_order(quad_order))
    c = np.asarray(c, dtype=float)
    h = np.sqrt(np.maximum(c, 0.0))[..., None] * z
    return f(h) @ w


def quad_2d(f: Callable, g: Callable, c_uu, c_vv, c_uv, quad_order=None) -> np.ndarray:
    """``E[f(u) g(v)]`` for a centred bivariate Gaussian by Gauss-Hermite quadrature.

    Parameters
    ----------
    f, g : callable
        Vectorised functions.
    c_uu, c_vv, c_uv : array_like
        Variances and covariance; broadcast to a common shape.
    quad_order : int, optional
        Nodes per dimension (default :data:`DEFAULT_QUAD_ORDER`).

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    q = _order(quad_order)
    z, w = hermite_grid(q)
    c_uu, c_vv, c_uv = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (c_uu, c_vv, c_uv)))
    shape = c_uu.shape
    a = np.maximum(c_uu.ravel(), 0.0)
    b = np.maximum(c_vv.ravel(), 0.0)
    cuv = c_uv.ravel()
    su = np.sqrt(a)
    safe = su > 0
    slope = np.where(safe, cuv / np.where(safe, su, 1.0), 0.0)
    resid = np.sqrt(np.maximum(b - slope**2, 0.0))
    out = np.empty(a.shape[0])
    chunk = max(1, _CHUNK_EVALS // (q * q))
    for s in range(0, a.shape[0], chunk):
        sl = slice(s, s + chunk)
        fu = f(su[sl, None] * z)  # (N, q)
        v = slope[sl, None, None] * z[None, :, None] + resid[sl, None, None] * z[None, None, :]
        inner = g(v) @ w  # (N, q)
        out[sl] = (fu * inner) @ w
    return out.reshape(shape)


# ------------------------------------------------------------------- closed forms
def _relu_theta(c_uu, c_vv, c_uv):
    norm = np.sqrt(c_uu * c_vv)
    pos = norm > 0
    cos_t = np.clip(np.where(pos, c_uv / np.where(pos, norm, 1.0), 1.0), -1.0, 1.0)
    return norm, cos_t, np.arccos(cos_t)


def _erf_pair(c_uu, c_vv, c_uv):
    k = 0.5 * math.pi
    arg = k * c_uv / np.sqrt((1.0 + k * c_uu) * (1.0 + k * c_vv))
    return (2.0 / math.pi) * np.arcsin(np.clip(arg, -1.0, 1.0))


def pair(activation: Activation, c_uu, c_vv, c_uv, quad_order=None) -> np.ndarray:
    """Two-point function ``<phi(u) phi(v)>``.

    Parameters
    ----------
    activation : str or callable
    c_uu, c_vv, c_uv : array_like
        Variances and covariance of the centred Gaussian ``(u, v)``; broadcast.
    quad_order : int, optional
        Gauss-Hermite order for activations without closed form.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    c_uu, c_vv, c_uv = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (c_uu, c_vv, c_uv)))
    if _is(activation, "relu"):  # Eq. 55 (arc-cosine kernel of degree 1)
        norm, cos_t, t = _relu_theta(c_uu, c_vv, c_uv)
        return norm / (2 * math.pi) * (np.sqrt(1.0 - cos_t**2) + (math.pi - t) * cos_t)
    if _is(activation, "erf"):
        return _erf_pair(c_uu, c_vv, c_uv)
    if _is(activation, "linear"):
        return np.array(c_uv, dtype=float)
    phi = activation_function(activation)
    return quad_2d(phi, phi, c_uu, c_vv, c_uv, quad_order)


def second_moment(activation: Activation, c, quad_order=None) -> np.ndarray:
    """``<phi(h)^2>`` for ``h ~ N(0, c)`` (1-D, exact for the closed forms).

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    c = np.asarray(c, dtype=float)
    if _is(activation, "relu"):
        return 0.5 * c
    if _is(activation, "erf"):
        return _erf_pair(c, c, c)
    if _is(activation, "linear"):
        return c.copy()
    phi = activation_function(activation)
    return quad_1d(lambda h: phi(h) ** 2, c, quad_order)


def d_second_moment(activation: Activation, c, quad_order=None) -> np.ndarray:
    """``d<phi(h)^2>/dc`` at ``h ~ N(0, c)``, i.e. ``<phi'^2 + phi phi''>`` (Price).

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    c = np.asarray(c, dtype=float)
    if _is(activation, "relu"):
        return np.full(c.shape, 0.5)
    if _is(activation, "linear"):
        return np.ones(c.shape)
    if _is(activation, "erf"):
        k = 0.5 * math.pi
        s = k * c / (1.0 + k * c)
        return (2.0 / math.pi) * (k / (1.0 + k * c) ** 2) / np.sqrt(1.0 - s**2)
    if _is(activation, "tanh"):  # Price: <phi'^2 + phi phi''> with analytic derivatives
        def price(h):
            t = np.tanh(h)
            s = 1.0 - t * t
            return s * s - 2.0 * t * t * s

        return quad_1d(price, c, quad_order)
    phi = activation_function(activation)
    sq = lambda h: phi(h) ** 2  # noqa: E731
    tiny = 1e-8
    cs = np.maximum(c, tiny)
    z, w = hermite_grid(_order(quad_order))
    # E[f(h)(h^2 - c)] / (2 c^2) with h = sqrt(c) z: = E[f(sqrt(c) z)(z^2 - 1)] / (2 c)
    val = (sq(np.sqrt(cs)[..., None] * z) @ (w * (z**2 - 1.0))) / (2.0 * cs)
    if np.any(c < tiny):
        eps = 1e-4
        at0 = float((sq(np.array(eps)) - 2 * sq(np.array(0.0)) + sq(np.array(-eps))) / eps**2) / 2.0
        val = np.where(c < tiny, at0, val)
    return val


def fourth_moment_pair(activation: Activation, c_uu, c_vv, c_uv, quad_order=None) -> np.ndarray:
    """Four-point function ``<phi(u)^2 phi(v)^2>``.

    ReLU uses the degree-2 arc-cosine kernel (Eq. 69, Cho & Saul 2009)::

        sqrt(c_uu c_vv)^2 / (2 pi) * (3 sin t cos t + (pi - t)(1 + 2 cos^2 t)),

    linear uses Isserlis ``c_uu c_vv + 2 c_uv^2``; others use quadrature.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    c_uu, c_vv, c_uv = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (c_uu, c_vv, c_uv)))
    if _is(activation, "relu"):
        norm, cos_t, t = _relu_theta(c_uu, c_vv, c_uv)
        sin_t = np.sqrt(1.0 - cos_t**2)
        return norm**2 / (2 * math.pi) * (3 * sin_t * cos_t + (math.pi - t) * (1 + 2 * cos_t**2))
    if _is(activation, "linear"):
        return c_uu * c_vv + 2 * c_uv**2
    phi = activation_function(activation)
    sq = lambda h: phi(h) ** 2  # noqa: E731
    return quad_2d(sq, sq, c_uu, c_vv, c_uv, quad_order)


def derivative_pair(activation: Activation, c_uu, c_vv, c_uv, quad_order=None) -> np.ndarray:
    """``<phi'(u) phi'(v)>`` (for ``chi_1`` and the correlation depth scale).

    Closed forms: ReLU ``(pi - t)/(2 pi)``; erf ``det(I + pi/2 C)^(-1/2)``;
    linear 1.  Otherwise quadrature with analytic ``tanh'`` or finite
    differences (step 1e-5) for callables.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    c_uu, c_vv, c_uv = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (c_uu, c_vv, c_uv)))
    if _is(activation, "relu"):
        _, _, t = _relu_theta(c_uu, c_vv, c_uv)
        return (math.pi - t) / (2 * math.pi)
    if _is(activation, "erf"):
        k = 0.5 * math.pi
        return 1.0 / np.sqrt((1 + k * c_uu) * (1 + k * c_vv) - (k * c_uv) ** 2)
    if _is(activation, "linear"):
        return np.ones(c_uu.shape)
    d = _derivative_function(activation)
    return quad_2d(d, d, c_uu, c_vv, c_uv, quad_order)
