"""Orchestration: sample one block of weight realizations of a DNN or RNN.

Two samplers produce the same distribution of all observables:

``direct``
    Materialises every weight matrix (reference implementation; cost
    ``O(A n^2)`` Gaussian draws per realization).
``projected``
    Exact reduced sampling without forming W (theory of the method in the
    kernel docstrings of :mod:`mcsim._kernels_act`): for the DNN, rows of
    ``W Phi + xi 1^T`` are drawn as i.i.d. ``N(0, g^2/n Phi^T Phi + ...)``
    (``O(n P)`` draws per layer); for the RNN, ``W`` is revealed only on the
    span of the vectors it has been applied to (``O(n A P)`` draws per
    realization).

Observables (theory-notes Sec. 5), shapes for ``R`` realizations, ``P``
patterns and depth ``A``:

``y``             (R, P, n_out)  network outputs.
``chat``          (R, A+2, A+2, P, P)  ``Chat^(a,b) = (1/n) h^(a) . h^(b)``;
                  readout block ``(1/n_out) y . y``; ``Chat^(A+1, b<=A) = 0``
                  (different spaces; by convention).
``caux``          (R, A+2, A+2, P, P)  ``Caux^(a,b)`` of Eq. 26 with the
                  fan-in width of layer a in ``g_a^2/n_{a-1}``; readout
                  ``sigma_out^2 + g_out^2/n_A phi.phi``; ``Caux^(A+1,b<=A) = 0``.
``chat_diag``, ``caux_diag``        (R, A+2, P, P)  equal-layer blocks a = b.
``chat_readout``, ``caux_readout``  (R, P, P)  the a = b = A+1 block.
``y_steps``       (R, A+1, P, n_out)  ``y_steps[:, a]`` = readout of the depth-a
                  network (the first a+1 layers/steps, a = 0..A) with the point's
                  readout gain and bias ``g2_out``, ``sigma2_out``: drawn given the
                  realization from ``N(0, Caux_out^(a))`` per readout unit, with
                  ``Caux_out^(a) = sigma2_out + g2_out/n_a phi(h^(a)).phi(h^(a))``
                  (:func:`theory.kernel.nested_readout`; for a = A exactly ``caux_readout``).  Its normals come from the
                  realization's separate sub-stream (:data:`mcsim._rng.STEP_READOUT_STREAM`),
                  so requesting it changes no other observable; ``y_steps[:, A]`` is
                  an independent draw with the law of ``y``, not ``y`` itself.  Each
                  depth's marginal is exact; depths share realizations (correlated).
``overflow``      (R,) bool, always returned: True where the realization
                  produced inf/nan (unstable regime); a RuntimeWarning is issued.

For the DNN with unequal widths (``nu``) the cross-layer ``chat``/``caux`` are
undefined (vectors of different length) and requesting them is an error.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from theory.comparison import weight_average
from theory.inputs import strict_int
from theory.kernel import nested_readout
from theory.prior import Prior, check_inputs
from theory.spec import (
    DEFAULT_METHOD,
    DEFAULT_OBSERVABLES,
    METHODS,
    OBSERVABLES,
    check_method,
    check_observables,
    check_seed,
    point_key as _point_key,
)

from . import _kernels as K
from . import _memory
from ._kernels_steps import readout_steps
from ._kernelsets import jit_scalar, kernel_set
from ._rng import STEP_READOUT_STREAM, realization_generator, stream_key

#: relative pivot tolerance of the pivoted Cholesky factorisations (P x P Grams)
CHOLESKY_RTOL = 1e-12
#: relative residual ``|Y_alpha| / |phi_alpha|`` below which a new direction is dropped
#: (RNN projection): the rank decision is made on a Gram matrix, which resolves
#: relative residuals down to about sqrt(machine eps) = 1.5e-8; 1e-6 keeps it
#: well above that noise, and a dropped direction changes ``W phi`` by less than
#: 1e-6 of its norm
PROJECTION_RTOL = 1e-6
#: target size (float64 values) of one block of pre-drawn normals
_CHUNK_VALUES = 1 << 21


# ----------------------------------------------------------------------------
# BLAS threads
# ----------------------------------------------------------------------------
_BLAS_LOCK = threading.Lock()
_BLAS_CONTROLLER = None


def _blas_controller():
    """The process's ``threadpoolctl.ThreadpoolController`` (created on first use, not at import).

    SciPy's BLAS, which Numba's ``np.dot`` calls inside the kernels, is loaded
    first so that the controller sees it next to NumPy's.
    """
    global _BLAS_CONTROLLER
    with _BLAS_LOCK:
        if _BLAS_CONTROLLER is None:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS of numba's np.dot)
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController()
        return _BLAS_CONTROLLER


@contextlib.contextmanager
def single_thread_blas():
    """Run the block with every loaded BLAS limited to one thread (restored afterwards).

    Sampling runs inside this context (:func:`draw`, hence :func:`sample`,
    :func:`sample_point` and the MPI block worker): a GEMM's summation order,
    hence a realization's numbers, must not depend on how many threads BLAS
    happens to use, and parallelism comes from MPI ranks, not threads (on a
    shared node, BLAS threads of several ranks also oversubscribe the cores).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


# ----------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------
def _kernels_for(prior: Prior):
    """The compiled kernel set of the prior's activation (:func:`mcsim._kernelsets.kernel_set`).

    One set per activation and process: built-in activations load theirs from
    the disk cache, custom ones (a callable, a name from
    :func:`register_activation` or an import path ``"module:function"``) are
    compiled in this process.  Sets never share compiled code.

    Raises
    ------
    ValueError
        ``activation: ...`` for a custom activation numba cannot compile.
    """
    return kernel_set(prior.act)


