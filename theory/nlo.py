"""Next-to-leading-order (1/n) fluctuations of the auxiliary covariance (Sec. 4.3).

Single input ``x`` given at ``a = 0``.  Notation (theory-notes Sec. 6)::

    F_k          = g_{k+1}^2 d<phi(h)^2>/dc  at c = C^(k,k),   k = 0..A   (F_A uses g_out)
    T[a, a']     = prod_{k=a'}^{a-1} F_k     for 1 <= a' <= a  (1 for a' = a), else 0
    G[a'-1,c'-1] = g_{a'}^2 g_{c'}^2 ( <phi(u)^2 phi(v)^2> - <phi(u)^2><phi(v)^2> )

with ``(u, v)`` centred Gaussian with the mean-field covariance of the *hidden*
pre-activations at steps ``a'-1, c'-1`` (``C^(a'-1,a'-1)``, ``C^(c'-1,c'-1)``,
``C^(a'-1,c'-1)`` from :func:`theory.kernel`), ``a', c' = 1..A+1``.

Derivation (used for both architectures and for the readout)
------------------------------------------------------------
``Caux^(a,a) = sigma_a^2 + g_a^2/n_{a-1} sum_i phi(h_i^(a-1))^2``.  Write
``dCaux^(a,a) = F_{a-1} dCaux^(a-1,a-1) + eta_a`` where ``eta_a`` is the
finite-sum fluctuation of ``g_a^2/n_{a-1} sum_i phi(h_i^(a-1))^2`` about its
conditional mean.  Different units ``i`` are independent at leading order and
unit ``i`` carries the same index across steps, so::

    Cov[eta_a', eta_c'] = G[a'-1, c'-1] / n      (RNN, shared units)
    Cov[eta_a', eta_a'] = G[a'-1, a'-1] / n_{a'-1}   (DNN)

For the DNN with uncorrelated bias ``C^(a'-1,c'-1) = 0`` for ``a' != c'`` so
G is diagonal and this is Eq. 44 (upper).  For the RNN it is Eq. 44 (lower) /
Eq. 68.  The readout ``eta_{A+1}`` is built from the *same hidden units*
``phi(h_i^(A))`` as the hidden-step sources (``W_out`` only scales it by
``g_out^2``), so its cross terms with the hidden sources are
``G[A, c'-1] = g_out^2 g_{c'}^2 Cov[phi(h^A)^2, phi(h^(c'-1))^2]``, non-zero for
the RNN whenever the cross-time kernel is non-zero (e.g. ReLU).  For the DNN
with static bias the per-unit cross-layer covariance is ``sigma^2`` and the same
formula applies (the DNN then has equal widths).  Collecting terms::

    Cov[Caux^(a,a), Caux^(b,b)] = sum_{a',c'} T[a,a'] G[a'-1,c'-1] T[b,c'] / sqrt(n_{a'-1} n_{c'-1})

Both the readout cross terms and the static-bias DNN case are checked
against brute-force simulation in ``tests/test_theory_nlo_simulation.py``.
"""

from __future__ import annotations

import numpy as np

from . import gaussian
from .gaussian import DEFAULT_QUAD_TOL
from .kernel import _check_prior, check_finite, kernel
from .prior import Prior


def _check_single_input(prior: Prior, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"x: must be a single input of shape (n_in,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: must be finite")
    return x


def _check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float, np.integer, np.floating)):
        raise ValueError(f"width: must be a number >= 1, got {width!r}")
    if not np.isfinite(width) or width < 1:
        raise ValueError(f"width: must be >= 1, got {width!r}")
    return float(width)


