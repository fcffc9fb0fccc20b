"""Activation-dependent Numba kernels: the source of one kernel set (private).

Do not import this module by its own name.  :func:`mcsim._kernelsets.kernel_set`
compiles this source once per activation, as a module of its own whose name
carries a hash of ``Activation.identity`` and of the kernel sources, so that
the compiled functions of two activations never share a module name, a
mangled symbol, a dispatcher or a disk-cache entry.  Before the source runs,
the factory binds

``phi``
    the activation: a Numba-compiled ``float64 -> float64`` function
    (``Activation.scalar``, compiled with ``njit(nogil=True)`` unless it is
    already a Numba dispatcher or ufunc);
``_kernel``
    the decorator of the kernels below: ``njit(nogil=True, cache=True)`` for
    the built-in activations (disk-cached, one cache index per set because each
    set is a file of its own), ``njit(nogil=True)`` for custom ones.

``nogil`` lets the MPI dispatcher thread on rank 0 answer block requests while
rank 0's main thread is inside a kernel.  The conventions (pattern-major
blocks, fixed summation order of the loops, BLAS GEMMs via ``np.dot`` that are
reproducible because :mod:`mcsim.sampler` pins BLAS to one thread,
caller-preallocated outputs) are those of :mod:`mcsim._kernels`, whose kernels
these call.
"""

from __future__ import annotations

import math

import numpy as np

from mcsim._kernels import (cholesky_lower, correlate_rows, gemm_gram, lower_inverse, pivoted_cholesky,
                            pivoted_cholesky_abs, sample_readout)
from mcsim._kernelsets import _bound_names

phi, _kernel = _bound_names(__name__)


@_kernel
def apply_act(H, n, out):
    """``out[:, :n] = phi(H[:, :n])`` element-wise with this set's activation ``phi``.

    Parameters
    ----------
    H : ndarray, float64, shape (P, >= n)
    n : int
    out : ndarray, float64, shape (P, >= n), overwritten on [:, :n]
    """
    for a in range(H.shape[0]):
        for i in range(n):
            out[a, i] = phi(H[a, i])


