"""The paper's quantitative claims, evaluated on the comparison tables of a run.

:data:`CLAIMS` is the one place where each claim, its statistic and its pass
criterion are declared; :data:`ALPHA` is the significance level of every test.
Criteria are built from standard errors only (never tuned to a run):

- *agreement* claims ("X equals Y") fail when some deviation is significant at
  family-wise level ALPHA (two-sided, Bonferroni over the m rows tested);
- *effect* claims ("X is larger / decreases") pass only when the effect is
  significant at level ALPHA (one-sided); when the claim is "for every group"
  each group must pass at level ALPHA (intersection-union test).

Standard errors come from the tables: SEM over realizations (Student t with
R - 1 degrees of freedom), jackknife over realizations (normal), SEM or
jackknife over input sets (Student t with S - 1 degrees of freedom), and the
U-statistic SE of each MMD^2 estimate over realizations (normal; claims 4a, 4b
are tested given the input sets).

Each ``claim_*`` function takes table rows (lists of dicts, as read from the
CSV files; numbers as int/float) and returns a :class:`ClaimResult`.  A claim
without data returns ``status="not evaluated"`` and says which table is missing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

ALPHA = 1e-3
"""Significance level of every claim test (family-wise within a claim)."""

THEORY_RTOL = 1e-12
"""Relative tolerance for claims that the *theory* satisfies exactly (round-off only)."""

MMD_DEPTH_MIN = 15
"""Claim 4b concerns depths A >= this (the paper: 'A >~ 15')."""

TAU_FIT_FROM = 3
"""Claim 6 fits the approach to the plateau on layers a >= this (skips the initial transient)."""

PLATEAU_LAYERS = 3
"""Claim 6: the plateau height is the mean Var over this many last hidden layers."""

MIN_FIT_POINTS = 4
"""Claim 6: the 3-parameter plateau fit needs at least this many layers (one degree of freedom)."""


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    kind: str  # experiment kind whose table the claim reads
    statistic: str
    criterion: str


CLAIMS = (
    Claim("1a", "Equal-time kernels C^(a,a) are identical for DNN and RNN (theory)", "kernel",
          "max_a |C_RNN^(a,a) - C_DNN^(a,a)| / C_DNN^(a,a) (theory column)",
          f"<= {THEORY_RTOL:g} (exact up to round-off)"),
    Claim("1b", "Equal-time kernels are identical for DNN and RNN (Monte Carlo)", "kernel",
          "Chat_RNN^(a,a) - Chat_DNN^(a,a) at the row of largest |z| (z = diff / SE)",
          f"max |z| < t crit, two-sided, Bonferroni over rows, alpha = {ALPHA:g}"),
    Claim("2", "DNN cross-layer covariance Chat^(a,b), a != b, is 0 (uncorrelated bias) or sigma^2 (static bias)",
          "kernel", "Chat^(a,b) - expected at the row of largest |z|",
          f"theory == expected exactly and MC max |z| < t crit, two-sided, Bonferroni, alpha = {ALPHA:g}"),
    Claim("3a", "RNN cross-time covariance Chat^(a,b), a != b, is non-zero for ReLU", "kernel",
          "Chat^(a,b) at the row of smallest z = Chat / SE (rows where the theory is non-zero)",
          f"min z > t crit, one-sided, alpha = {ALPHA:g} per row (all rows)"),
    Claim("3b", "RNN cross-time covariance is about 0 for erf with uncorrelated bias", "kernel",
          "Chat^(a,b) at the row of largest |z| = |Chat| / SE",
          f"max |z| < t crit, two-sided, Bonferroni over rows, alpha = {ALPHA:g}"),
    Claim("4a", "MMD^2 to the GP falls with width, for the input sets used (Fig. 2a,c)", "mmd",
          "MMD^2(n_min) - MMD^2(n_max), means over the same input sets, for the group of smallest z",
          f"z > z crit, one-sided, alpha = {ALPHA:g}, for every (arch, bias, A, g2); SE given the input sets "
          f"(U-statistic SE over realizations per set, in quadrature; H0: set-mean MMD^2 does not fall)"),
    Claim("4b", f"The RNN converges more slowly than the DNN for A >= {MMD_DEPTH_MIN}, for the input sets used "
          f"(Fig. 2b,d)", "mmd",
          f"mean over (bias, A >= {MMD_DEPTH_MIN}) of MMD^2_RNN - MMD^2_DNN (same input sets)",
          f"z > z crit, one-sided, alpha = {ALPHA:g}; SE given the input sets (U-statistic SE over "
          f"realizations per set, in quadrature over independent simulations; depths read out of one simulation "
          f"share realizations: joint SE of their average; H0: RNN - DNN <= 0)"),
    Claim("5a", "Var Caux^(A+1,A+1) is proportional to 1/n at leading order (Fig. 3a)", "fluctuations",
          "a of the weighted LS fit n Var = a + b/n (Var = a/n + b/n^2: leading order and the next), worst group",
          f"for every (arch, input set): a / SE > z crit, one-sided (the 1/n term is there), and chi2 of the fit "
          f"< chi2 crit (k - 2 dof, Bonferroni over groups: no other power of n); alpha = {ALPHA:g}"),
    Claim("5b", "Var Caux^(A+1,A+1) of the RNN is above the DNN at every width (Fig. 3a)", "fluctuations",
          "Var_RNN - Var_DNN at the width of smallest z",
          f"z > z crit, one-sided, alpha = {ALPHA:g} at every width"),
    Claim("6", "Var Caux^(a,a) rises and plateaus over layers with depth scale tau ~ 2 at g^2 = 1.2 (Fig. 3b)",
          "fluctuations",
          f"tau of V_inf - B exp(-a/tau) fitted to MC at a >= {TAU_FIT_FROM}, largest width (worst group)",
          f"rise: (plateau - Var(a=1)) / SE > z crit one-sided (plateau: mean of the last {PLATEAU_LAYERS} hidden "
          f"layers); tau: |tau_MC - tau_NLO| / SE < z crit two-sided Bonferroni; "
          f"alpha = {ALPHA:g}; only groups whose NLO curve rises monotonically (C(0,0) <= C*)"),
    Claim("7", "Input fluctuations decay as the product of the F_a (linear response, Eq. 42; Fig. 3c,d)",
          "input_propagation",
          "std over inputs (weight noise subtracted) - linear response, at the layer of largest |t|",
          f"max |t| < t crit (S-1 dof), two-sided, Bonferroni over layers, alpha = {ALPHA:g}"),
    Claim("8", "The RNN instability near g^2 = 2 is suppressed as n grows (Fig. 4)", "instability",
          "weighted LS slope of MC/theory of Chat^(A,A) vs ln n",
          f"slope / SE < -z crit, one-sided, alpha = {ALPHA:g}"),
    Claim("9", "Feature learning: n Delta of the posterior converges to the first-order adaptation theory "
          "(issue 11)", "posterior",
          "Richardson extrapolation (n1 n Delta(n1) vs n2 n Delta(n2), two largest widths) minus theory, "
          "at the group of largest |z| (groups: arch, bias, activation, depth, observable)",
          f"max |z| < z crit, two-sided, Bonferroni over groups, alpha = {ALPHA:g}; and the data resolve the "
          f"adaptation: |theory| / SE > z crit (one-sided, alpha = {ALPHA:g}) in at least one group"),
    Claim("9b", "Feature learning: the per-layer kernel-target alignment CKA(C^(a), yy^T) shifts as the "
          "first-order adaptation theory predicts (issue 11)", "posterior_alignment",
          "Richardson extrapolation (n1 n Delta[CKA^(a)](n1) vs n2 n Delta[CKA^(a)](n2), two largest widths) minus "
          "theory, at the group of largest |z| (groups: arch, bias, activation, depth, layer a)",
          f"max |z| < z crit, two-sided, Bonferroni over groups, alpha = {ALPHA:g}; and the data resolve the "
          f"alignment shift: |theory| / SE > z crit (one-sided, alpha = {ALPHA:g}) in at least one group"),
    Claim("10", "Feature learning: the posterior shift of the cross-time (RNN) / cross-layer (DNN) kernels "
          "Chat^(a,b), a != b, follows the first-order adaptation theory across the output scale gamma_0 "
          "(issue 11, 4.3)", "posterior_crosstime",
          "Richardson extrapolation of n Delta[u^T Chat^(a,b)_DD u] (two largest widths) minus theory, at the "
          "group of largest |z| (groups: arch, bias, activation, depth, pair (a, b), gamma_0; only gamma_0 with "
          "ESS >= task.min_ess at both widths)",
          f"max |z| < z crit, two-sided, Bonferroni over groups, alpha = {ALPHA:g}; and the data resolve the RNN "
          f"cross-time adaptation: |theory| / SE > z crit (one-sided, alpha = {ALPHA:g}) in at least one RNN group"),
    Claim("11", "Feature learning: the test error of the posterior-mean predictor departs from the NNGP's as "
          "predicted by the first-order adapted-kernel theory (linear networks; issue 11, 4.4)",
          "posterior_generalisation",
          "Richardson extrapolation of n (err_post - err_GP) (two largest widths) minus theory, at the group of "
          "largest |z| (groups: arch, bias, depth, task; linear activation only: there the first-order theory of "
          "E_post[m] is complete, for other activations the O(1/n) prior-mean shift of the kernel is not computed)",
          f"max |z| < z crit, two-sided, Bonferroni over groups, alpha = {ALPHA:g}; and the data resolve the "
          f"shift: |theory| / SE > z crit (one-sided, alpha = {ALPHA:g}) in at least one group"),
    Claim("12", "Deep linear network at fixed alpha = P/n: the HMC posterior layer kernels agree with the "
          "proportional-limit theory (posterior_kernels; issue 11)", "proportional",
          "HMC - theory of u^T C^(l,l) u / NNGP (Richardson over the two largest widths when there are two, else "
          "the width), at the (alpha, layer) of largest |z|",
          f"max |z| < z crit, two-sided, Bonferroni over (alpha, layer), alpha = {ALPHA:g}; and the learning "
          f"signal is resolved: (HMC - 1) / SE > z crit (one-sided) in at least one row. At fixed alpha each width "
          f"has its own data set (P = alpha n), so the two widths are not one curve c + d/n: the extrapolation "
          f"removes the O(1/n) term only on average, and its SE (about 2.2x the single-width SE for n2 = 2 n1) makes "
          f"the test conservative"),
)
CLAIMS_BY_ID = {c.id: c for c in CLAIMS}


@dataclass
class ClaimResult:
    """Outcome of one claim: the statistic's value and SE, pass/fail and why."""

    id: str
    value: float = float("nan")
    se: float = float("nan")
    status: str = "not evaluated"  # "pass", "fail" or "not evaluated"
    reason: str = ""
    experiments: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