def register_activation(name: str, fn) -> None:
    """Register a numba-jittable activation under ``name`` for :mod:`theory` and :mod:`mcsim`.

    :func:`theory.register_activation` plus an immediate check that the
    samplers can compile ``fn`` (so a bad function fails here, not in the
    middle of a run).  Registration is per process; jobs in other processes
    (``python -m mcsim run``, workflow rules) take the import path
    ``"module:function"`` instead.

    Parameters
    ----------
    name : str
        See :func:`theory.register_activation`.
    fn : callable
        Vectorised over NumPy arrays (theory quadrature) and compilable by
        numba for a float64 scalar (samplers), e.g. ``np.log1p(np.exp(x))``
        under ``@numba.njit`` or a ``@numba.vectorize(["float64(float64)"])``
        ufunc.

    Raises
    ------
    ValueError
        For a bad name (see :func:`theory.register_activation`) or a function
        numba cannot compile.
    """
    from theory.prior import register_activation as _register

    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    jit_scalar(fn)
    _register(name, fn)


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _int_param(name, value, minimum):
    return strict_int(name, value, minimum)


# ----------------------------------------------------------------------------
# deterministic parts: input and bias covariances
# ----------------------------------------------------------------------------
def _input_grams(prior: Prior, seq: np.ndarray) -> np.ndarray:
    """``G[a, b, p, q] = g0^2/n_in x_p^(a) . x_q^(b)`` as (A+1, A+1, P, P) (fixed-order sums)."""
    P, A1, n_in = seq.shape
    V = np.ascontiguousarray(seq.transpose(1, 0, 2))[None]  # (1, A+1, P, n_in)
    out = np.zeros((1, A1, A1, P, P))
    K.pair_grams(V, n_in, float(prior.g2_layers[0]) / n_in, out)
    return out[0]


def _bias_matrix(prior: Prior) -> np.ndarray:
    """``B[a, b]`` for a, b = 0..A (static: sigma^2 everywhere; uncorrelated: diag sigma_a^2)."""
    A1 = prior.depth + 1
    s2 = prior.sigma2_layers[:A1]
    if prior.bias == "static":
        return np.full((A1, A1), float(s2[0]))
    return np.diag(s2.astype(float))


def _deterministic_caux(prior: Prior, seq: np.ndarray) -> np.ndarray:
    """Deterministic part of Caux^(a,b), a,b = 0..A: ``B_ab + I_ab g0^2/n_in x^(a).x^(b)``.

    Returns (A+1, A+1, P, P).
    """
    G = _input_grams(prior, seq)
    B = _bias_matrix(prior)
    if not prior.shared:
        G = G * np.eye(G.shape[0])[:, :, None, None]
    return G + B[:, :, None, None]


# ----------------------------------------------------------------------------
# cost model
# ----------------------------------------------------------------------------
# Calibrated against ``python -m mcsim bench --cost-model`` (2026-11-25, BLAS-3 RNN
# kernels, two runs on the loaded 2-core machine, measured times rescaled to the
# 20 ns-per-normal rate below by the normal rate measured next to each sampler):
# for the method ``auto`` picks, predicted/measured is 0.55-1.5 on the workflow's
# configurations costing >= 1 ms per realization (run-to-run noise about +-40%), and
# 0.4-0.55 below 0.2 ms (fixed per-realization overhead, not modelled).  Refitting
# the four constants (minimax) only brought the worst case from 2.0x to 1.8x while
# flipping ``auto`` at RNN n = 20, A = 15, P = 10 to the slower direct sampler, so
# they are unchanged.  An idle core is about 2x faster (10 ns per normal).
# Rechecked 2026-11-25 after the selective reorthogonalisation (RNN, one Gram-Schmidt
# pass) and the BLAS Grams of the projected DNN (its P x P Grams and h = L Z now
# count as GEMM flops): projected pred/measured 0.73-1.57 (>= 0.2 ms per realization).
_NS_PER_NORMAL = 20.0
"""ns per standard normal (Philox + ziggurat, stream version <= 3; measured 21 ns on the 2-core test machine).

Not refitted for SFC64 (stream version 4, about 1.5x faster per normal): the
constant also decides ``method="auto"``, and keeping it keeps every point's
resolved method (part of its identity) unchanged."""
_NS_PER_GEMM_FLOP = 0.06
"""ns per flop of the BLAS-3 products (single-thread GEMMs of the shapes used, about 15 GFLOP/s)."""
_NS_PER_LOOP_FLOP = 0.5
"""ns per flop of the Numba loops (P x P Grams, input correlation, DNN projection)."""
_NS_PER_LAYER_DIRECT = 20000.0
"""Python overhead of one layer/step of the direct sampler, ns."""


def _normals_projected(prior: Prior, widths: np.ndarray, P: int, rank_in: int) -> int:
    A = prior.depth
    if prior.shared:
        n = int(widths[0])
        return rank_in * n + A * P * n + P * prior.n_out
    total = int(widths[0]) if prior.bias == "static" else 0
    return total + P * int(widths.sum()) + P * prior.n_out


