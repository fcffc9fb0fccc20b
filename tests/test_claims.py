"""theory.claims: each claim on synthetic tables where it holds (pass) and where it does not (fail)."""

import math

import numpy as np
import pytest

from theory import claims as C

R = 100


def _kernel_rows(*, rnn_diag_shift=0.0, dnn_cross_shift=0.0, relu_cross=0.5, erf_cross=0.0, theory_shift=0.0,
                 static_theory=0.2):
    """Kernel-table rows for relu and erf, both bias modes, DNN and RNN, A = 6, cross_steps b = 3, 6."""
    rows, se = [], 0.01
    rng = np.random.default_rng(0)
    for act in ("relu", "erf"):
        for bias in ("uncorrelated", "static"):
            for arch in ("dnn", "rnn"):
                base = dict(arch=arch, bias=bias, activation=act, width=500, depth=6, g2=1.6, sigma2=0.2,
                            input_set=0, realizations=R)
                for a in range(8):
                    th = 1.0 + 0.1 * a + (theory_shift if arch == "rnn" else 0.0)
                    mc = th + se * rng.standard_normal() + (rnn_diag_shift if arch == "rnn" else 0.0)
                    rows.append(dict(base, quantity="diag", a=a, b=a, mc_mean=mc, mc_sem=se, theory=th))
                for b in (3, 6):
                    for a in range(7):
                        if arch == "dnn":
                            th = static_theory if bias == "static" else 0.0
                            mc = th + dnn_cross_shift
                        elif act == "relu" or bias == "static":
                            th = relu_cross if act == "relu" else 0.2
                            mc = th if a != b else 1.0
                        else:
                            th, mc = 0.0, erf_cross
                        mc += se * rng.standard_normal()
                        rows.append(dict(base, quantity="cross", a=a, b=b, mc_mean=mc, mc_sem=se, theory=th))
    return rows


def test_claims_declared_once_with_unique_ids():
    ids = [c.id for c in C.CLAIMS]
    assert ids == ["1a", "1b", "2", "3a", "3b", "4a", "4b", "5a", "5b", "6", "7", "8", "9", "9b", "10", "11", "12"]
    assert all(c.text and c.statistic and c.criterion for c in C.CLAIMS)
    # issue 9's 8 claims and issue 11's claims 9-12
    assert {int(i.rstrip("ab")) for i in ids} == set(range(1, 13))
    assert C.CLAIMS_BY_ID["9b"].kind == "posterior_alignment"


def test_critical_values():
    assert C.t_crit_one_sided() == pytest.approx(3.0902, abs=1e-3)
    assert C.t_crit_two_sided(1) == pytest.approx(3.2905, abs=1e-3)
    assert C.t_crit_two_sided(10) > C.t_crit_two_sided(1)
    assert C.t_crit_one_sided(dof=5) > C.t_crit_one_sided()


def test_weighted_slope_recovers_a_line():
    x = np.log([100, 200, 400, 800])
    s, se, red = C.weighted_slope(x, 3.0 - 1.0 * x, np.full(4, 0.1))
    assert s == pytest.approx(-1.0) and se > 0 and red == pytest.approx(0.0, abs=1e-20)


def test_kernel_claims_pass_when_they_hold():
    rows = _kernel_rows()
    for fn in (C.claim_equal_time_theory, C.claim_equal_time_mc, C.claim_dnn_cross_layer, C.claim_rnn_cross_relu,
               C.claim_rnn_cross_erf):
        res = fn(rows)
        assert res.status == "pass", (fn.__name__, res)


def test_equal_time_theory_fails_when_theory_differs():
    res = C.claim_equal_time_theory(_kernel_rows(theory_shift=1e-6))
    assert res.status == "fail" and "theory differs" in res.reason


def test_equal_time_mc_fails_when_rnn_deviates():
    res = C.claim_equal_time_mc(_kernel_rows(rnn_diag_shift=0.1))
    assert res.status == "fail" and "|z|" in res.reason
    assert res.value == pytest.approx(0.1, abs=0.06) and res.se == pytest.approx(math.sqrt(2) * 0.01)