# --------------------------------------------------------------------------- helpers


def t_crit_two_sided(m: int, dof=None, alpha: float = ALPHA) -> float:
    """Two-sided Bonferroni critical value for m tests (normal if dof is None or inf)."""
    q = alpha / (2 * max(int(m), 1))
    return float(stats.norm.isf(q) if dof is None or not np.isfinite(dof) else stats.t.isf(q, dof))


def t_crit_one_sided(dof=None, alpha: float = ALPHA) -> float:
    """One-sided critical value at level alpha (normal if dof is None or inf)."""
    return float(stats.norm.isf(alpha) if dof is None or not np.isfinite(dof) else stats.t.isf(alpha, dof))


def weighted_lstsq(design, y, se) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted linear least squares ``y ~ design @ p`` with known, independent SEs.

    Parameters
    ----------
    design : array_like of float, shape (k, q)
    y, se : array_like of float, shape (k,)

    Returns
    -------
    params : ndarray of float, shape (q,)
    cov : ndarray of float, shape (q, q)
        Covariance of ``params`` from the given SEs (not rescaled by chi^2).
    chi2 : float
        ``sum(((y - design @ params) / se)^2)``, chi^2 with k - q dof if the model holds.
    """
    X, y, se = np.asarray(design, float), np.asarray(y, float), np.asarray(se, float)
    if X.ndim != 2 or X.shape[0] != y.size or se.shape != y.shape or X.shape[0] < X.shape[1]:
        raise ValueError(f"design {X.shape}, y {y.shape}, se {se.shape}: need design (k, q), y and se (k,), k >= q")
    if not np.all(se > 0):
        raise ValueError("se: must be > 0")
    Xw, yw = X / se[:, None], y / se
    cov = np.linalg.inv(Xw.T @ Xw)
    params = cov @ (Xw.T @ yw)
    return params, cov, float(np.sum((yw - Xw @ params) ** 2))


def weighted_slope(x, y, se) -> tuple[float, float, float]:
    """Weighted least-squares line y = c + s x with known SEs; returns (slope, SE of slope, chi2/dof)."""
    x = np.asarray(x, float)
    params, cov, chi2 = weighted_lstsq(np.column_stack([np.ones_like(x), x]), y, se)
    red = chi2 / (x.size - 2) if x.size > 2 else float("nan")
    return float(params[1]), float(math.sqrt(cov[1, 1])), float(red)


def _select(rows, **cond):
    return [r for r in rows if all(r.get(k) == v for k, v in cond.items())]


def _f(row, key) -> float:
    return float(row[key])


def _fmt(x) -> str:
    return f"{x:.3g}"


def _missing(cid, what) -> ClaimResult:
    return ClaimResult(cid, status="not evaluated", reason=f"no data: {what}")


def _verdict(res: ClaimResult, ok: bool, reason_if_failed: str) -> ClaimResult:
    res.status = "pass" if ok else "fail"
    res.reason = "" if ok else reason_if_failed
    return res


def _agreement(claim_id: str, dev, se, dof: int, where, label: str = "z", scale=None,
               scale_name: str = "") -> ClaimResult:
    """Agreement claim over rows: fails when the worst ``|dev| / se`` reaches the two-sided,
    Bonferroni-corrected critical t (:func:`t_crit_two_sided` over ``len(dev)`` rows, ``dof``).

    With ``scale``, the reason also states the resolution of the test (not a
    criterion): the largest ``(|dev| + t crit * se) / |scale|`` over rows, i.e. the
    relative deviation that the confidence bounds still allow (an agreement
    claim with a large resolution passes for lack of power).

    Parameters
    ----------
    claim_id : str
    dev, se : ndarray of float, shape (m,)
        Deviation from the claimed value and its standard error, per row.
    dof : int
        Degrees of freedom of the SEs.
    where : callable
        ``where(i) -> str`` describing row ``i`` in the failure reason.
    label : str
        Name of the statistic in the reason (``"z"`` or ``"t"``).
    scale : ndarray of float, shape (m,), optional
        Natural size of the compared quantity per row.
    scale_name : str
        What ``scale`` is, for the reason.

    Returns
    -------
    ClaimResult
        Value and SE of the worst row.
    """
    stat = np.abs(dev) / se
    crit = t_crit_two_sided(len(dev), dof)
    i = int(np.argmax(stat))
    res = ClaimResult(claim_id, value=float(dev[i]), se=float(se[i]))
    _verdict(res, stat[i] < crit, f"|{label}| = {_fmt(stat[i])} >= {_fmt(crit)} at {where(i)}")
    if scale is not None and res.passed:
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = (np.abs(dev) + crit * np.asarray(se, float)) / np.abs(np.asarray(scale, float))
        if np.any(np.isfinite(bound)):
            j = int(np.nanargmax(np.where(np.isfinite(bound), bound, np.nan)))
            res.reason = (f"(resolution: |deviation| < {bound[j]:.2g} x {scale_name} at every row; "
                          f"loosest at {where(j)})")
    return res


# --------------------------------------------------------------------------- claims 1-3 (kernel tables)


def _diag_pairs(rows):
    """Matched (dnn, rnn) diag rows: same bias, activation, width, depth, g2, a."""
    key = ("experiment", "bias", "activation", "width", "depth", "g2", "sigma2", "input_set", "a")
    dnn = {tuple(r.get(k) for k in key): r for r in rows if r["quantity"] == "diag" and r["arch"] == "dnn"}
    return [(dnn[tuple(r.get(k) for k in key)], r) for r in rows
            if r["quantity"] == "diag" and r["arch"] == "rnn" and tuple(r.get(k) for k in key) in dnn]


def claim_equal_time_theory(rows) -> ClaimResult:
    """Claim 1a: the theory's C^(a,a) is the same for DNN and RNN (kernel table rows)."""
    pairs = _diag_pairs(rows)
    if not pairs:
        return _missing("1a", "kernel table with matching DNN and RNN diagonal rows")
    rel = [abs(_f(r, "theory") - _f(d, "theory")) / max(abs(_f(d, "theory")), 1e-300) for d, r in pairs]
    i = int(np.argmax(rel))
    res = ClaimResult("1a", value=float(rel[i]), se=0.0)
    d, r = pairs[i]
    return _verdict(res, rel[i] <= THEORY_RTOL,
                    f"theory differs at {d['activation']}, {d['bias']} bias, a = {d['a']}: "
                    f"DNN {_fmt(_f(d, 'theory'))} vs RNN {_fmt(_f(r, 'theory'))}")