def rnn_projection_flops(n: int, A: int, P: int) -> float:
    """Flops of the Gram-Schmidt and update GEMMs of one projected RNN realization.

    For step a = 1..A with basis size ``k = min((a-1) P, n)`` before the step
    and ``r = min(P, n - k)`` new directions (the generic case; repeated or
    dependent patterns need fewer): one block classical Gram-Schmidt pass
    against the basis ``4 k P n``, the scaled residual Gram ``2 P^2 n``,
    Cholesky-QR ``2 r P n + 4 r^2 n``, the measurement of the new directions'
    components along the basis ``2 k r n`` and the update ``h += coef^T WQ``:
    ``2 (k + r) P n``.  The second projection of blocks that fail the
    measurement (rare for generic states, ``2 k r n``) is not counted.

    Parameters
    ----------
    n, A, P : int
        Width, depth and number of (distinct) patterns.

    Returns
    -------
    float
    """
    ks = np.minimum(np.arange(A, dtype=float) * P, n)
    rs = np.minimum(P, n - ks)
    per_step = 4 * ks * P * n + 2 * ks * rs * n + 2 * P * P * n + 2 * rs * P * n + 4 * rs * rs * n + 2 * (ks + rs) * P * n
    return float(np.sum(per_step))


def _cost(prior: Prior, seq: np.ndarray, width: int) -> dict:
    """Model of the ns per realization of both samplers (the distinct patterns of ``seq`` are drawn)."""
    seq, _ = _distinct_patterns(seq)
    widths = prior.widths(width).astype(float)
    P, A1, n_in = seq.shape
    A = A1 - 1
    xnz = np.any(seq != 0.0, axis=(0, 2))
    n_out = prior.n_out
    if prior.shared:
        n = widths[0]
        draws_d = n * n * (A >= 1) + n * n_in * xnz.any() + n * n_out
        gemm_d = 2 * A * n * n * P + 2 * A1 * n * n_in * P * xnz.any()
        rank_in = min(A1 * P, (n_in if xnz.any() else 0) + A1)
        draws_p = rank_in * n + A * P * n + P * n_out
        gemm_p = rnn_projection_flops(int(n), A, P)
        # input correlation (factor columns touching each step) and the P x P Grams
        loop_p = 2 * n * P * float(np.sum(np.minimum(P, n_in) * xnz + 1)) + 4 * A1 * P * P * n
    else:
        prev = widths[:-1]
        draws_d = float(np.sum(prev * widths[1:])) + float(np.sum(widths * n_in * xnz)) + widths[-1] * n_out
        gemm_d = 2 * P * draws_d
        draws_p = P * widths.sum() + P * n_out
        # per layer: the pattern Grams of phi and h and h = L Z_a are BLAS GEMMs
        gemm_p = float(np.sum(widths * 4 * P * P))
        loop_p = float(np.sum(widths * 4 * P))
    return {
        "direct": draws_d * _NS_PER_NORMAL + gemm_d * _NS_PER_GEMM_FLOP + (A1 + 1) * _NS_PER_LAYER_DIRECT,
        "projected": draws_p * _NS_PER_NORMAL + gemm_p * _NS_PER_GEMM_FLOP + loop_p * _NS_PER_LOOP_FLOP,
    }


