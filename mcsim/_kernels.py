"""Numba kernels for the finite-width samplers that do not depend on the activation (private).

All kernels are small free functions; callers preallocate every output.
Small reductions (P x P factorisations, the readout) are explicit loops with a
*fixed* summation order.  The large products (Gram-Schmidt of the RNN
projection against the revealed basis, its update ``h += coef^T WQ``, the
pattern Grams :func:`gemm_gram` and the DNN's ``h = L Z``) are BLAS-3 GEMMs
(``np.dot`` on contiguous 2-D float64 arrays, which Numba sends to SciPy's
BLAS); their results are reproducible as long as BLAS runs on one thread,
which :mod:`mcsim.sampler` enforces around every sampling call.

Layout conventions
------------------
Vectors of all patterns are stored *pattern-major*: an activation block of P
patterns and n units is an array of shape ``(P, n)`` (row ``alpha`` is the
contiguous n-vector of pattern ``alpha``).  Standard-normal draws are consumed
from a flat float64 array in the order documented per kernel.

Activation
----------
Nothing here evaluates an activation.  The kernels that do (``apply_act``,
``dnn_projected_block``, ``rnn_projected_block``) are in
:mod:`mcsim._kernels_act`, which :mod:`mcsim._kernelsets` compiles once per
activation, as a module of its own named after ``Activation.identity``; they
call the kernels below.  These kernels are compiled once, with
``njit(cache=True, nogil=True)``, and never recompiled under the same name with
other code, so every copy of one of their symbols (mangled from module,
qualname, Numba's per-process function counter and argument types), whether
compiled in this process or loaded from the disk cache, holds the same code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def _kernel(fn):
    """Compile ``fn`` with ``njit(cache=True, nogil=True)``.

    ``nogil`` lets the MPI dispatcher thread on rank 0 answer block requests
    while rank 0's main thread is inside a kernel.
    """
    return njit(cache=True, nogil=True)(fn)


@_kernel
def _dot(a, b, n):
    """Dot product of the first ``n`` entries of two 1-D float64 arrays.

    Fixed summation order (four interleaved partial sums, combined as
    ``(s0 + s1) + (s2 + s3)``, tail added to ``s0``).
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - (n % 4)
    for i in range(0, m, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(m, n):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)


@_kernel
def gram(V, n, scale, out):
    """``out[a, b] = scale * V[a, :n] . V[b, :n]`` (symmetric).

    Parameters
    ----------
    V : ndarray, float64, shape (P, >= n)
    n : int
    scale : float
    out : ndarray, float64, shape (P, P), overwritten
    """
    P = V.shape[0]
    for a in range(P):
        for b in range(a + 1):
            s = scale * _dot(V[a], V[b], n)
            out[a, b] = s
            out[b, a] = s


@_kernel
def gemm_gram(V, out):
    """``out = V V^T`` as one BLAS GEMM, made exactly symmetric (lower triangle mirrored).

    Parameters
    ----------
    V : ndarray, float64, shape (P, n), C-contiguous
    out : ndarray, float64, shape (P, P), overwritten
    """
    np.dot(V, V.T, out)
    P = V.shape[0]
    for a in range(P):
        for b in range(a):
            out[b, a] = out[a, b]


@_kernel
def cross_gram(U, V, n, scale, out):
    """``out[a, b] = scale * U[a, :n] . V[b, :n]``.

    Parameters
    ----------
    U, V : ndarray, float64, shapes (P, >= n), (P', >= n)
    out : ndarray, float64, shape (P, P'), overwritten
    """
    for a in range(U.shape[0]):
        for b in range(V.shape[0]):
            out[a, b] = scale * _dot(U[a], V[b], n)


