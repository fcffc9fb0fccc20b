"""Gaussian expectations of activation functions (theory-notes Sec. 3 and 6).

All functions are vectorised: the variance arguments broadcast against each
other as NumPy arrays and the result has the broadcast shape (float64).  No
Python loop runs over pattern pairs.  ``activation`` is anything
:func:`theory.activations.get_activation` accepts (a name, an import path, a
callable or an :class:`~theory.activations.Activation`); dispatch is on that
object: its ``closed`` forms (relu, erf, linear) are used where they exist,
everything else (tanh, custom activations) is integrated numerically.

Numerical integration with error control (default)
--------------------------------------------------
With ``quad_order=None`` (the default) every integral is computed to the
tolerance ``quad_tol`` (default :data:`DEFAULT_QUAD_TOL` = 1e-9), measured
relative to a scale of the integrand:

* 1-D ``E[F(h)]``: relative to ``E[|F(h)|]``;
* 2-D ``E[f(u) g(v)]``: relative to the Cauchy-Schwarz bound
  ``sqrt(E[f(u)^2] E[g(v)^2])`` (equal to ``|E[f(u) g(v)]|`` on the diagonal
  ``u = v``; for entries that vanish by symmetry the error is relative to this
  scale, not to the tiny value).

Rules.  With ``h = sqrt(c) z``, ``z ~ N(0, 1)``:

1. *1-D integrals* (moments, ``d<phi^2>/dc``, ``<phi'^2>``, and pairs with
   ``|rho| = 1``) use the trapezoidal rule on ``z in [-L, L]``.  For an
   integrand analytic in a strip ``|Im z| < d`` it converges like
   ``exp(-2 pi d / step)`` -- for ``tanh(sqrt(c) z)`` the poles sit at
   ``d = pi / (2 sqrt(c))``.  This is much faster than Gauss-Hermite, whose
   error falls only like ``exp(-d sqrt(2 N))`` (order 40 gave 6e-4 relative on
   the tanh kernel).
2. *2-D integrals* (``|rho| < 1``) first try Mehler's expansion
   ``E[f(u) g(v)] = sum_k rho^k a_k(f, c_uu) a_k(g, c_vv)`` with the
   normalised Hermite coefficients ``a_k(f, c) = E[f(sqrt(c) z) He_k(z)] / sqrt(k!)``,
   ``k <= K = 128`` (1-D integrals, rule 1, memoised per function and
   variance).  Its error is bounded rigorously by the truncation term
   ``|rho|^(K+1) sqrt(R_f R_g)`` with the tail energies
   ``R = E[f^2] - sum_k a_k^2`` (Parseval) plus the coefficient errors
   (Cauchy-Schwarz).  The cost per pair is ``O(K)`` instead of ``O(N^2)``.
3. *2-D integrals whose Mehler bound exceeds the tolerance* (``|rho|`` near 1
   with large variances, non-smooth activations) use the tensor trapezoidal
   rule in the Cholesky coordinates ``u = sqrt(c_uu) z1``,
   ``v = (c_uv/sqrt(c_uu)) z1 + sqrt(c_vv - c_uv^2/c_uu) z2``.

Error estimate and order choice.  Every grid with step ``s`` contains the
grids with steps ``2s`` and ``4s`` (every 2nd / 4th node), so one evaluation
gives three estimates ``I_s, I_2s, I_4s``.  For geometric convergence
(``err(s) ~ K q^(1/s)``) the error of ``I_s`` is at most
``e = |I_s - I_2s|^2 / |I_4s - I_2s|``; this model is used once the
differences shrink by at least 16 per halving, otherwise (pre-asymptotic, or
only algebraic convergence as for kinks such as relu's) the safe
``e = |I_s - I_2s|``.
The step runs through 0.4, 0.3, 0.2, 0.15, 0.1, ... 0.025 until ``e <= quad_tol
* scale`` for every integral of the batch (converged integrals drop out).  The
half-width ``L`` (default 7.5) grows by 4 while the integrand at the edge is
not negligible (``exp``-like activations).  If the finest step does not reach
the tolerance a :class:`QuadratureWarning` is issued and the estimate is still
returned.

Diagnostics.  :func:`quadrature_diagnostics` is a context manager collecting
the largest error estimate (relative to the scale), the finest step and the
largest node count of every integral computed inside it::

    with theory.quadrature_diagnostics() as diag:
        K = theory.kernel(prior, X)
    diag.max_rel_error, diag.finest_step, diag.integrals

Explicit order.  ``quad_order=N`` keeps the previous behaviour: tensor
Gauss-Hermite quadrature with ``N`` nodes per dimension, no error estimate
(recorded as NaN in the diagnostics).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.special

from .activations import get_activation as _get_activation


def get_activation(activation):
    """Resolve ``activation`` and validate a custom one (see :meth:`Activation.validated`)."""
    return _get_activation(activation).validated()


#: Default relative tolerance of the automatic quadrature.
DEFAULT_QUAD_TOL = 1e-9

#: Kept for compatibility: the Gauss-Hermite order used when ``quad_order`` is
#: given as ``DEFAULT_QUAD_ORDER`` explicitly (the default is now automatic).
DEFAULT_QUAD_ORDER = 40

#: Maximum number of (pair x node x node) evaluations per chunk (memory bound).
_CHUNK_EVALS = 2_000_000

_STEPS = (0.4, 0.3, 0.2, 0.15, 0.1, 0.075, 0.05, 0.035, 0.025)
_COEF_STEPS = tuple(t for t in _STEPS if t <= 0.2)  # the Hermite functions up to k = 128 need step <= 0.2
_L0 = 7.5
_C_SMALL = 1e-4
_L_MAX = 40.0
_MEHLER_K = 128
_SQRT_2PI = math.sqrt(2.0 * math.pi)


class QuadratureWarning(RuntimeWarning):
    """The automatic quadrature did not reach the requested tolerance."""


# ------------------------------------------------------------------ diagnostics
@dataclass
class QuadratureDiagnostics:
    """Error estimates of the integrals computed inside :func:`quadrature_diagnostics`.

    Attributes
    ----------
    max_rel_error : float
        Largest error estimate relative to the integrand scale (see module
        docstring); NaN if an explicit ``quad_order`` was used (no estimate).
    finest_step : float
        Smallest trapezoid step used (``inf`` if none).
    max_nodes : int
        Largest number of nodes per dimension used by one integral.
    integrals : int
        Number of integrals evaluated numerically (closed forms are not counted).
    unconverged : int
        Number of integrals that missed the tolerance (a warning was issued).
    tol : float
        Largest tolerance requested.
    """

    max_rel_error: float = 0.0
    finest_step: float = math.inf
    max_nodes: int = 0
    integrals: int = 0
    unconverged: int = 0
    tol: float = 0.0

    def _record(self, rel_err: np.ndarray, step: float, nodes: int, tol: float, unconverged: int) -> None:
        rel_err = np.asarray(rel_err, dtype=float)
        if rel_err.size:
            m = float(np.max(rel_err)) if not np.any(np.isnan(rel_err)) else math.nan
            self.max_rel_error = math.nan if math.isnan(m) or math.isnan(self.max_rel_error) else max(
                self.max_rel_error, m)
        self.finest_step = min(self.finest_step, step)
        self.max_nodes = max(self.max_nodes, int(nodes))
        self.integrals += int(rel_err.size)
        self.unconverged += int(unconverged)
        self.tol = max(self.tol, tol)


_COLLECTORS: contextvars.ContextVar[tuple] = contextvars.ContextVar("theory_quadrature_collectors", default=())


@contextlib.contextmanager
def quadrature_diagnostics():
    """Collect the quadrature error estimates of everything computed inside.

    Yields
    ------
    QuadratureDiagnostics
        Updated while the block runs; nested blocks all receive the records.
    """
    diag = QuadratureDiagnostics()
    token = _COLLECTORS.set(_COLLECTORS.get() + (diag,))
    try:
        yield diag
    finally:
        _COLLECTORS.reset(token)


def _record(rel_err, step, nodes, tol, unconverged=0) -> None:
    for diag in _COLLECTORS.get():
        diag._record(rel_err, step, nodes, tol, unconverged)


# --------------------------------------------------------------------- checks
def _order(quad_order):
    """Validate ``quad_order``: ``None`` (automatic) or an integer >= 2."""
    if quad_order is None:
        return None
    q = quad_order
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 2:
        raise ValueError(f"quad_order: must be None (automatic) or an integer >= 2, got {quad_order!r}")
    return int(q)


def _tol(quad_tol) -> float:
    if isinstance(quad_tol, bool) or not isinstance(quad_tol, (int, float, np.integer, np.floating)):
        raise ValueError(f"quad_tol: must be a number in [1e-14, 1e-2], got {quad_tol!r}")
    t = float(quad_tol)
    if not (1e-14 <= t <= 1e-2):
        raise ValueError(f"quad_tol: must lie in [1e-14, 1e-2], got {quad_tol!r}")
    return t


def check_quadrature(quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> None:
    """Validate the quadrature arguments (``ValueError`` naming the key)."""
    _order(quad_order)
    _tol(quad_tol)


# ----------------------------------------------------------------- Gauss-Hermite
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


def _gh_1d(F: Callable, s: np.ndarray, q: int) -> np.ndarray:
    z, w = hermite_grid(q)
    out = F(s[:, None] * z[None, :], z[None, :]) @ w
    _record(np.full(s.shape, math.nan), math.inf, q, 0.0)
    return out


def _gh_2d(f, g, su, slope, resid, q: int) -> np.ndarray:
    z, w = hermite_grid(q)
    out = np.empty(su.shape[0])
    chunk = max(1, _CHUNK_EVALS // (q * q))
    for s in range(0, su.shape[0], chunk):
        sl = slice(s, s + chunk)
        fu = f(su[sl, None] * z)
        v = slope[sl, None, None] * z[None, :, None] + resid[sl, None, None] * z[None, None, :]
        out[sl] = (fu * (g(v) @ w)) @ w
    _record(np.full(su.shape, math.nan), math.inf, q, 0.0)
    return out


# ---------------------------------------------------------- adaptive trapezoid
def _grid(step: float, L: float) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric trapezoid nodes ``j * step``, ``|j| <= n`` with ``n`` a multiple of 4, and N(0,1) weights."""
    n = 4 * int(math.ceil(L / step / 4.0))
    z = step * np.arange(-n, n + 1, dtype=float)
    w = step * np.exp(-0.5 * z * z) / _SQRT_2PI
    return z, w