def claim_equal_time_mc(rows) -> ClaimResult:
    """Claim 1b: Chat_RNN^(a,a) - Chat_DNN^(a,a) is zero within SE (Bonferroni over resolvable rows)."""
    pairs = [(d, r) for d, r in _diag_pairs(rows) if _f(d, "mc_sem") > 0 or _f(r, "mc_sem") > 0]
    if not pairs:
        return _missing("1b", "kernel table with matching DNN and RNN diagonal rows")
    diff = np.array([_f(r, "mc_mean") - _f(d, "mc_mean") for d, r in pairs])
    se = np.array([math.hypot(_f(d, "mc_sem"), _f(r, "mc_sem")) for d, r in pairs])
    dof = min(int(r["realizations"]) for pair in pairs for r in pair) - 1

    def where(i):
        d = pairs[i][0]
        return f"{d['activation']}, {d['bias']} bias, n = {d['width']}, a = {d['a']} ({len(pairs)} rows)"

    return _agreement("1b", diff, se, dof, where, scale=[_f(d, "theory") for d, _ in pairs],
                      scale_name="C_DNN^(a,a)")


_KERNEL_SCALE = "sqrt(C^(a,a) C^(b,b))"
_POINT = ("experiment", "arch", "bias", "activation", "width", "depth", "g2", "sigma2", "input_set")


def _kernel_scale(rows, cross):
    """``sqrt(C^(a,a) C^(b,b))`` (theory diagonal of the same point) for each cross row; NaN where missing."""
    diag = {tuple(r.get(k) for k in _POINT) + (int(r["a"]),): abs(_f(r, "theory"))
            for r in rows if r["quantity"] == "diag"}

    def c(r, step):
        return diag.get(tuple(r.get(k) for k in _POINT) + (int(r[step]),), float("nan"))

    return np.array([math.sqrt(c(r, "a") * c(r, "b")) for r in cross])


def _cross_rows(rows, arch, **cond):
    return [r for r in _select(rows, arch=arch, quantity="cross", **cond) if int(r["a"]) != int(r["b"])]


def claim_dnn_cross_layer(rows) -> ClaimResult:
    """Claim 2: DNN Chat^(a,b) (a != b) is 0 (uncorrelated bias) or sigma^2 (static bias)."""
    cross = _cross_rows(rows, "dnn")
    if not cross:
        return _missing("2", "kernel table with DNN cross rows")
    expected = np.array([_f(r, "sigma2") if r["bias"] == "static" else 0.0 for r in cross])
    theory = np.array([_f(r, "theory") for r in cross])
    bad = np.abs(theory - expected) > THEORY_RTOL * np.maximum(np.abs(expected), 1.0)
    if bad.any():
        r = cross[int(np.argmax(bad))]
        return ClaimResult("2", status="fail", reason=f"theory C^({r['a']},{r['b']}) = {_fmt(_f(r, 'theory'))} "
                           f"is not the expected value ({r['bias']} bias)")
    dev = np.array([_f(r, "mc_mean") for r in cross]) - expected
    se = np.array([_f(r, "mc_sem") for r in cross])
    dof = min(int(r["realizations"]) for r in cross) - 1
    return _agreement("2", dev, se, dof, lambda i: f"{cross[i]['activation']}, {cross[i]['bias']} bias, "
                      f"a = {cross[i]['a']}, b = {cross[i]['b']} ({len(cross)} rows)",
                      scale=_kernel_scale(rows, cross), scale_name=_KERNEL_SCALE)


def claim_rnn_cross_relu(rows) -> ClaimResult:
    """Claim 3a: RNN ReLU Chat^(a,b) (a != b) is significantly non-zero wherever the theory is non-zero."""
    cross = [r for r in _cross_rows(rows, "rnn", activation="relu") if abs(_f(r, "theory")) > 0]
    if not cross:
        return _missing("3a", "kernel table with RNN ReLU cross rows")
    z = np.array([_f(r, "mc_mean") / _f(r, "mc_sem") * np.sign(_f(r, "theory")) for r in cross])
    dof = min(int(r["realizations"]) for r in cross) - 1
    crit = t_crit_one_sided(dof)
    i = int(np.argmin(z))
    r = cross[i]
    res = ClaimResult("3a", value=_f(r, "mc_mean"), se=_f(r, "mc_sem"))
    return _verdict(res, z[i] > crit, f"z = {_fmt(z[i])} <= {_fmt(crit)} at {r['bias']} bias, a = {r['a']}, b = {r['b']}")


def claim_rnn_cross_erf(rows) -> ClaimResult:
    """Claim 3b: RNN erf Chat^(a,b) (a != b) with uncorrelated bias is 0 within SE."""
    cross = _cross_rows(rows, "rnn", activation="erf", bias="uncorrelated")
    if not cross:
        return _missing("3b", "kernel table with RNN erf uncorrelated-bias cross rows")
    mc = np.array([_f(r, "mc_mean") for r in cross])
    se = np.array([_f(r, "mc_sem") for r in cross])
    dof = min(int(r["realizations"]) for r in cross) - 1
    return _agreement("3b", mc, se, dof, lambda i: f"a = {cross[i]['a']}, b = {cross[i]['b']} ({len(cross)} rows)",
                      scale=_kernel_scale(rows, cross), scale_name=_KERNEL_SCALE)


