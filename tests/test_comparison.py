"""theory.comparison: z scores, MMD pooling over input sets, spread of weight-averaged overlaps (Fig. 3c,d)."""

import math

import numpy as np
import pytest

import mcsim
import theory
from theory.comparison import input_spread, pool_input_sets, weight_average, z_score


def test_z_score_values_and_deterministic_entries():
    assert z_score(1.5, 1.0, 0.25) == pytest.approx(2.0)
    assert isinstance(z_score(1.5, 1.0, 0.25), float)
    out = z_score([1.0, 3e-31, 0.0, 2.0], [0.0, 0.0, 0.0, 2.0 + 1e-12], [0.5, 1e-40, 0.0, 1e-15])
    assert out[0] == pytest.approx(2.0)
    assert np.isnan(out[1]) and np.isnan(out[2]) and np.isnan(out[3])  # se below round-off of the values


def test_pool_input_sets_matches_definitions():
    mmd2, floor, floor_std = [0.3, 0.1, 0.2], [0.01, -0.02, 0.0], [0.1, 0.2, 0.3]
    out = pool_input_sets(mmd2, floor, floor_std)
    assert out["input_sets"] == 3
    assert out["mmd2_mean"] == pytest.approx(0.2)
    assert out["mmd2_sem"] == pytest.approx(0.1 / math.sqrt(3))
    assert out["noise_floor_mean"] == pytest.approx(-0.01 / 3)
    assert out["noise_floor_std"] == pytest.approx(math.sqrt((0.01 + 0.04 + 0.09) / 3 / 3))
    single = pool_input_sets([0.5], [0.0], [0.2])
    assert math.isnan(single["mmd2_sem"]) and single["noise_floor_std"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="^mmd2"):
        pool_input_sets([0.1, 0.2], [0.0], [0.1, 0.1])
    assert "mmd2_se_within" not in out
    within = pool_input_sets(mmd2, floor, floor_std, mmd2_se=[0.03, 0.04, 0.12])["mmd2_se_within"]
    assert within == pytest.approx(0.13 / 3)  # sqrt(0.03^2 + 0.04^2 + 0.12^2) / S
    with pytest.raises(ValueError, match="^mmd2_se"):
        pool_input_sets(mmd2, floor, floor_std, mmd2_se=[0.1, 0.1])
    with pytest.raises(ValueError, match="^mmd2_se"):
        pool_input_sets(mmd2, floor, floor_std, mmd2_se=[0.1, -0.1, 0.1])
    assert math.isnan(pool_input_sets(mmd2, floor, floor_std, mmd2_se=[0.1, float("nan"), 0.1])["mmd2_se_within"])


def test_noise_floor_std_is_the_spread_of_the_set_average():
    """Simulated: the std over many trials of the set-averaged floor equals noise_floor_std."""
    rng = np.random.default_rng(0)
    stds = np.array([0.1, 0.3, 0.2, 0.4])
    trials = rng.standard_normal((20000, 4)) * stds
    predicted = pool_input_sets(np.zeros(4), np.zeros(4), stds)["noise_floor_std"]
    assert np.std(trials.mean(axis=1)) == pytest.approx(predicted, rel=0.03)


def test_weight_average():
    x = np.random.default_rng(1).standard_normal((50, 3)) + [1.0, 2.0, 3.0]
    mean, err = weight_average(x)
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(err, x.std(0, ddof=1) / math.sqrt(50))


def test_input_spread_definitions():
    rng = np.random.default_rng(2)
    means, sems = rng.random((5, 4)), 0.01 * rng.random((5, 4))
    kernels, props = rng.random((5, 4)), rng.random((5, 4))
    out = input_spread(means, sems, kernels, props)
    np.testing.assert_allclose(out["mc_std"], means.std(0, ddof=1))
    np.testing.assert_allclose(out["weight_noise"], np.sqrt((sems**2).mean(0)))
    np.testing.assert_allclose(out["mc_std_corrected"], np.sqrt(means.std(0, ddof=1) ** 2 - (sems**2).mean(0)))
    np.testing.assert_allclose(out["mft_std"], kernels.std(0, ddof=1))
    np.testing.assert_allclose(out["linear_response"], props.mean(0) * kernels[:, 0].std(ddof=1))
    assert np.all(np.isfinite(out["mc_std_se"])) and np.all(out["mc_std_se"] > 0)
    two = input_spread(means[:2], sems[:2], kernels[:2], props[:2])
    assert np.all(np.isnan(two["mc_std_se"]))  # jackknife needs 3 draws
    with pytest.raises(ValueError, match="^kernels"):
        input_spread(means, sems, kernels[:, :3], props)
    with pytest.raises(ValueError, match="^means"):
        input_spread(means[:1], sems[:1], kernels[:1], props[:1])


def test_weight_noise_correction_recovers_the_input_spread():
    """Means = true value per draw + noise of known SE: the corrected std estimates the true spread."""
    rng = np.random.default_rng(3)
    S, L = 4000, 3
    true = rng.standard_normal((S, L)) * [0.5, 1.0, 2.0]
    sems = np.full((S, L), 0.5)
    means = true + sems * rng.standard_normal((S, L))
    out = input_spread(means, sems, true, np.ones((S, L)))
    np.testing.assert_allclose(out["mc_std_corrected"], [0.5, 1.0, 2.0], rtol=0.08)
    assert np.all(out["mc_std"] > out["mc_std_corrected"] + 0.05)


def test_workflow_and_mcsim_compute_fig3cd_one_way():
    """mcsim.weight_averaged_overlaps gives per-draw mean/sem with weight_average's definition, so
    its output fed to input_spread equals the workflow's path (samples -> weight_average -> input_spread)."""
    prior = theory.Prior("dnn", depth=3, activation="relu", g2=1.2, sigma2=0.2, g2_in=1.2)
    out = mcsim.weight_averaged_overlaps(prior, 3, 30, 20, seed=1, n_in=4, input_seed=2)
    means, sems = [], []
    for d in range(3):
        res = mcsim.sample(prior, out["inputs"][d:d + 1], 30, 20, seed=1, method="auto", observables=("caux_diag",))
        m, s = weight_average(res["caux_diag"][:, :, 0, 0])
        means.append(m)
        sems.append(s)
    np.testing.assert_allclose(out["mean"], means, rtol=1e-12)
    np.testing.assert_allclose(out["sem"], sems, rtol=1e-12, atol=1e-15)
    kernels = np.ones((3, 5))
    a = input_spread(out["mean"], out["sem"], kernels, kernels)
    b = input_spread(means, sems, kernels, kernels)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-15)