def _estimate(I1, I2, I4):
    """Error estimate of ``I1`` from the nested estimates (module docstring)."""
    d1 = np.abs(I1 - I2)
    d2 = np.abs(I2 - I4)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d2 > 0, d1 / d2, np.where(d1 > 0, np.inf, 0.0))
    # geometric regime (ratio <= 1/16): err(I1) <= d1 * ratio; otherwise (not yet
    # asymptotic, or algebraic convergence of a non-smooth integrand) the safe bound d1
    return np.where(ratio <= 1.0 / 16.0, np.maximum(d1 * ratio, 4e-16 * np.abs(I1)), d1)


def _adaptive(evaluate: Callable, m: int, tol: float, name: str):
    """Drive the step/width refinement for ``m`` integrals.

    ``evaluate(idx, z, w)`` returns ``(I1, I2, I4, scale, edge)`` for the
    integrals ``idx`` (each an array of shape ``(len(idx),)``) on the nodes
    ``z`` with weights ``w`` (of step ``s``; ``I2``/``I4`` use every 2nd/4th
    node); ``edge`` is the integrand magnitude at the outermost nodes.
    """
    out = np.full(m, np.nan)
    todo = np.arange(m)
    L = np.full(m, _L0)
    rel = np.zeros(m)
    last_step = _STEPS[0]
    nodes = 0
    for step in _STEPS:
        if todo.size == 0:
            break
        last_step = step
        # group by half-width (the edge test may have widened some)
        for Lval in np.unique(L[todo]):
            idx = todo[L[todo] == Lval]
            z, w = _grid(step, float(Lval))
            nodes = max(nodes, z.size)
            I1, I2, I4, scale, edge = evaluate(idx, z, w)
            err = _estimate(I1, I2, I4)
            tiny = np.finfo(float).tiny
            sc = np.maximum(scale, tiny)
            ok = err <= tol * sc
            wide = edge > 1e-3 * tol * sc
            grow = wide & (Lval + 4.0 <= _L_MAX)
            ok &= ~grow
            out[idx] = I1
            rel[idx] = err / sc
            L[idx[grow]] = Lval + 4.0
            done = idx[ok]
            todo = np.setdiff1d(todo, done, assume_unique=True)
    if todo.size:
        warnings.warn(
            f"{name}: quadrature did not reach the tolerance {tol:.1e} for {todo.size} integral(s) "
            f"(estimated relative error up to {float(np.max(rel[todo])):.1e}); the estimate is returned",
            QuadratureWarning,
            stacklevel=4,
        )
    _record(rel, last_step, nodes, tol, todo.size)
    return out


