"""Mean-field kernel C^(a,b)_{alpha beta} of DNNs and RNNs (theory-notes Sec. 3).

Solved recursively from ``a = 0`` upward.  The DNN only needs the equal-layer
blocks (its hidden cross-layer blocks are pure bias).  The RNN computes a full
row ``C^(a, 1..a-1)`` per step in one vectorised call over ``(b, alpha, beta)``;
equal-step blocks are computed on one triangle and mirrored (exactly symmetric).

Activations without closed form are integrated to ``quad_tol`` (default 1e-9,
see :mod:`theory.gaussian`).  Non-finite results (overflow in the unstable
regime) raise :class:`NonFiniteTheoryError` naming the parameter point and the
first non-finite layer; products such as ``sqrt(c_uu c_vv)`` are formed as
``sqrt(c_uu) sqrt(c_vv)`` so that representable kernels (up to ~1e308) stay finite.
"""

from __future__ import annotations

import numpy as np

from . import gaussian
from .prior import Prior, check_inputs


class NonFiniteTheoryError(FloatingPointError):
    """A theory result is not finite (overflow in the unstable regime).

    A runtime failure, not bad input: the parameters are valid but the
    quantity exceeds the float64 range.  The message names the parameter
    point and the first layer with a non-finite value.  ``python -m theory``
    exits with status 1 on it.
    """


def _point_text(prior: Prior) -> str:
    def fmt(v):
        a = np.asarray(v, dtype=float)
        return f"{float(a):g}" if a.ndim == 0 else "[" + ", ".join(f"{t:g}" for t in a) + "]"

    return (f"arch={prior.arch}, depth={prior.depth}, activation={prior.activation_name}, "
            f"g2={fmt(prior.g2)}, sigma2={fmt(prior.sigma2)}, g2_in={fmt(prior.g2_in)}, bias={prior.bias}")


def check_finite(prior: Prior, what: str, values, layer_axis: int = 0, square: bool = False) -> np.ndarray:
    """Raise :class:`NonFiniteTheoryError` if ``values`` has a non-finite entry.

    Parameters
    ----------
    prior : Prior
        Named in the message (the parameter point).
    what : str
        Name of the quantity (e.g. ``"kernel"``).
    values : ndarray of float64
        The result; axis ``layer_axis`` is the layer / time step ``a``.
    layer_axis : int, optional
    square : bool, optional
        ``values`` is indexed ``[a, b, ...]`` by two layers; layer ``a`` is
        non-finite if an entry ``[a, b]`` or ``[b, a]`` with ``b <= a`` is
        (so that the first layer reached by the recursion is named).

    Returns
    -------
    ndarray
        ``values`` unchanged when finite.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    if np.any(bad):
        if square:
            n = values.shape[0]
            bb = bad.reshape(n, n, -1).any(axis=2)
            tri = np.tril(np.ones((n, n), bool))
            per_layer = (bb & tri).any(axis=1) | (bb.T & tri).any(axis=1)
        else:
            per_layer = np.moveaxis(bad, layer_axis, 0).reshape(values.shape[layer_axis], -1).any(axis=1)
        a = int(np.argmax(per_layer))
        label = "readout a = A+1" if a == prior.depth + 1 else f"layer a = {a}"
        finite = np.abs(values[np.isfinite(values)])
        peak = f"{float(finite.max()):.3g}" if finite.size else "none"
        raise NonFiniteTheoryError(
            f"{what}: non-finite result ({int(bad.sum())} of {values.size} entries), first at {label}; "
            f"largest finite magnitude {peak}; the network is in the unstable regime where the "
            f"variance exceeds the float64 range; point: {_point_text(prior)}"
        )
    return values


def _check_prior(prior) -> Prior:
    if not isinstance(prior, Prior):
        raise ValueError(f"prior: expected a theory.Prior, got {type(prior).__name__}")
    return prior


def kernel(prior: Prior, X, quad_order: int | None = None, quad_tol: float = gaussian.DEFAULT_QUAD_TOL) -> np.ndarray:
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
        Explicit Gauss-Hermite order for activations without closed form.
        ``None`` (default): automatic quadrature to the relative tolerance
        ``quad_tol`` (see :mod:`theory.gaussian`; error estimates via
        :func:`theory.quadrature_diagnostics`).
    quad_tol : float, optional
        Relative tolerance of the automatic quadrature (default 1e-9).

    Returns
    -------
    ndarray of float64, shape (A+2, A+2, P, P)
        ``C[a, b, alpha, beta]``; ``C[b, a] = C[a, b].T`` (pattern transpose).

    Raises
    ------
    ValueError
        ``prior`` not a Prior, ``X`` of the wrong shape or non-finite,
        ``quad_order`` or ``quad_tol`` invalid.
    NonFiniteTheoryError
        The kernel overflows (unstable regime); the message names the
        parameter point and the first non-finite layer.
    """
    prior = _check_prior(prior)
    seq = check_inputs(prior, X)  # (P, A+1, n_in)
    gaussian.check_quadrature(quad_order, quad_tol)
    with np.errstate(over="ignore", invalid="ignore"):
        C = _kernel(prior, seq, quad_order, quad_tol)
    return check_finite(prior, "kernel", C, square=True)