@_kernel
def pivoted_cholesky(C, rtol, L, work):
    """Rank-revealing (diagonally pivoted) Cholesky factor of a PSD matrix.

    Computes ``L`` with ``L @ L.T == C`` up to rounding, exact for singular
    ``C`` (e.g. repeated patterns): elimination stops when the largest
    remaining diagonal is ``<= rtol * max(diag(C))``; remaining columns of
    ``L`` are zero.  Entries outside the blocks of a block-diagonal ``C`` stay
    exactly zero.  NaN/inf input stops the elimination (the caller flags it).

    Parameters
    ----------
    C : ndarray, float64, shape (m, m), symmetric positive semi-definite
    rtol : float
    L : ndarray, float64, shape (m, m), overwritten (column k = k-th factor column)
    work : ndarray, float64, shape (m, m), scratch (residual matrix)

    Returns
    -------
    int
        The numerical rank r (columns ``r..m-1`` of ``L`` are zero); ``m``
        with ``L`` all NaN if ``C`` has a non-finite diagonal.
    """
    m = C.shape[0]
    dmax = 0.0
    for i in range(m):
        if C[i, i] > dmax:
            dmax = C[i, i]
    piv = np.empty(m, dtype=np.int64)
    return pivoted_cholesky_abs(C, rtol * dmax, L, work, piv)


@_kernel
def pivoted_cholesky_abs(C, thresh, L, work, piv):
    """Diagonally pivoted Cholesky with an absolute stopping threshold.

    As :func:`pivoted_cholesky`, but the elimination stops when the largest
    remaining diagonal is ``<= thresh`` (``thresh >= 0``; nothing is factored
    if every diagonal is ``<= thresh`` or the largest is not positive), and
    the pivot order is returned.

    Parameters
    ----------
    C : ndarray, float64, shape (m, m), symmetric positive semi-definite
    thresh : float
    L : ndarray, float64, shape (m, m), overwritten (column k = k-th factor column)
    work : ndarray, float64, shape (m, m), scratch (residual matrix)
    piv : ndarray, int64, shape (m,), overwritten: ``piv[k]`` = row of the k-th pivot (k < rank)

    Returns
    -------
    int
        The numerical rank r; ``m`` with ``L`` all NaN (and ``piv = 0..m-1``)
        if ``C`` has a non-finite diagonal.
    """
    m = C.shape[0]
    dmax = 0.0
    bad = False
    for i in range(m):
        for j in range(m):
            work[i, j] = C[i, j]
            L[i, j] = 0.0
        if C[i, i] > dmax:
            dmax = C[i, i]
        if not math.isfinite(C[i, i]):
            bad = True
    if bad:
        # overflow upstream: propagate NaN (the caller flags the realization)
        for i in range(m):
            piv[i] = i
            for j in range(m):
                L[i, j] = math.nan
        return m
    if not (dmax > 0.0):
        return 0
    used = np.zeros(m, dtype=np.bool_)
    rank = 0
    for k in range(m):
        p = -1
        best = thresh
        for i in range(m):
            if not used[i] and work[i, i] > best:
                best = work[i, i]
                p = i
        if p < 0:
            break
        piv[k] = p
        pv = math.sqrt(work[p, p])
        # L[p, k] = work[p, p] / pv (not pv itself) so duplicated rows of C
        # give bitwise identical rows of L
        for i in range(m):
            L[i, k] = work[i, p] / pv
        for i in range(m):
            li = L[i, k]
            if li != 0.0:
                for j in range(m):
                    work[i, j] -= li * L[j, k]
        # the pivot row/column is now eliminated up to rounding; it is not
        # zeroed explicitly so that duplicated rows stay bitwise identical
        used[p] = True
        rank += 1
    return rank


@_kernel
def cholesky_lower(G, L):
    """Cholesky factor ``G = L L^T`` of a small SPD matrix (no pivoting).

    Parameters
    ----------
    G : ndarray, float64, shape (r, r), symmetric positive definite
    L : ndarray, float64, shape (r, r), overwritten (lower triangular, zeros above)

    Returns
    -------
    bool
        False (``L`` all NaN) if a pivot is not positive and finite.
    """
    r = G.shape[0]
    for i in range(r):
        for j in range(r):
            L[i, j] = 0.0
    for j in range(r):
        s = G[j, j]
        for t in range(j):
            s -= L[j, t] * L[j, t]
        if not (s > 0.0 and math.isfinite(s)):
            for i in range(r):
                for c in range(r):
                    L[i, c] = math.nan
            return False
        d = math.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, r):
            s = G[i, j]
            for t in range(j):
                s -= L[i, t] * L[j, t]
            L[i, j] = s / d
    return True