def _trap_1d(F: Callable, s: np.ndarray, tol: float, name: str) -> np.ndarray:
    """``E[F(s z, z)]`` for ``z ~ N(0,1)``, one integral per entry of ``s`` (shape (m,))."""

    def evaluate(idx, z, w):
        vals = F(s[idx, None] * z[None, :], z[None, :]) * w  # (k, n)
        I1 = vals.sum(axis=1)
        I2 = 2.0 * vals[:, ::2].sum(axis=1)
        I4 = 4.0 * vals[:, ::4].sum(axis=1)
        scale = np.abs(vals).sum(axis=1)
        edge = np.maximum(np.abs(vals[:, 0]), np.abs(vals[:, -1])) / (z[1] - z[0])
        return I1, I2, I4, scale, edge

    return _adaptive(evaluate, s.shape[0], tol, name)


def _trap_2d(f, g, su, slope, resid, tol: float, name: str) -> np.ndarray:
    """``E[f(su z1) g(slope z1 + resid z2)]`` per entry, tensor trapezoid."""

    def evaluate(idx, z, w):
        n = z.shape[0]
        k = idx.shape[0]
        I1 = np.empty(k)
        I2 = np.empty(k)
        I4 = np.empty(k)
        ff = np.empty(k)
        gg = np.empty(k)
        edge = np.empty(k)
        chunk = max(1, _CHUNK_EVALS // (n * n))
        w2, w4 = 2.0 * w[::2], 4.0 * w[::4]
        for s0 in range(0, k, chunk):
            sl = slice(s0, s0 + chunk)
            j = idx[sl]
            fu = f(su[j, None] * z)  # (c, n)
            gv = g(slope[j, None, None] * z[None, :, None] + resid[j, None, None] * z[None, None, :])  # (c, n, n)
            inner = gv @ w  # (c, n)
            I1[sl] = (fu * inner) @ w
            I2[sl] = (fu[:, ::2] * (gv[:, ::2, ::2] @ w2)) @ w2
            I4[sl] = (fu[:, ::4] * (gv[:, ::4, ::4] @ w4)) @ w4
            ff[sl] = (fu * fu) @ w
            gg[sl] = ((gv * gv) @ w) @ w
            # integrand magnitude on the boundary frame of the square
            af, ag = np.abs(fu) * w, np.abs(gv)
            e = np.maximum.reduce([
                af[:, 0] * (ag[:, 0, :] * w).max(axis=1),
                af[:, -1] * (ag[:, -1, :] * w).max(axis=1),
                (af * ag[:, :, 0]).max(axis=1) * w[0],
                (af * ag[:, :, -1]).max(axis=1) * w[-1],
            ])
            edge[sl] = e / (z[1] - z[0]) ** 2
        scale = np.sqrt(ff * gg)
        return I1, I2, I4, scale, edge

    return _adaptive(evaluate, su.shape[0], tol, name)


# --------------------------------------------------------------------- Mehler
@lru_cache(maxsize=32)
def _hermite_functions(step: float, L: float, K: int):
    """Trapezoid nodes ``z`` (step ``step``, ``|z| <= L``, count ``4j+1``), ``exp(-z^2/4)`` and
    the Hermite functions ``psi_k(z) = He_k(z)/sqrt(k!) exp(-z^2/4)``, ``k = 0..K`` (shape (K+1, n)),
    by the stable normalised recurrence."""
    n = 4 * int(math.ceil(L / step / 4.0))
    z = step * np.arange(-n, n + 1, dtype=float)
    g4 = np.exp(-0.25 * z * z)
    psi = np.empty((K + 1, z.size))
    psi[0] = g4
    if K >= 1:
        psi[1] = z * g4
    for k in range(1, K):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1)
    psiT, psi2T, psi4T = (np.ascontiguousarray(psi[:, ::j].T) for j in (1, 2, 4))
    for arr in (z, g4, psiT, psi2T, psi4T):
        arr.setflags(write=False)
    return z, g4, psiT, psi2T, psi4T


