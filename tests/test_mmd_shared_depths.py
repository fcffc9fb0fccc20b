"""SE of MMD^2 summed over depths read out of the same realizations (nested readouts, claim 4b)."""

import math

import numpy as np
import pytest

import theory.claims as C
from theory.mmd import mmd2_gaussian_sum_with_se, mmd2_gaussian_with_se

P, M, REPS, RHO = 2, 200, 300, 0.95
K = np.array([[1.0, 0.5], [0.5, 1.0]])
# the samples' law differs from N(0, K) (non-degenerate U-statistic): N(0, 1.6 K)
SCALE = math.sqrt(1.6)


def _correlated_terms(rng):
    """Two 'depths' of the same m realizations: equal laws, correlation RHO per realization."""
    L = np.linalg.cholesky(K)
    z1 = rng.standard_normal((M, P)) @ L.T
    z2 = RHO * z1 + math.sqrt(1 - RHO**2) * (rng.standard_normal((M, P)) @ L.T)
    return SCALE * z1, SCALE * z2


def test_joint_se_matches_the_spread_and_quadrature_is_too_small():
    rng = np.random.default_rng(7)
    totals, joint, quad = [], [], []
    for _ in range(REPS):
        y1, y2 = _correlated_terms(rng)
        (v1, s1), (v2, s2) = mmd2_gaussian_with_se(y1, K), mmd2_gaussian_with_se(y2, K)
        total, se = mmd2_gaussian_sum_with_se([y1, y2], [K, K])
        assert total == pytest.approx(v1 + v2, rel=1e-12, abs=1e-15)
        totals.append(total)
        joint.append(se)
        quad.append(math.hypot(s1, s2))
    spread = np.std(totals, ddof=1)
    # the sample std of REPS values has relative SE 1/sqrt(2 (REPS - 1)) = 0.041: 4 of them
    tol = 4.0 / math.sqrt(2 * (REPS - 1))
    assert abs(np.mean(joint) / spread - 1.0) < tol, (np.mean(joint), spread)
    # independent-simulation quadrature ignores the correlation: about 1/sqrt(2) of the truth here
    assert np.mean(quad) / spread < 1.0 - tol, (np.mean(quad), spread)


def test_sum_with_se_rejects_mismatched_terms():
    y = np.zeros((10, P))
    with pytest.raises(ValueError, match="^samples_seq, K_seq"):
        mmd2_gaussian_sum_with_se([y], [K, K])
    with pytest.raises(ValueError, match="^samples_seq: every term needs the same number"):
        mmd2_gaussian_sum_with_se([y, y[:5]], [K, K])


def _shared_rows(deep_dnn, deep_rnn, deep_se, depths=(1, 15, 30)):
    rows = []
    for arch, deep in (("dnn", deep_dnn), ("rnn", deep_rnn)):
        for bias in ("uncorrelated", "static"):
            for a in depths:
                rows.append(dict(arch=arch, bias=bias, activation="relu", width=500, depth=a, g2=1.6, sigma2=0.2,
                                 g2_in=1.6, input_sets=2, realizations=1000, mmd2_mean=deep, mmd2_sem=1e-3,
                                 mmd2_se_within=1e-5, noise_floor_mean=0.0, noise_floor_std=1e-4, lengthscale=0.5,
                                 depths_shared="True", mmd2_deep_mean=deep, mmd2_deep_se_within=deep_se))
    return rows


def test_claim_4b_uses_the_joint_se_of_shared_depths():
    # per-depth SEs of 1e-5 would make 2e-4 significant; the joint SE 3e-4 of the depth averages does not
    res = C.claim_rnn_slower_with_depth(_shared_rows(1e-3, 1.2e-3, 3e-4))
    assert res.status == "fail" and res.se == pytest.approx(math.sqrt(4 * 3e-4**2) / 2)
    assert res.value == pytest.approx(2e-4) and "joint SE" in res.reason
    res = C.claim_rnn_slower_with_depth(_shared_rows(1e-3, 2e-3, 1e-4))
    assert res.status == "pass" and res.se == pytest.approx(1e-4)
    missing = [dict(r, mmd2_deep_se_within=float("nan")) for r in _shared_rows(1e-3, 2e-3, 1e-4)]
    assert "mmd2_deep_se_within" in C.claim_rnn_slower_with_depth(missing).reason


# --------------------------------------------------------------------------- compare_mmd on nested readouts