def test_dnn_cross_layer_fails_on_mc_or_theory():
    assert C.claim_dnn_cross_layer(_kernel_rows(dnn_cross_shift=0.1)).status == "fail"
    res = C.claim_dnn_cross_layer(_kernel_rows(static_theory=0.3))
    assert res.status == "fail" and "theory" in res.reason


def test_rnn_cross_claims_fail():
    assert C.claim_rnn_cross_relu(_kernel_rows(relu_cross=0.02)).status == "fail"  # 2 SE: not significant
    assert C.claim_rnn_cross_erf(_kernel_rows(erf_cross=0.1)).status == "fail"


def test_kernel_claims_without_data_are_not_evaluated():
    res = C.claim_rnn_cross_erf([r for r in _kernel_rows() if r["activation"] == "relu"])
    assert res.status == "not evaluated" and "no data" in res.reason


def _mmd_rows(axis, values, f_dnn, f_rnn, sem=0.001, sets=10, se_within=0.0003):
    rows = []
    for arch, f in (("dnn", f_dnn), ("rnn", f_rnn)):
        for bias in ("uncorrelated", "static"):
            for v in values:
                width, depth = (v, 15) if axis == "width" else (500, v)
                rows.append(dict(arch=arch, bias=bias, activation="relu", width=width, depth=depth, g2=1.6,
                                 sigma2=0.2, g2_in=1.6, input_sets=sets, realizations=1000.0,
                                 mmd2_mean=f(v), mmd2_sem=sem, mmd2_se_within=se_within, noise_floor_mean=0.0,
                                 noise_floor_std=sem, lengthscale=0.5))
    return rows


def test_mmd_falls_with_width():
    ok = _mmd_rows("width", [10, 40, 160], lambda n: 0.1 / n, lambda n: 0.2 / n)
    res = C.claim_mmd_falls_with_width(ok)
    assert res.status == "pass" and res.se == pytest.approx(math.sqrt(2) * 0.0003)
    # between-set SEM is irrelevant given the input sets: the test uses the within-set SE only
    assert C.claim_mmd_falls_with_width(_mmd_rows("width", [10, 40, 160], lambda n: 0.1 / n, lambda n: 0.2 / n,
                                                  sem=1.0, sets=2)).status == "pass"
    rising = _mmd_rows("width", [10, 40, 160], lambda n: 0.1 / n, lambda n: 1e-5 * n)
    res = C.claim_mmd_falls_with_width(rising)
    assert res.status == "fail" and "RNN" in res.reason and res.value < 0
    flat = _mmd_rows("width", [10, 40, 160], lambda n: 0.1 / n, lambda n: 0.001)
    assert C.claim_mmd_falls_with_width(flat).status == "fail"
    # a true fall of 2 SE is not significant at alpha = 1e-3: no power, fail
    fall = 2 * math.sqrt(2) * 3e-4  # 2 SE of the difference
    small = _mmd_rows("width", [10, 160], lambda n: 0.1 / n, lambda n: 0.001 + (fall if n == 10 else 0))
    assert C.claim_mmd_falls_with_width(small).status == "fail"
    noisy = _mmd_rows("width", [10, 40, 160], lambda n: 0.1 / n, lambda n: 0.2 / n, se_within=0.05)
    assert C.claim_mmd_falls_with_width(noisy).status == "fail"
    no_se = [{k: v for k, v in r.items() if k != "mmd2_se_within"} for r in ok]
    res = C.claim_mmd_falls_with_width(no_se)
    assert res.status == "fail" and "mmd2_se_within" in res.reason
    unpaired = [dict(r, input_sets=3) if r["width"] == 160 else r for r in ok]
    assert "same sets" in C.claim_mmd_falls_with_width(unpaired).reason


