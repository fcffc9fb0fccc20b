"""Statistical tests of the MMD^2 estimator against N(0, K) (theory.mmd).

All tolerances are derived from standard errors of independent repetitions at a
two-sided significance of about 1e-4 (|z| < 4) with fixed seeds.
"""

import numpy as np
import pytest

from theory import mmd

Z_CRIT = 4.0
L = 0.5


def _cov(P, seed):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((P, P))
    return B @ B.T / P + 0.3 * np.eye(P)


def _gauss(K, m, rng):
    return rng.standard_normal((m, K.shape[0])) @ np.linalg.cholesky(K).T


def _population_mmd2(K_sample, K_ref, l=L):
    """Population MMD^2 between N(0, K_sample) and N(0, K_ref) (RBF kernel)."""
    eye = np.eye(K_ref.shape[0])

    def e(C):
        return np.linalg.det(eye + C / l**2) ** -0.5

    return e(2 * K_sample) - 2 * e(K_sample + K_ref) + e(2 * K_ref)


def test_closed_form_embedding_matches_sampled_gaussian():
    rng = np.random.default_rng(1)
    K = _cov(3, 2)
    T = rng.standard_normal((4, 3)) * 0.7
    S = _gauss(K, 200_000, rng)
    k = mmd.rbf_gram(S, T, L)  # (N, 4)
    est, se = k.mean(axis=0), k.std(axis=0, ddof=1) / np.sqrt(k.shape[0])
    exact = mmd.gaussian_embedding(T, K, L)
    assert np.all(np.abs(est - exact) < Z_CRIT * se), (est, exact, se)


def test_closed_form_self_term_matches_sampled_pairs():
    rng = np.random.default_rng(3)
    K = _cov(4, 4)
    S1, S2 = _gauss(K, 200_000, rng), _gauss(K, 200_000, rng)
    k = np.exp(-np.sum((S1 - S2) ** 2, axis=1) / (2 * L**2))
    se = k.std(ddof=1) / np.sqrt(k.size)
    assert abs(k.mean() - mmd.gaussian_self_term(K, L)) < Z_CRIT * se


def test_estimator_unbiased_on_exact_gaussian_samples():
    rng = np.random.default_rng(5)
    K = _cov(5, 6)
    values = np.array([mmd.mmd2_gaussian(_gauss(K, 40, rng), K, L) for _ in range(400)])
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean()) < Z_CRIT * se
    # the estimator is not clipped: individual estimates scatter around zero
    assert np.any(values < 0) and np.any(values > 0)


def test_estimator_unbiased_for_wrong_covariance():
    """Mean of the estimator equals the closed-form population MMD^2 when K differs."""
    rng = np.random.default_rng(7)
    K_ref = _cov(3, 8)
    K_sample = 1.5 * K_ref
    values = np.array([mmd.mmd2_gaussian(_gauss(K_sample, 30, rng), K_ref, L) for _ in range(400)])
    se = values.std(ddof=1) / np.sqrt(values.size)
    expected = _population_mmd2(K_sample, K_ref)
    assert expected > 10 * se  # the test has power
    assert abs(values.mean() - expected) < Z_CRIT * se


def test_agrees_with_two_sample_estimator_in_expectation():
    rng = np.random.default_rng(9)
    K = np.eye(2)
    diffs = []
    for _ in range(60):
        X = rng.standard_normal((60, 2)) * np.sqrt(rng.choice([0.3, 1.7], size=(60, 1)))
        Y = rng.standard_normal((300, 2))
        diffs.append(mmd.mmd2_gaussian(X, K, L) - mmd.mmd2_two_sample(X, Y, L))
    diffs = np.array(diffs)
    assert abs(diffs.mean()) < Z_CRIT * diffs.std(ddof=1) / np.sqrt(diffs.size)