def _symmetric_block(act, d, cov, quad_order, quad_tol) -> np.ndarray:
    """``<phi(u) phi(v)>`` for the equal-step block: upper triangle computed, mirrored (exactly symmetric)."""
    P = d.shape[0]
    iu, ju = np.triu_indices(P)
    vals = gaussian.pair(act, d[iu], d[ju], cov[iu, ju], quad_order, quad_tol)
    blk = np.empty((P, P))
    blk[iu, ju] = vals
    blk[ju, iu] = vals
    return blk


def _deterministic(prior: Prior, seq: np.ndarray) -> np.ndarray:
    """Input and bias part ``B_ab + I_ab g_0^2/n_in x^(a).x^(b)`` of ``C^(a,b)``, a, b = 0..A: (A+1, A+1, P, P)."""
    P, _, n_in = seq.shape
    A = prior.depth
    g2 = prior.g2_layers
    s2 = prior.sigma2_layers
    D = np.zeros((A + 1, A + 1, P, P))
    # input term: g_0^2 / n_in x^(a).x^(b)   -> (A+1, A+1, P, P)
    flat = seq.transpose(1, 0, 2)  # (A+1, P, n_in)
    if prior.is_rnn:
        D[:] = (g2[0] / n_in) * np.einsum("api,bqi->abpq", flat, flat, optimize=True)
    else:
        for a in range(A + 1):
            D[a, a] = (g2[0] / n_in) * (flat[a] @ flat[a].T)
    # bias term
    if prior.bias == "static":
        D += s2[0]
    else:
        for a in range(A + 1):
            D[a, a] += s2[a]
    return D


def nested_readout(caux_diag: np.ndarray, det_diag: np.ndarray, g2_layers, sigma2_out: float) -> np.ndarray:
    """Readout covariance of the depth-a network, a = 0..A, from the layer covariances of a depth-A one.

    A depth-a network is the first a+1 layers/steps of a deeper one plus a
    readout with gain ``g2_out`` and bias ``sigma2_out``:
    ``K_out^(a) = sigma2_out + g2_out <phi(h^(a)) phi(h^(a))>``.  The activation
    moment is the non-deterministic part of the next layer,
    ``C^(a+1,a+1) = D^(a+1) + g2_{a+1} <phi(h^(a)) phi(h^(a))>`` (a < A); for
    a = A it is the readout block itself.  The one definition of "readout
    kernel at depth a", used alike for the mean-field kernel
    (:func:`readout_kernels`) and per realization for the finite-width
    ``Caux`` (``y_steps`` of :func:`mcsim.sample`, where ``<.>`` is the
    empirical ``1/n_a`` sum).

    Parameters
    ----------
    caux_diag : ndarray of float64, shape (..., A+2, P, P)
        Equal-layer blocks ``C^(a,a)``, a = 0..A+1 (A+1 = readout).
    det_diag : ndarray of float64, shape (A+1, P, P)
        Their deterministic input and bias part ``D^(a)``, a = 0..A.
    g2_layers : ndarray of float64, shape (A+2,)
        ``Prior.g2_layers`` (entries 1..A must be > 0).
    sigma2_out : float

    Returns
    -------
    ndarray of float64, shape (..., A+1, P, P)
    """
    caux_diag = np.asarray(caux_diag, dtype=float)
    A1 = det_diag.shape[0]
    g2 = np.asarray(g2_layers, dtype=float)
    out = np.empty(caux_diag.shape[:-3] + (A1,) + caux_diag.shape[-2:])
    if A1 > 1:
        scale = (g2[A1] / g2[1:A1])[:, None, None]
        out[..., : A1 - 1, :, :] = sigma2_out + scale * (caux_diag[..., 1:A1, :, :] - det_diag[1:])
    out[..., A1 - 1, :, :] = caux_diag[..., A1, :, :]
    return out