# --------------------------------------------------------------------------- claim 4 (MMD summary tables)


def _mmd_se_within(row) -> float:
    """SE of an input-set mean of MMD^2 given the input sets (``mmd2_se_within``; NaN if absent)."""
    try:
        return _f(row, "mmd2_se_within")
    except (KeyError, TypeError, ValueError):
        return float("nan")


_NO_WITHIN_SE = ("needs the within-set SE column mmd2_se_within of the MMD summary "
                 "(U-statistic SE over realizations; rerun compare_mmd)")


def claim_mmd_falls_with_width(rows) -> ClaimResult:
    """Claim 4a: for every (arch, bias, depth, g2), MMD^2 at the smallest width exceeds that at the largest.

    The statistic is the difference of input-set means, ``MMD^2(n_min) - MMD^2(n_max)``,
    on the same input sets at both widths (paired by seed), tested given those
    input sets: its SE is from the finite realizations only (``mmd2_se_within``
    of both widths in quadrature; the widths are independent simulations), with
    normal critical values (about 1000 realizations per set).  Every group must
    pass at level ALPHA (intersection-union test); the worst is reported.
    """
    groups = {}
    for r in rows:
        groups.setdefault((r["arch"], r["bias"], r["depth"], r["g2"], r["activation"], r.get("experiment")), []).append(r)
    groups = {k: sorted(v, key=lambda r: r["width"]) for k, v in groups.items() if len({r["width"] for r in v}) > 1}
    if not groups:
        return _missing("4a", "MMD summary with more than one width")
    crit = t_crit_one_sided()
    worst = None
    for key, g in groups.items():
        lo, hi = g[0], g[-1]
        diff = _f(lo, "mmd2_mean") - _f(hi, "mmd2_mean")
        se = math.hypot(_mmd_se_within(lo), _mmd_se_within(hi))
        if not np.isfinite(se) or se <= 0:
            return ClaimResult("4a", value=diff, status="fail", reason=_NO_WITHIN_SE)
        if int(lo["input_sets"]) != int(hi["input_sets"]):
            return ClaimResult("4a", value=diff, se=se, status="fail", reason=(
                f"{key[0].upper()} {key[1]} bias: {lo['input_sets']} input sets at n = {lo['width']} but "
                f"{hi['input_sets']} at n = {hi['width']}; the paired test needs the same sets at both widths"))
        t = diff / se
        if worst is None or t < worst[0]:
            worst = (t, diff, se, key, lo["width"], hi["width"], int(lo["input_sets"]))
    t, diff, se, key, n1, n2, sets = worst
    res = ClaimResult("4a", value=diff, se=se)
    where = (f"{key[0].upper()} {key[1]} bias, A = {key[2]}, g2 = {key[3]}: z = {_fmt(t)}", f"for MMD^2(n={n1}) - "
             f"MMD^2(n={n2}) (mean of {sets} input sets; {len(groups)} groups)")
    _verdict(res, t > crit, f"{where[0]} <= {_fmt(crit)} {where[1]}")
    if res.passed:
        res.reason = f"(worst: {where[0]} {where[1]})"
    return res


def _depths_shared(row) -> bool:
    """True if the row's depth was read out of a simulation shared with other depths (nested readouts)."""
    return str(row.get("depths_shared", False)).strip().lower() == "true"


def claim_rnn_slower_with_depth(rows) -> ClaimResult:
    """Claim 4b: averaged over bias modes, depths A >= MMD_DEPTH_MIN and input sets, MMD^2 of the RNN exceeds the DNN's.

    DNN and RNN are paired by (bias, depth, width, g2) and use the same input
    sets; the test is given those sets (SE from the realizations only, normal
    critical value).  The statistic is the mean over the pairs of
    ``MMD^2_RNN - MMD^2_DNN``.  Its SE:

    * depths simulated separately (independent): ``mmd2_se_within`` of every
      (arch, bias, depth) in quadrature;
    * depths read out of one simulation (``depths_shared``, nested readouts):
      the depths of one (arch, bias) share realizations and their errors are
      correlated, so the quadrature over depths would understate the SE.  The
      summary's ``mmd2_deep_mean`` / ``mmd2_deep_se_within`` (depth average of
      each simulation over the grid depths >= MMD_DEPTH_MIN with its joint
      U-statistic SE, :func:`theory.mmd.mmd2_gaussian_sum_with_se`) are used:
      quadrature over the independent (arch, bias) simulations only.
    """
    key = ("experiment", "bias", "activation", "width", "depth", "g2")
    deep = [r for r in rows if int(r["depth"]) >= MMD_DEPTH_MIN]
    if len({r["depth"] for r in rows}) < 2:
        return _missing("4b", "MMD summary with more than one depth")
    dnn = {tuple(r.get(k) for k in key): r for r in deep if r["arch"] == "dnn"}
    pairs = [(dnn[tuple(r.get(k) for k in key)], r) for r in deep if r["arch"] == "rnn" and tuple(r.get(k) for k in key) in dnn]
    if not pairs:
        return _missing("4b", f"MMD summary with DNN and RNN at depths >= {MMD_DEPTH_MIN}")
    diffs = np.array([_f(r, "mmd2_mean") - _f(d, "mmd2_mean") for d, r in pairs])
    k = len(pairs)
    shared = any(_depths_shared(x) for pair in pairs for x in pair)
    if shared:
        # one (value, joint SE) per simulation = (experiment, arch, bias, activation, width, g2)
        sims = {}
        for pair in pairs:
            for x in pair:
                sims[(x["arch"],) + tuple(x.get(c) for c in key if c != "depth")] = x
        try:
            ses = np.array([_f(x, "mmd2_deep_se_within") for x in sims.values()])
            deep_means = {s: _f(x, "mmd2_deep_mean") for s, x in sims.items()}
        except (KeyError, TypeError, ValueError):
            ses = np.array([float("nan")])
        if not np.all(np.isfinite(ses) & (ses > 0)):
            return ClaimResult("4b", value=float(diffs.mean()), status="fail", reason=_NO_DEEP_SE)
        groups = {s[1:] for s in sims}
        depths_per_group = {g: sum(1 for d, _ in pairs if tuple(d.get(c) for c in key if c != "depth") == g)
                            for g in groups}
        if len(set(depths_per_group.values())) != 1 or 2 * len(groups) != len(sims):
            return ClaimResult("4b", value=float(diffs.mean()), status="fail",
                               reason="shared depths: DNN and RNN need the same depths >= "
                                      f"{MMD_DEPTH_MIN} in every (bias, width, g2) group")
        value = float(np.mean([deep_means[("rnn",) + g] - deep_means[("dnn",) + g] for g in groups]))
        se = math.sqrt(np.sum(np.square(ses))) / len(groups)
        how = "joint SE over shared depths"
    else:
        ses = np.array([_mmd_se_within(x) for pair in pairs for x in pair])
        if not np.all(np.isfinite(ses) & (ses > 0)):
            return ClaimResult("4b", value=float(diffs.mean()), status="fail", reason=_NO_WITHIN_SE)
        value = float(diffs.mean())
        se = math.sqrt(np.sum(np.square(ses))) / k
        how = "independent depths"
    t, crit = value / se, t_crit_one_sided()
    res = ClaimResult("4b", value=value, se=se)
    depths = sorted({int(d["depth"]) for d, _ in pairs})
    return _verdict(res, t > crit, f"z = {_fmt(t)} <= {_fmt(crit)} ({k} (bias, depth) pairs, A in {depths}, "
                    f"n = {sorted({d['width'] for d, _ in pairs})}, {min(int(d['input_sets']) for d, _ in pairs)} "
                    f"input sets, {how})")


