"""Rank-normalised split-R-hat and bulk/tail ESS (mcsim.diagnostics) on chains with known answers."""

import numpy as np
import pytest

from mcsim import diagnostics as D


def _ar1(rng, M, N, rho):
    x = np.empty((M, N))
    x[:, 0] = rng.standard_normal(M)
    e = rng.standard_normal((M, N)) * np.sqrt(1 - rho**2)
    for t in range(1, N):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x


def test_iid_chains_converged_and_ess_near_size():
    x = np.random.default_rng(0).standard_normal((4, 2000))
    s = D.summarise(x)
    assert s["rhat"] < 1.01
    # Var(ESS-hat)/ESS^2 is O(1/N) small here: 10% covers it
    for k in ("ess_bulk", "ess_mean"):
        assert s[k] == pytest.approx(8000, rel=0.1)
    assert s["ess_tail"] == pytest.approx(8000, rel=0.2)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_ar1_ess_matches_integrated_autocorrelation(rho):
    x = _ar1(np.random.default_rng(1), 4, 5000, rho)
    expect = x.size * (1 - rho) / (1 + rho)
    assert D.ess(x) == pytest.approx(expect, rel=0.15)
    assert D.ess_bulk(x) == pytest.approx(expect, rel=0.15)


def test_shifted_chain_flagged():
    x = np.random.default_rng(2).standard_normal((4, 1000))
    x[0] += 2.0  # expected split-R-hat about 1.3
    assert D.rhat(x) > 1.1


def test_trend_within_chains_flagged_by_splitting():
    # every chain drifts the same way: only the split halves disagree
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1000)) + np.linspace(-1.5, 1.5, 1000)
    assert D.rhat(x) > 1.1


def test_scale_difference_flagged_by_folding():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 1000))
    x[0] *= 3.0
    assert D.rhat(x) > 1.05


def test_bad_shape_rejected():
    with pytest.raises(ValueError, match="draws"):
        D.rhat(np.zeros(10))
