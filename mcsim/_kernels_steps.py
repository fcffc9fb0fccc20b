"""Numba kernel of the per-step ("nested") readouts (private).

A depth-a network is the first a+1 layers/steps of a deeper one plus a
readout, so the readout of every depth a = 0..A can be drawn from one
realization of the deepest network: given the hidden state, ``y^(a)`` has
``n_out`` independent columns with covariance ``Caux_out^(a)`` over the
patterns (:func:`mcsim._kernels.sample_readout`).  The activation does not
enter (the covariances are inputs), so this kernel is compiled once, like the
kernels of :mod:`mcsim._kernels`.
"""

from __future__ import annotations

import numpy as np

from ._kernels import _kernel, sample_readout


@_kernel
def readout_steps(C, Z, rtol, n_out, y):
    """Draw the readout of every step of a block of realizations.

    Parameters
    ----------
    C : ndarray, float64, shape (R, S, P, P)
        Readout covariance of step s of realization r (not modified).
    Z : ndarray, float64, shape (R, S * P * n_out)
        Standard normals of realization r; step s uses
        ``Z[r, s*P*n_out : s*P*n_out + rank_s*n_out]`` (fixed offsets, so the
        numbers of step s do not depend on the ranks of other steps).
    rtol : float
        Rank tolerance of the pivoted Cholesky factor.
    n_out : int
    y : ndarray, float64, shape (R, S, P, n_out), overwritten with the readouts
    """
    R = C.shape[0]
    S = C.shape[1]
    P = C.shape[2]
    L = np.empty((P, P))
    work = np.empty((P, P))
    G = np.empty((P, P))
    chat = np.empty((P, P))
    Cs = np.empty((P, P))
    yo = np.empty((P, n_out))
    ys = np.empty((P, n_out))
    for r in range(R):
        for s in range(S):
            for i in range(P):
                for j in range(P):
                    Cs[i, j] = C[r, s, i, j]
            sample_readout(Cs, rtol, Z[r], s * P * n_out, n_out, L, work, yo, G, ys, chat)
            for i in range(P):
                for k in range(n_out):
                    y[r, s, i, k] = ys[i, k]