_COEF_CACHE: dict = {}
_COEF_CACHE_MAX = 20000


def clear_caches() -> None:
    """Forget memoised Hermite coefficients (benchmarks use it to time cold calls)."""
    _COEF_CACHE.clear()


def _hermite_coefficients(f: Callable, s: np.ndarray, K: int, tol: float, name: str):
    """Memoised :func:`_hermite_coefficients_uncached` (per function, tolerance and standard deviation).

    The result for one ``s`` does not depend on the other entries of the
    batch, so memoisation changes no number; it saves the recomputation of
    earlier layers' variances in :func:`theory.kernel`.
    """
    key = (f, K, tol)
    table = _COEF_CACHE.get(key)
    if table is None:
        if len(_COEF_CACHE) > 64:
            _COEF_CACHE.clear()
        table = _COEF_CACHE[key] = {}
    missing = np.array([v for v in s.tolist() if v not in table], dtype=float)
    if missing.size:
        if len(table) + missing.size > _COEF_CACHE_MAX:
            table.clear()
        a, e, rel = _hermite_coefficients_uncached(f, missing, K, tol, name)
        for v, ai, ei, ri in zip(missing.tolist(), a, e, rel):
            table[v] = (ai, ei, ri)
    rows = [table[v] for v in s.tolist()]
    return (np.array([r[0] for r in rows]).reshape(len(rows), K + 1), np.array([r[1] for r in rows], dtype=float),
            np.array([r[2] for r in rows], dtype=float))


