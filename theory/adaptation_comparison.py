"""Adaptation theory vs importance-weighted prior Monte Carlo: the numerics of the ``posterior`` workflow kind.

The posterior shift ``Delta[O] = E_post[O] - E_prior[O]`` of an observable
(theory-notes Sec. 9.2, 9.3) is measured on prior realizations ``O_r`` with
importance weights ``w_r = prod_o N(Y_o | 0, K_DD + kappa I)``
(:func:`mcsim.importance_weight`) and predicted to first order by
:func:`theory.adaptation`.  ``Delta = O(1/n)``, so the figure shows ``n Delta``
against ``n``: it converges to the (width-independent) first-order value as
``n Delta(n) = c + d / n + O(n^-2)``.

Scalar observables (:data:`SHIFT_OBSERVABLES`), linear in the kernels (the
predictor: through ``m``), with
``u = Y_D / |Y_D|`` the unit target direction on the training patterns and
``v = Y_T / |Y_T|`` on the test patterns (output 0):

``readout``    ``u^T Caux^(A+1,A+1)_DD u``   (the readout kernel, times ``gamma0``)
``hidden``     ``u^T Chat^(h,h)_DD u``        (a hidden layer / time step ``h``)
``predictor``  ``v^T m_T``                     (per-realization posterior-mean predictor
                                              ``m = K_.D (K_DD + kappa I)^-1 Y``)

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

TASKS = ("linear_teacher", "xor")
"""Tasks of the ``posterior*`` experiment kinds (:func:`make_targets`)."""


def make_targets(X, task: str, seed: int) -> np.ndarray:
    """Targets of a task on all patterns.

    ``linear_teacher``: ``y = X w / sqrt(n_in)``, ``w ~ N(0, I)`` drawn with
    ``numpy.random.default_rng(seed)``.
    ``xor``: ``y = sign(x_0) sign(x_1)``, the XOR of the signs of the first two
    input components: the target function of :func:`mcsim.datasets.make_dataset`'s
    ``xor`` set (``x_0 x_1`` of the corner), here on the experiment's Gaussian
    inputs (not learnable by a linear function: its best linear fit is 0 in expectation).
    The seed is not used.

    Parameters
    ----------
    X : array_like of float64, shape (P, n_in)
    task : {"linear_teacher", "xor"}
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
    if task == "xor":
        if X.shape[1] < 2:
            raise ValueError(f"X: the xor task needs n_in >= 2 input components, got {X.shape[1]}")
        return np.sign(X[:, 0]) * np.sign(X[:, 1])
    w = np.random.default_rng(int(seed)).standard_normal(X.shape[1])
    return X @ w / math.sqrt(X.shape[1])


def unit_direction(y, idx) -> np.ndarray:
    """``y[idx] / |y[idx]|`` (float64, shape (len(idx),)); ``ValueError`` if it is zero."""
    v = np.asarray(y, dtype=float)[np.asarray(idx, dtype=np.int64)]
    norm = float(np.linalg.norm(v))
    if not norm > 0:
        raise ValueError("y: the targets on the selected patterns are all zero (no target direction)")
    return v / norm


