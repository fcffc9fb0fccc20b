"""Numba kernels for the finite-width samplers (private).

All kernels are small free functions; callers preallocate every output.
Reductions (dot products, Gram matrices, matrix-vector products) are written
as explicit loops with a *fixed* summation order, so results never depend on
BLAS or on the number of threads.  No kernel uses ``np.dot`` / ``@``.

Layout conventions
------------------
Vectors of all patterns are stored *pattern-major*: an activation block of P
patterns and n units is an array of shape ``(P, n)`` (row ``alpha`` is the
contiguous n-vector of pattern ``alpha``).  Standard-normal draws are consumed
from a flat float64 array in the order documented per kernel.

Activation
----------
Every kernel takes an integer ``act`` (0 relu, 1 erf(sqrt(pi)/2 x), 2 linear,
3 tanh) and evaluates it through :func:`_act`.  For a user-supplied
numba-jittable activation, :func:`clone_kernels` recompiles the kernels with
``_act`` replaced by that function (not cached on disk).
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit

ACT_CODES = {"relu": 0, "erf": 1, "linear": 2, "tanh": 3}
_SQRT_PI_HALF = 0.5 * math.sqrt(math.pi)

# names of the kernels compiled from this module's source (order matters only for cloning)
_KERNEL_NAMES = []


def _kernel(fn):
    """Register ``fn`` for cloning and compile it with ``njit(cache=True, nogil=True)``.

    ``nogil`` lets the MPI dispatcher thread on rank 0 answer block requests
    while rank 0's main thread is inside a kernel.
    """
    _KERNEL_NAMES.append(fn.__name__)
    return njit(cache=True, nogil=True)(fn)


@_kernel
def _act(act, x):
    """Built-in activation ``act`` applied to a float64 scalar ``x``."""
    if act == 0:
        return x if x > 0.0 else 0.0
    elif act == 1:
        return math.erf(_SQRT_PI_HALF * x)
    elif act == 2:
        return x
    else:
        return math.tanh(x)


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
def apply_act(act, H, n, out):
    """``out[:, :n] = phi(H[:, :n])`` element-wise; shapes (P, >= n)."""
    for a in range(H.shape[0]):
        for i in range(n):
            out[a, i] = _act(act, H[a, i])


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
            for j in range(m):
                L[i, j] = math.nan
        return m
    if not (dmax > 0.0):
        return 0
    thresh = rtol * dmax
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
        piv = math.sqrt(work[p, p])
        # L[p, k] = work[p, p] / piv (not piv itself) so duplicated rows of C
        # give bitwise identical rows of L
        for i in range(m):
            L[i, k] = work[i, p] / piv
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
# DNN, projected (reduced) sampler
# ----------------------------------------------------------------------------
@_kernel
def dnn_projected_block(act, Z, widths, n_out, g2, K_in, static, sigma2_static,
                        rtol, keep_h, y, chat_d, caux_d, H):
    """Sample a block of DNN realizations without forming weight matrices.

    For each realization ``r`` (row of ``Z``) and layer ``a = 0..A`` the
    pre-activations of all P patterns are drawn jointly: rows of ``h^(a)``
    are i.i.d. ``N(0, C_a)`` with
    ``C_a = g_a^2/n_{a-1} Phi^T Phi + K_in[a]`` (``Phi = phi(h^(a-1))``,
    no Phi term at a = 0).  ``K_in[a]`` holds the input term and, for
    uncorrelated bias, ``sigma_a^2 11^T``.  For static bias one vector ``xi``
    (the first ``n_0`` normals) is added to every layer.

    Normal consumption per realization (flat row of ``Z``):
    ``[xi (n_0, static only)] [layer 0: P x n_0] ... [layer A: P x n_A]
    [readout: P x n_out]``, each layer pattern-block k = 0..P-1 of n_a values.

    Parameters
    ----------
    act : int
    Z : ndarray, float64, shape (R, N)
    widths : ndarray, int64, shape (A+1,)
    n_out : int
    g2 : ndarray, float64, shape (A+2,)  (g2_layers)
    K_in : ndarray, float64, shape (A+2, P, P)  (entry A+1: sigma_out^2 11^T)
    static : bool
    sigma2_static : float  (added to caux diagonal blocks for static bias)
    rtol : float  (pivoted Cholesky tolerance)
    keep_h : bool  (store all h^(a) into H for full Chat)
    y : out, shape (R, P, n_out)
    chat_d, caux_d : out, shape (R, A+2, P, P)
    H : out, shape (R, A+1, P, n_max) if keep_h else any (unused)
    """
    R = Z.shape[0]
    A1 = widths.shape[0]
    P = K_in.shape[1]
    nmax = 0
    for a in range(A1):
        if widths[a] > nmax:
            nmax = widths[a]
    if n_out > nmax:
        nmax = n_out
    h = np.empty((P, nmax))
    phi = np.empty((P, nmax))
    C = np.empty((P, P))
    L = np.empty((P, P))
    work = np.empty((P, P))
    G = np.empty((P, P))
    yo = np.empty((P, nmax))
    sxi = math.sqrt(sigma2_static)
    for r in range(R):
        z = Z[r]
        off = 0
        if static:
            off = widths[0]
        for a in range(A1):
            na = widths[a]
            for i in range(P):
                for j in range(P):
                    C[i, j] = K_in[a, i, j]
            if a > 0:
                gram(phi, widths[a - 1], g2[a] / widths[a - 1], G)
                for i in range(P):
                    for j in range(P):
                        C[i, j] += G[i, j]
            rank = pivoted_cholesky(C, rtol, L, work)
            correlate_rows(z, off, na, L, rank, h)
            off += P * na
            if static:
                for i in range(P):
                    for k in range(na):
                        h[i, k] += sxi * z[k]
            for i in range(P):
                for j in range(P):
                    caux_d[r, a, i, j] = C[i, j] + sigma2_static
            gram(h, na, 1.0 / na, G)
            for i in range(P):
                for j in range(P):
                    chat_d[r, a, i, j] = G[i, j]
            if keep_h:
                for i in range(P):
                    for k in range(na):
                        H[r, a, i, k] = h[i, k]
            apply_act(act, h, na, phi)
        # readout
        nA = widths[A1 - 1]
        gram(phi, nA, g2[A1] / nA, G)
        for i in range(P):
            for j in range(P):
                C[i, j] = K_in[A1, i, j] + G[i, j]
                caux_d[r, A1, i, j] = C[i, j]
        sample_readout(C, rtol, z, off, n_out, L, work, yo, G, y[r], chat_d[r, A1])


# ----------------------------------------------------------------------------
# RNN, projected (conditional) sampler
# ----------------------------------------------------------------------------
@_kernel
def rnn_projected_block(act, Z, n, n_out, g2, g2_out, sigma2_out, L_in, rank_in, rtol,
                        keep_h, keep_phi, y, chat_d, caux_d, H, PHI, ranks):
    """Sample a block of weight-shared RNN realizations by conditioning on W.

    The input and bias contributions ``U[a, alpha] = W_in x_alpha^(a) + xi^(a)``
    of all steps are drawn jointly: ``U = L_in Z_in`` with the fixed factor
    ``L_in`` of their ((A+1)P)^2 covariance.  The recurrent weight W is never
    formed: an orthonormal basis ``Q`` (k x n, rows) of all vectors W has been
    applied to is kept together with ``WQ``; for a new block ``Phi`` the
    component outside span(Q) (classical Gram-Schmidt applied twice) is
    factored by a pivoted modified Gram-Schmidt ``R = Q' S`` that drops
    directions with norm ``<= rtol * |Phi_alpha|``, and ``W Q'`` is drawn
    fresh as ``sqrt(g^2/n) Z'``.  Then ``W Phi = (WQ) c + (WQ') S``.

    Normal consumption per realization (flat row of ``Z``):
    ``[Z_in: rank_in x n] [step 1: P x n] ... [step A: P x n] [readout: P x n_out]``;
    step a uses the first (number of new directions) n-blocks of its P.

    Parameters
    ----------
    act : int
    Z : ndarray, float64, shape (R, N)
    n, n_out : int
    g2 : float  (shared recurrent g^2)
    L_in : ndarray, float64, shape (A+1, P, rank_in)  (factor rows per (a, alpha))
    rank_in : int
    g2_out, sigma2_out : float  (readout weight and bias variances)
    rtol : float
    keep_h, keep_phi : bool  (store h^(a) into H, phi(h^(a)) into PHI)
    y : out, shape (R, P, n_out)
    chat_d, caux_d : out, shape (R, A+2, P, P); caux_d[:, 0] and the readout
        entries a = 0..A must be pre-filled by the caller with the deterministic
        parts (bias + input terms); this kernel adds ``g^2/n Phi^T Phi`` for
        a >= 1 and overwrites the readout entry
    H, PHI : out, shape (R, A+1, P, n) when keep_h / keep_phi
    ranks : out, int64, shape (R,)  (final dimension k of span(Q))
    """
    R = Z.shape[0]
    A1 = L_in.shape[0]
    P = L_in.shape[1]
    kmax = (A1 - 1) * P
    if kmax > n:
        kmax = n
    if kmax < 1:
        kmax = 1
    Q = np.empty((kmax, n))
    WQ = np.empty((kmax, n))
    h = np.empty((P, n))
    phi = np.empty((P, n))
    res = np.empty((P, n))
    coef = np.empty((kmax, P))
    cn = np.empty((kmax, P))
    nrm0 = np.empty(P)
    rn = np.empty(P)
    done = np.zeros(P, dtype=np.bool_)
    G = np.empty((P, P))
    C = np.empty((P, P))
    L = np.empty((P, P))
    work = np.empty((P, P))
    yo = np.empty((P, max(n_out, 1)))
    sw = math.sqrt(g2 / n)
    for r in range(R):
        z = Z[r]
        k = 0
        # step 0: h^(0) = U[0]
        correlate_rows(z, 0, n, L_in[0], rank_in, h)
        off = rank_in * n
        for a in range(A1):
            if a > 0:
                # W phi(h^(a-1)) by conditioning on the revealed W Q
                # block classical Gram-Schmidt, applied twice (CGS2); loops run
                # over the basis vector t outside and the pattern inside so each
                # Q[t] is streamed once per pass for all P patterns
                for al in range(P):
                    nrm0[al] = math.sqrt(_dot(phi[al], phi[al], n))
                    for j in range(n):
                        res[al, j] = phi[al, j]
                    for t in range(k):
                        coef[t, al] = 0.0
                for rep in range(2):
                    for t in range(k):
                        for al in range(P):
                            cn[t, al] = _dot(Q[t], res[al], n)
                    for t in range(k):
                        for al in range(P):
                            ct = cn[t, al]
                            coef[t, al] += ct
                            for j in range(n):
                                res[al, j] -= ct * Q[t, j]
                # pivoted MGS on the residual block
                k0 = k
                for al in range(P):
                    rn[al] = math.sqrt(_dot(res[al], res[al], n))
                    # already (numerically) inside span(Q): its residual is dropped
                    done[al] = not (rn[al] > rtol * nrm0[al])
                newdir = 0
                for it in range(P):
                    p = -1
                    best = 0.0
                    for al in range(P):
                        if not done[al] and rn[al] > best:
                            best = rn[al]
                            p = al
                    if p < 0 or k >= kmax:
                        break
                    done[p] = True
                    nv = rn[p]
                    for j in range(n):
                        Q[k, j] = res[p, j] / nv
                    # re-orthogonalise against earlier new directions of this step
                    for t in range(k0, k):
                        ct = _dot(Q[t], Q[k], n)
                        for j in range(n):
                            Q[k, j] -= ct * Q[t, j]
                    qn = math.sqrt(_dot(Q[k], Q[k], n))
                    for j in range(n):
                        Q[k, j] /= qn
                    base = off + newdir * n
                    for j in range(n):
                        WQ[k, j] = sw * z[base + j]
                    for al in range(P):
                        coef[k, al] = 0.0
                    coef[k, p] = _dot(Q[k], res[p], n)
                    for al in range(P):
                        if not done[al]:
                            ct = _dot(Q[k], res[al], n)
                            coef[k, al] = ct
                            for j in range(n):
                                res[al, j] -= ct * Q[k, j]
                            rn[al] = math.sqrt(_dot(res[al], res[al], n))
                            if not (rn[al] > rtol * nrm0[al]):
                                # numerically inside the span: drop the rest exactly
                                done[al] = True
                    k += 1
                    newdir += 1
                off += P * n
                # h^(a) = U[a] + WQ coef
                correlate_rows(z, 0, n, L_in[a], rank_in, h)
                for t in range(k):
                    for al in range(P):
                        ct = coef[t, al]
                        if ct != 0.0:
                            for j in range(n):
                                h[al, j] += ct * WQ[t, j]
                gram(phi, n, g2 / n, G)
                for i in range(P):
                    for j in range(P):
                        caux_d[r, a, i, j] += G[i, j]
            gram(h, n, 1.0 / n, G)
            for i in range(P):
                for j in range(P):
                    chat_d[r, a, i, j] = G[i, j]
            if keep_h:
                for i in range(P):
                    for j in range(n):
                        H[r, a, i, j] = h[i, j]
            apply_act(act, h, n, phi)
            if keep_phi:
                for i in range(P):
                    for j in range(n):
                        PHI[r, a, i, j] = phi[i, j]
        ranks[r] = k
        # readout: independent W_out, rows of y ~ N(0, g2_out/n Phi^T Phi + sigma_out^2 11^T)
        gram(phi, n, g2_out / n, G)
        for i in range(P):
            for j in range(P):
                C[i, j] = G[i, j] + sigma2_out
                caux_d[r, A1, i, j] = C[i, j]
        sample_readout(C, rtol, z, off, n_out, L, work, yo, G, y[r], chat_d[r, A1])


# ----------------------------------------------------------------------------
# Direct (materialised) sampler helpers and pairwise Grams
# ----------------------------------------------------------------------------
@_kernel
def matvec_acc(WT, V, scale, out, tmp):
    """``out[p, i] += scale * sum_j WT[j, i] * V[p, j]`` (i.e. ``out += scale * V @ WT``).

    ``WT`` is a materialised weight matrix stored transposed (fan-in rows), so
    the inner loop runs over contiguous output units; the sum over ``j`` is
    accumulated in fixed order ``j = 0, 1, ...`` for every output unit.

    Parameters
    ----------
    WT : ndarray, float64, shape (m, n)
    V : ndarray, float64, shape (P, >= m)
    scale : float
    out : ndarray, float64, shape (P, >= n), updated in place on [:, :n]
    tmp : ndarray, float64, shape (>= n,), scratch
    """
    m = WT.shape[0]
    n = WT.shape[1]
    for p in range(V.shape[0]):
        for i in range(n):
            tmp[i] = 0.0
        for j in range(m):
            v = V[p, j]
            if v != 0.0:
                for i in range(n):
                    tmp[i] += WT[j, i] * v
        for i in range(n):
            out[p, i] += scale * tmp[i]


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


def clone_kernels(phi_scalar):
    """Compile a private copy of all kernels with a custom activation.

    Parameters
    ----------
    phi_scalar : numba CPUDispatcher
        Jitted ``float64 -> float64`` activation.

    Returns
    -------
    types.SimpleNamespace
        Attributes named like the module's kernels (``dnn_projected_block``,
        ``rnn_projected_block``, ``gram``, ``apply_act``, ...); the ``act``
        argument is ignored by the clones.  Not cached on disk.
    """
    g = dict(globals())

    def _act_custom(act, x):
        return phi_scalar(x)

    g["_act"] = njit(nogil=True)(_act_custom)
    ns = types.SimpleNamespace()
    for name in _KERNEL_NAMES:
        if name == "_act":
            continue
        py = globals()[name].py_func
        fn = types.FunctionType(py.__code__, g, name, py.__defaults__, py.__closure__)
        g[name] = njit(nogil=True)(fn)
        setattr(ns, name, g[name])
    ns._act = g["_act"]
    return ns


BUILTIN_KERNELS = types.SimpleNamespace(**{name: globals()[name] for name in _KERNEL_NAMES})