def single_input_kernel(prior: Prior, x, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """Mean-field ``C^(a,b)`` for one input at ``a = 0``.

    Returns
    -------
    ndarray of float64, shape (A+2, A+2)
    """
    prior = _check_prior(prior)
    x = _check_single_input(prior, x)
    return kernel(prior, x[None, :], quad_order, quad_tol)[:, :, 0, 0]


def propagation_factors(prior: Prior, x, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """``F_k = g_{k+1}^2 d<phi^2>/dc`` at ``C^(k,k)``, ``k = 0..A`` (``F_A`` uses g_out).

    Returns
    -------
    ndarray of float64, shape (A+1,)
    """
    C = single_input_kernel(prior, x, quad_order, quad_tol)
    A = prior.depth
    c = np.diagonal(C)[: A + 1]
    return prior.g2_layers[1:] * gaussian.d_second_moment(prior.act, c, quad_order, quad_tol)


def source_matrix(prior: Prior, x, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """Source ``G[a'-1, c'-1]`` for ``a', c' = 1..A+1`` (see module docstring).

    Returns
    -------
    ndarray of float64, shape (A+1, A+1)
        For the DNN ``G_{a-1} = g_a^4 Var[phi(h)^2]`` on the diagonal; for the
        RNN the cross-time terms of Eq. 68 (ReLU: Eq. 69 closed form).
    """
    C = single_input_kernel(prior, x, quad_order, quad_tol)
    A = prior.depth
    h = C[: A + 1, : A + 1]  # hidden steps 0..A
    with np.errstate(over="ignore", invalid="ignore"):
        G = _source(prior, C, h, quad_order, quad_tol)
    return check_finite(prior, "source_matrix", G, square=True)


def _source(prior, C, h, quad_order, quad_tol):
    d = np.diagonal(h)
    act = prior.act
    four = gaussian.fourth_moment_pair(act, d[:, None], d[None, :], h, quad_order, quad_tol)
    m2 = gaussian.second_moment(act, d, quad_order, quad_tol)
    cov = four - m2[:, None] * m2[None, :]
    if prior.arch == "dnn" and prior.bias == "uncorrelated":
        cov = np.diag(np.diagonal(cov))  # independent layers: exactly zero off-diagonal
    g2 = prior.g2_layers[1:]  # g_{a'}^2, a' = 1..A+1
    return g2[:, None] * g2[None, :] * cov


def _transfer(F: np.ndarray) -> np.ndarray:
    """``T[a, a'] = prod_{k=a'}^{a-1} F_k`` for ``1 <= a' <= a <= A+1``; shape (A+2, A+2)."""
    n = F.shape[0] + 1  # A+2
    T = np.zeros((n, n))
    for ap in range(1, n):
        T[ap, ap] = 1.0
        for a in range(ap + 1, n):
            T[a, ap] = T[a - 1, ap] * F[a - 1]
    return T


def input_propagation(prior: Prior, x, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """Propagation of an input-kernel perturbation (Eq. 42): ``prod_{k=0}^{a-1} F_k``.

    Parameters
    ----------
    prior : Prior
    x : array_like, shape (n_in,)
        Single input at ``a = 0``.

    Returns
    -------
    ndarray of float64, shape (A+2,)
        ``dC^(a,a) / dC^(0,0)``; entry 0 is 1, entry ``A+1`` the readout.
    """
    F = propagation_factors(prior, x, quad_order, quad_tol)
    with np.errstate(over="ignore", invalid="ignore"):
        prop = np.concatenate([[1.0], np.cumprod(F)])
    return check_finite(prior, "input_propagation", prop)


def response(prior: Prior, x, width, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """Response function ``A12^{(a,a),(e,e)}`` (Eqs. 41, 63).

    ``R[a, e] = prod_{k=e}^{a-1} F_k / (nu_{e-1} n)`` for ``1 <= e <= a``, zero for
    ``a < e``.  Column ``e = 0`` (response to the input layer, Eq. 42) is
    ``prod_{k=0}^{a-1} F_k / n`` with the reference width ``n``.

    Parameters
    ----------
    prior : Prior
    x : array_like, shape (n_in,)
    width : float
        Reference width ``n`` (>= 1).

    Returns
    -------
    ndarray of float64, shape (A+2, A+2)
    """
    n = _check_width(width)
    F = propagation_factors(prior, x, quad_order, quad_tol)
    with np.errstate(over="ignore", invalid="ignore"):
        T = _transfer(F)
    T = check_finite(prior, "response", T, square=True)
    nu = prior.nu_layers
    R = T.copy()
    R[:, 1:] /= nu[None, :] * n
    R[:, 0] = input_propagation(prior, x, quad_order, quad_tol) / n
    return R


def nlo_covariance(prior: Prior, x, width, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """``Cov[Caux^(a,a), Caux^(b,b)]`` at O(1/n) across weight realizations.

    Parameters
    ----------
    prior : Prior
    x : array_like, shape (n_in,)
        Single input at ``a = 0``.
    width : float
        Reference width ``n`` (>= 1); DNN layer widths are ``nu_a n``.

    Returns
    -------
    ndarray of float64, shape (A+2, A+2)
        Row/column 0 are zero (``Caux^(0,0)`` is deterministic); index ``A+1``
        is the readout.
    """
    prior = _check_prior(prior)
    n = _check_width(width)
    F = propagation_factors(prior, x, quad_order, quad_tol)
    G = source_matrix(prior, x, quad_order, quad_tol)
    with np.errstate(over="ignore", invalid="ignore"):
        T = _transfer(F)[:, 1:]  # (A+2, A+1) columns a' = 1..A+1
    ninv = 1.0 / np.sqrt(prior.nu_layers * n)  # 1/sqrt(n_{a'-1})
    with np.errstate(over="ignore", invalid="ignore"):
        S = G * ninv[:, None] * ninv[None, :]
        cov = T @ S @ T.T
        cov = 0.5 * (cov + cov.T)
    return check_finite(prior, "nlo_covariance", cov, square=True)


def nlo_variance(prior: Prior, x, width, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> np.ndarray:
    """``Var[Caux^(a,a)]`` at O(1/n) (Eqs. 44, 65, 68), ``a = 0..A+1``.

    Parameters
    ----------
    prior : Prior
    x : array_like, shape (n_in,)
    width : float
        Reference width ``n`` (>= 1).

    Returns
    -------
    ndarray of float64, shape (A+2,)
        Entry 0 is 0, entry ``A+1`` the readout.
    """
    return np.diagonal(nlo_covariance(prior, x, width, quad_order, quad_tol)).copy()


def output_fourth_cumulant(prior: Prior, x, width, quad_order: int | None = None,
        quad_tol: float = DEFAULT_QUAD_TOL) -> float:
    """Fourth cumulant of a scalar output, ``3 Var[Caux^(A+1,A+1)]`` at O(1/n).

    Returns
    -------
    float
    """
    return float(3.0 * nlo_variance(prior, x, width, quad_order, quad_tol)[-1])