def resolve_method(prior: Prior, X, width: int, method: str = "auto") -> str:
    """Resolve ``method`` ("direct", "projected" or "auto") to a concrete sampler.

    ``auto`` compares a cost model (ns per Gaussian draw, per GEMM flop and
    per Numba-loop flop) of both samplers: the projected DNN wins unless P is
    comparable to n; the projected RNN loses when ``A P`` approaches ``n``
    (its Gram-Schmidt cost grows as ``n (A P)^2``, :func:`rnn_projection_flops`).

    Parameters
    ----------
    prior : theory.Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
    width : int
    method : str

    Returns
    -------
    str
        ``"direct"`` or ``"projected"``.
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if method != "auto":
        return method
    if not isinstance(prior, Prior):
        raise ValueError(f"prior: expected theory.Prior, got {type(prior).__name__}")
    seq = check_inputs(prior, X)
    prior.widths(width)
    c = _cost(prior, seq, int(width))
    return "projected" if c["projected"] <= c["direct"] else "direct"


# ----------------------------------------------------------------------------
# the samplers
# ----------------------------------------------------------------------------
class _Setup:
    """Everything fixed for one (prior, X, width): shapes and deterministic parts."""

    def __init__(self, prior: Prior, seq: np.ndarray, width: int):
        self.prior = prior
        self.seq = seq
        self.P, self.A1, self.n_in = seq.shape
        self.A = self.A1 - 1
        self.widths = prior.widths(width)
        self.n_out = int(prior.n_out)
        self.g2 = np.ascontiguousarray(prior.g2_layers, dtype=float)
        self.sigma2 = np.ascontiguousarray(prior.sigma2_layers, dtype=float)
        self.static = prior.bias == "static"
        self.xnz = np.any(seq != 0.0, axis=(0, 2))
        self.det_caux = _deterministic_caux(prior, seq)  # (A+1, A+1, P, P)
        self.Xa = np.ascontiguousarray(seq.transpose(1, 0, 2))  # (A+1, P, n_in)


def _dnn_K_in(s: _Setup) -> np.ndarray:
    """Per-layer deterministic covariance (A+2, P, P) used by the projected DNN kernel."""
    P, A1 = s.P, s.A1
    Kin = np.zeros((A1 + 1, P, P))
    G = _input_grams(s.prior, s.seq)
    for a in range(A1):
        Kin[a] = G[a, a]
        if not s.static:
            Kin[a] += s.sigma2[a]
    Kin[A1] = s.sigma2[A1]
    return Kin


def _rnn_L_in(s: _Setup, kern):
    """Factor of the joint input+bias covariance of all steps: (A+1, P, rank), rank."""
    P, A1 = s.P, s.A1
    m = A1 * P
    Kfull = np.ascontiguousarray(s.det_caux.transpose(0, 2, 1, 3).reshape(m, m))
    L = np.empty((m, m))
    work = np.empty((m, m))
    rank = int(kern.pivoted_cholesky(Kfull, CHOLESKY_RTOL, L, work))
    keep = max(rank, 1)
    L_in = np.ascontiguousarray(L[:, :keep].reshape(A1, P, keep))
    return L_in, rank


def _sample_projected(s: _Setup, kern, key, start, R, keep_h, keep_phi):
    P, A1 = s.P, s.A1
    n_out = s.n_out
    y = np.empty((R, P, n_out))
    chat_d = np.empty((R, A1 + 1, P, P))
    caux_d = np.empty((R, A1 + 1, P, P))
    nmax = int(s.widths.max())
    H = np.empty((R, A1, P, nmax)) if keep_h else np.empty((1, 1, 1, 1))
    PHI = np.empty((R, A1, P, nmax)) if keep_phi else np.empty((1, 1, 1, 1))
    ranks = np.zeros(R, dtype=np.int64)
    if s.prior.shared:
        L_in, rank_in = _rnn_L_in(s, kern)
        N = _normals_projected(s.prior, s.widths, P, rank_in)
        for a in range(A1):
            caux_d[:, a] = s.det_caux[a, a]
    else:
        Kin = _dnn_K_in(s)
        N = _normals_projected(s.prior, s.widths, P, 0)
    chunk = max(1, min(R, _CHUNK_VALUES // max(N, 1)))
    Z = np.empty((chunk, N))
    for c0 in range(0, R, chunk):
        c1 = min(R, c0 + chunk)
        for i in range(c1 - c0):
            realization_generator(key, start + c0 + i).standard_normal(out=Z[i])
        Zc = Z[: c1 - c0]
        sl = slice(c0, c1)
        if s.prior.shared:
            kern.rnn_projected_block(
                Zc, int(s.widths[0]), n_out, float(s.g2[1]) if s.A > 0 else 0.0,
                float(s.g2[A1]), float(s.sigma2[A1]), L_in, rank_in, PROJECTION_RTOL, CHOLESKY_RTOL,
                keep_h, keep_phi, y[sl], chat_d[sl], caux_d[sl],
                H[sl] if keep_h else H, PHI[sl] if keep_phi else PHI, ranks[sl],
            )
        else:
            kern.dnn_projected_block(
                Zc, s.widths, n_out, s.g2, Kin, s.static,
                float(s.sigma2[0]) if s.static else 0.0, CHOLESKY_RTOL, keep_h,
                y[sl], chat_d[sl], caux_d[sl], H[sl] if keep_h else H,
            )
            if keep_phi:
                for a in range(A1):
                    kern.apply_act(H[sl, a].reshape(-1, nmax), nmax, PHI[sl, a].reshape(-1, nmax))
    return y, chat_d, caux_d, H, PHI, ranks


def _check_projection(ranks: np.ndarray, overflow: np.ndarray, start: int) -> None:
    """Raise if the projected RNN flagged a realization (``ranks < 0``) whose states stayed finite.

    Parameters
    ----------
    ranks : ndarray, int64, shape (R,)
        Final basis dimension per realization; -1 where a guard of the kernel tripped.
    overflow : ndarray, bool, shape (R,)
        Realizations that overflowed (flagged and excluded downstream anyway).
    start : int
        Global index of the first realization (for the message).
    """
    bad = np.flatnonzero((ranks < 0) & ~overflow)
    if bad.size:
        R = ranks.shape[0]
        raise RuntimeError(
            f"RNN projected sampler: the basis of W's revealed directions lost orthogonality in "
            f"{bad.size} of {R} realizations (first: realization {start + int(bad[0])}); their numbers are not "
            f"trusted. This should not happen: please report it with the point spec; method='direct' avoids "
            f"the projection"
        )


def _fan_in_weights(rng, shared: bool, cached, buf: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Standard-normal weight matrix stored transposed (fan-in rows) for the direct sampler.

    Parameters
    ----------
    rng : numpy.random.Generator
        The realization's stream.
    shared : bool
        Weight sharing over time (RNN): draw the matrix once per realization
        and reuse it.
    cached : ndarray of float64, shape (rows, cols), or None
        The matrix drawn earlier in this realization (used only when ``shared``).
    buf : ndarray of float64, shape (>= rows * cols,)
        Scratch buffer; without sharing the matrix is drawn into it (a view is
        returned, overwritten by the next call).
    rows, cols : int
        Fan-in and fan-out.

    Returns
    -------
    ndarray of float64, shape (rows, cols)
        ``cached`` if shared and already drawn, else fresh ``N(0, 1)`` draws
        (same stream consumption as one ``rng.standard_normal`` call).
    """
    if shared:
        return cached if cached is not None else rng.standard_normal((rows, cols))
    W = buf[: rows * cols].reshape(rows, cols)
    rng.standard_normal(out=W)
    return W