def test_rnn_slower_with_depth():
    ok = _mmd_rows("depth", [1, 5, 15, 30], lambda a: 0.001, lambda a: 0.001 + 0.0001 * a)
    res = C.claim_rnn_slower_with_depth(ok)
    assert res.status == "pass" and res.se == pytest.approx(0.0003 * math.sqrt(8) / 4)
    same = _mmd_rows("depth", [1, 5, 15, 30], lambda a: 0.001, lambda a: 0.001)
    res = C.claim_rnn_slower_with_depth(same)
    assert res.status == "fail" and res.value == pytest.approx(0.0)
    faster = _mmd_rows("depth", [1, 5, 15, 30], lambda a: 0.001 + 0.0001 * a, lambda a: 0.001)
    assert C.claim_rnn_slower_with_depth(faster).status == "fail"
    # only shallow depths differ: the claim is about A >= MMD_DEPTH_MIN
    shallow = _mmd_rows("depth", [1, 5, 15, 30], lambda a: 0.001, lambda a: 0.1 if a < 15 else 0.001)
    assert C.claim_rnn_slower_with_depth(shallow).status == "fail"
    no_se = [dict(r, mmd2_se_within=float("nan")) for r in ok]
    assert "mmd2_se_within" in C.claim_rnn_slower_with_depth(no_se).reason


def _fluct_rows(var_of, widths=(100, 200, 400, 800), depth=6, rel_se=0.05, shape=None, theory_shape=None):
    """Fluctuation-table rows: readout Var = var_of(arch, n); per-layer Var = plateau shape at the largest width."""
    shape = shape or (lambda a: 1.0 - 0.8 * math.exp(-a / 1.96))
    theory_shape = theory_shape or shape
    rows = []
    for arch in ("dnn", "rnn"):
        for n in widths:
            base = dict(arch=arch, bias="uncorrelated", activation="relu", width=n, depth=depth, g2=1.2, sigma2=0.2,
                        input_set=0, realizations=1000, quantity="var_caux")
            for a in range(depth + 2):
                if a == depth + 1:
                    v = var_of(arch, n)
                    th = v
                else:
                    v = 1e-3 * shape(a) * 800 / n if a else 0.0
                    th = 1e-3 * theory_shape(a) * 800 / n if a else 0.0
                rows.append(dict(base, a=a, mc=v, mc_se=rel_se * v, theory=th, z=0.0))
    return rows


def test_variance_one_over_n():
    ok = _fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n)
    res = C.claim_variance_one_over_n(ok)
    assert res.status == "pass" and res.value == pytest.approx(1.0)  # worst group: the DNN, a = 1
    # leading 1/n plus a large next order (the RNN's finite-size excess at small n): still 1/n at leading order,
    # although the log-log slope over these widths is -1.26
    widths, se = (100, 200, 500, 1000, 2000), dict(rel_se=0.02)
    nlo = _fluct_rows(lambda arch, n: 1.0 / n + (150.0 if arch == "rnn" else 0.0) / n**2, widths=widths, **se)
    slope = C.weighted_slope(np.log(widths), np.log([1 / n + 150 / n**2 for n in widths]), np.full(5, 0.02))[0]
    assert slope < -1.2
    assert C.claim_variance_one_over_n(nlo).status == "pass"
    # other powers: 1/n^2 has no 1/n term; n^-0.5 and n^-1.3 are not a/n + b/n^2 within 2 % SEs
    for p, why in ((2.0, "no leading 1/n term"), (0.5, "does not fit"), (1.3, "does not fit")):
        rows = _fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n**p, widths=widths, **se)
        res = C.claim_variance_one_over_n(rows)
        assert res.status == "fail" and why in res.reason, (p, res.reason)
    with pytest.raises(ValueError, match="widths"):
        C.fit_one_over_n([100, 200], [0.01, 0.005], [1e-4, 1e-4])


def test_fit_one_over_n_recovers_coefficients():
    n = np.array([100, 200, 500, 1000])
    fit = C.fit_one_over_n(n, 2.0 / n + 30.0 / n**2, 0.01 * (2.0 / n))
    assert fit["a"] == pytest.approx(2.0) and fit["b"] == pytest.approx(30.0) and fit["dof"] == 2
    assert fit["chi2"] == pytest.approx(0.0, abs=1e-18) and 0 < fit["a_se"] < 0.1