@pytest.mark.parametrize("kind", ["cubed", "scale_mixture"])
def test_detects_non_gaussian_sample_with_same_covariance(kind):
    rng = np.random.default_rng(11)
    P, m = 3, 300
    K = np.eye(P)
    z = rng.standard_normal((m, P))
    if kind == "cubed":
        t = np.sign(z) * np.abs(z) ** 3 / np.sqrt(15.0)  # unit variance, heavy tails
    else:
        v = rng.choice([0.2, 1.8], size=(m, 1))  # same scale for all P outputs, mean 1
        t = z * np.sqrt(v)
    floor_mean, floor_std = mmd.mmd2_null_moments(K, m, lengthscale=L)
    value = mmd.mmd2_gaussian(t, K, L)
    assert value > floor_mean + 5 * floor_std, (value, floor_mean, floor_std)


def _null_second_moments(K, l=L):
    """E[k(x,x')^2], E[e(x)^2] and c = E[k(x,x')] for x, x' ~ N(0, K), as determinants (independent of theory.mmd)."""
    eye = np.eye(K.shape[0])
    k2 = np.linalg.det(eye + 4 * K / l**2) ** -0.5
    e2 = np.linalg.det(eye + K / l**2) ** -1 * np.linalg.det(eye + 2 * K @ np.linalg.inv(K + l**2 * eye)) ** -0.5
    c = np.linalg.det(eye + 2 * K / l**2) ** -0.5
    return k2, e2, c


def _variance_and_se(values):
    """Sample variance (ddof=1) and its SE from the fourth central moment (no normality assumed)."""
    n = values.size
    v = values.var(ddof=1)
    m4 = np.mean((values - values.mean()) ** 4)
    return v, np.sqrt(max(m4 - v**2 * (n - 3) / (n - 1), 0.0) / n)


@pytest.mark.parametrize("m, reps, check_power", [(6, 12_000, True), (40, 3_000, False)])
def test_null_moments_match_brute_force_repetitions(m, reps, check_power):
    """Exact null mean 0 and std of the estimator vs many exact-Gaussian repetitions.

    Tolerance: |var - std^2| < 4 SE(var), the SE from the sample fourth moment
    (the null law is a weighted chi-square, far from normal at small m).
    Power (m = 6): the 1/m^2 normalisation (variance x 5/6) and dropping the
    e(x) terms of E[h^2] (E[k^2] + c^2) both fail the same test.
    """
    rng = np.random.default_rng(31 + m)
    K = _cov(3, 32)
    values = np.array([mmd.mmd2_gaussian(_gauss(K, m, rng), K, L) for _ in range(reps)])
    mean, std = mmd.mmd2_null_moments(K, m, L)
    assert mean == 0.0
    assert abs(values.mean()) < Z_CRIT * values.std(ddof=1) / np.sqrt(reps)
    v, v_se = _variance_and_se(values)
    assert abs(v - std**2) < Z_CRIT * v_se, (v, std**2, v_se)
    k2, e2, c = _null_second_moments(K)
    assert std**2 == pytest.approx(2 * (k2 - 2 * e2 + c**2) / (m * (m - 1)), rel=1e-10)
    if check_power:
        wrong = {"1/m^2": 2 * (k2 - 2 * e2 + c**2) / m**2, "no e(x) terms": 2 * (k2 + c**2) / (m * (m - 1))}
        for name, w in wrong.items():
            assert abs(v - w) > Z_CRIT * v_se, (name, v, w, v_se)


def test_null_moments_small_covariance_keeps_precision():
    """For K -> 0, E[h^2] = c^2 sum_p a_p^2 (1 + O(a)) (a_p = lambda_p / l^2): no cancellation to 0 or below.

    At eps = 1e-9 the three terms of E[k^2] - 2 E[e^2] + c^2 are 1 to 1e-8 and the
    difference is ~1e-16: summed naively it would be pure round-off.
    """
    m = 100
    for eps in (1e-3, 1e-9):
        K = eps * np.diag([1.0, 2.0])
        a = np.array([1.0, 2.0]) * eps / L**2
        _, std = mmd.mmd2_null_moments(K, m, L)
        assert std == pytest.approx(np.sqrt(2 * np.sum(a**2) / (m * (m - 1))), rel=100 * eps)  # O(a) = 4 sum a^3 / sum a^2 correction