def _sample_direct(s: _Setup, kern, key, start, R, keep_h, keep_phi):
    """Reference sampler: materialise every weight matrix (stored transposed, fan-in rows).

    Each layer/step is one BLAS GEMM ``Phi (P x n_{a-1}) @ W^T (n_{a-1} x n_a)``.
    """
    P, A1, n_in = s.P, s.A1, s.n_in
    n_out = s.n_out
    widths = [int(w) for w in s.widths]
    nmax = max(widths + [n_out])
    y = np.empty((R, P, n_out))
    chat_d = np.empty((R, A1 + 1, P, P))
    caux_d = np.empty((R, A1 + 1, P, P))
    H = np.empty((R, A1, P, nmax)) if keep_h else None
    PHI = np.empty((R, A1, P, nmax)) if keep_phi else None
    wbuf = np.empty(max([nmax * nmax, nmax * n_in, 1]))
    G = np.empty((P, P))
    shared = s.prior.shared
    sig = s.sigma2
    for i in range(R):
        rng = realization_generator(key, start + i)
        xi_static = None
        if s.static and sig[0] > 0:
            xi_static = rng.standard_normal(widths[0])
        W_rec = None
        Win = None
        phi = None
        for a in range(A1):
            na = widths[a]
            h = np.zeros((P, na))
            if a > 0:
                nprev = widths[a - 1]
                WT = _fan_in_weights(rng, shared, W_rec, wbuf, nprev, na)
                W_rec = WT if shared else None
                h += math.sqrt(s.g2[a] / nprev) * (phi @ WT)
            if s.xnz[a]:
                WinT = _fan_in_weights(rng, shared, Win, wbuf, n_in, na)
                Win = WinT if shared else None
                h += math.sqrt(s.g2[0] / n_in) * (s.Xa[a] @ WinT)
            if s.static:
                if xi_static is not None:
                    kern.add_scaled_vector(h, xi_static, na, math.sqrt(sig[0]))
            elif sig[a] > 0:
                kern.add_scaled_vector(h, rng.standard_normal(na), na, math.sqrt(sig[a]))
            caux_d[i, a] = s.det_caux[a, a]
            if a > 0:
                kern.gram(phi, widths[a - 1], s.g2[a] / widths[a - 1], G)
                caux_d[i, a] += G
            kern.gram(h, na, 1.0 / na, G)
            chat_d[i, a] = G
            if keep_h:
                H[i, a, :, :na] = h
            phi = np.empty((P, na))
            kern.apply_act(h, na, phi)
            if keep_phi:
                PHI[i, a, :, :na] = phi
        nA = widths[-1]
        yo = np.zeros((P, n_out))
        WT = _fan_in_weights(rng, False, None, wbuf, nA, n_out)
        yo += math.sqrt(s.g2[A1] / nA) * (phi @ WT)
        if sig[A1] > 0:
            kern.add_scaled_vector(yo, rng.standard_normal(n_out), n_out, math.sqrt(sig[A1]))
        kern.gram(phi, nA, s.g2[A1] / nA, G)
        caux_d[i, A1] = G + sig[A1]
        kern.gram(yo, n_out, 1.0 / n_out, G)
        chat_d[i, A1] = G
        y[i] = yo
    return y, chat_d, caux_d, H, PHI


@dataclass(frozen=True)
class PreparedPoint:
    """A validated point, ready to draw realizations (see :func:`prepare` / :func:`prepare_spec`).

    Attributes
    ----------
    prior : theory.Prior
    seq : ndarray of float64, shape (P, A+1, n_in)
        Inputs per step.
    width : int
    seed : int
    method : str
        The requested method.
    resolved : {"direct", "projected"}
        The sampler actually used.
    observables : tuple of str
    point_key : str
        :func:`theory.spec.point_key` of (prior, inputs, width, resolved, seed)
        unless overridden.
    """

    prior: Prior
    seq: np.ndarray
    width: int
    seed: int
    method: str
    resolved: str
    observables: tuple
    point_key: str

    def block_bytes(self, realizations: int) -> int:
        """Estimated peak bytes of drawing ``realizations`` realizations at once (:func:`estimate_bytes`)."""
        return estimate_bytes(self.prior, self.seq, self.width, self.resolved, self.observables, realizations)


def prepare(prior: Prior, X, width: int, seed: int = 0, method: str = DEFAULT_METHOD,
            observables: Sequence[str] = DEFAULT_OBSERVABLES, point_key: str | None = None) -> PreparedPoint:
    """Validate the arguments of :func:`sample` once and derive the point key.

    Raises
    ------
    ValueError
        Message starting with the offending parameter name.
    """
    if not isinstance(prior, Prior):
        raise ValueError(f"prior: expected theory.Prior, got {type(prior).__name__}")
    seq = check_inputs(prior, X)
    width = strict_int("width", width, 1)
    prior.widths(width)
    seed = check_seed(seed)
    method = check_method(method)
    obs = check_observables(observables, prior, width)
    if point_key is not None and (not isinstance(point_key, str) or not point_key):
        raise ValueError(f"point_key: must be a non-empty string or None, got {point_key!r}")
    resolved = resolve_method(prior, seq, width, method)
    if point_key is None:
        point_key = _point_key(prior, seq, width, resolved, seed)
    return PreparedPoint(prior, seq, width, seed, method, resolved, obs, point_key)


def prepare_spec(spec, observables: Sequence[str] | None = None) -> PreparedPoint:
    """:class:`PreparedPoint` of a validated :class:`theory.PointSpec` (no second validation).

    Parameters
    ----------
    spec : theory.PointSpec
    observables : sequence of str, optional
        Observables to draw instead of ``spec.observables`` (a subset of
        :data:`OBSERVABLES`, validated).
    """
    obs = spec.observables if observables is None else check_observables(observables, spec.prior, spec.width)
    seq = check_inputs(spec.prior, spec.X)
    return PreparedPoint(spec.prior, seq, spec.width, spec.seed, spec.method, spec.resolved_method(),
                         tuple(obs), spec.point_key())