def _weighted_mean_terms(log_weights, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked inputs, self-normalised weights and weighted mean of :func:`weighted_shift` / :func:`weighted_mean`.

    Parameters
    ----------
    log_weights : array_like of float64, shape (R,)
        Log importance weights (finite), R >= 2.
    values : array_like of float64, shape (R, ...)

    Returns
    -------
    O : ndarray of float64, shape (R, ...)
        ``values`` as an array.
    wt : ndarray of float64, shape (R,) + (1,) * (O.ndim - 1)
        ``w_r / sum w``, broadcastable against ``O``.
    post : ndarray of float64, shape values.shape[1:]
        ``sum_r wt_r O_r``.

    Raises
    ------
    ValueError
        Shapes do not match, R < 2, or a log weight is not finite.
    """
    lw = np.asarray(log_weights, dtype=float)
    O = np.asarray(values, dtype=float)
    if lw.ndim != 1 or O.shape[:1] != lw.shape or lw.size < 2:
        raise ValueError(f"values: need shape (R, ...) with R = {lw.shape} log weights, R >= 2; got {O.shape}")
    if not np.all(np.isfinite(lw)):
        raise ValueError("log_weights: must be finite (drop overflowed realizations first)")
    wt = np.exp(lw - lw.max())
    wt = (wt / wt.sum()).reshape((lw.size,) + (1,) * (O.ndim - 1))
    return O, wt, (wt * O).sum(axis=0)


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
    O, wt, post = _weighted_mean_terms(log_weights, values)
    R = O.shape[0]
    prior = O.mean(axis=0)
    psi = R * wt * (O - post) - (O - prior)
    return post - prior, psi.std(axis=0, ddof=1) / math.sqrt(R)


def weighted_mean(log_weights, values) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised importance-weighted mean with its delta-method SE.

    ``E_post_hat = sum_r wt_r O_r``; SE ``= std_r(psi_r) / sqrt(R)`` with
    ``psi_r = R wt_r (O_r - E_post_hat)`` (as :func:`weighted_shift`, without
    the prior-mean term).

    Parameters
    ----------
    log_weights : array_like of float64, shape (R,)
    values : array_like of float64, shape (R, ...)

    Returns
    -------
    mean, se : ndarray of float64, shape values.shape[1:]
    """
    O, wt, post = _weighted_mean_terms(log_weights, values)
    R = O.shape[0]
    return post, (R * wt * (O - post)).std(axis=0, ddof=1) / math.sqrt(R)


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
        ``ess``, ``realizations`` (used), ``overflowed``, ``used`` (bool mask (R,) of the
        non-overflowed realizations) and their ``log_weights`` (float64, (realizations,)).
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
    return shifts, {"ess": float(w.diagnostics["ess"]), "realizations": int(ok.sum()), "overflowed": int((~ok).sum()),
                    "used": ok, "log_weights": lw}


def predicted_scaled_shifts(adapt, y, hidden_layer: int) -> tuple[dict, float]:
    """First-order theory ``n Delta`` (width independent) of :data:`SHIFT_OBSERVABLES`.

    Parameters
    ----------
    adapt : theory.adaptation.Adaptation
        :func:`theory.adaptation` of the point at width 1 (its shifts are ``n Delta``).
    y : ndarray of float64, shape (P,)
    hidden_layer : int
        As in :func:`scalar_observables`.

    Returns
    -------
    scaled : dict of str -> (float, float)
        ``(n Delta, SE)``; the SE is the RQMC standard error of each combination over the replicates
        (:meth:`theory.adaptation.Adaptation.combination`; 0 for linear networks).
    expansion_parameter : float
        ``sqrt(n)`` times :attr:`theory.adaptation.Adaptation.expansion_parameter` at width n
        (divide by ``sqrt(n)``).
    """
    r, train, test = adapt, adapt.train, adapt.test
    u, v = unit_direction(y, train), unit_direction(y, test)
    D, A1 = np.ix_(train, train), r.chat.shape[0] - 1

    def readout(x):
        return u @ x[A1, A1][D] @ u

    def hidden(x):
        return u @ x[hidden_layer, hidden_layer][D] @ u

    def predictor(m):
        return m[test, 0] @ v

    out = {"readout": r.combination("caux", readout), "hidden": r.combination("chat", hidden),
           "predictor": r.combination("predictor", predictor)}
    return out, float(r.expansion_parameter)


def richardson(n1: float, x1: float, se1: float, n2: float, x2: float, se2: float) -> tuple[float, float]:
    """Extrapolate ``x(n) = c + d / n`` from two widths ``n1 < n2``: ``c = (n2 x2 - n1 x1) / (n2 - n1)``.

    Independent estimates: ``SE(c) = sqrt(n2^2 se2^2 + n1^2 se1^2) / (n2 - n1)``.
    """
    if not n2 > n1 > 0:
        raise ValueError(f"widths: need 0 < n1 < n2, got n1 = {n1}, n2 = {n2}")
    d = n2 - n1
    return (n2 * x2 - n1 * x1) / d, math.hypot(n2 * se2, n1 * se1) / d


# --------------------------------------------------------------------------- adaptation per layer
def kernel_alignment(K, y) -> float:
    """Centred kernel alignment ``CKA(K, y y^T) = <HKH, H yy^T H> / (|HKH| |H yy^T H|)`` (Frobenius).

    Parameters
    ----------
    K : ndarray of float64, shape (P_D, P_D)
    y : ndarray of float64, shape (P_D,)

    Returns
    -------
    float
        In [-1, 1]; ``nan`` if the centred kernel or target is zero.
    """
    K, y = np.asarray(K, float), np.asarray(y, float)
    yc = y - y.mean()
    Kc = K - K.mean(axis=0) - K.mean(axis=1)[:, None] + K.mean()
    nk, ny = np.linalg.norm(Kc), float(yc @ yc)
    return float(yc @ Kc @ yc / (nk * ny)) if nk > 0 and ny > 0 else math.nan


def alignment_gradient(K, y) -> np.ndarray:
    """``d CKA(K, y y^T) / dK`` at ``K`` (float64, shape (P_D, P_D)), for the first-order shift of the alignment.

    ``CKA = <Kc, T> / (|Kc| |T|)`` with ``Kc = HKH``, ``T = H y y^T H``:
    ``dCKA/dK = H (T / (|Kc| |T|) - CKA Kc / |Kc|^2) H``.
    """
    K, y = np.asarray(K, float), np.asarray(y, float)
    P = y.size
    H = np.eye(P) - 1.0 / P
    yc = H @ y
    T = np.outer(yc, yc)
    Kc = H @ K @ H
    nk, nt = np.linalg.norm(Kc), np.linalg.norm(T)
    if not (nk > 0 and nt > 0):
        raise ValueError("K: the centred kernel (or target) is zero: the alignment has no gradient")
    cka = float(np.sum(Kc * T) / (nk * nt))
    return H @ (T / (nk * nt) - cka * Kc / nk**2) @ H


def layer_kernels(caux_readout, chat_diag) -> np.ndarray:
    """Per-realization kernels ``C^(a)`` of layers ``a = 0..A+1`` (hidden: Chat^(a,a); readout: Caux^(A+1,A+1)).

    Parameters
    ----------
    caux_readout : ndarray, shape (R, P, P)
    chat_diag : ndarray, shape (R, A+2, P, P)

    Returns
    -------
    ndarray of float64, shape (R, A+2, P, P)
    """
    out = np.array(chat_diag, dtype=float, copy=True)
    out[:, -1] = caux_readout
    return out


def alignment_shifts(samples: dict, mean_field, y, train, kappa: float, gamma0: float,
                     log_weights) -> list[dict]:
    """Alignment of each layer's kernel with the targets: prior and first-order posterior shift, MC.

    The shift of ``CKA(E[C^(a)]_DD, y_D y_D^T)`` is taken to first order along
    the gradient at the mean-field kernel ``Kbar^(a)``: the linear observable
    ``<dCKA/dK (Kbar^(a)), C^(a)_DD>`` per realization, whose weighted minus
    unweighted mean (:func:`weighted_shift`) estimates ``Delta[CKA^(a)]``.

    Parameters
    ----------
    samples : dict
        ``caux_readout`` (R, P, P) and ``chat_diag`` (R, A+2, P, P) of the used
        (non-overflowed) realizations.
    mean_field : ndarray, shape (A+2, A+2, P, P) or (A+2, P, P)
        Mean-field kernel (theory file ``kernel``; the diagonal blocks are used).
    y, train, kappa, gamma0
        As in :func:`scalar_observables`.
    log_weights : ndarray, shape (R,)

    Returns
    -------
    list of dict
        Per layer ``a = 1..A+1``: ``a``, ``prior_mf`` (CKA of Kbar), ``prior_mc``
        (CKA of the MC prior-mean kernel), ``shift``, ``shift_se`` (MC), and
        ``gradient`` (P_D, P_D) for the theory (:func:`predicted_alignment_shifts`).
    """
    mf = np.asarray(mean_field, float)
    if mf.ndim == 4:
        mf = np.einsum("aapq->apq", mf)
    train = np.sort(np.asarray(train, dtype=np.int64))
    D = np.ix_(train, train)
    yD = np.asarray(y, float)[train]
    C = layer_kernels(samples["caux_readout"], samples["chat_diag"])[:, :, train][:, :, :, train]
    out = []
    for a in range(1, mf.shape[0]):
        g = alignment_gradient(mf[a][D], yD)
        s, se = weighted_shift(log_weights, np.einsum("pq,rpq->r", g, C[:, a]))
        out.append({"a": a, "prior_mf": kernel_alignment(mf[a][D], yD),
                    "prior_mc": kernel_alignment(C[:, a].mean(axis=0), yD), "shift": float(s),
                    "shift_se": float(se), "gradient": g})
    return out


def predicted_alignment_shifts(adapt, gradients, train) -> list[tuple[float, float]]:
    """Theory ``n Delta[CKA^(a)] = <dCKA/dK, n Delta[C^(a)]>`` for ``a = 1..A+1``.

    Parameters
    ----------
    adapt : theory.adaptation.Adaptation
        At width 1 (so that its shifts are ``n Delta``).
    gradients : list of ndarray, shape (P_D, P_D)
        :func:`alignment_gradient` per layer ``a = 1..A+1`` (as :func:`alignment_shifts` returns).
    train : ndarray of int

    Returns
    -------
    list of (float, float)
        ``(n Delta, RQMC SE)`` per layer (:meth:`theory.adaptation.Adaptation.combination`).
    """
    train = np.sort(np.asarray(train, dtype=np.int64))
    D = np.ix_(train, train)
    A1 = adapt.chat.shape[0] - 1
    out = []
    for a, g in enumerate(gradients, start=1):
        field = "caux" if a == A1 else "chat"

        def shift(x, a=a, g=g):
            return np.sum(g * x[a, a][D])

        out.append(adapt.combination(field, shift))
    return out


# --------------------------------------------------------------------------- importance weights without raising
def importance_log_weights(samples: dict, y, train, kappa: float,
                           gamma0: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Log importance weights of the non-overflowed prior realizations and their ESS (no ESS check).

    Parameters
    ----------
    samples : dict of str -> ndarray
        ``caux_readout`` (R, P, P), optional ``overflow`` (R,) bool.
    y : ndarray of float64, shape (P,)
    train : ndarray of int, shape (P_D,)
    kappa, gamma0 : float

    Returns
    -------
    log_weights : ndarray of float64, shape (R_used,)
    used : ndarray of bool, shape (R,)
        Mask of the non-overflowed realizations.
    ess : float
        ``(sum w)^2 / sum w^2``; the caller decides whether it suffices.
    """
    import warnings

    from mcsim import importance_weight

    cr = np.asarray(samples["caux_readout"])
    ok = ~np.asarray(samples.get("overflow", np.zeros(len(cr), bool)), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the ESS is returned and checked by the caller
        w = importance_weight({"caux_readout": cr[ok]}, y, np.sort(np.asarray(train, np.int64)), kappa, gamma0,
                              observables=("predictor",), min_ess=0.0, on_collapse="warn")
    return w.draws["log_weights"], ok, float(w.diagnostics["ess"])


# --------------------------------------------------------------------------- cross-time / cross-layer kernels
def cross_pairs(depth: int) -> list[tuple[int, int]]:
    """Hidden layer / time-step pairs ``(a, b)``, ``1 <= a < b <= A`` (the off-diagonal Chat blocks compared)."""
    A = int(depth)
    if A < 2:
        raise ValueError(f"depth: cross-time kernels need A >= 2 hidden layers / steps, got {depth}")
    return [(a, b) for a in range(1, A + 1) for b in range(a + 1, A + 1)]


def cross_observables(chat, y, train, pairs) -> dict:
    """Per-realization ``u^T Chat^(a,b)_DD u`` (``u``: unit target direction on the training patterns).

    Parameters
    ----------
    chat : ndarray of float64, shape (R, A+2, A+2, P, P)
    y : ndarray of float64, shape (P,)
    train : ndarray of int, shape (P_D,)
    pairs : list of (int, int)

    Returns
    -------
    dict of (a, b) -> ndarray of float64, shape (R,)
    """
    chat = np.asarray(chat, float)
    if chat.ndim != 5 or chat.shape[1] != chat.shape[2]:
        raise ValueError(f"chat: must have shape (R, A+2, A+2, P, P), got {chat.shape}")
    train = np.sort(np.asarray(train, dtype=np.int64))
    u = unit_direction(y, train)
    D = (slice(None),) + np.ix_(train, train)
    out = {}
    for a, b in pairs:
        if not (1 <= a < b <= chat.shape[1] - 2):
            raise ValueError(f"pairs: ({a}, {b}) is not a hidden pair 1 <= a < b <= {chat.shape[1] - 2}")
        out[(a, b)] = np.einsum("p,rpq,q->r", u, chat[:, a, b][D], u)
    return out


def measured_cross_shifts(samples: dict, y, train, kappa: float, gamma0s, pairs, min_ess: float) -> list[dict]:
    """Posterior shift of ``u^T Chat^(a,b)_DD u`` at several output scales, from the same prior realizations.

    The prior realizations do not depend on ``gamma0``; only the importance
    weights ``prod_o N(Y_o | 0, Caux^(A+1,A+1)_DD / gamma0 + kappa I)`` do, so
    one campaign serves the whole ``gamma0`` axis.

    Parameters
    ----------
    samples : dict
        ``caux_readout`` (R, P, P), ``chat`` (R, A+2, A+2, P, P), optional ``overflow`` (R,).
    y, train, kappa
        As in :func:`scalar_observables`.
    gamma0s : sequence of float
    pairs : list of (int, int)
    min_ess : float
        Below this ESS a ``gamma0`` is reported (``valid = False``) with ``nan`` shifts.

    Returns
    -------
    list of dict, one per gamma0
        ``gamma0``, ``ess``, ``valid``, ``realizations``, ``overflowed``,
        ``prior`` ({pair: MC prior mean}) and ``shifts`` ({pair: (Delta, SE)}).
    """
    chat = np.asarray(samples["chat"])
    out = []
    for g0 in gamma0s:
        lw, ok, ess = importance_log_weights(samples, y, train, kappa, g0)
        values = cross_observables(chat[ok], y, train, pairs)
        valid = ess >= min_ess
        shifts = {p: (tuple(float(x) for x in weighted_shift(lw, v)) if valid else (math.nan, math.nan))
                  for p, v in values.items()}
        out.append({"gamma0": float(g0), "ess": ess, "valid": bool(valid), "realizations": int(ok.sum()),
                    "overflowed": int((~ok).sum()), "prior": {p: float(v.mean()) for p, v in values.items()},
                    "shifts": shifts})
    return out


def predicted_cross_shifts(adapt, y, pairs) -> dict:
    """First-order theory ``n Delta[u^T Chat^(a,b)_DD u]`` (width-1 :class:`theory.adaptation.Adaptation`).

    Returns
    -------
    dict of (a, b) -> (float, float)
        ``(n Delta, RQMC SE)`` (:meth:`theory.adaptation.Adaptation.combination`).
    """
    train = adapt.train
    u = unit_direction(y, train)
    D = np.ix_(train, train)
    out = {}
    for a, b in pairs:
        def shift(x, a=a, b=b):
            return u @ x[a, b][D] @ u

        out[(a, b)] = adapt.combination("chat", shift)
    return out


# --------------------------------------------------------------------------- generalisation
def posterior_test_error(samples: dict, y, train, kappa: float, gamma0: float) -> dict:
    """Test error of the posterior-mean predictor from importance-weighted prior realizations.

    ``E_post[m] = sum_r wt_r m_r`` with the per-realization predictor
    ``m_r = K_r,.D (K_r,DD + kappa I)^-1 Y_D`` (:func:`mcsim.readout_posterior.conditional_mean`);
    ``err = mean_t (E_post[m]_t - y_t)^2`` over the test patterns ``t``.  SE by the
    delta method: the SE (:func:`weighted_mean`) of the linear observable
    ``(2 / T) sum_t (E_post[m]_t - y_t) m_r,t``.

    Parameters
    ----------
    samples : dict
        ``caux_readout`` (R, P, P), optional ``overflow`` (R,).
    y : ndarray of float64, shape (P,)
    train : ndarray of int, shape (P_D,)
        The other patterns are test patterns (at least one).
    kappa, gamma0 : float

    Returns
    -------
    dict
        ``error``, ``error_se`` (posterior mean predictor), ``error_prior_mc``
        (the prior-mean predictor of the same realizations), ``ess``,
        ``realizations``, ``overflowed``.
    """
    from mcsim.readout_posterior import conditional_mean

    y = np.asarray(y, float)
    train = np.sort(np.asarray(train, dtype=np.int64))
    test = np.setdiff1d(np.arange(y.size), train)
    if test.size == 0:
        raise ValueError("train: the test error needs at least one test pattern")
    lw, ok, ess = importance_log_weights(samples, y, train, kappa, gamma0)
    m = conditional_mean(np.asarray(samples["caux_readout"])[ok], y[train][:, None], train, kappa, gamma0)[:, test, 0]
    post, _ = weighted_mean(lw, m)
    resid = post - y[test]
    _, se = weighted_mean(lw, m @ (2.0 * resid / test.size))
    return {"error": float(np.mean(resid**2)), "error_se": float(se),
            "error_prior_mc": float(np.mean((m.mean(axis=0) - y[test]) ** 2)), "ess": ess,
            "realizations": int(ok.sum()), "overflowed": int((~ok).sum())}


def gp_test_error(readout_kernel, y, train, kappa: float, gamma0: float) -> float:
    """Test error of the NNGP prediction ``theory.gp_predict(Kbar / gamma0, y_D, noise=kappa)``.

    Parameters
    ----------
    readout_kernel : ndarray of float64, shape (P, P)
        Mean-field ``C^(A+1,A+1)`` on all patterns.
    y : ndarray of float64, shape (P,)
    train : ndarray of int, shape (P_D,)
    kappa, gamma0 : float

    Returns
    -------
    float
    """
    from .gp import gp_predict

    y = np.asarray(y, float)
    train = np.sort(np.asarray(train, dtype=np.int64))
    test = np.setdiff1d(np.arange(y.size), train)
    mean, _ = gp_predict(np.asarray(readout_kernel, float) / gamma0, y[train], train, test, noise=kappa)
    return float(np.mean((mean - y[test]) ** 2))


def predicted_error_shift(adapt, y) -> tuple[float, float]:
    """First-order theory of ``n (err_post - err_GP)`` on the test patterns.

    ``E_post[m] = m(Kbar) + (predictor_fluctuation + predictor) / n + O(n^-2)``, so
    ``n (err_post - err_GP) = (2 / T) sum_t (m(Kbar)_t - y_t) (fluctuation + predictor)_t``.
    Complete at O(1/n) when ``E_prior[K] = Kbar`` (linear networks); otherwise the
    O(1/n) prior-mean shift of the kernel is missing
    (:class:`theory.adaptation.Adaptation`).

    Parameters
    ----------
    adapt : theory.adaptation.Adaptation
        At width 1 (its shifts are ``n Delta``).
    y : ndarray of float64, shape (P,)
        Targets of all patterns (output 0).

    Returns
    -------
    value, se : float
        ``se``: the RQMC error of the posterior-shift part (0 for linear networks).
    """
    te = adapt.test
    if te.size == 0:
        raise ValueError("adapt: the test error needs at least one test pattern")
    resid = adapt.predictor_prior[te, 0] - np.asarray(y, float)[te]
    shift = adapt.predictor_fluctuation[te, 0] + adapt.predictor[te, 0]
    return float(2.0 * np.mean(resid * shift)), float(adapt.test_error_se)