_NO_DEEP_SE = ("depths share realizations (nested readouts) but the MMD summary lacks a finite mmd2_deep_se_within "
               "(joint SE of the depth average; rerun compare_mmd)")


# --------------------------------------------------------------------------- claims 5-6 (fluctuation tables)


def _readout_var(rows):
    return [r for r in rows if r["quantity"] == "var_caux" and int(r["a"]) == int(r["depth"]) + 1]


def fit_one_over_n(widths, var, var_se) -> dict:
    """Fit the finite-size expansion ``Var = a / n + b / n^2`` (weighted least squares on ``n Var = a + b / n``).

    Parameters
    ----------
    widths : array_like of int, shape (k,)
        k >= 3 distinct widths n.
    var, var_se : array_like of float, shape (k,)
        Measured Var and its standard error (independent simulations per width).

    Returns
    -------
    dict
        ``a``, ``a_se`` (leading coefficient, lim n Var), ``b``, ``b_se``,
        ``chi2`` and ``dof`` (k - 2) of the fit.
    """
    n = np.asarray(widths, float)
    if n.size < 3 or len(set(n.tolist())) != n.size:
        raise ValueError(f"widths: need >= 3 distinct widths for a 2-parameter fit with a goodness of fit, got {n}")
    (a, b), cov, chi2 = weighted_lstsq(np.column_stack([np.ones_like(n), 1.0 / n]), n * np.asarray(var, float),
                                       n * np.asarray(var_se, float))
    return {"a": float(a), "a_se": float(math.sqrt(cov[0, 0])), "b": float(b), "b_se": float(math.sqrt(cov[1, 1])),
            "chi2": chi2, "dof": int(n.size - 2)}


def claim_variance_one_over_n(rows) -> ClaimResult:
    """Claim 5a: Var Caux^(A+1,A+1) = a/n + b/n^2 with a > 0, i.e. the leading finite-size order is 1/n.

    For every (arch, bias, depth, input set) with >= 3 widths, :func:`fit_one_over_n`
    must (i) find the leading 1/n term, ``a / SE > z crit`` one-sided at ALPHA
    (fails for Var ~ 1/n^2 or faster: a = 0), and (ii) describe the data,
    chi^2 below the chi^2 critical value at ALPHA, Bonferroni over groups (fails
    for any other power n^-p over the widths: e.g. p = 1/2, 1.3).  The next
    order b/n^2 absorbs the O(1/n^2) excess at small n instead of a biased
    log-log slope.  Reported: ``a`` of the group of smallest margin.
    """
    readout = _readout_var(rows)
    groups = {}
    for r in readout:
        groups.setdefault((r["arch"], r["bias"], r["depth"], r["input_set"], r.get("experiment")), []).append(r)
    groups = {k: v for k, v in groups.items() if len({r["width"] for r in v}) >= 3}
    if not groups:
        return _missing("5a", "fluctuation table with >= 3 widths")
    crit_a = t_crit_one_sided()
    worst, failures = None, []
    for key, g in groups.items():
        g = sorted(g, key=lambda r: r["width"])
        widths = [r["width"] for r in g]
        fit = fit_one_over_n(widths, [_f(r, "mc") for r in g], [_f(r, "mc_se") for r in g])
        crit_chi2 = float(stats.chi2.isf(ALPHA / len(groups), fit["dof"]))
        z_a = fit["a"] / fit["a_se"]
        name = f"{key[0].upper()} input {key[3]}"
        th = [_f(r, "theory") * r["width"] for r in g]
        note = (f"{name}: n Var -> a = {_fmt(fit['a'])} +- {_fmt(fit['a_se'])} (NLO theory {_fmt(np.mean(th))}), "
                f"b = {_fmt(fit['b'])} +- {_fmt(fit['b_se'])}, chi2 = {_fmt(fit['chi2'])} ({fit['dof']} dof), "
                f"widths {widths}")
        if not z_a > crit_a:
            failures.append(f"no leading 1/n term: a / SE = {_fmt(z_a)} <= {_fmt(crit_a)} ({note})")
        if not fit["chi2"] < crit_chi2:
            failures.append(f"a/n + b/n^2 does not fit: chi2 = {_fmt(fit['chi2'])} >= {_fmt(crit_chi2)} ({note})")
        margin = min(z_a - crit_a, crit_chi2 - fit["chi2"])
        if worst is None or margin < worst[0]:
            worst = (margin, fit, note)
    _, fit, note = worst
    res = ClaimResult("5a", value=fit["a"], se=fit["a_se"])
    _verdict(res, not failures, "; ".join(failures))
    if res.passed:
        res.reason = f"({note})"
    return res


def claim_rnn_variance_above_dnn(rows) -> ClaimResult:
    """Claim 5b: at every width Var Caux^(A+1,A+1) of the RNN exceeds the DNN's."""
    key = ("experiment", "bias", "activation", "width", "depth", "g2", "input_set")
    readout = _readout_var(rows)
    dnn = {tuple(r.get(k) for k in key): r for r in readout if r["arch"] == "dnn"}
    pairs = [(dnn[tuple(r.get(k) for k in key)], r) for r in readout
             if r["arch"] == "rnn" and tuple(r.get(k) for k in key) in dnn]
    if not pairs:
        return _missing("5b", "fluctuation table with DNN and RNN")
    diff = np.array([_f(r, "mc") - _f(d, "mc") for d, r in pairs])
    se = np.array([math.hypot(_f(d, "mc_se"), _f(r, "mc_se")) for d, r in pairs])
    z = diff / se
    crit = t_crit_one_sided()
    i = int(np.argmin(z))
    res = ClaimResult("5b", value=float(diff[i]), se=float(se[i]))
    return _verdict(res, z[i] > crit, f"z = {_fmt(z[i])} <= {_fmt(crit)} at n = {pairs[i][0]['width']}")


def _plateau_model(a, v_inf, b, tau):
    return v_inf - b * np.exp(-a / tau)