def readout_kernels(prior: Prior, X, C: np.ndarray | None = None, quad_order: int | None = None,
                    quad_tol: float = gaussian.DEFAULT_QUAD_TOL) -> np.ndarray:
    """Mean-field readout kernel of the depth-a network for every a = 0..A (:func:`nested_readout`).

    Parameters
    ----------
    prior : Prior
        The deepest network (depth A; its ``g2_out``, ``sigma2_out`` are the readout's at every depth).
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
    C : ndarray of float64, shape (A+2, A+2, P, P), optional
        :func:`kernel` of ``(prior, X)`` if already computed.
    quad_order, quad_tol
        As in :func:`kernel` (used only when ``C`` is not given).

    Returns
    -------
    ndarray of float64, shape (A+1, P, P)
        ``K[a]`` = readout kernel of the depth-a network (``K[A] = C[A+1, A+1]``).

    Raises
    ------
    ValueError
        ``prior`` or ``X`` invalid, ``C`` of the wrong shape, or a hidden ``g2`` of 0.
    """
    prior = _check_prior(prior)
    seq = check_inputs(prior, X)
    A = prior.depth
    P = seq.shape[0]
    if np.any(prior.g2_layers[1 : A + 1] <= 0):
        raise ValueError(f"prior: readout kernels by depth need g2 > 0 at every hidden layer, got g2={prior.g2!r}")
    if C is None:
        C = kernel(prior, X, quad_order, quad_tol)
    C = np.asarray(C, dtype=float)
    if C.shape != (A + 2, A + 2, P, P):
        raise ValueError(f"C: expected shape {(A + 2, A + 2, P, P)}, got {C.shape}")
    diag = np.stack([C[a, a] for a in range(A + 2)])
    det = _deterministic(prior, seq)
    det_diag = np.stack([det[a, a] for a in range(A + 1)])
    return nested_readout(diag, det_diag, prior.g2_layers, float(prior.sigma2_layers[A + 1]))


def _kernel(prior: Prior, seq: np.ndarray, quad_order, quad_tol) -> np.ndarray:
    P, _, n_in = seq.shape
    A = prior.depth
    g2 = prior.g2_layers
    s2 = prior.sigma2_layers
    act = prior.act
    rnn = prior.is_rnn
    C = np.zeros((A + 2, A + 2, P, P))
    C[: A + 1, : A + 1] = _deterministic(prior, seq)
    diag = np.empty((A + 1, P))
    diag[0] = np.diagonal(C[0, 0])
    for a in range(1, A + 1):
        if rnn:
            # row a, columns b = 1..a-1 vectorised over (b, alpha, beta); the equal-time
            # block b = a is symmetric and computed on one triangle
            vals = np.empty((a, P, P))
            if a > 1:
                cuu = diag[a - 1][None, :, None]  # (1, P, 1)
                cvv = diag[: a - 1][:, None, :]  # (a-1, 1, P)   steps b-1 = 0..a-2
                cuv = C[a - 1, : a - 1]  # (a-1, P, P)
                vals[:-1] = gaussian.pair(act, cuu, cvv, cuv, quad_order, quad_tol)
            vals[-1] = _symmetric_block(act, diag[a - 1], C[a - 1, a - 1], quad_order, quad_tol)
            vals *= g2[a]
            C[a, 1 : a + 1] += vals
            C[1:a, a] += vals[:-1].transpose(0, 2, 1)
        else:
            C[a, a] += g2[a] * _symmetric_block(act, diag[a - 1], C[a - 1, a - 1], quad_order, quad_tol)
        diag[a] = np.diagonal(C[a, a])
        if not np.all(np.isfinite(diag[a])):
            break  # overflow: the caller reports the first non-finite layer
    else:
        C[A + 1, A + 1] = s2[A + 1] + g2[A + 1] * _symmetric_block(act, diag[A], C[A, A], quad_order, quad_tol)
        return C
    C[a + 1 :] = np.nan  # layers after the overflow are undefined
    C[:, a + 1 :] = np.nan
    return C