def test_rnn_variance_above_dnn():
    assert C.claim_rnn_variance_above_dnn(_fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n)).passed
    res = C.claim_rnn_variance_above_dnn(_fluct_rows(lambda arch, n: 1.0 / n))
    assert res.status == "fail" and res.value == pytest.approx(0.0)


def test_rise_and_plateau():
    var = lambda arch, n: 1.0 / n  # noqa: E731
    deep = dict(depth=15, rel_se=0.01)
    assert C.claim_rise_and_plateau(_fluct_rows(var, **deep), tau_theory=1.96).status == "pass"
    # MC approaches the plateau on a different depth scale than the NLO curve
    slow = _fluct_rows(var, shape=lambda a: 1.0 - 0.8 * math.exp(-a / 3.5),
                       theory_shape=lambda a: 1.0 - 0.8 * math.exp(-a / 1.96), **deep)
    res = C.claim_rise_and_plateau(slow)
    assert res.status == "fail" and "tau_MC" in res.reason
    # overshoot: the NLO curve peaks and falls (C(0,0) > C*): not the claim's regime
    over = _fluct_rows(var, shape=lambda a: 1.0 + 2.0 * math.exp(-a / 1.96) * (1 - math.exp(-a)), **deep)
    res = C.claim_rise_and_plateau(over)
    assert res.status == "fail" and "C(0,0) > C*" in res.reason
    # MC flat although the NLO rises
    flat = _fluct_rows(var, shape=lambda a: 1.0, theory_shape=lambda a: 1.0 - 0.8 * math.exp(-a / 1.96), **deep)
    assert C.claim_rise_and_plateau(flat).status == "fail"


def test_rise_and_plateau_undetermined_fit_fails():
    """A fit that cannot determine tau (too few layers, or MC scattered far beyond its SE) must fail, not pass."""
    var = lambda arch, n: 1.0 / n  # noqa: E731
    # depth 4: only a = 3, 4 remain for a 3-parameter fit (used to raise TypeError and crash the rule)
    short = C.claim_rise_and_plateau(_fluct_rows(var, depth=4, rel_se=0.01))
    assert short.status == "fail" and "plateau fit failed" in short.reason
    # depth 5: three points alternating +-5 SE around the curve: the covariance is not estimable
    wiggle = _fluct_rows(var, depth=5, rel_se=0.01,
                         shape=lambda a: (1.0 - 0.8 * math.exp(-a / 1.96)) * (1 + 0.05 * (-1) ** a),
                         theory_shape=lambda a: 1.0 - 0.8 * math.exp(-a / 1.96))
    res = C.claim_rise_and_plateau(wiggle)
    assert res.status == "fail" and "plateau fit failed" in res.reason, (res.status, res.reason)


def _input_rows(mc_of, se=0.01, sets=6, depth=10):
    rows = []
    for arch in ("dnn", "rnn"):
        for a in range(depth + 2):
            lr = 0.5 * 0.6 ** a
            rows.append(dict(arch=arch, bias="uncorrelated", activation="relu", width=500, depth=depth, g2=1.2,
                             sigma2=0.2, g2_in=1.2, input_sets=sets, realizations=100.0, a=a, mc_std=mc_of(lr, a),
                             mc_std_se=se, weight_noise=0.001, mc_std_corrected=mc_of(lr, a), mft_std=lr,
                             linear_response=lr))
    return rows


def test_input_propagation():
    assert C.claim_input_propagation(_input_rows(lambda lr, a: lr)).status == "pass"
    res = C.claim_input_propagation(_input_rows(lambda lr, a: 0.5))  # no decay
    assert res.status == "fail" and "linear response" in res.reason
    two_sets = _input_rows(lambda lr, a: lr, se=float("nan"), sets=2)
    assert "3 input sets" in C.claim_input_propagation(two_sets).reason