def fit_plateau(a, y, se=None):
    """Fit ``V_inf - B exp(-a / tau)``; returns ((V_inf, B, tau), (SEs)) (absolute sigma if se given)."""
    a, y = np.asarray(a, float), np.asarray(y, float)
    if a.size < MIN_FIT_POINTS:
        raise ValueError(f"{a.size} layers at a >= {TAU_FIT_FROM}; the 3-parameter fit needs at least {MIN_FIT_POINTS}")
    p0 = [y[-1], (y[-1] - y[0]) * math.exp(a[0] / 2.0), 2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", optimize.OptimizeWarning)
        try:
            popt, pcov = optimize.curve_fit(_plateau_model, a, y, p0=p0, sigma=se, absolute_sigma=se is not None,
                                            maxfev=20000)
        except optimize.OptimizeWarning as exc:
            raise RuntimeError(f"covariance of the fit cannot be estimated ({exc})") from None
    perr = np.sqrt(np.diag(pcov))
    if not np.all(np.isfinite(perr)) or not perr[2] < abs(popt[2]):
        raise RuntimeError(f"tau is not determined by the data (tau = {popt[2]:.3g} +- {perr[2]:.3g})")
    return popt, perr


def claim_rise_and_plateau(rows, tau_theory: float | None = None) -> ClaimResult:
    """Claim 6: at the largest width, the MC Var Caux^(a,a) rises to a plateau with the NLO depth scale.

    Only groups (arch, bias, depth, input set) whose NLO curve is non-decreasing over
    a = 1..A (the rise-and-plateau regime, C(0,0) <= C*) are tested.  In each, the
    rise is the mean MC Var over the last PLATEAU_LAYERS hidden layers minus Var at
    a = 1 (one-sided z test), and the plateau model ``V_inf - B exp(-a/tau)`` is
    fitted at a >= TAU_FIT_FROM to the MC values (with their SEs) and to the NLO
    curve; the two tau must agree within SE.  ``tau_theory`` (-1/ln F) is reported,
    not tested: for the RNN the NLO curve itself approaches its plateau more slowly
    (fitted tau about 2.9 at g^2 = 1.2) than -1/ln F = 1.96.
    """
    var = [r for r in rows if r["quantity"] == "var_caux" and 1 <= int(r["a"]) <= int(r["depth"])]
    if not var:
        return _missing("6", "fluctuation table")
    def group_of(r):
        return (r["arch"], r["bias"], r["depth"], r["input_set"], r.get("experiment"))

    n_max = {}
    for r in var:
        n_max[group_of(r)] = max(n_max.get(group_of(r), 0), r["width"])
    groups = {}
    for r in var:
        if r["width"] == n_max[group_of(r)]:
            groups.setdefault(group_of(r), []).append(r)
    regime, skipped = {}, []
    for key, g in groups.items():
        g.sort(key=lambda r: r["a"])
        th = np.array([_f(r, "theory") for r in g])
        if np.all(np.diff(th) >= -1e-9 * th.max()):  # NLO curve non-decreasing: rise-and-plateau regime
            regime[key] = g
        else:
            skipped.append(key)
    if not regime:
        return ClaimResult("6", status="fail", reason=(
            f"no input in the rise-and-plateau regime: the NLO Var overshoots and falls for every group at n = "
            f"{sorted(set(n_max.values()))} "
            f"({', '.join(f'{k[0].upper()} input {k[3]}' for k in skipped)}), i.e. C(0,0) > C*"))
    crit_tau = t_crit_two_sided(len(regime))
    crit_rise = t_crit_one_sided()
    worst, failures = None, []
    for key, g in regime.items():
        name = f"{key[0].upper()} input {key[3]}"
        # rise: mean Var over the last PLATEAU_LAYERS hidden layers minus Var at a = 1 (layer covariances
        # ignored: they are positive, so this SE is conservative)
        first, last = g[0], g[-PLATEAU_LAYERS:]
        rise = np.mean([_f(r, "mc") for r in last]) - _f(first, "mc")
        rise_se = math.sqrt(np.sum([_f(r, "mc_se") ** 2 for r in last]) / len(last) ** 2 + _f(first, "mc_se") ** 2)
        if not rise / rise_se > crit_rise:
            failures.append(f"{name}: no significant rise from a = 1 to the plateau "
                            f"({_fmt(rise)} +- {_fmt(rise_se)}, z = {_fmt(rise / rise_se)} <= {_fmt(crit_rise)})")
        fit = [r for r in g if int(r["a"]) >= TAU_FIT_FROM]
        a = np.array([r["a"] for r in fit], float)
        try:
            (_, _, tau), (_, _, tau_se) = fit_plateau(a, [_f(r, "mc") for r in fit], [_f(r, "mc_se") for r in fit])
            (_, _, tau_nlo), _ = fit_plateau(a, [_f(r, "theory") for r in fit])
        except (RuntimeError, ValueError, TypeError) as exc:
            failures.append(f"{name}: plateau fit failed ({exc})")
            continue
        z_tau = abs(tau - tau_nlo) / tau_se
        if not z_tau < crit_tau:
            failures.append(f"{name}: tau_MC = {_fmt(tau)} +- {_fmt(tau_se)} vs tau_NLO = {_fmt(tau_nlo)} "
                            f"(|z| = {_fmt(z_tau)} >= {_fmt(crit_tau)})")
        if worst is None or z_tau > worst[0]:
            worst = (z_tau, tau, tau_se, tau_nlo, key)
    if worst is None:
        return ClaimResult("6", status="fail", reason="; ".join(failures))
    _, tau, tau_se, tau_nlo, key = worst
    res = ClaimResult("6", value=float(tau), se=float(tau_se))
    note = f"tau_NLO fit {_fmt(tau_nlo)}" + (f", -1/ln F = {_fmt(tau_theory)}" if tau_theory else "")
    _verdict(res, not failures, "; ".join(failures) + f" ({note})")
    if skipped:
        res.reason += (" " if res.reason else "") + f"[skipped, overshoot regime: {', '.join(f'{k[0].upper()} input {k[3]}' for k in skipped)}]"
    if res.passed:
        res.reason = f"({key[0].upper()}; {note})" + (" " + res.reason if res.reason else "")
    return res


# --------------------------------------------------------------------------- claim 7 (input propagation)


def claim_input_propagation(rows) -> ClaimResult:
    """Claim 7: the weight-noise-corrected spread over inputs equals the linear response at every layer a >= 1."""
    rows = [r for r in rows if 1 <= int(r["a"]) <= int(r["depth"])]
    if not rows:
        return _missing("7", "input-propagation table")
    if any(not np.isfinite(_f(r, "mc_std_se")) for r in rows):
        return ClaimResult("7", status="fail", reason="needs >= 3 input sets for a jackknife SE")
    diff = np.array([_f(r, "mc_std_corrected") - _f(r, "linear_response") for r in rows])
    se = np.array([_f(r, "mc_std_se") for r in rows])
    dof = min(int(r["input_sets"]) for r in rows) - 1

    def where(i):
        r = rows[i]
        return (f"{r['arch'].upper()}, a = {r['a']} (linear response {_fmt(_f(r, 'linear_response'))}, "
                f"MC {_fmt(_f(r, 'mc_std_corrected'))})")

    return _agreement("7", diff, se, dof, where, label="t", scale=[_f(r, "linear_response") for r in rows],
                      scale_name="the linear response")


# --------------------------------------------------------------------------- claim 8 (instability)


def claim_instability_suppressed(rows) -> ClaimResult:
    """Claim 8: MC/theory of Chat^(A,A) at the last step decreases with ln n (weighted LS slope < 0).

    Each (experiment, arch, bias, depth, g2) group with >= 2 widths must pass; the worst is reported.
    """
    groups = {}
    for r in rows:
        if r["quantity"] == "diag" and int(r["a"]) == int(r["depth"]):
            groups.setdefault((r.get("experiment"), r["arch"], r["bias"], r["depth"], r["g2"]), []).append(r)
    results = [_instability_group(g) for g in groups.values()]
    evaluated = [res for res in results if res.status != "not evaluated"]
    if not evaluated:
        return _missing("8", "instability table with >= 2 widths")
    failed = [res for res in evaluated if not res.passed]
    return max(failed or evaluated, key=lambda res: res.value / res.se)


def _instability_group(last) -> ClaimResult:
    if len({r["width"] for r in last}) < 2:
        return _missing("8", "instability table with >= 2 widths")
    last.sort(key=lambda r: r["width"])
    ratio = np.array([_f(r, "mc_mean") / _f(r, "theory") for r in last])
    se = np.array([_f(r, "mc_sem") / _f(r, "theory") for r in last])
    if len(last) == 2:
        slope = (ratio[1] - ratio[0]) / math.log(last[1]["width"] / last[0]["width"])
        slope_se = math.hypot(*se) / math.log(last[1]["width"] / last[0]["width"])
    else:
        slope, slope_se, _ = weighted_slope(np.log([r["width"] for r in last]), ratio, se)
    crit = t_crit_one_sided()
    res = ClaimResult("8", value=slope, se=slope_se)
    ratios = ", ".join(f"n={r['width']}: {_fmt(q)}+-{_fmt(s)}" for r, q, s in zip(last, ratio, se))
    return _verdict(res, slope / slope_se < -crit, f"slope / SE = {_fmt(slope / slope_se)} >= -{_fmt(crit)} "
                    f"(MC/theory at a = {last[0]['depth']}: {ratios})")


# --------------------------------------------------------------------------- claim 9 (posterior tables)

ADAPTATION_GROUP = ("experiment", "arch", "bias", "activation", "depth", "g2", "sigma2", "input_set", "observable")
"""Claim 9: rows equal in these columns form one group (a curve n Delta vs n)."""


def claim_adaptation_converges(rows) -> ClaimResult:
    """Claim 9: the 1/n-extrapolated MC n Delta agrees with the first-order theory in every group.

    Rows of ``posterior`` tables (columns ``n_shift``, ``n_shift_se``, ``theory``,
    ``theory_se``, ``width``); per group the two largest widths are extrapolated
    with :func:`theory.adaptation_comparison.richardson` (:func:`_extrapolated_agreement`).
    """
    return _grouped_extrapolation("9", rows, ADAPTATION_GROUP, "posterior table with >= 2 widths per group",
                                  "{experiment} {arch} {bias} {activation} A={depth} {observable}")


def _grouped_extrapolation(claim_id: str, rows, group: tuple, missing: str, label: str, mc: str = "n_shift",
                           resolve=None) -> ClaimResult:
    """Group ``rows`` by the columns ``group`` and run :func:`_extrapolated_agreement` on the groups.

    Parameters
    ----------
    claim_id : str
    rows : list of dict
    group : tuple of str
        Columns whose values identify a curve against the width.
    missing : str
        What is missing when no group has two widths (the "not evaluated" reason).
    label : str
        ``str.format`` template over the ``group`` columns naming a group in the reason.
    mc : str
        Column of the MC estimate; its SE is the column ``mc + "_se"``.
    resolve : callable, optional
        ``resolve(fields: dict) -> bool``: groups that count for the resolution requirement (default: all).

    Returns
    -------
    ClaimResult
    """
    groups = _groups_by(rows, group)
    if not groups:
        return _missing(claim_id, missing)

    def fields(key):
        return dict(zip(group, key))

    return _extrapolated_agreement(claim_id, groups, mc, mc + "_se", lambda key: label.format(**fields(key)),
                                   resolve=(lambda key: True) if resolve is None else (lambda key: resolve(fields(key))))


ALIGNMENT_GROUP = ("experiment", "arch", "bias", "activation", "depth", "g2", "sigma2", "input_set", "a")
"""Claim 9b: rows equal in these columns form one group (a curve n Delta[CKA^(a)] vs n)."""


def claim_alignment_shift(rows) -> ClaimResult:
    """Claim 9b: the 1/n-extrapolated MC n Delta[CKA^(a)] agrees with the first-order theory for every layer a.

    Rows of ``posterior_alignment`` tables (the ``posterior_layers`` table of a
    ``posterior`` experiment: columns ``a``, ``n_shift``, ``n_shift_se``,
    ``theory``, ``theory_se``, ``width``); per group (:data:`ALIGNMENT_GROUP`)
    the two largest widths are extrapolated (:func:`_extrapolated_agreement`).
    """
    return _grouped_extrapolation("9b", rows, ALIGNMENT_GROUP, "posterior_layers table with >= 2 widths per group",
                                  "{experiment} {arch} {bias} {activation} A={depth} layer a={a}")


# --------------------------------------------------------------------------- claims 10, 11 (feature-learning figures)

CROSSTIME_GROUP = ("experiment", "arch", "bias", "activation", "depth", "g2", "sigma2", "input_set", "a", "b",
                   "gamma0")
"""Claim 10: rows equal in these columns form one group (a curve n Delta vs n)."""

GENERALISATION_GROUP = ("experiment", "arch", "bias", "activation", "depth", "g2", "sigma2", "input_set", "task")
"""Claim 11: rows equal in these columns form one group (a curve n (err_post - err_GP) vs n)."""


def _extrapolated_agreement(claim_id: str, groups: dict, mc: str, mc_se: str, describe,
                            resolve=lambda key: True) -> ClaimResult:
    """Richardson extrapolation (two largest widths) of ``mc`` per group against ``theory``, Bonferroni over groups.

    Parameters
    ----------
    claim_id : str
    groups : dict of tuple -> list of dict
        Rows per group (at least two widths each), columns ``width``, ``mc``,
        ``mc_se``, ``theory``, ``theory_se``.
    mc, mc_se : str
        Columns of the MC estimate ``n Delta`` and its SE.
    describe : callable
        ``describe(key) -> str`` naming a group in the reason.
    resolve : callable
        ``resolve(key) -> bool``: groups that count for the resolution requirement.

    Returns
    -------
    ClaimResult
        Fails at the worst group, or "unresolved" when no counted group has
        ``|theory| / SE > z crit`` (one-sided).
    """
    from .adaptation_comparison import richardson

    keys = list(groups)
    rows = [sorted(groups[k], key=lambda r: r["width"]) for k in keys]
    ext = [richardson(g[-2]["width"], _f(g[-2], mc), _f(g[-2], mc_se), g[-1]["width"], _f(g[-1], mc),
                      _f(g[-1], mc_se)) for g in rows]
    theory = np.array([_f(g[-1], "theory") for g in rows])
    se = np.hypot([e[1] for e in ext], [_f(g[-1], "theory_se") for g in rows])
    dev = np.array([e[0] for e in ext]) - theory

    def where(i):
        lo, hi = rows[i][-2], rows[i][-1]
        return (f"{describe(keys[i])} (n = {lo['width']}, {hi['width']}: MC {_fmt(_f(lo, mc))}, "
                f"{_fmt(_f(hi, mc))}; extrapolated {_fmt(ext[i][0])} +- {_fmt(ext[i][1])}, theory "
                f"{_fmt(theory[i])})")

    res = _agreement(claim_id, dev, se, None, where)
    counted = np.array([bool(resolve(k)) for k in keys])
    resolution = np.where(counted, np.abs(theory) / se, 0.0)
    if res.passed and not resolution.max() > t_crit_one_sided():
        return _verdict(res, False, f"unresolved: max |theory| / SE = {_fmt(resolution.max())} <= "
                        f"{_fmt(t_crit_one_sided())} (too few realizations to detect the adaptation)")
    return res


def _groups_by(rows, columns) -> dict:
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in columns), []).append(r)
    return {k: v for k, v in groups.items() if len({x["width"] for x in v}) > 1}