def estimate_bytes(prior: Prior, seq: np.ndarray, width: int, resolved: str, observables: Sequence[str],
                   realizations: int) -> int:
    """Estimated peak memory in bytes of drawing ``realizations`` realizations in one call.

    Counts the float64 arrays the samplers allocate: outputs, kept
    pre-activations/activations (for ``chat``/``caux``), the block of
    pre-drawn normals, the weight matrices (``direct``) or the projection
    basis (RNN ``projected``), and the kernel workspaces; plus 64 MiB of
    interpreter and library overhead.  It is an estimate (within a factor of
    about 1.5), used to refuse blocks that cannot fit before allocating.

    Parameters
    ----------
    prior : theory.Prior
    seq : ndarray of float64, shape (P, A+1, n_in)
    width : int
    resolved : {"direct", "projected"}
    observables : sequence of str
    realizations : int

    Returns
    -------
    int
    """
    P, A1, n_in = seq.shape
    A = A1 - 1
    R = int(realizations)
    widths = [int(w) for w in prior.widths(width)]
    nmax = max(widths)
    n_out = int(prior.n_out)
    obs = set(observables)
    values = 0
    values += R * (P * n_out + 2 * (A1 + 1) * P * P)  # y, chat_d, caux_d
    keep = ("chat" in obs) + ("caux" in obs and prior.shared)
    values += keep * R * A1 * P * nmax  # H, PHI
    values += ("chat" in obs) * R * (A1 + 1) ** 2 * P * P + ("caux" in obs) * 2 * R * (A1 + 1) ** 2 * P * P
    values += ("y_steps" in obs) * R * A1 * (2 * P * n_out + P * P)  # y_steps, its normals, covariances
    if resolved == "projected":
        if prior.shared:
            n = widths[0]
            rank_in = min(A1 * P, n_in + A1)
            N = rank_in * n + A * P * n + P * n_out
            kmax = max(1, min(A * P, n))
            values += 2 * kmax * n + 5 * P * n + (A1 * P) ** 2 * 3
        else:
            N = (widths[0] if prior.bias == "static" else 0) + P * sum(widths) + P * n_out
            values += 3 * P * nmax
        values += max(N, min(R * N, _CHUNK_VALUES))
    else:
        W = nmax * nmax if A >= 1 else 0
        values += (2 if prior.shared else 1) * W + 2 * nmax * n_in + 4 * P * nmax + nmax
    return int(8 * values + (64 << 20))