def _hermite_coefficients_uncached(f: Callable, s: np.ndarray, K: int, tol: float, name: str):
    """``a_k(f, s^2) = E[f(s z) He_k(z)]/sqrt(k!)``, ``k = 0..K``, and ``E[f(s z)^2]``.

    Returns
    -------
    a : ndarray of float64, shape (m, K+1)
    energy : ndarray of float64, shape (m,)
    """
    m = s.shape[0]
    a = np.empty((m, K + 1))
    energy = np.empty(m)
    todo = np.arange(m)
    Lk = math.sqrt(4.0 * K + 2.0) + _L0
    rel_all = np.zeros(m)
    last = _STEPS[0]
    nodes = 0
    for step in _COEF_STEPS:
        if todo.size == 0:
            break
        last = step
        z, g4, psiT, psi2T, psi4T = _hermite_functions(step, Lk, K)
        nodes = max(nodes, z.size)
        wz = step * g4 / _SQRT_2PI  # remaining half of the Gaussian weight
        fv = f(s[todo, None] * z[None, :])  # (t, n)
        fz = fv * wz
        A1 = fz @ psiT
        A2 = 2.0 * (np.ascontiguousarray(fz[:, ::2]) @ psi2T)
        A4 = 4.0 * (np.ascontiguousarray(fz[:, ::4]) @ psi4T)
        fz2 = fv * fv * (step * g4 * g4 / _SQRT_2PI)
        E1, E2, E4 = fz2.sum(axis=1), 2.0 * fz2[:, ::2].sum(axis=1), 4.0 * fz2[:, ::4].sum(axis=1)
        scale = np.sqrt(np.maximum(E1, np.finfo(float).tiny))
        errA = np.sqrt((_estimate(A1, A2, A4) ** 2).sum(axis=1))  # 2-norm over k (Cauchy-Schwarz below)
        errE = _estimate(E1, E2, E4)
        rel = errA / scale + errE / scale**2
        ok = rel <= 0.25 * tol
        a[todo] = A1
        energy[todo] = E1
        rel_all[todo] = rel
        todo = todo[~ok]
    # no warning here: an inaccurate coefficient set enters the Mehler error bound, and
    # the pairs it affects fall back to the 2-D trapezoid (which warns if it fails)
    _record(np.zeros(0), last, nodes, tol)
    return a, energy, rel_all