def claim_crosstime_adaptation(rows) -> ClaimResult:
    """Claim 10: extrapolated MC shift of u^T Chat^(a,b) u, a < b, agrees with the first-order theory per gamma_0.

    Rows of ``posterior_crosstime`` tables; rows with ``valid = 0`` (ESS below
    task.min_ess) are left out (the two largest *valid* widths are used).
    """
    return _grouped_extrapolation("10", [r for r in rows if int(r["valid"]) == 1], CROSSTIME_GROUP,
                                  "posterior_crosstime table with >= 2 widths of sufficient ESS per group",
                                  "{experiment} {arch} {bias} {activation} A={depth} pair ({a}, {b}) gamma0={gamma0}",
                                  resolve=lambda f: f["arch"] == "rnn")


def claim_generalisation_shift(rows) -> ClaimResult:
    """Claim 11: extrapolated MC n (err_post - err_GP) agrees with the first-order theory (linear networks).

    Rows of ``posterior_generalisation`` tables; only ``activation == "linear"``
    rows are tested (see the claim's statistic).
    """
    return _grouped_extrapolation("11", [r for r in rows if r["activation"] == "linear"], GENERALISATION_GROUP,
                                  "posterior_generalisation table with linear networks at >= 2 widths",
                                  "{experiment} {arch} {bias} A={depth} task {task}", mc="n_diff")


