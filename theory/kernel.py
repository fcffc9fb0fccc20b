"""Mean-field kernel C^(a,b)_{alpha beta} of DNNs and RNNs (theory-notes Sec. 3).

Solved recursively from ``a = 0`` upward.  The DNN only needs the equal-layer
blocks (its hidden cross-layer blocks are pure bias).  The RNN computes a full
row ``C^(a, 1..a)`` per step in one vectorised call over ``(b, alpha, beta)``.
"""

from __future__ import annotations

import numpy as np

from . import gaussian
from .prior import Prior, check_inputs


def _check_prior(prior) -> Prior:
    if not isinstance(prior, Prior):
        raise ValueError(f"prior: expected a theory.Prior, got {type(prior).__name__}")
    return prior


def kernel(prior: Prior, X, quad_order: int | None = None) -> np.ndarray:
    """Mean-field covariance ``C^(a,b)_{alpha beta}`` for ``a, b = 0..A+1``.

    Implements (theory-notes Sec. 3, Eqs. 32, 34, 56)::

        C^(a,b) = B_ab + S_ab 1[a,b>=1] g_a^2 <phi(u) phi(v)> + I_ab g_0^2/n_in x^(a).x^(b)

    with the readout ``C^(A+1,A+1) = sigma_{A+1}^2 + g_{A+1}^2 <phi phi>`` of step
    ``A`` and ``C^(A+1,b) = C^(b,A+1) = 0`` for ``b <= A``.

    Parameters
    ----------
    prior : Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        Single inputs at ``a = 0`` or input sequences (see :func:`theory.check_inputs`).
    quad_order : int, optional
        Gauss-Hermite order for activations without closed form
        (default :data:`theory.gaussian.DEFAULT_QUAD_ORDER`).

    Returns
    -------
    ndarray of float64, shape (A+2, A+2, P, P)
        ``C[a, b, alpha, beta]``; ``C[b, a] = C[a, b].T`` (pattern transpose).

    Raises
    ------
    ValueError
        ``prior`` not a Prior, ``X`` of the wrong shape or non-finite,
        ``quad_order`` invalid.
    """
    prior = _check_prior(prior)
    seq = check_inputs(prior, X)  # (P, A+1, n_in)
    if quad_order is not None:
        gaussian._order(quad_order)
    P, _, n_in = seq.shape
    A = prior.depth
    g2 = prior.g2_layers
    s2 = prior.sigma2_layers
    act = prior.activation
    rnn = prior.is_rnn
    C = np.zeros((A + 2, A + 2, P, P))
    # input term: g_0^2 / n_in x^(a).x^(b)   -> (A+1, A+1, P, P)
    flat = seq.transpose(1, 0, 2)  # (A+1, P, n_in)
    if rnn:
        C[: A + 1, : A + 1] = (g2[0] / n_in) * np.einsum("api,bqi->abpq", flat, flat, optimize=True)
    else:
        for a in range(A + 1):
            C[a, a] = (g2[0] / n_in) * (flat[a] @ flat[a].T)
    # bias term
    if prior.bias == "static":
        C[: A + 1, : A + 1] += s2[0]
    else:
        for a in range(A + 1):
            C[a, a] += s2[a]
    diag = np.empty((A + 1, P))
    diag[0] = np.diagonal(C[0, 0])
    for a in range(1, A + 1):
        if rnn:
            # row a, columns b = 1..a, vectorised over (b, alpha, beta)
            cuu = diag[a - 1][None, :, None]  # (1, P, 1)
            cvv = diag[:a][:, None, :]  # (a, 1, P)   steps b-1 = 0..a-1
            cuv = C[a - 1, :a]  # (a, P, P)
            vals = g2[a] * gaussian.pair(act, cuu, cvv, cuv, quad_order)  # (a, P, P)
            # quadrature is not exactly symmetric under u <-> v: symmetrise the equal-time block
            vals[-1] = 0.5 * (vals[-1] + vals[-1].T)
            C[a, 1 : a + 1] += vals
            C[1:a, a] += vals[:-1].transpose(0, 2, 1)
        else:
            d = diag[a - 1]
            blk = gaussian.pair(act, d[:, None], d[None, :], C[a - 1, a - 1], quad_order)
            C[a, a] += g2[a] * 0.5 * (blk + blk.T)
        diag[a] = np.diagonal(C[a, a])
    d = diag[A]
    blk = gaussian.pair(act, d[:, None], d[None, :], C[A, A], quad_order)
    C[A + 1, A + 1] = s2[A + 1] + g2[A + 1] * 0.5 * (blk + blk.T)
    return C
