"""Tests of the standard-error helpers in theory.resampling."""

import numpy as np
import pytest

from theory import resampling


def test_jackknife_se_of_mean_equals_sem():
    """For the mean, the delete-one jackknife SE is exactly std(ddof=1)/sqrt(R)."""
    x = np.random.default_rng(0).standard_normal((37, 3))
    est, se = resampling.jackknife(x, lambda s: s.mean(axis=0))
    np.testing.assert_allclose(se, resampling.sem(x), rtol=1e-12)
    np.testing.assert_allclose(est, x.mean(axis=0), rtol=1e-12)


def test_variance_se_is_calibrated():
    """Jackknife SE of the variance matches the spread of variance estimates over repetitions."""
    rng = np.random.default_rng(1)
    reps, R = 400, 60
    variances, ses = np.empty(reps), np.empty(reps)
    for i in range(reps):
        variances[i], ses[i] = resampling.variance_with_se(rng.standard_normal(R) * 2.0)
    spread = variances.std(ddof=1)
    # relative SE of a std estimated from 400 repetitions is ~1/sqrt(2*400) = 3.5 %
    assert abs(ses.mean() / spread - 1) < 4 * 0.035 + 0.02
    assert abs(variances.mean() - 4.0) < 4 * spread / np.sqrt(reps)


def test_bootstrap_se_of_mean_close_to_sem():
    x = np.random.default_rng(2).standard_normal(200)
    est, se = resampling.bootstrap(x, lambda s: s.mean(axis=0), resamples=2000, seed=3)
    assert est == pytest.approx(x.mean())
    # bootstrap SE of the mean is sqrt((R-1)/R) * SEM up to Monte Carlo error ~ 1/sqrt(2*2000)
    assert se / resampling.sem(x) == pytest.approx(np.sqrt(199 / 200), rel=4 / np.sqrt(4000))


def test_excess_kurtosis_gaussian_and_laplace():
    rng = np.random.default_rng(4)
    g = rng.standard_normal(20000)
    lap = rng.laplace(size=20000)
    kg, sg = resampling.excess_kurtosis_with_se(g[:4000])
    kl, sl = resampling.excess_kurtosis_with_se(lap[:4000])
    assert abs(kg) < 4 * sg
    assert abs(kl - 3.0) < 4 * sl


def test_excess_kurtosis_is_nan_only_where_the_sample_is_constant():
    x = np.column_stack([np.random.default_rng(5).standard_normal(50), np.full(50, 2.5)])
    k, se = resampling.excess_kurtosis_with_se(x)
    assert np.isfinite(k[0]) and np.isfinite(se[0])
    assert np.isnan(k[1]) and np.isnan(se[1])


def test_bad_input_names_parameter():
    with pytest.raises(ValueError, match="^x:"):
        resampling.sem(np.zeros(1))
    with pytest.raises(ValueError, match="^resamples:"):
        resampling.bootstrap(np.zeros(5), np.mean, resamples=1)