# --------------------------------------------------------------------------- claim 12 (proportional tables)

PROPORTIONAL_GROUP = ("experiment", "alpha", "depth", "layer")
"""Claim 12: rows equal in these columns form one group (a curve against n)."""


def claim_proportional_kernels(rows) -> ClaimResult:
    """Claim 12: HMC layer kernels (projection on the target) agree with ``theory.posterior_kernels``.

    Rows of ``proportional`` tables (columns ``hmc``, ``hmc_se``, ``posterior``,
    ``map``, ``width``).  The theory has an O(1/n) error at fixed alpha: with two or
    more widths per group the deviation is extrapolated in 1/n over the two
    largest (:func:`theory.adaptation_comparison.richardson`).  The reason of a
    passing claim states how far the MAP kernels are (max |z|).
    """
    from .adaptation_comparison import richardson

    groups = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in PROPORTIONAL_GROUP), []).append(r)
    if not groups:
        return _missing("12", "proportional table")
    keys, dev, se, dev_map = list(groups), [], [], []
    for g in groups.values():
        g = sorted(g, key=lambda r: r["width"])
        d = [(_f(r, "hmc") - _f(r, "posterior"), _f(r, "hmc") - _f(r, "map"), _f(r, "hmc_se")) for r in g[-2:]]
        if len(g) > 1:
            (n1, n2) = g[-2]["width"], g[-1]["width"]
            c, e = richardson(n1, d[0][0], d[0][2], n2, d[1][0], d[1][2])
            cm, _ = richardson(n1, d[0][1], d[0][2], n2, d[1][1], d[1][2])
        else:
            c, cm, e = d[-1]
        dev.append(c)
        se.append(e)
        dev_map.append(cm)
    dev, se, dev_map = np.array(dev), np.array(se), np.array(dev_map)

    def where(i):
        k = dict(zip(PROPORTIONAL_GROUP, keys[i]))
        return f"{k['experiment']} alpha={k['alpha']} A={k['depth']} layer {k['layer']}"

    res = _agreement("12", dev, se, None, where)
    signal = max((_f(r, "hmc") - 1.0) / _f(r, "hmc_se") for g in groups.values() for r in g)
    if res.passed and not signal > t_crit_one_sided():
        return _verdict(res, False, f"unresolved: max (HMC - 1) / SE = {_fmt(signal)} <= {_fmt(t_crit_one_sided())} "
                        "(no learning signal visible: more draws or larger alpha)")
    if res.passed:
        res.reason = f"MAP kernels: max |z| = {_fmt(np.max(np.abs(dev_map) / se))}"
    return res


# --------------------------------------------------------------------------- all claims


def evaluate_claims(tables: dict) -> list[ClaimResult]:
    """Evaluate every claim of :data:`CLAIMS`.

    Parameters
    ----------
    tables : dict
        ``kind -> list of (experiment name, rows)``; kinds ``kernel``, ``mmd``
        (the *summary* table rows), ``fluctuations``, ``input_propagation``,
        ``instability``, ``posterior``, ``posterior_alignment`` (the
        ``posterior_layers`` table of a ``posterior`` experiment),
        ``posterior_crosstime``, ``posterior_generalisation``, ``proportional``
        (the kinds of :data:`CLAIMS`).  Rows of all experiments of a kind are
        pooled, with an ``experiment`` key added.

    Returns
    -------
    list of ClaimResult, in the order of :data:`CLAIMS`.
    """
    def pooled(kind):
        out = []
        for name, rows in tables.get(kind, []):
            out.extend({**r, "experiment": name} for r in rows)
        return out

    kernel, mmd = pooled("kernel"), pooled("mmd")
    fluct = pooled("fluctuations")
    tau = None
    g2s = {(r["activation"], r["g2"], r["sigma2"]) for r in fluct}
    if len(g2s) == 1:
        act, g2, s2 = next(iter(g2s))
        try:
            from .stability import depth_scale
            tau = depth_scale(act, float(g2), float(s2))
        except Exception:  # noqa: BLE001 - only a note in the reason column
            tau = None
    width_mmd = [r for name, rows in tables.get("mmd", []) if len({x["width"] for x in rows}) > 1
                 for r in ({**x, "experiment": name} for x in rows)]
    depth_mmd = [r for name, rows in tables.get("mmd", []) if len({x["depth"] for x in rows}) > 1
                 for r in ({**x, "experiment": name} for x in rows)]
    del mmd
    results = [
        claim_equal_time_theory(kernel),
        claim_equal_time_mc(kernel),
        claim_dnn_cross_layer(kernel),
        claim_rnn_cross_relu(kernel),
        claim_rnn_cross_erf(kernel),
        claim_mmd_falls_with_width(width_mmd),
        claim_rnn_slower_with_depth(depth_mmd),
        claim_variance_one_over_n(fluct),
        claim_rnn_variance_above_dnn(fluct),
        claim_rise_and_plateau(fluct, tau),
        claim_input_propagation(pooled("input_propagation")),
        claim_instability_suppressed(pooled("instability")),
        claim_adaptation_converges(pooled("posterior")),
        claim_alignment_shift(pooled("posterior_alignment")),
        claim_crosstime_adaptation(pooled("posterior_crosstime")),
        claim_generalisation_shift(pooled("posterior_generalisation")),
        claim_proportional_kernels(pooled("proportional")),
    ]
    for res in results:
        kind = CLAIMS_BY_ID[res.id].kind
        res.experiments = [name for name, _ in tables.get(kind, [])]
    return results


CLAIM_COLUMNS = {
    "id": "claim id (issue 9 numbering; a/b: parts of one claim)",
    "claim": "the paper's claim",
    "experiments": "experiments whose tables the claim reads",
    "statistic": "what `value` is",
    "value": "value of the statistic on this run",
    "se": "standard error of value (0: exact theory quantity; nan: not available)",
    "criterion": "pass criterion (declared in theory.claims.CLAIMS; alpha = theory.claims.ALPHA)",
    "result": "pass, fail, or not evaluated (no data)",
    "reason": "why the claim failed or was not evaluated; notes for passed claims",
}


def claim_rows(results) -> list[dict]:
    """Rows of the claims table (:data:`CLAIM_COLUMNS`) for evaluated claims."""
    rows = []
    for res in results:
        c = CLAIMS_BY_ID[res.id]
        rows.append({"id": c.id, "claim": c.text, "experiments": " ".join(res.experiments), "statistic": c.statistic,
                     "value": res.value, "se": res.se, "criterion": c.criterion, "result": res.status,
                     "reason": res.reason})
    return rows