def _check_memory(prep: PreparedPoint, R: int, name: str = "realizations") -> None:
    need = prep.block_bytes(R)
    avail, source = _memory.available_bytes()
    if avail is None or need <= avail:
        return
    one = prep.block_bytes(1)
    if one > avail:
        raise ValueError(
            f"width: one realization of this point needs about {_memory.fmt_bytes(one)} "
            f"({prep.resolved} sampler, width {prep.width}), but only {_memory.fmt_bytes(avail)} is available "
            f"({source}); use a smaller width"
            + (" or method='projected'" if prep.resolved == "direct" else "")
        )
    fit = max(1, int(avail // max(one, 1)))
    raise ValueError(
        f"{name}: drawing {R} realizations at once needs about {_memory.fmt_bytes(need)}, but only "
        f"{_memory.fmt_bytes(avail)} is available ({source}); draw at most about {fit} at a time "
        f"(one needs about {_memory.fmt_bytes(one)})"
    )


def sample(
    prior: Prior,
    X,
    width: int,
    realizations: int,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
    start: int = 0,
    point_key: str | None = None,
) -> dict:
    """Sample weight realizations ``start .. start+realizations-1`` of one point.

    ``mcsim.sample(prior, X, width, R, seed, method)`` draws exactly the same
    random streams as ``python -m mcsim run`` for the point spec with the same
    prior, inputs, width, seed and method: both use
    :func:`theory.spec.point_key`, so the results are bit-identical.

    Parameters
    ----------
    prior : theory.Prior
        Network prior (architecture, depth A, activation, variances, bias mode).
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        Single inputs (given at a = 0) or input sequences.
    width : int
        Reference width n (hidden widths ``prior.widths(n)``).
    realizations : int
        Number R >= 1 of realizations in this block.
    seed : int, optional
        Root seed, ``0 <= seed < 2**63``.
    method : {"auto", "projected", "direct"}
        Chosen by :func:`resolve_method` (default, as in point specs), reduced
        exact sampler, or materialised reference.
    observables : sequence of str
        Any of ``y, caux, chat, caux_diag, chat_diag, caux_readout, chat_readout, y_steps``;
        default ``("y", "caux_diag", "chat_diag")`` as in point specs.
    start : int, optional
        Global index of the first realization.
    point_key : str, optional
        Override of the point identity (independent streams for the same
        point); default :func:`theory.spec.point_key` of (prior, X, width,
        resolved method, seed).

    Returns
    -------
    dict of str -> ndarray
        The requested observables (float64, shapes in the module docstring)
        and ``"overflow"`` (R,) bool.  Realization r depends only on
        (seed, point key, r): bit-identical for any block split or thread count.

    Raises
    ------
    ValueError
        Message starting with the offending parameter name (prior, X, width,
        realizations, seed, method, observables, start, point_key), also when
        the estimated memory of the call (:func:`estimate_bytes`) exceeds the
        available memory (see :mod:`mcsim._memory`).

    Warns
    -----
    RuntimeWarning
        When some realizations overflowed (recorded in ``"overflow"``).
    """
    prep = prepare(prior, X, width, seed, method, observables, point_key)
    R = strict_int("realizations", realizations, 1)
    start = strict_int("start", start, 0)
    _check_memory(prep, R)
    return draw(prep, start, R)


def draw(prep: PreparedPoint, start: int, R: int) -> dict:
    """Draw realizations ``start .. start+R-1`` of a prepared point (no validation, no memory check).

    Returns
    -------
    dict
        As :func:`sample`.
    """
    prior = prep.prior
    useq, inv = _distinct_patterns(prep.seq)
    s = _Setup(prior, useq, prep.width)
    obs = prep.observables
    kern = _kernels_for(prior)
    key = stream_key(prep.seed, prep.point_key)
    keep_h = "chat" in obs
    keep_phi = "caux" in obs and prior.shared
    with np.errstate(all="ignore"), single_thread_blas():
        ranks = None
        if prep.resolved == "projected":
            y, chat_d, caux_d, H, PHI, ranks = _sample_projected(s, kern, key, start, R, keep_h, keep_phi)
        else:
            y, chat_d, caux_d, H, PHI = _sample_direct(s, kern, key, start, R, keep_h, keep_phi)
        out = _assemble(s, kern, obs, y, chat_d, caux_d, H, PHI)
        if "y_steps" in obs:
            out["y_steps"] = _step_readouts(s, caux_d, key, start)
        if useq.shape[0] < prep.seq.shape[0]:
            _expand_patterns(out, inv)
        overflow = ~(
            np.isfinite(y).all(axis=(1, 2))
            & np.isfinite(chat_d).all(axis=(1, 2, 3))
            & np.isfinite(caux_d).all(axis=(1, 2, 3))
        )
        if ranks is not None and s.prior.shared:
            _check_projection(ranks, overflow, start)
    out["overflow"] = overflow
    if overflow.any():
        warnings.warn(
            f"{int(overflow.sum())} of {R} realizations overflowed to inf/nan (unstable regime, "
            f"activation {prior.activation_name}, g2={prior.g2!r}, depth {prior.depth}); "
            "they are flagged in 'overflow'",
            RuntimeWarning,
            stacklevel=3,
        )
    return out


def _step_readouts(s: _Setup, caux_d: np.ndarray, key: int, start: int) -> np.ndarray:
    """``y_steps`` (R, A+1, P, n_out) of a block (normals from the realizations' step-readout sub-stream)."""
    R, P, A1, n_out = caux_d.shape[0], s.P, s.A1, s.n_out
    det = np.ascontiguousarray(np.stack([s.det_caux[a, a] for a in range(A1)]))
    C = np.ascontiguousarray(nested_readout(caux_d, det, s.g2, float(s.sigma2[A1])))
    Z = np.empty((R, A1 * P * n_out))
    for i in range(R):
        realization_generator(key, start + i, STEP_READOUT_STREAM).standard_normal(out=Z[i])
    y = np.empty((R, A1, P, n_out))
    readout_steps(C, Z, CHOLESKY_RTOL, n_out, y)
    return y


def _distinct_patterns(seq: np.ndarray):
    """The bitwise-distinct input patterns and the map from every pattern to its copy.

    Identical inputs give identical network states in every realization, so
    the samplers draw each distinct pattern once and the observables are
    expanded afterwards (:func:`_expand_patterns`): duplicated patterns are
    bitwise identical whatever the summation order of BLAS in the sampler.

    Parameters
    ----------
    seq : ndarray of float64, shape (P, A+1, n_in)

    Returns
    -------
    useq : ndarray of float64, shape (U, A+1, n_in)
        The distinct patterns in order of first occurrence (``seq`` itself if all are distinct).
    inv : ndarray of int64, shape (P,)
        ``seq[p]`` is bitwise equal to ``useq[inv[p]]``.
    """
    first: dict = {}
    keep = []
    inv = np.empty(seq.shape[0], dtype=np.int64)
    for p in range(seq.shape[0]):
        inv[p] = first.setdefault(np.ascontiguousarray(seq[p]).tobytes(), len(keep))
        if inv[p] == len(keep):
            keep.append(p)
    if len(keep) == seq.shape[0]:
        return seq, inv
    return np.ascontiguousarray(seq[keep]), inv


#: pattern axes of every observable (see the module docstring for the shapes)
_PATTERN_AXES = {"y": (1,), "chat": (3, 4), "caux": (3, 4), "chat_diag": (2, 3), "caux_diag": (2, 3),
                 "chat_readout": (1, 2), "caux_readout": (1, 2), "y_steps": (2,)}


def _expand_patterns(out: dict, inv: np.ndarray) -> None:
    """Expand the observables in ``out`` (in place) from distinct patterns to all (``inv`` of :func:`_distinct_patterns`)."""
    for name, axes in _PATTERN_AXES.items():
        if name in out:
            v = out[name]
            for ax in axes:
                v = np.take(v, inv, axis=ax)
            out[name] = v


def _assemble(s: _Setup, kern, obs, y, chat_d, caux_d, H, PHI) -> dict:
    out = {}
    R = y.shape[0]
    P, A1 = s.P, s.A1
    for o in obs:
        if o == "y":
            out[o] = y
        elif o == "chat_diag":
            out[o] = chat_d
        elif o == "caux_diag":
            out[o] = caux_d
        elif o == "chat_readout":
            out[o] = np.ascontiguousarray(chat_d[:, A1])
        elif o == "caux_readout":
            out[o] = np.ascontiguousarray(caux_d[:, A1])
        elif o == "chat":
            full = np.zeros((R, A1 + 1, A1 + 1, P, P))
            n = int(s.widths[0])
            kern.pair_grams(np.ascontiguousarray(H[:, :, :, :n]), n, 1.0 / n, full)
            # equal-layer blocks: the sampler's own values (its Grams may be GEMMs)
            for a in range(A1 + 1):
                full[:, a, a] = chat_d[:, a]
            out[o] = full
        elif o == "caux":
            full = np.zeros((R, A1 + 1, A1 + 1, P, P))
            full[:, :A1, :A1] = s.det_caux
            if s.prior.shared:
                if A1 > 1:
                    n = int(s.widths[0])
                    tmp = np.zeros((R, A1 - 1, A1 - 1, P, P))
                    kern.pair_grams(np.ascontiguousarray(PHI[:, : A1 - 1, :, :n]), n, float(s.g2[1]) / n, tmp)
                    full[:, 1:A1, 1:A1] += tmp
            # equal-layer blocks: the sampler's own values (its Grams may be GEMMs)
            for a in range(A1 + 1):
                full[:, a, a] = caux_d[:, a]
            out[o] = full
    return out


def sample_point(spec, start: int, stop: int, observables: Sequence[str] | None = None) -> dict:
    """Sample realizations ``start .. stop-1`` of a point spec.

    Parameters
    ----------
    spec : theory.PointSpec
        Already validated (it is not validated again).
    start, stop : int
        Global realization range (``0 <= start < stop``).
    observables : sequence of str, optional
        Draw these instead of ``spec.observables``.

    Returns
    -------
    dict
        As :func:`sample` with the spec's prior, inputs, width, seed and
        method: the same numbers as ``mcsim.sample(spec.prior, spec.X,
        spec.width, stop, spec.seed, spec.method)[start:stop]``.
    """
    start = strict_int("start", start, 0)
    stop = strict_int("stop", stop, 0)
    if stop <= start:
        raise ValueError(f"stop: must be > start ({start}), got {stop}")
    prep = prepare_spec(spec, observables)
    _check_memory(prep, stop - start, name="block_size")
    return draw(prep, start, stop - start)


def weight_averaged_overlaps(
    prior: Prior,
    X_draws,
    width: int,
    realizations: int,
    seed: int = 0,
    method: str = "auto",
    observable: str = "caux",
    n_in: int | None = None,
    input_seed: int = 0,
) -> dict:
    """Weight-averaged equal-layer overlaps per input draw (Fig. 3c,d study).

    For each input ``x_d`` (a single pattern given at a = 0) the mean over
    ``realizations`` weight realizations of ``Caux^(a,a)`` (or ``Chat^(a,a)``)
    for a = 0..A+1 is computed, with its standard error.  The spread of these
    means across draws is what Eq. 42 (``prod_k F_k dC^(0,0)``) predicts.

    Parameters
    ----------
    prior : theory.Prior
    X_draws : int or array_like, shape (D, n_in)
        Either the number D of inputs to draw as ``x ~ N(0, 1)`` in
        ``R^{n_in}`` (then ``n_in`` is required; drawn with
        ``numpy.random.default_rng(input_seed)``), or the D inputs.
    width, realizations, seed, method
        As in :func:`sample` (draw d uses ``point_key`` derived from its input,
        so draws have independent weight streams).
    observable : {"caux", "chat"}
    n_in : int, optional
    input_seed : int, optional

    Returns
    -------
    dict
        ``"mean"`` (D, A+2), ``"sem"`` (D, A+2) (std over realizations with
        ddof=1 divided by sqrt(R)), ``"inputs"`` (D, n_in), ``"overflow"`` (D,)
        number of overflowed realizations per draw (excluded from the mean).
    """
    if observable not in ("caux", "chat"):
        raise ValueError(f"observable: must be 'caux' or 'chat', got {observable!r}")
    if isinstance(X_draws, (int, np.integer)) and not isinstance(X_draws, bool):
        D = _int_param("X_draws", X_draws, 1)
        n_in = _int_param("n_in", n_in, 1)
        inputs = np.random.default_rng(_int_param("input_seed", input_seed, 0)).standard_normal((D, n_in))
    else:
        inputs = np.asarray(X_draws, dtype=float)
        if inputs.ndim != 2 or inputs.shape[0] < 1 or inputs.shape[1] < 1:
            raise ValueError(f"X_draws: must be an int or an array of shape (D, n_in), got shape {inputs.shape}")
    R = _int_param("realizations", realizations, 2)
    D = inputs.shape[0]
    A2 = prior.depth + 2
    mean = np.empty((D, A2))
    sem = np.empty((D, A2))
    nover = np.zeros(D, dtype=np.int64)
    name = observable + "_diag"
    for d in range(D):
        res = sample(prior, inputs[d : d + 1], width, R, seed=seed, method=method, observables=(name,))
        v = res[name][:, :, 0, 0][~res["overflow"]]
        nover[d] = int(res["overflow"].sum())
        if v.shape[0] >= 2:
            mean[d], sem[d] = weight_average(v)
        else:  # fewer than 2 realizations without overflow: no standard error
            mean[d] = v.mean(axis=0) if v.shape[0] else np.nan
            sem[d] = np.nan
    return {"mean": mean, "sem": sem, "inputs": inputs, "overflow": nover}