def _nested_point(depths, R, rng, overflow_from=None, n_over=0):
    """Synthetic nested-readout point: y_steps from the exact readout laws N(0, K_a), one prior, the theory kernels.

    The first ``n_over`` realizations overflow from step ``overflow_from`` on (inf readouts, overflow flag set),
    as a realization of the deepest simulation that diverges late does.
    """
    from theory import Prior, kernel, readout_kernels

    A = max(depths)
    prior = {"arch": "rnn", "depth": A, "activation": "relu", "g2": 1.6, "sigma2": 0.2, "g2_in": 1.6,
             "bias": "uncorrelated", "n_out": 1}
    X = rng.standard_normal((2, 3))
    C = kernel(Prior(**prior), X)
    K = readout_kernels(Prior(**prior), X, C)  # (A+1, P, P)
    y_steps = np.stack([rng.standard_normal((R, 2)) @ np.linalg.cholesky(K[a]).T for a in range(A + 1)], axis=1)
    y_steps = y_steps[..., None]
    overflow = np.zeros(R, dtype=bool)
    if n_over:
        y_steps[:n_over, overflow_from:] = np.inf
        overflow[:n_over] = True
    data = {"y": y_steps[:, A], "y_steps": y_steps, "overflow": overflow}
    params = {"arch": "rnn", "bias": "uncorrelated", "activation": "relu", "width": 100, "depth": A, "g2": 1.6,
              "sigma2": 0.2, "g2_in": 1.6, "input_set": 0, "input_seed": 1, "realizations": R,
              "depths": sorted(depths), "prior": prior}
    return data, {"inputs": X, "kernel": C}, params


def _compare_mmd_rows(tmp_path, monkeypatch, depths, **over):
    """Run workflow/scripts/compare_mmd.py on one synthetic nested point; its per-depth rows and summary rows."""
    import csv
    import json

    from test_workflow_helpers import run_script, scripts_common

    common = scripts_common(monkeypatch)
    data, theory, params = _nested_point(depths, 400, np.random.default_rng(3), **over)
    name = "arch-rnn_pt"
    monkeypatch.setattr(common, "read_sim", lambda path: (data, {}))
    monkeypatch.setattr(common, "read_h5", lambda path: (theory, {}))
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in (("table", "csv"), ("meta", "json"), ("summary", "csv"),
                                                       ("summary_meta", "json"))}
    run_script("compare_mmd.py", monkeypatch, input={"sim": [f"sim/{name}.h5"], "theory": [f"theory/{name}.h5"]},
               output={k: str(v) for k, v in out.items()},
               params={"points": json.dumps({name: params}), "experiment": json.dumps({"kind": "mmd"}),
                       "lengthscale": 0.5}, log=tmp_path / "compare.log")
    rows = {int(r["depth"]): r for r in csv.DictReader(out["table"].open())}
    return rows, list(csv.DictReader(out["summary"].open()))


def test_compare_mmd_nested_rows_drop_only_realizations_overflowed_by_their_depth(tmp_path, monkeypatch):
    """A realization of the deepest simulation that overflows at step 16 is valid at depths 1 and 15 (a separate
    depth-15 network would not have overflowed) and dropped at depth 20; the depth average uses the realizations
    valid at every averaged depth (15 and 20)."""
    rows, _ = _compare_mmd_rows(tmp_path, monkeypatch, [1, 15, 20], overflow_from=16, n_over=25)
    assert {a: int(r["realizations"]) for a, r in rows.items()} == {1: 400, 15: 400, 20: 375}
    assert {a: int(r["overflowed"]) for a, r in rows.items()} == {1: 0, 15: 0, 20: 25}
    assert all(math.isfinite(float(r["mmd2"])) and math.isfinite(float(r["mmd2_deep_se"])) for r in rows.values())


def test_compare_mmd_nested_single_deep_depth_has_a_joint_se(tmp_path, monkeypatch):
    """Nested depths [1, 5, 15]: one depth >= MMD_DEPTH_MIN still gives claim 4b a finite depth average and SE
    (it was nan, and claim 4b then failed asking to rerun compare_mmd)."""
    assert C.MMD_DEPTH_MIN == 15
    rows, summary = _compare_mmd_rows(tmp_path, monkeypatch, [1, 5, 15])
    deep = rows[15]
    assert int(deep["deep_depths"]) == 1
    assert float(deep["mmd2_deep"]) == pytest.approx(float(deep["mmd2"]), rel=1e-12)
    assert float(deep["mmd2_deep_se"]) == pytest.approx(float(deep["mmd2_se"]), rel=1e-6)
    assert all(math.isfinite(float(s["mmd2_deep_se_within"])) for s in summary)