def _naive_kernel_matrix(T, K):
    e, c = mmd.gaussian_embedding(T, K, L), mmd.gaussian_self_term(K, L)
    H = mmd.rbf_gram(T, T, L) - e[:, None] - e[None, :] + c
    np.fill_diagonal(H, 0.0)
    return H


def _naive_u_statistic(H):
    """Value, SE (Hoeffding, as documented in mmd2_gaussian_with_se) and conditioning scale from a full matrix."""
    m = H.shape[0]
    rows = H.sum(axis=1)
    pairs = m * (m - 1)
    h12_h13 = (rows @ rows - np.sum(H * H)) / (pairs * (m - 2))
    h12_sq = np.sum(H * H) / pairs
    theta_sq = (H.sum() ** 2 - 4 * rows @ rows + 2 * np.sum(H * H)) / (pairs * (m - 2) * (m - 3))
    var = (4 * (m - 2) * max(h12_h13 - theta_sq, 0) + 2 * max(h12_sq - theta_sq, 0)) / pairs
    return H.sum() / pairs, np.sqrt(var), np.abs(H).sum() / pairs


def test_kernel_sums_match_naive_matrix():
    """The blocked, symmetric sums of mmd2_gaussian_with_se equal the naive (m, m) kernel matrix to ~1e-12
    (relative to the mean |h|, the conditioning scale of the cancelling sum)."""
    rng = np.random.default_rng(41)
    K = _cov(10, 42)
    for m, scale in [(5, 1.0), (300, 1.0), (2100, 1.3)]:  # 2100: several row blocks
        T = _gauss(scale * K, m, rng)
        ref, ref_se, scale_h = _naive_u_statistic(_naive_kernel_matrix(T, K))
        value, se = mmd.mmd2_gaussian_with_se(T, K, L)
        assert abs(value - ref) <= 1e-12 * scale_h
        assert mmd.mmd2_gaussian(T, K, L) == value
        assert se == pytest.approx(ref_se, rel=1e-10)


def test_sum_with_se_matches_naive_summed_matrix():
    """mmd2_gaussian_sum_with_se (terms summed block by block) equals the U-statistic of H_1 + H_2."""
    rng = np.random.default_rng(43)
    K1, K2 = _cov(4, 44), _cov(6, 45)
    m = 1500  # several row blocks
    T1, T2 = _gauss(1.2 * K1, m, rng), _gauss(K2, m, rng)
    ref, ref_se, scale_h = _naive_u_statistic(_naive_kernel_matrix(T1, K1) + _naive_kernel_matrix(T2, K2))
    value, se = mmd.mmd2_gaussian_sum_with_se([T1, T2], [K1, K2], L)
    assert abs(value - ref) <= 1e-12 * scale_h
    assert se == pytest.approx(ref_se, rel=1e-10)


def test_singular_covariance_is_accepted():
    K = np.ones((3, 3))  # rank one, e.g. identical inputs
    rng = np.random.default_rng(0)
    t = rng.standard_normal((50, 1)) * np.ones((1, 3))
    assert np.isfinite(mmd.mmd2_gaussian(t, K))
    mean, std = mmd.mmd2_null_moments(K, 50)
    assert mean == 0.0 and np.isfinite(std) and std > 0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mmd.mmd2_gaussian(np.zeros((10, 2)), np.eye(3)), "samples"),
        (lambda: mmd.mmd2_gaussian(np.zeros((1, 2)), np.eye(2)), "samples"),
        (lambda: mmd.mmd2_gaussian(np.full((5, 2), np.nan), np.eye(2)), "samples"),
        (lambda: mmd.mmd2_gaussian(np.zeros((5, 2)), -np.eye(2)), "K"),
        (lambda: mmd.mmd2_gaussian(np.zeros((5, 2)), np.eye(2), lengthscale=0), "lengthscale"),
        (lambda: mmd.mmd2_null_moments(np.eye(2), 1), "m"),
        (lambda: mmd.mmd2_null_moments(np.eye(2), 10.0), "m"),
        (lambda: mmd.mmd2_null_moments(np.eye(2), 10, lengthscale=-1), "lengthscale"),
        (lambda: mmd.mmd2_null_moments(np.ones((2, 3)), 10), "K"),
    ],
)
def test_bad_input_names_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()


