"""First-order kernel adaptation at finite width (theory-notes Sec. 9.3).

The posterior over the hidden parameters ``Theta`` (readout integrated out) is
``p(Theta | Y) ∝ p(Theta) w(Theta)`` with ``w = prod_o N(Y_o | 0, K_DD + kappa I)``
and ``K = Caux^(A+1,A+1) / gamma_0``.  Write ``l(K) = ln w``, ``Kbar`` the
mean-field readout kernel over ``gamma_0``, ``M = (Kbar_DD + kappa I)^-1`` and
``G = dl/dK|_Kbar = (1/2) (M Y Y^T M - n_out M)`` (ordered pairs).  Expanding
``w`` to first order in ``dK = K - Kbar = O(n^-1/2)``, for any observable ``O``::

    Delta[O] := E_post[O] - E_prior[O] = sum_{gamma, delta in D} Cov_prior(O, K_{gamma delta}) G_{gamma delta} + O(n^-2)

with the ``O(1/n)`` prior covariance of :func:`theory.nlo_multi.nlo_cross_covariance`.
This module evaluates it for

* every ``Caux^(a,b)_{alpha beta}`` and ``Chat^(a,b)_{alpha beta}``, ``a, b = 0..A+1``,
  all patterns (cross-time RNN and cross-layer DNN entries included);
* the per-realisation posterior-mean predictor ``m(Theta) = K_{.D} (K_DD + kappa I)^-1 Y``
  on every pattern (a function of ``K``, so ``Delta[m] = dm/dK . Delta[K]``,
  the delta method: ``dm = dK_{.D} M Y - K_{.D} M dK_DD M Y``);
* the training and test errors ``e = mean_{alpha, o} (m_{alpha o} - Y_{alpha o})^2``
  over the training / test patterns: ``Delta[e] = 2 mean((m(Kbar) - Y) Delta[m])``.

``Delta`` is what importance weighting of prior samples (theory-notes Sec. 9.2)
measures as weighted minus unweighted mean of the same observable.  The
posterior mean itself is ``E_prior[O] + Delta[O]``; ``E_prior`` differs from the
mean-field value by an ``O(1/n)`` mean correction that is *not* computed here.

Validity: first order in ``dK G``, i.e. ``n >> P_D`` and ``gamma_0 = O(1)``
(``Var(dK G)`` small: the reported ``expansion_parameter`` is
``sqrt(Var_prior[sum G dK])``, which should be well below 1).  ``Delta = O(1/n)``
and vanishes as ``kappa -> infinity`` (``G -> 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .gaussian import DEFAULT_QUAD_TOL
from .gp import _index_array
from .kernel import _check_prior, kernel
from .nlo import _check_width
from .nlo_multi import DEFAULT_POINTS, DEFAULT_REPLICATES, nlo_cross_covariance, readout_targets
from .prior import check_inputs, check_nonneg_scalar


@dataclass
class Adaptation:
    """Predicted first-order posterior shifts ``Delta = E_post - E_prior`` (all float64).

    Attributes
    ----------
    caux, chat : ndarray, shape (A+2, A+2, P, P)
        ``Delta[Caux^(a,b)_{alpha beta}]``, ``Delta[Chat^(a,b)_{alpha beta}]``.
    caux_se, chat_se : ndarray, shape (A+2, A+2, P, P)
        Their numerical (RQMC) standard errors per entry; zero for the exact linear case.
        For a combination of entries use :meth:`combination_se` (the entries' errors are
        correlated).
    predictor : ndarray, shape (P, n_out)
        ``Delta[m_alpha]`` of the posterior-mean predictor, all patterns.
    predictor_se : ndarray, shape (P, n_out)
    predictor_prior : ndarray, shape (P, n_out)
        ``m(Kbar)``: the NNGP prediction (Eq. 37 with ``kappa``).
    predictor_fluctuation : ndarray, shape (P, n_out)
        ``(1/2) E_prior[d^2 m]``: the O(1/n) prior-mean shift of ``m`` from the
        kernel fluctuations, so that ``E_post[m] = m(Kbar) + predictor_fluctuation
        + predictor + O(n^-2)`` when ``E_prior[K] = Kbar`` (exact for linear
        networks without readout nonlinearity; otherwise the O(1/n) mean shift
        of ``K``, not computed here, adds ``dm/dK . E[dK]``).
    train_error, test_error : float
        ``Delta`` of the mean squared error on the training / test patterns
        (``nan`` for the test error without test patterns).
    train_error_se, test_error_se : float
    train_error_prior, test_error_prior : float
        The errors of ``m(Kbar)``.
    G : ndarray, shape (P_D, P_D)
        ``dl/dK`` at ``Kbar`` (training patterns).
    kernel : ndarray, shape (P, P)
        ``Kbar = C^(A+1,A+1) / gamma_0``.
    expansion_parameter : float
        ``sqrt(Var_prior[sum G dK])``; the first-order expansion needs it << 1.
    train, test : ndarray of int
        Training and test pattern indices.
    width, kappa, gamma0 : float
    method : str
        How the four-point moments were evaluated (``isserlis`` or ``rqmc``).
    caux_replicates, chat_replicates : ndarray, shape (R_q, A+2, A+2, P, P), or None
        ``caux`` and ``chat`` per RQMC replicate (``R_q = 1``: exact).
    predictor_replicates : ndarray, shape (R_q, P, n_out), or None
    """

    caux: np.ndarray
    chat: np.ndarray
    caux_se: np.ndarray
    chat_se: np.ndarray
    predictor: np.ndarray
    predictor_se: np.ndarray
    predictor_prior: np.ndarray
    predictor_fluctuation: np.ndarray
    train_error: float
    train_error_se: float
    train_error_prior: float
    test_error: float
    test_error_se: float
    test_error_prior: float
    G: np.ndarray
    kernel: np.ndarray
    expansion_parameter: float
    train: np.ndarray
    test: np.ndarray
    width: float
    kappa: float
    gamma0: float
    method: str
    caux_replicates: np.ndarray | None = None
    chat_replicates: np.ndarray | None = None
    predictor_replicates: np.ndarray | None = None

    def combination(self, field: str, combine) -> tuple[float, float]:
        """A linear combination of one shift array and its RQMC standard error.

        Parameters
        ----------
        field : {"caux", "chat", "predictor"}
        combine : callable
            As in :meth:`combination_se`.

        Returns
        -------
        value, se : float
            ``combine(getattr(self, field))`` and :meth:`combination_se`.
        """
        se = self.combination_se(field, combine)
        return float(combine(getattr(self, field))), se

    def combination_se(self, field: str, combine) -> float:
        """RQMC standard error of a linear combination of one shift array.

        The entries of ``caux``, ``chat`` and ``predictor`` come from the same
        RQMC replicates, so their errors are correlated: the SE of a combination
        is taken over the replicates of the combination itself, not bounded
        entry by entry.

        Parameters
        ----------
        field : {"caux", "chat", "predictor"}
        combine : callable
            Linear map from one array of that field's shape (``(A+2, A+2, P, P)``,
            or ``(P, n_out)`` for the predictor) to a float.

        Returns
        -------
        float
            ``std over replicates / sqrt(replicates)``; 0 when exact (one replicate or none stored).
        """
        if field not in ("caux", "chat", "predictor"):
            raise ValueError(f"field: must be 'caux', 'chat' or 'predictor', got {field!r}")
        reps = getattr(self, field + "_replicates")
        if reps is None or reps.shape[0] < 2:
            return 0.0
        values = np.array([float(combine(x)) for x in reps])
        return float(values.std(ddof=1) / np.sqrt(values.size))


def _targets(y, P: int) -> np.ndarray:
    Y = np.asarray(y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != P or Y.shape[1] < 1:
        raise ValueError(f"y: must have shape ({P},) or ({P}, n_out) (one row per pattern of X), got {np.shape(y)}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("y: must be finite")
    return Y


def check_output_scale(gamma0) -> float:
    """Validate the output scale ``gamma_0 > 0`` (``ValueError`` naming ``gamma0``)."""
    g = check_nonneg_scalar("gamma0", gamma0)
    if g <= 0:
        raise ValueError(f"gamma0: must be > 0, got {gamma0!r}")
    return g


def readout_gradient(K_DD, Y_D, kappa: float) -> np.ndarray:
    """``G = dl/dK = (1/2)(M Y Y^T M - n_out M)``, ``M = (K_DD + kappa I)^-1`` (ordered pairs).

    Parameters
    ----------
    K_DD : ndarray of float64, shape (P_D, P_D)
    Y_D : ndarray of float64, shape (P_D, n_out)
    kappa : float
        ``>= 0``; ``inf`` gives ``G = 0``.

    Returns
    -------
    ndarray of float64, shape (P_D, P_D)

    Raises
    ------
    ValueError
        ``K_DD + kappa I`` is not positive definite.
    """
    PD = K_DD.shape[0]
    if np.isinf(kappa):
        return np.zeros((PD, PD))
    try:
        cf = scipy.linalg.cho_factor(K_DD + kappa * np.eye(PD), lower=True)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"kappa: K_DD + kappa I is not positive definite (kappa = {kappa:g}); "
                         "use kappa > 0 or distinct training patterns") from err
    M = scipy.linalg.cho_solve(cf, np.eye(PD))
    MY = M @ Y_D
    G = 0.5 * (MY @ MY.T - Y_D.shape[1] * M)
    return 0.5 * (G + G.T)


def adaptation(prior, X, y, train, kappa, width, gamma0: float = 1.0, method: str = "auto",
        points: int = DEFAULT_POINTS, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
        quad_tol: float = DEFAULT_QUAD_TOL, _drop_cross_layer: bool = False) -> Adaptation:
    """First-order posterior shift of kernels, predictor and errors at width ``n`` (module docstring).

    Parameters
    ----------
    prior : Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        All patterns: training and test.
    y : array_like, shape (P,) or (P, n_out)
        Targets of all patterns (test rows are used only for the test error).
    train : array_like of int, shape (P_D,)
        Training pattern indices; the others are test patterns.
    kappa : float
        Observation noise ``>= 0`` (``inf``: no data term, zero adaptation).
    width : float
        Reference width ``n`` (>= 1).
    gamma0 : float, optional
        Output scale ``gamma_0 > 0`` (``K = Caux^(A+1,A+1) / gamma_0``).
    method, points, replicates, seed, quad_tol
        Evaluation of the four-point moments, see
        :func:`theory.nlo_multi.nlo_cross_covariance`.

    Returns
    -------
    Adaptation

    Raises
    ------
    ValueError
        Bad arguments (the message names the argument).
    """
    prior = _check_prior(prior)
    seq = check_inputs(prior, X)
    P = seq.shape[0]
    Y = _targets(y, P)
    tr = _index_array("train", train, P)
    te = np.setdiff1d(np.arange(P), tr)
    kappa_f = float(kappa) if isinstance(kappa, (int, float, np.integer, np.floating)) and not isinstance(
        kappa, bool) else None
    if kappa_f is None or np.isnan(kappa_f) or kappa_f < 0:
        raise ValueError(f"kappa: must be a number >= 0 (or inf), got {kappa!r}")
    gamma0 = check_output_scale(gamma0)
    n = _check_width(width)
    cov = nlo_cross_covariance(prior, seq, n, targets=readout_targets(prior, tr), method=method, points=points,
                               replicates=replicates, seed=seed, quad_tol=quad_tol,
                               _drop_cross_layer=_drop_cross_layer)
    A1 = prior.depth + 1
    K = kernel(prior, seq, None, quad_tol)[A1, A1] / gamma0
    G = readout_gradient(K[np.ix_(tr, tr)], Y[tr], kappa_f)
    g = G.ravel() / gamma0  # Cov(O, K) = Cov(O, Caux^(A+1,A+1)) / gamma0

    def contract(arr):
        return arr @ g

    caux = contract(cov.caux)
    chat = contract(cov.chat)
    if cov.caux_replicates is not None:
        caux_r = contract(cov.caux_replicates)
        chat_r = contract(cov.chat_replicates)
    else:
        caux_r = chat_r = caux[None]
    R = caux_r.shape[0]

    def se(reps):
        return reps.std(axis=0, ddof=1) / np.sqrt(R) if R > 1 else np.zeros(reps.shape[1:])

    # predictor m = K_{.D} M Y, its shift by the delta method (per replicate, for the error)
    PD = tr.shape[0]
    if np.isinf(kappa_f):
        MY = np.zeros((PD, Y.shape[1]))
        KM = np.zeros((P, PD))
    else:
        Kk = K[np.ix_(tr, tr)] + kappa_f * np.eye(PD)
        MY = np.linalg.solve(Kk, Y[tr])
        KM = np.linalg.solve(Kk, K[tr, :]).T  # K_{.D} M, shape (P, P_D)
    m0 = K[:, tr] @ MY

    def dm(dcaux_readout):
        dK = dcaux_readout / gamma0  # (..., P, P)
        return dK[..., :, tr] @ MY - KM @ dK[..., tr, :][..., :, tr] @ MY

    pred_r = dm(caux_r[:, A1, A1])
    pred = dm(caux[A1, A1])
    # (1/2) E[d^2 m] = -E[dK_{.D} M dK_DD] M Y + K_{.D} M E[dK_DD M dK_DD] M Y
    if np.isinf(kappa_f):
        fluct = np.zeros_like(m0)
    else:
        M = np.linalg.inv(Kk)
        S = cov.caux[A1, A1][:, tr].reshape(P, PD, PD, PD) / gamma0**2  # Cov(K_{rho, j}, K_{k, b}), j, k, b in D
        T1 = np.einsum("jk,rjkb->rb", M, S)
        fluct = -T1 @ MY + KM @ T1[tr] @ MY

    def err(idx, reps_pred, point):
        if idx.size == 0:
            return np.nan, np.nan, np.nan
        resid = m0[idx] - Y[idx]
        e0 = float(np.mean(resid**2))
        d = float(2.0 * np.mean(resid * point[idx]))
        dr = 2.0 * np.mean(resid[None] * reps_pred[:, idx], axis=(1, 2))
        return d, float(se(dr)), e0

    tr_d, tr_se, tr0 = err(tr, pred_r, pred)
    te_d, te_se, te0 = err(te, pred_r, pred)
    # size of the first-order term: Var[sum G dK] = sum G Cov(K, K) G
    var_lin = float(g @ cov.caux[A1, A1][np.ix_(tr, tr)].reshape(PD * PD, PD * PD) @ g) if PD else 0.0
    return Adaptation(
        caux=caux, chat=chat, caux_se=se(caux_r), chat_se=se(chat_r),
        predictor=pred, predictor_se=se(pred_r), predictor_prior=m0, predictor_fluctuation=fluct,
        train_error=tr_d, train_error_se=tr_se, train_error_prior=tr0,
        test_error=te_d, test_error_se=te_se, test_error_prior=te0,
        G=G, kernel=K, expansion_parameter=float(np.sqrt(max(var_lin, 0.0))),
        train=tr, test=te, width=n, kappa=kappa_f, gamma0=gamma0, method=cov.method,
        caux_replicates=caux_r, chat_replicates=chat_r, predictor_replicates=pred_r,
    )