def _mehler(f, g, su, sv, rho, tol, name):
    """``E[f(u) g(v)]`` by Mehler's expansion with ``K = 128`` terms.

    Returns
    -------
    val : ndarray of float64, shape (m,)
    bound : ndarray of float64, shape (m,)
        Error bound relative to ``sqrt(E f(u)^2 E g(v)^2)``: truncation
        ``|rho|^(K+1) sqrt(R_f R_g)`` (Parseval) plus the coefficient error
        (``||da||_2 ||b||_2 + ||a||_2 ||db||_2``, Cauchy-Schwarz, each term at
        most ``tol/4`` by construction of the coefficients).
    """
    K = _MEHLER_K
    m = su.shape[0]
    if g is f:  # one set of coefficients for all distinct standard deviations
        allv, inv = np.unique(np.concatenate([su, sv]), return_inverse=True)
        coef, energy, crel = _hermite_coefficients(f, allv, K, tol, name)
        iu, iv = inv.ravel()[:m], inv.ravel()[m:]
        A, B, Eu, Ev, Cu, Cv = coef[iu], coef[iv], energy[iu], energy[iv], crel[iu], crel[iv]
    else:
        us, iu = np.unique(su, return_inverse=True)
        vs, iv = np.unique(sv, return_inverse=True)
        cu, eu, ru = _hermite_coefficients(f, us, K, tol, name)
        cv, ev, rv = _hermite_coefficients(g, vs, K, tol, name)
        iu, iv = iu.ravel(), iv.ravel()
        A, B, Eu, Ev, Cu, Cv = cu[iu], cv[iv], eu[iu], ev[iv], ru[iu], rv[iv]
    AB = A * B
    val = AB[:, K].copy()
    for k in range(K - 1, -1, -1):  # Horner in rho
        val *= rho
        val += AB[:, k]
    Ru = np.maximum(Eu - (A * A).sum(axis=1), 0.0)
    Rv = np.maximum(Ev - (B * B).sum(axis=1), 0.0)
    scale = np.sqrt(np.maximum(Eu * Ev, np.finfo(float).tiny))
    bound = np.abs(rho) ** (K + 1) * np.sqrt(Ru * Rv) / scale + Cu + Cv
    return val, bound


# --------------------------------------------------------------- public helpers
def _arrays(*args):
    return np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in args))