# ----------------------------------------------------------------------------
# DNN, projected (reduced) sampler
# ----------------------------------------------------------------------------
@_kernel
def dnn_projected_block(Z, widths, n_out, g2, K_in, static, sigma2_static,
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

    Per layer the pattern Grams of ``phi`` and ``h`` (:func:`gemm_gram`) and
    ``h = L[:, :rank] Z_a`` (``Z_a`` the layer's first ``rank`` n_a-blocks, as
    a ``(rank, n_a)`` matrix) are BLAS GEMMs on C-contiguous ``(P, n_a)`` views
    of flat buffers.

    Parameters
    ----------
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
    # flat buffers: the (P, n_a) views of every layer are C-contiguous (BLAS operands)
    hbuf = np.empty(P * nmax)
    phibuf = np.empty(P * nmax)
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
        nprev = 0
        for a in range(A1):
            na = widths[a]
            h = hbuf[:P * na].reshape((P, na))
            for i in range(P):
                for j in range(P):
                    C[i, j] = K_in[a, i, j]
            if a > 0:
                phi = phibuf[:P * nprev].reshape((P, nprev))
                gemm_gram(phi, G)
                sc = g2[a] / nprev
                for i in range(P):
                    for j in range(P):
                        C[i, j] += sc * G[i, j]
            rank = pivoted_cholesky(C, rtol, L, work)
            # h = L[:, :rank] Z_a (one GEMM; Z_a = the layer's rank x n_a normals)
            if rank > 0:
                Lr = np.empty((P, rank))
                for i in range(P):
                    for k in range(rank):
                        Lr[i, k] = L[i, k]
                np.dot(Lr, z[off:off + rank * na].reshape((rank, na)), h)
            else:
                h[:, :] = 0.0
            off += P * na
            if static:
                for i in range(P):
                    for k in range(na):
                        h[i, k] += sxi * z[k]
            for i in range(P):
                for j in range(P):
                    caux_d[r, a, i, j] = C[i, j] + sigma2_static
            gemm_gram(h, G)
            for i in range(P):
                for j in range(P):
                    chat_d[r, a, i, j] = G[i, j] / na
            if keep_h:
                for i in range(P):
                    for k in range(na):
                        H[r, a, i, k] = h[i, k]
            apply_act(h, na, phibuf[:P * na].reshape((P, na)))
            nprev = na
        # readout
        phi = phibuf[:P * nprev].reshape((P, nprev))
        gemm_gram(phi, G)
        sc = g2[A1] / nprev
        for i in range(P):
            for j in range(P):
                C[i, j] = K_in[A1, i, j] + sc * G[i, j]
                caux_d[r, A1, i, j] = C[i, j]
        sample_readout(C, rtol, z, off, n_out, L, work, yo, G, y[r], chat_d[r, A1])


# ----------------------------------------------------------------------------
# RNN, projected (conditional) sampler
# ----------------------------------------------------------------------------
#: reference algorithm (``cgs2=True`` of :func:`rnn_projected_block_checked`): a new
#: direction whose scaled Cholesky pivot is below this gets a third projection
#: against the basis (its normalisation amplifies rounding errors)
_REPROJECT_BELOW = 1e-2
#: selective reorthogonalisation: after one classical Gram-Schmidt pass and the
#: Cholesky-QR, the new directions ``V`` are projected against the basis again when
#: some ``|Q_t . V_j| > _REORTH_TOL |V_j|`` (measured with one ``k x r`` GEMM).  One
#: pass leaves components of order eps |Phi_alpha| / (pivot) plus the basis's own
#: loss of orthogonality, which a pivot-based (Kahan-Parlett) rule cannot bound when
#: consecutive states are nearly dependent (it compounds over steps); measuring
#: bounds every accepted block directly.  Reference CGS2 reaches ~1e-15.
_REORTH_TOL = 1e-13


@_kernel
def rnn_projected_block(Z, n, n_out, g2, g2_out, sigma2_out, L_in, rank_in, rtol, chol_rtol,
                        keep_h, keep_phi, y, chat_d, caux_d, H, PHI, ranks):
    """Sample a block of weight-shared RNN realizations by conditioning on W.

    The production entry point: :func:`rnn_projected_block_checked` with the
    selective reorthogonalisation tolerance ``_REORTH_TOL`` and no
    diagnostics (see there for the algorithm, the normal consumption and
    the parameters).
    """
    stats = np.empty((1, 2))
    rnn_projected_block_checked(Z, n, n_out, g2, g2_out, sigma2_out, L_in, rank_in, rtol, chol_rtol,
                                keep_h, keep_phi, y, chat_d, caux_d, H, PHI, ranks,
                                _REORTH_TOL, False, False, stats)


@_kernel
def rnn_projected_block_checked(Z, n, n_out, g2, g2_out, sigma2_out, L_in, rank_in, rtol, chol_rtol,
                                keep_h, keep_phi, y, chat_d, caux_d, H, PHI, ranks,
                                reorth_tol, cgs2, diagnose, stats):
    """Sample a block of weight-shared RNN realizations by conditioning on W.

    The input and bias contributions ``U[a, alpha] = W_in x_alpha^(a) + xi^(a)``
    of all steps are drawn jointly: ``U = L_in Z_in`` with the fixed factor
    ``L_in`` of their ((A+1)P)^2 covariance.  The recurrent weight W is never
    formed: an orthonormal basis ``Q`` (k x n, rows) of all vectors W has been
    applied to is kept together with ``WQ``.  For the block ``Phi`` (P x n) of
    step a (all GEMMs, BLAS-3):

    1. block classical Gram-Schmidt against ``Q``:
       ``coef = Q Phi^T``, ``Y = Phi - coef^T Q`` (with ``cgs2``: a second,
       unconditional pass ``C2 = Q Y^T``, ``Y -= C2^T Q``, ``coef += C2``);
    2. the residual block ``Y`` is factored ``Y = Lu V`` by a pivoted Cholesky
       of its Gram with rows scaled by ``1/|Phi_alpha|``; a residual
       ``<= rtol |Phi_alpha|`` (numerically inside the span) is dropped;
       ``V = Lu_piv^{-1} Y_piv`` (Cholesky-QR);
    3. selective reorthogonalisation: ``D = Q V^T`` (one GEMM) measures the
       new directions' components along the basis; if some
       ``|D_tj| > reorth_tol |V_j|``, ``V`` is projected against ``Q`` once
       more (``V -= D^T Q``).  With ``cgs2`` (reference): reprojected instead
       when a pivot is below ``_REPROJECT_BELOW``.  A second Cholesky-QR
       ``V = L2 Q'`` makes the new directions orthonormal to working precision;
    4. ``W Q' = sqrt(g^2/n) Z'`` is drawn fresh (W restricted to orthonormal
       directions outside span(Q) is independent of ``W Q``), and
       ``h^(a) = U[a] + coef^T WQ`` (one GEMM over the k + r directions).

    Normal consumption per realization (flat row of ``Z``):
    ``[Z_in: rank_in x n] [step 1: P x n] ... [step A: P x n] [readout: P x n_out]``;
    step a uses the first r (number of new directions) n-blocks of its P.

    Parameters
    ----------
    Z : ndarray, float64, shape (R, N)
    n, n_out : int
    g2 : float  (shared recurrent g^2)
    L_in : ndarray, float64, shape (A+1, P, rank_in)  (factor rows per (a, alpha))
    rank_in : int
    g2_out, sigma2_out : float  (readout weight and bias variances)
    rtol : float  (relative residual ``|Y_alpha| / |Phi_alpha|`` below which a
        direction is dropped; >= 1e-7, the resolution of the Gram-based rank decision)
    chol_rtol : float  (pivoted Cholesky tolerance of the readout, :func:`sample_readout`)
    keep_h, keep_phi : bool  (store h^(a) into H, phi(h^(a)) into PHI)
    y : out, shape (R, P, n_out)
    chat_d, caux_d : out, shape (R, A+2, P, P); caux_d[:, 0] and the readout
        entries a = 0..A must be pre-filled by the caller with the deterministic
        parts (bias + input terms); this kernel adds ``g^2/n Phi^T Phi`` for
        a >= 1 and overwrites the readout entry
    H, PHI : out, shape (R, A+1, P, n) when keep_h / keep_phi
    ranks : out, int64, shape (R,)  (final dimension k of span(Q); -1 when a guard tripped: more new
        directions than dimensions left, or new directions whose Gram is not positive definite.  Neither
        happens in exact arithmetic with finite states; both happen once a state overflows.  The caller
        raises for a flagged realization that did not overflow, rather than use it)
    reorth_tol : float  (tolerance of step 3; production: ``_REORTH_TOL``;
        0 always reprojects, inf never)
    cgs2 : bool  (the reference algorithm: an unconditional second Gram-Schmidt pass in
        step 1 and the pivot rule of step 3; ``reorth_tol`` is then unused)
    diagnose : bool  (fill ``stats``; costs an extra ``2 k^2 n`` flops per realization)
    stats : out, float64, shape (R, 2) when ``diagnose``: number of steps with a
        step-3 reprojection, and the final loss of orthogonality ``max |Q Q^T - I|``
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
    tmp = np.empty((P, n))
    V = np.empty((P, n))
    coef = np.empty((kmax, P))
    cn = np.empty((kmax, P))
    nrm0 = np.empty(P)
    sc = np.empty(P)
    piv = np.empty(P, dtype=np.int64)
    M = np.empty((P, P))
    Lm = np.empty((P, P))
    Lu = np.empty((P, P))
    G = np.empty((P, P))
    Gphi = np.empty((P, P))
    C = np.empty((P, P))
    L = np.empty((P, P))
    work = np.empty((P, P))
    yo = np.empty((P, max(n_out, 1)))
    sw = math.sqrt(g2 / n)
    thresh = rtol * rtol
    for r in range(R):
        z = Z[r]
        k = 0
        lost = False  # a guard below tripped: the realization is not trusted (ranks[r] = -1)
        if diagnose:
            stats[r, 0] = 0.0
        # step 0: h^(0) = U[0]
        correlate_rows(z, 0, n, L_in[0], rank_in, h)
        off = rank_in * n
        for a in range(A1):
            if a > 0:
                # W phi(h^(a-1)) by conditioning on the revealed W Q
                # 1. one block classical Gram-Schmidt pass against the basis (GEMMs)
                gemm_gram(phi, Gphi)
                for al in range(P):
                    nrm0[al] = math.sqrt(Gphi[al, al])
                    sc[al] = 1.0 / nrm0[al] if nrm0[al] > 0.0 else 0.0
                    for j in range(n):
                        res[al, j] = phi[al, j]
                if k > 0:
                    Qk = Q[:k]
                    np.dot(Qk, res.T, coef[:k])
                    np.dot(coef[:k].T, Qk, tmp)
                    for al in range(P):
                        for j in range(n):
                            res[al, j] -= tmp[al, j]
                    if cgs2:
                        np.dot(Qk, res.T, cn[:k])
                        np.dot(cn[:k].T, Qk, tmp)
                        for al in range(P):
                            for j in range(n):
                                res[al, j] -= tmp[al, j]
                        for t in range(k):
                            for al in range(P):
                                coef[t, al] += cn[t, al]
                # 2. pivoted Cholesky of the scaled residual Gram: Y = Lu V
                np.dot(res, res.T, M)
                for i in range(P):
                    for j in range(P):
                        M[i, j] *= sc[i] * sc[j]
                rnk = pivoted_cholesky_abs(M, thresh, Lm, work, piv)
                if rnk > kmax - k:  # more new directions than dimensions left: cannot happen in exact
                    rnk = kmax - k  # arithmetic (the residual is ~eps |Phi|): flagged, never silent
                    lost = True
                # Lu[al, j] = |Phi_al| Lm[al, j], exactly lower triangular in pivot order
                small = False
                for al in range(P):
                    for j in range(P):
                        Lu[al, j] = nrm0[al] * Lm[al, j] if j < rnk else 0.0
                for j in range(rnk):
                    for i in range(j):
                        Lu[piv[i], j] = 0.0
                    if not (Lm[piv[j], j] >= _REPROJECT_BELOW):
                        small = True
                if rnk > 0:
                    # V = Lu_piv^{-1} Y_piv as one GEMM: Tf[j, piv[i]] = (Lu_piv^{-1})[j, i]
                    Lp = np.empty((rnk, rnk))
                    Tp = np.empty((rnk, rnk))
                    for j in range(rnk):
                        for i in range(rnk):
                            Lp[j, i] = Lu[piv[j], i]
                    lower_inverse(Lp, Tp)
                    Tf = np.zeros((rnk, P))
                    for j in range(rnk):
                        for i in range(j + 1):
                            Tf[j, piv[i]] = Tp[j, i]
                    Vr = V[:rnk]
                    np.dot(Tf, res, Vr)
                    # 3. selective reorthogonalisation: measure V's components along the basis
                    #    (reference CGS2 mode: reproject when a pivot is small, as before)
                    again = False
                    Dc = np.empty((k, rnk))
                    if k > 0 and cgs2:
                        again = small
                        if again:
                            np.dot(Q[:k], Vr.T, Dc)
                    elif k > 0:
                        np.dot(Q[:k], Vr.T, Dc)
                        for j in range(rnk):
                            vn = 0.0
                            for i in range(n):
                                vn += V[j, i] * V[j, i]
                            lim = reorth_tol * math.sqrt(vn)
                            for t in range(k):
                                if not (abs(Dc[t, j]) <= lim):
                                    again = True
                    if again:
                        if diagnose:
                            stats[r, 0] += 1.0
                        Dt = np.ascontiguousarray(Dc.T)
                        np.dot(Dt, Q[:k], tmp[:rnk])
                        for j in range(rnk):
                            for i in range(n):
                                V[j, i] -= tmp[j, i]
                        # coef[:k] += Dc Lu^T
                        for t in range(k):
                            for al in range(P):
                                s = 0.0
                                for j in range(rnk):
                                    s += Dc[t, j] * Lu[al, j]
                                coef[t, al] += s
                    # second Cholesky-QR: V = L2 Q'
                    G2 = np.dot(Vr, Vr.T)
                    L2 = np.empty((rnk, rnk))
                    T2 = np.empty((rnk, rnk))
                    if not cholesky_lower(G2, L2):  # the new directions' Gram is not positive definite
                        lost = True
                    lower_inverse(L2, T2)
                    np.dot(T2, Vr, Q[k:k + rnk])
                    # coef[k + i, al] = sum_j Lu[al, j] L2[j, i]
                    for i in range(rnk):
                        for al in range(P):
                            s = 0.0
                            for j in range(i, rnk):
                                s += Lu[al, j] * L2[j, i]
                            coef[k + i, al] = s
                    # 4. fresh W on the new directions
                    for i in range(rnk):
                        base = off + i * n
                        for j in range(n):
                            WQ[k + i, j] = sw * z[base + j]
                    k += rnk
                off += P * n
                # h^(a) = U[a] + coef^T WQ
                correlate_rows(z, 0, n, L_in[a], rank_in, h)
                if k > 0:
                    np.dot(coef[:k].T, WQ[:k], tmp)
                    for al in range(P):
                        for j in range(n):
                            h[al, j] += tmp[al, j]
                for i in range(P):
                    for j in range(P):
                        caux_d[r, a, i, j] += (g2 / n) * Gphi[i, j]
            gemm_gram(h, G)
            for i in range(P):
                for j in range(P):
                    chat_d[r, a, i, j] = (1.0 / n) * G[i, j]
            if keep_h:
                for i in range(P):
                    for j in range(n):
                        H[r, a, i, j] = h[i, j]
            apply_act(h, n, phi)
            if keep_phi:
                for i in range(P):
                    for j in range(n):
                        PHI[r, a, i, j] = phi[i, j]
        ranks[r] = -1 if lost else k
        if diagnose:
            Gq = np.dot(Q[:k], Q[:k].T)
            loss = 0.0
            for i in range(k):
                Gq[i, i] -= 1.0
                for j in range(k):
                    if abs(Gq[i, j]) > loss:
                        loss = abs(Gq[i, j])
            stats[r, 1] = loss
        # readout: independent W_out, rows of y ~ N(0, g2_out/n Phi^T Phi + sigma_out^2 11^T)
        gemm_gram(phi, Gphi)
        for i in range(P):
            for j in range(P):
                C[i, j] = (g2_out / n) * Gphi[i, j] + sigma2_out
                caux_d[r, A1, i, j] = C[i, j]
        sample_readout(C, chol_rtol, z, off, n_out, L, work, yo, G, y[r], chat_d[r, A1])
