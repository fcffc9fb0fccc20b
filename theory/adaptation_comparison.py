"""Adaptation theory vs importance-weighted prior Monte Carlo: the numerics of the ``posterior`` workflow kind.

The posterior shift ``Delta[O] = E_post[O] - E_prior[O]`` of an observable
(theory-notes Sec. 9.2, 9.3) is measured on prior realizations ``O_r`` with
importance weights ``w_r = prod_o N(Y_o | 0, K_DD + kappa I)``
(:func:`mcsim.importance_weight`) and predicted to first order by
:func:`theory.adaptation`.  ``Delta = O(1/n)``, so the figure shows ``n Delta``
against ``n``: it converges to the (width-independent) first-order value as
``n Delta(n) = c + d / n + O(n^-2)``.

Scalar observables (:data:`SHIFT_OBSERVABLES`), all linear in the kernels, with
``u = Y_D / |Y_D|`` the unit target direction on the training patterns and
``v = Y_T / |Y_T|`` on the test patterns (output 0):

``readout``    ``u^T Caux^(A+1,A+1)_DD u``   (the readout kernel, times ``gamma0``)
``hidden``     ``u^T Chat^(h,h)_DD u``        (a hidden layer / time step ``h``)
``predictor``  ``v^T m_T``                     (posterior-mean predictor ``m = K_.D (K_DD + kappa I)^-1 Y`` per realization)

The estimator of the shift and its standard error: with self-normalised weights
``wt_r = w_r / sum w``, ``Delta_hat = sum_r wt_r O_r - mean_r O_r``; its
delta-method (influence-function) error is ``std_r(psi_r) / sqrt(R)`` with
``psi_r = R wt_r (O_r - E_post_hat) - (O_r - E_prior_hat)``, which accounts for
the posterior and prior means being computed on the same realizations.
"""

from __future__ import annotations

import math

import numpy as np

SHIFT_OBSERVABLES = ("readout", "hidden", "predictor")
"""Scalar observables whose posterior shift is compared (module docstring)."""

TASKS = ("linear_teacher",)
"""Tasks of the ``posterior`` experiment kind (:func:`make_targets`)."""