def test_se_matches_explicit_sums_over_distinct_indices():
    """The O(m^2) sums of mmd2_gaussian_with_se equal explicit loops over distinct index pairs, triples, quadruples."""
    import itertools

    rng = np.random.default_rng(11)
    K = _cov(3, 12)
    T = _gauss(1.5 * K, 7, rng)
    value, se = mmd.mmd2_gaussian_with_se(T, K, L)
    assert value == pytest.approx(mmd.mmd2_gaussian(T, K, L), rel=1e-12)
    e, c = mmd.gaussian_embedding(T, K, L), mmd.gaussian_self_term(K, L)
    G = mmd.rbf_gram(T, T, L)
    h = lambda i, j: G[i, j] - e[i] - e[j] + c  # noqa: E731
    m = len(T)
    pairs = [h(i, j) ** 2 for i, j in itertools.permutations(range(m), 2)]
    triples = [h(i, j) * h(i, k) for i, j, k in itertools.permutations(range(m), 3)]
    quads = [h(i, j) * h(k, l) for i, j, k, l in itertools.permutations(range(m), 4)]
    zeta1 = max(np.mean(triples) - np.mean(quads), 0.0)
    zeta2 = max(np.mean(pairs) - np.mean(quads), 0.0)
    assert se**2 == pytest.approx((4 * (m - 2) * zeta1 + 2 * zeta2) / (m * (m - 1)), rel=1e-9)


@pytest.mark.parametrize("scale", [1.0, 1.6])
def test_se_is_calibrated(scale):
    """The SE matches the spread of repeated estimates, at MMD^2 = 0 (degenerate) and > 0.

    Tolerance: v = var(values, ddof=1) over ``reps`` independent repetitions has
    relative SE sqrt(2/(reps-1)) (near-normal values; 6.3 % here), and mean(se^2)
    is far less noisy.  The variance estimate is unbiased except for clipping
    zeta_1 at 0, which only adds to it (measured +19 % in variance at MMD^2 = 0),
    so require v (1 - 4 x 6.3 %) <= mean(se^2) <= 1.2 v (1 + 4 x 6.3 %).
    Power: an SE too small by a factor 1.5 (se^2 x 0.44) or too large by 1.5
    (x 2.25, the delete-one jackknife at MMD^2 = 0 is x 1.9) fails.
    """
    rng = np.random.default_rng(21)
    K = _cov(3, 22)
    reps, m = 500, 120
    values, ses = np.empty(reps), np.empty(reps)
    for i in range(reps):
        values[i], ses[i] = mmd.mmd2_gaussian_with_se(_gauss(scale * K, m, rng), K, L)
    v, tol = values.var(ddof=1), 4 * np.sqrt(2 / (reps - 1))
    assert v * (1 - tol) <= np.mean(ses**2) <= 1.2 * v * (1 + tol), (np.mean(ses**2), v)


def test_se_needs_four_samples():
    T = np.random.default_rng(0).standard_normal((3, 2))
    value, se = mmd.mmd2_gaussian_with_se(T, np.eye(2))
    assert value == pytest.approx(mmd.mmd2_gaussian(T, np.eye(2))) and np.isnan(se)
    with pytest.raises(ValueError, match="samples"):
        mmd.mmd2_gaussian_with_se(np.zeros((1, 2)), np.eye(2))