def _instab_rows(ratio_of, rel_se=0.05, widths=(1000, 3000, 5000, 10000), depth=40):
    rows = []
    for n in widths:
        r = ratio_of(n)
        rows.append(dict(arch="rnn", bias="uncorrelated", activation="relu", width=n, depth=depth, g2=1.73,
                         sigma2=0.0, input_set=0, realizations=400, overflowed=0, quantity="diag", a=depth, lag=0,
                         mc_mean=2.0 * r, mc_sem=2.0 * rel_se * r, mc_std=1.0, theory=2.0, z=0.0))
    return rows


def test_instability_suppressed():
    assert C.claim_instability_suppressed(_instab_rows(lambda n: 1.0 + 3000.0 / n)).status == "pass"
    res = C.claim_instability_suppressed(_instab_rows(lambda n: 1.5))
    assert res.status == "fail" and "MC/theory" in res.reason
    growing = C.claim_instability_suppressed(_instab_rows(lambda n: 1.0 + n / 3000.0))
    assert growing.status == "fail" and growing.value > 0
    two = C.claim_instability_suppressed(_instab_rows(lambda n: 1.0 + 3000.0 / n, widths=(1000, 10000)))
    assert two.status == "pass"


def test_evaluate_claims_rows_and_missing_tables():
    tables = {
        "kernel": [("fig1", _kernel_rows())],
        "mmd": [("w", _mmd_rows("width", [10, 40, 160], lambda n: 1.0 / n, lambda n: 2.0 / n)),
                ("d", _mmd_rows("depth", [1, 5, 15, 30], lambda a: 0.001, lambda a: 0.001 + 0.001 * a))],
        "fluctuations": [("f", _fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n, depth=15,
                                           rel_se=0.01))],
        "input_propagation": [("i", _input_rows(lambda lr, a: lr))],
    }
    results = C.evaluate_claims(tables)
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == [c.id for c in C.CLAIMS]
    assert all(by_id[i].passed for i in ("1a", "1b", "2", "3a", "3b", "4a", "4b", "5a", "5b", "6", "7")), results
    assert by_id["8"].status == "not evaluated" and by_id["8"].experiments == []
    assert "1.96" in by_id["6"].reason  # -1/ln F for relu at g2 = 1.2
    rows = C.claim_rows(results)
    assert [list(r) for r in rows] == [list(C.CLAIM_COLUMNS)] * len(rows)
    assert by_id["4a"].experiments == ["w", "d"]


def test_experiments_of_one_kind_are_not_mixed():
    """Rows of two experiments of one kind form separate groups (each must satisfy the claim)."""
    good = [dict(r, experiment="a") for r in _instab_rows(lambda n: 1.0 + 3000.0 / n)]
    flat = [dict(r, experiment="b") for r in _instab_rows(lambda n: 1.5)]
    assert C.claim_instability_suppressed(good).passed
    res = C.claim_instability_suppressed(good + flat)
    assert res.status == "fail" and res.value == pytest.approx(0.0, abs=1e-12)
    ok = [dict(r, experiment="a") for r in _fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n)]
    steep = [dict(r, experiment="b") for r in _fluct_rows(lambda arch, n: (2.0 if arch == "rnn" else 1.0) / n**2)]
    assert C.claim_variance_one_over_n(ok).passed
    res = C.claim_variance_one_over_n(ok + steep)
    assert res.status == "fail" and res.value == pytest.approx(0.0, abs=1e-9)  # a of experiment b


def _resolution(reason):
    return float(reason.split("|deviation| < ")[1].split(" x ")[0])