def quad_1d(f: Callable, c, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """``E[f(h)]`` for ``h ~ N(0, c)``.

    Parameters
    ----------
    f : callable
        Vectorised function ``ndarray float64 -> ndarray float64``.
    c : array_like
        Variances (>= 0), any shape.
    quad_order : int, optional
        Explicit Gauss-Hermite order; ``None`` (default): automatic trapezoid
        to ``quad_tol`` relative to ``E[|f(h)|]``.
    quad_tol : float, optional

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    c = np.asarray(c, dtype=float)
    s = np.sqrt(np.maximum(c, 0.0)).ravel()
    return _expect_1d(lambda h, z: f(h), s, quad_order, quad_tol, "quad_1d").reshape(c.shape)


def _expect_1d(F, s, quad_order, quad_tol, name):
    """``E[F(s z, z)]`` for each entry of the 1-D array ``s``."""
    q = _order(quad_order)
    tol = _tol(quad_tol)
    if s.size == 0:
        return np.zeros(0)
    if q is not None:
        return _gh_1d(F, s, q)
    return _trap_1d(F, s, tol, name)


def quad_2d(f: Callable, g: Callable, c_uu, c_vv, c_uv, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """``E[f(u) g(v)]`` for a centred bivariate Gaussian.

    Parameters
    ----------
    f, g : callable
        Vectorised functions.
    c_uu, c_vv, c_uv : array_like
        Variances and covariance; broadcast to a common shape.
    quad_order : int, optional
        Explicit Gauss-Hermite order per dimension; ``None`` (default): the
        automatic rules of the module docstring to ``quad_tol``.
    quad_tol : float, optional

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    q = _order(quad_order)
    tol = _tol(quad_tol)
    c_uu, c_vv, c_uv = _arrays(c_uu, c_vv, c_uv)
    shape = c_uu.shape
    a = np.maximum(c_uu.ravel(), 0.0)
    b = np.maximum(c_vv.ravel(), 0.0)
    cuv = c_uv.ravel()
    su = np.sqrt(a)
    sv = np.sqrt(b)
    safe = su > 0
    slope = np.where(safe, cuv / np.where(safe, su, 1.0), 0.0)
    slope = np.clip(slope, -sv, sv)  # |c_uv| <= sqrt(c_uu c_vv) up to rounding
    resid = np.sqrt(np.maximum(b - slope**2, 0.0))
    if q is not None:
        return _gh_2d(f, g, su, slope, resid, q).reshape(shape)
    out = np.empty(a.shape[0])
    if out.size == 0:
        return out.reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where((su > 0) & (sv > 0), slope / np.where(sv > 0, sv, 1.0), 0.0)
    degenerate = (resid == 0) | (su == 0)
    if np.any(degenerate):
        # v = slope z1 exactly (or u = 0): a 1-D integral
        i = np.flatnonzero(degenerate)
        # su == 0: u = 0 and v = resid z (slope is 0); resid == 0: v = slope z1
        s_v = np.where(su[i] == 0, resid[i], slope[i])
        out[i] = _degenerate(f, g, su[i], s_v, tol)
    full = np.zeros(out.shape, bool)
    if not np.all(degenerate):
        i = np.flatnonzero(~degenerate)
        val, bound = _mehler(f, g, su[i], sv[i], rho[i], tol, "quad_2d")
        ok = bound <= tol
        out[i[ok]] = val[ok]
        _record(bound[ok], math.inf, 0, tol)
        full[i[~ok]] = True
    if np.any(full):
        i = np.flatnonzero(full)
        out[i] = _trap_2d(f, g, su[i], slope[i], resid[i], tol, "quad_2d")
    return out.reshape(shape)


def _degenerate(f, g, s_u, s_v, tol):
    """``E[f(s_u z) g(s_v z)]`` per entry (1-D)."""
    m = s_u.shape[0]

    def evaluate(idx, z, w):
        vals = f(s_u[idx, None] * z) * g(s_v[idx, None] * z) * w
        I1 = vals.sum(axis=1)
        I2 = 2.0 * vals[:, ::2].sum(axis=1)
        I4 = 4.0 * vals[:, ::4].sum(axis=1)
        ff = (f(s_u[idx, None] * z) ** 2 * w).sum(axis=1)
        gg = (g(s_v[idx, None] * z) ** 2 * w).sum(axis=1)
        edge = np.maximum(np.abs(vals[:, 0]), np.abs(vals[:, -1])) / (z[1] - z[0])
        return I1, I2, I4, np.sqrt(ff * gg), edge

    return _adaptive(evaluate, m, tol, "quad_2d")


# ------------------------------------------------------------------- expectations
def pair(activation, c_uu, c_vv, c_uv, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """Two-point function ``<phi(u) phi(v)>``.

    Parameters
    ----------
    activation : str, callable or Activation
    c_uu, c_vv, c_uv : array_like
        Variances and covariance of the centred Gaussian ``(u, v)``; broadcast.
    quad_order : int, optional
        Explicit Gauss-Hermite order (activations without closed form);
        ``None``: automatic to ``quad_tol``.
    quad_tol : float, optional

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    act = get_activation(activation)
    check_quadrature(quad_order, quad_tol)
    c_uu, c_vv, c_uv = _arrays(c_uu, c_vv, c_uv)
    if act.closed is not None:
        return np.asarray(act.closed.pair(c_uu, c_vv, c_uv), dtype=float)
    return quad_2d(act.numpy, act.numpy, c_uu, c_vv, c_uv, quad_order, quad_tol)


def second_moment(activation, c, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """``<phi(h)^2>`` for ``h ~ N(0, c)`` (1-D, exact for the closed forms).

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    act = get_activation(activation)
    check_quadrature(quad_order, quad_tol)
    c = np.asarray(c, dtype=float)
    if act.closed is not None:
        return np.array(act.closed.second_moment(c), dtype=float)
    phi = act.numpy
    s = np.sqrt(np.maximum(c, 0.0)).ravel()
    return _expect_1d(lambda h, z: phi(h) ** 2, s, quad_order, quad_tol, "second_moment").reshape(c.shape)


def d_second_moment(activation, c, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """``d<phi(h)^2>/dc`` at ``h ~ N(0, c)``, i.e. ``<phi'^2 + phi phi''>`` (Price).

    Built-ins without closed form (tanh) use Price's theorem with the analytic
    derivatives.  Custom activations avoid differentiating ``phi``: for
    ``c >= 1e-4`` the exact identity ``d/dc E[F(h)] = E[F(sqrt(c) z)(z^2 - 1)] / (2 c)``
    with ``F = phi^2``; below, Price's theorem with the finite-difference
    derivatives of :meth:`Activation.derivative` (relative error ~1e-8).

    Returns
    -------
    ndarray of float64, shape of ``c``
    """
    act = get_activation(activation)
    check_quadrature(quad_order, quad_tol)
    c = np.asarray(c, dtype=float)
    if act.closed is not None:
        return np.array(act.closed.d_second_moment(c), dtype=float)
    phi = act.numpy
    s = np.sqrt(np.maximum(c, 0.0)).ravel()
    cf = c.ravel()
    if act.d1 is not None and act.d2 is not None:
        d1, d2 = act.d1, act.d2
        return _expect_1d(lambda h, z: d1(h) ** 2 + phi(h) * d2(h), s, quad_order, quad_tol,
                          "d_second_moment").reshape(c.shape)
    out = np.empty(cf.shape)
    # the identity divides by c: below _C_SMALL its cancellation (~1e-16 phi(0)^2 / c) would dominate
    pos = cf >= _C_SMALL
    if np.any(pos):
        sp = s[pos]
        cp = cf[pos]
        raw = _expect_1d(lambda h, z: phi(h) ** 2 * (z * z - 1.0), sp, quad_order, quad_tol, "d_second_moment")
        out[pos] = raw / (2.0 * cp)
    if np.any(~pos):  # Price's theorem with finite-difference derivatives (relative error ~1e-8)
        d1, d2 = act.derivative(1), act.derivative(2)
        out[~pos] = _expect_1d(lambda h, z: d1(h) ** 2 + phi(h) * d2(h), s[~pos], quad_order, quad_tol,
                               "d_second_moment")
    return out.reshape(c.shape)


def fourth_moment_pair(activation, c_uu, c_vv, c_uv, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """Four-point function ``<phi(u)^2 phi(v)^2>``.

    Closed forms: ReLU the degree-2 arc-cosine kernel (Eq. 69, Cho & Saul 2009)::

        sqrt(c_uu c_vv)^2 / (2 pi) * (3 sin t cos t + (pi - t)(1 + 2 cos^2 t)),

    linear Isserlis ``c_uu c_vv + 2 c_uv^2``; others numerical.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    act = get_activation(activation)
    check_quadrature(quad_order, quad_tol)
    c_uu, c_vv, c_uv = _arrays(c_uu, c_vv, c_uv)
    if act.closed is not None and act.closed.fourth_moment_pair is not None:
        return np.asarray(act.closed.fourth_moment_pair(c_uu, c_vv, c_uv), dtype=float)
    phi = act.numpy
    sq = _square(phi)
    return quad_2d(sq, sq, c_uu, c_vv, c_uv, quad_order, quad_tol)


@lru_cache(maxsize=64)
def _square(phi):
    """``phi^2`` as one function object per ``phi`` (lets Mehler share coefficients)."""
    return lambda h: phi(h) ** 2


def derivative_pair(activation, c_uu, c_vv, c_uv, quad_order=None, quad_tol=DEFAULT_QUAD_TOL) -> np.ndarray:
    """``<phi'(u) phi'(v)>`` (for ``chi_1`` and the correlation depth scale).

    Closed forms: ReLU ``(pi - t)/(2 pi)``; erf ``det(I + pi/2 C)^(-1/2)``;
    linear 1.  Otherwise numerical with the analytic ``phi'`` of the built-ins
    or the finite-difference ``phi'`` of :meth:`Activation.derivative`.

    Returns
    -------
    ndarray of float64, broadcast shape
    """
    act = get_activation(activation)
    check_quadrature(quad_order, quad_tol)
    c_uu, c_vv, c_uv = _arrays(c_uu, c_vv, c_uv)
    if act.closed is not None:
        return np.asarray(act.closed.derivative_pair(c_uu, c_vv, c_uv), dtype=float)
    d = act.derivative(1)
    return quad_2d(d, d, c_uu, c_vv, c_uv, quad_order, quad_tol)