def make_targets(X, task: str, seed: int) -> np.ndarray:
    """Targets of a task on all patterns.

    ``linear_teacher``: ``y = X w / sqrt(n_in)``, ``w ~ N(0, I)`` drawn with
    ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    X : array_like of float64, shape (P, n_in)
    task : {"linear_teacher"}
    seed : int

    Returns
    -------
    ndarray of float64, shape (P,)
    """
    X = np.asarray(X, dtype=float)
    if task not in TASKS:
        raise ValueError(f"task.kind: unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if X.ndim != 2:
        raise ValueError(f"X: the {task} task needs inputs of shape (P, n_in), got {X.shape}")
    w = np.random.default_rng(int(seed)).standard_normal(X.shape[1])
    return X @ w / math.sqrt(X.shape[1])


def unit_direction(y, idx) -> np.ndarray:
    """``y[idx] / |y[idx]|`` (float64, shape (len(idx),)); ``ValueError`` if it is zero."""
    v = np.asarray(y, dtype=float)[np.asarray(idx, dtype=np.int64)]
    norm = float(np.linalg.norm(v))
    if not norm > 0:
        raise ValueError("y: the targets on the selected patterns are all zero (no target direction)")
    return v / norm


def weighted_shift(log_weights, values) -> tuple[np.ndarray, np.ndarray]:
    """Importance-weighted minus unweighted mean of the same realizations, with its delta-method SE.

    Parameters
    ----------
    log_weights : array_like of float64, shape (R,)
        Log importance weights (finite).
    values : array_like of float64, shape (R, ...)
        Observable per realization.

    Returns
    -------
    shift, se : ndarray of float64, shape values.shape[1:]
    """
    lw = np.asarray(log_weights, dtype=float)
    O = np.asarray(values, dtype=float)
    if lw.ndim != 1 or O.shape[:1] != lw.shape or lw.size < 2:
        raise ValueError(f"values: need shape (R, ...) with R = {lw.shape} log weights, R >= 2; got {O.shape}")
    if not np.all(np.isfinite(lw)):
        raise ValueError("log_weights: must be finite (drop overflowed realizations first)")
    R = lw.size
    wt = np.exp(lw - lw.max())
    wt /= wt.sum()
    wb = wt.reshape((R,) + (1,) * (O.ndim - 1))
    post = (wb * O).sum(axis=0)
    prior = O.mean(axis=0)
    psi = R * wb * (O - post) - (O - prior)
    return post - prior, psi.std(axis=0, ddof=1) / math.sqrt(R)


def scalar_observables(caux_readout, chat_diag, y, train, kappa: float, gamma0: float, hidden_layer: int) -> dict:
    """Per-realization values of :data:`SHIFT_OBSERVABLES`.

    Parameters
    ----------
    caux_readout : ndarray of float64, shape (R, P, P)
    chat_diag : ndarray of float64, shape (R, A+2, P, P)
    y : ndarray of float64, shape (P,)
    train : ndarray of int, shape (P_D,)
        The other patterns are test patterns (at least one).
    kappa, gamma0 : float
    hidden_layer : int
        ``h`` in ``1..A``.

    Returns
    -------
    dict of str -> ndarray of float64, shape (R,)
    """
    from mcsim.readout_posterior import conditional_mean

    P = caux_readout.shape[1]
    test = np.setdiff1d(np.arange(P), train)
    if test.size == 0:
        raise ValueError("train: the predictor shift needs at least one test pattern")
    if not 1 <= hidden_layer <= chat_diag.shape[1] - 2:
        raise ValueError(f"hidden_layer: must be in 1..{chat_diag.shape[1] - 2} (hidden layers), got {hidden_layer}")
    u, v = unit_direction(y, train), unit_direction(y, test)
    D = np.ix_(train, train)
    m = conditional_mean(caux_readout, np.asarray(y, float)[train][:, None], train, kappa, gamma0)[:, :, 0]
    return {
        "readout": np.einsum("p,rpq,q->r", u, caux_readout[(slice(None),) + D], u),
        "hidden": np.einsum("p,rpq,q->r", u, chat_diag[:, hidden_layer][(slice(None),) + D], u),
        "predictor": m[:, test] @ v,
    }


def measured_shifts(samples: dict, y, train, kappa: float, gamma0: float, hidden_layer: int,
                    min_ess: float) -> tuple[dict, dict]:
    """Measured posterior shifts ``Delta`` of :data:`SHIFT_OBSERVABLES` from prior realizations (importance weighting).

    Parameters
    ----------
    samples : dict of str -> ndarray
        Prior realizations (a point file of the workflow): ``caux_readout``
        (R, P, P), ``chat_diag`` (R, A+2, P, P), optional ``overflow`` (R,).
    y, train, kappa, gamma0, hidden_layer
        As in :func:`scalar_observables`.
    min_ess : float
        Smallest acceptable effective sample size
        (:class:`mcsim.posterior_sampling.ImportanceCollapseError` below).

    Returns
    -------
    shifts : dict of str -> (float, float)
        ``(Delta, SE)`` per observable.
    diagnostics : dict
        ``ess``, ``realizations`` (used), ``overflowed``.
    """
    from mcsim import importance_weight

    ok = ~np.asarray(samples.get("overflow", np.zeros(len(samples["caux_readout"]), bool)), dtype=bool)
    cr, cd = np.asarray(samples["caux_readout"])[ok], np.asarray(samples["chat_diag"])[ok]
    train = np.sort(np.asarray(train, dtype=np.int64))
    w = importance_weight({"caux_readout": cr}, y, train, kappa, gamma0, observables=("predictor",),
                          min_ess=min_ess)
    values = scalar_observables(cr, cd, y, train, kappa, gamma0, hidden_layer)
    lw = w.draws["log_weights"]
    shifts = {k: tuple(float(x) for x in weighted_shift(lw, v)) for k, v in values.items()}
    return shifts, {"ess": float(w.diagnostics["ess"]), "realizations": int(ok.sum()), "overflowed": int((~ok).sum())}


def predicted_scaled_shifts(prior, X, y, train, kappa: float, gamma0: float, hidden_layer: int,
                            seed: int = 0) -> tuple[dict, float]:
    """First-order theory ``n Delta`` (width independent) of :data:`SHIFT_OBSERVABLES`.

    Parameters
    ----------
    prior : theory.Prior
    X : ndarray of float64, shape (P, n_in)
    y, train, kappa, gamma0, hidden_layer
        As in :func:`scalar_observables`.
    seed : int
        RQMC seed of :func:`theory.adaptation`.

    Returns
    -------
    scaled : dict of str -> (float, float)
        ``(n Delta, SE)``; the SE is the RQMC error bound ``sum |u_i| se_ij |u_j|`` (0 for linear networks).
    expansion_parameter : float
        ``sqrt(n) x`` of :attr:`theory.adaptation.Adaptation.expansion_parameter` (divide by ``sqrt(n)``).
    """
    from .adaptation import adaptation

    train = np.sort(np.asarray(train, dtype=np.int64))
    P = np.shape(X)[0]
    test = np.setdiff1d(np.arange(P), train)
    r = adaptation(prior, X, y, train, kappa, 1.0, gamma0=gamma0, seed=seed)
    u, v = unit_direction(y, train), unit_direction(y, test)
    au, D, A1 = np.abs(u), np.ix_(train, train), prior.depth + 1
    out = {
        "readout": (u @ r.caux[A1, A1][D] @ u, au @ r.caux_se[A1, A1][D] @ au),
        "hidden": (u @ r.chat[hidden_layer, hidden_layer][D] @ u, au @ r.chat_se[hidden_layer, hidden_layer][D] @ au),
        "predictor": (r.predictor[test, 0] @ v, np.abs(v) @ r.predictor_se[test, 0]),
    }
    return {k: (float(a), float(b)) for k, (a, b) in out.items()}, float(r.expansion_parameter)


def richardson(n1: float, x1: float, se1: float, n2: float, x2: float, se2: float) -> tuple[float, float]:
    """Extrapolate ``x(n) = c + d / n`` from two widths ``n1 < n2``: ``c = (n2 x2 - n1 x1) / (n2 - n1)``.

    Independent estimates: ``SE(c) = sqrt(n2^2 se2^2 + n1^2 se1^2) / (n2 - n1)``.
    """
    if not n2 > n1 > 0:
        raise ValueError(f"widths: need 0 < n1 < n2, got n1 = {n1}, n2 = {n2}")
    d = n2 - n1
    return (n2 * x2 - n1 * x1) / d, math.hypot(n2 * se2, n1 * se1) / d