def test_agreement_claims_state_their_resolution():
    """A passing agreement claim says how large a relative deviation its confidence bounds still allow.

    The resolution is (|dev| + t crit * SE) / scale at the loosest row: with SE = 0.01 on kernels
    of order 1 it is a few percent; with SE = 1 the claim still passes (no significant deviation)
    but the resolution shows that it has no power.
    """
    rows = _kernel_rows()
    for fn in (C.claim_equal_time_mc, C.claim_dnn_cross_layer, C.claim_rnn_cross_erf):
        res = fn(rows)
        assert res.passed and 0 < _resolution(res.reason) < 0.15, (fn.__name__, res.reason)
    blind = [dict(r, mc_sem=1.0) for r in rows]
    res = C.claim_rnn_cross_erf(blind)
    assert res.passed and _resolution(res.reason) > 3
    # the scale of a cross row is sqrt(C^(a,a) C^(b,b)) of the same point: a = 0, b = 3 -> sqrt(1.0 * 1.3)
    cross = [r for r in rows if r["quantity"] == "cross" and r["arch"] == "rnn" and r["a"] == 0 and r["b"] == 3]
    assert C._kernel_scale(rows, cross) == pytest.approx(np.full(len(cross), math.sqrt(1.3)))
    res = C.claim_input_propagation(_input_rows(lambda lr, a: lr))
    assert res.passed and "linear response" in res.reason


# --------------------------------------------------------------------------- claim 9b (posterior_layers tables)
ALIGNMENT_SHIFT = {1: 0.02, 2: 0.05, 3: 0.12}
"""n Delta[CKA^(a)] per layer a of the synthetic tables (A = 2: hidden layers 1, 2 and the readout 3)."""


def _alignment_rows(theory_of=lambda a, c: c, widths=(50, 100, 200), se=0.002, d=-1.0):
    """Synthetic posterior_layers rows: MC n Delta[CKA^(a)] = c_a + d / n (exact), theory = theory_of(a, c_a)."""
    rows = []
    for arch in ("dnn", "rnn"):
        for a, c in ALIGNMENT_SHIFT.items():
            for n in widths:
                rows.append({"experiment": "fl", "arch": arch, "bias": "uncorrelated", "activation": "relu",
                             "depth": 2, "g2": 1.2, "sigma2": 0.2, "input_set": 0, "a": a, "width": n,
                             "prior_mf": 0.5, "prior_mc": 0.5, "n_shift": c + d / n, "n_shift_se": se,
                             "theory": theory_of(a, c), "theory_se": 0.0})
    return rows


def test_alignment_claim_passes_when_the_extrapolation_agrees():
    res = C.claim_alignment_shift(_alignment_rows())
    assert res.passed, res.reason
    # Richardson removes d / n exactly: deviation 0, SE of (2 x n2 - x n1) / (n2 - n1) with n1 = n2 / 2
    assert res.value == pytest.approx(0.0, abs=1e-12) and res.se == pytest.approx(math.sqrt(5) * 0.002)


def test_alignment_claim_rejects_a_wrong_theory():
    """Theory off at one layer only: the layers are separate groups, and the worst one is named."""
    res = C.claim_alignment_shift(_alignment_rows(lambda a, c: 1.5 * c if a == 2 else c))
    assert res.status == "fail" and "|z|" in res.reason and "layer a=2" in res.reason, res.reason
    assert res.value == pytest.approx(-0.025)
    # a sign error of the theory at every layer
    assert C.claim_alignment_shift(_alignment_rows(lambda a, c: -c)).status == "fail"
    # a large 1/n correction (5 / 200 = 12.5 SE at the largest width) is extrapolated away, not held against
    # a right theory
    assert C.claim_alignment_shift(_alignment_rows(d=-5.0)).passed


def test_alignment_claim_unresolved_when_the_shift_is_within_the_noise():
    res = C.claim_alignment_shift(_alignment_rows(se=0.02))  # |theory| / SE <= 0.12 / (sqrt(5) 0.02) = 2.7
    assert res.status == "fail" and "unresolved" in res.reason, res.reason


def test_alignment_claim_needs_two_widths():
    res = C.claim_alignment_shift(_alignment_rows(widths=(100,)))
    assert res.status == "not evaluated" and "posterior_layers" in res.reason


def test_alignment_claim_is_evaluated_with_the_others():
    results = C.evaluate_claims({"posterior_alignment": [("fl", _alignment_rows())]})
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == [c.id for c in C.CLAIMS]
    assert by_id["9b"].passed and by_id["9b"].experiments == ["fl"]
    assert by_id["9"].status == "not evaluated"