@_kernel
def lower_inverse(L, T):
    """Inverse ``T = L^{-1}`` of a small lower-triangular matrix (forward substitution).

    Parameters
    ----------
    L : ndarray, float64, shape (r, r), lower triangular (entries above the diagonal ignored)
    T : ndarray, float64, shape (r, r), overwritten (lower triangular, zeros above)
    """
    r = L.shape[0]
    for j in range(r):
        for i in range(r):
            T[i, j] = 0.0
        for i in range(j, r):
            s = 1.0 if i == j else 0.0
            for t in range(j, i):
                s -= L[i, t] * T[t, j]
            T[i, j] = s / L[i, i]


@_kernel
def correlate_rows(Z, off, n, L, rank, out):
    """``out[a, i] = sum_k L[a, k] * Z[off + k*n + i]`` for k < rank.

    Turns ``rank`` standard-normal n-vectors (consecutive in the flat array
    ``Z`` from ``off``) into P correlated n-vectors with covariance
    ``L L^T`` per unit.  Zero entries of ``L`` are skipped (exactly).

    Parameters
    ----------
    Z : ndarray, float64, shape (N,)
    off, n, rank : int
    L : ndarray, float64, shape (P, >= rank)
    out : ndarray, float64, shape (P, >= n), overwritten on [:, :n]
    """
    P = L.shape[0]
    for a in range(P):
        for i in range(n):
            out[a, i] = 0.0
        for k in range(rank):
            lk = L[a, k]
            if lk != 0.0:
                base = off + k * n
                for i in range(n):
                    out[a, i] += lk * Z[base + i]


@_kernel
def sample_readout(C, rtol, Z, off, n_out, L, work, yo, G, y_out, chat_out):
    """Sample the readout of one realization given its covariance (projected samplers).

    The ``n_out`` output units are independent with covariance ``C`` over the
    patterns: ``yo = L z`` with the pivoted Cholesky factor ``L`` of ``C`` and
    the standard normals ``Z[off:]`` (see :func:`correlate_rows`).

    Parameters
    ----------
    C : ndarray, float64, shape (P, P)
        Readout covariance ``Caux^(A+1,A+1)``.
    rtol : float
        Rank tolerance of :func:`pivoted_cholesky`.
    Z : ndarray, float64, shape (N,)
        Standard normals of the realization; ``Z[off : off + rank * n_out]`` are used.
    off, n_out : int
    L, work : ndarray, float64, shape (P, P), scratch
    yo : ndarray, float64, shape (P, >= n_out), scratch
    G : ndarray, float64, shape (P, P), scratch
    y_out : ndarray, float64, shape (P, n_out), overwritten with the outputs
    chat_out : ndarray, float64, shape (P, P), overwritten with ``Chat^(A+1,A+1) = yo yo^T / n_out``
    """
    P = C.shape[0]
    rank = pivoted_cholesky(C, rtol, L, work)
    correlate_rows(Z, off, n_out, L, rank, yo)
    for i in range(P):
        for k in range(n_out):
            y_out[i, k] = yo[i, k]
    gram(yo, n_out, 1.0 / n_out, G)
    for i in range(P):
        for j in range(P):
            chat_out[i, j] = G[i, j]


# ----------------------------------------------------------------------------
# Direct (materialised) sampler helper and pairwise Grams
# ----------------------------------------------------------------------------
@_kernel
def add_scaled_vector(out, z, n, scale):
    """``out[p, :n] += scale * z[:n]`` for every row ``p`` of ``out``."""
    for p in range(out.shape[0]):
        for i in range(n):
            out[p, i] += scale * z[i]


@_kernel
def pair_grams(V, n, scale, out):
    """All pairwise Gram blocks of a stack of pattern blocks.

    ``out[r, a, b, p, q] = scale * V[r, a, p, :n] . V[r, b, q, :n]``.

    Parameters
    ----------
    V : ndarray, float64, shape (R, M, P, >= n)
    n : int
    scale : float
    out : ndarray, float64, shape (R, >= M, >= M, P, P); entries [:, :M, :M] overwritten
    """
    R = V.shape[0]
    M = V.shape[1]
    P = V.shape[2]
    for r in range(R):
        for a in range(M):
            for b in range(a + 1):
                for p in range(P):
                    for q in range(P):
                        s = scale * _dot(V[r, a, p], V[r, b, q], n)
                        out[r, a, b, p, q] = s
                        out[r, b, a, q, p] = s
