"""Importance weighting of prior samples (mcsim.posterior, method="importance") and data sets."""

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import mcsim
from mcsim import posterior_sampling as post
from mcsim.datasets import check_dataset, make_dataset
from mcsim.readout_posterior import conditional_mean, conditional_output_gram, log_likelihood
from theory import Prior

PRIOR = Prior(arch="rnn", depth=2, activation="tanh", g2=1.2, sigma2=0.1, g2_in=1.0)


def _data(P=5, PD=3, seed=1):
    return make_dataset("linear_teacher", P, 3, PD, seed=seed, noise=0.1)


def test_log_likelihood_matches_scipy_and_predictor_and_output_gram_match_solve():
    rng = np.random.default_rng(0)
    P, PD, n_out = 5, 3, 2
    M = rng.standard_normal((4, P, P + 2))
    C = np.einsum("rpk,rqk->rpq", M, M) / 7
    train = np.array([0, 2, 4])
    Y = rng.standard_normal((PD, n_out))
    kappa, gamma0 = 0.2, 1.7
    ll = log_likelihood(C, Y, train, kappa, gamma0)
    m = conditional_mean(C, Y, train, kappa, gamma0)
    G = conditional_output_gram(C, Y, train, kappa, gamma0)
    for r in range(4):
        K = C[r] / gamma0
        Kdd = K[np.ix_(train, train)] + kappa * np.eye(PD)
        want = sum(multivariate_normal(np.zeros(PD), Kdd).logpdf(Y[:, o]) for o in range(n_out))
        assert ll[r] == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(m[r], K[:, train] @ np.linalg.solve(Kdd, Y), rtol=1e-10)
        S = K - K[:, train] @ np.linalg.solve(Kdd, K[train])
        np.testing.assert_allclose(G[r], gamma0 * (S + m[r] @ m[r].T / n_out), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transpose", [False, True])
def test_batched_triangular_solve_matches_lapack(transpose):
    """The vectorised substitution (one NumPy operation per row, replacing a Python loop of
    ``solve_triangular`` over realizations) agrees with LAPACK for each realization, for m = 1 and m = 7."""
    from scipy.linalg import solve_triangular

    from mcsim.readout_posterior import _solve_lower

    rng = np.random.default_rng(3)
    for m, k in ((1, 1), (7, 3)):
        L = np.tril(rng.standard_normal((6, m, m))) + 3.0 * np.eye(m)
        B = rng.standard_normal((6, m, k))
        got = _solve_lower(L, B, transpose=transpose)
        for r in range(6):
            want = solve_triangular(L[r], B[r], lower=True, trans="T" if transpose else "N")
            np.testing.assert_allclose(got[r], want, rtol=1e-12, atol=1e-14)


def test_kappa_inf_weights_constant_and_means_are_prior_means():
    X, y, tr = _data()
    R = 300
    obs = ("caux_readout", "chat_diag")
    res = post.posterior(PRIOR, X, y, tr, 10, R, math.inf, method="importance", observables=obs)
    lw = res.draws["log_weights"]
    assert np.all(lw == lw[0])
    assert res.diagnostics["ess"] == pytest.approx(R, rel=1e-12)
    prior = mcsim.sample(PRIOR, X, 10, R, observables=obs)
    # the readout block of chat is E[y y^T | Theta] = Caux^(A+1,A+1) (outputs conditioned on Theta and Y)
    prior["chat_diag"][:, -1] = prior["caux_readout"]
    for o in obs:
        np.testing.assert_allclose(res.mean[o], prior[o].mean(axis=0), rtol=1e-12, atol=1e-14)
        # self-normalised SE with equal weights = std(ddof=0)/sqrt(R)
        np.testing.assert_allclose(res.se[o], prior[o].std(axis=0) / math.sqrt(R), rtol=1e-8, atol=1e-14)


def test_weighted_means_independent_of_blocking_and_equal_direct_formula(monkeypatch):
    X, y, tr = _data()
    R = 200
    obs = ("caux_readout", "predictor", "train_error", "test_error")
    res = post.posterior(PRIOR, X, y, tr, 10, R, 0.05, method="importance", observables=obs)
    monkeypatch.setattr(post, "_IMPORTANCE_BLOCK", 7)
    res7 = post.posterior(PRIOR, X, y, tr, 10, R, 0.05, method="importance", observables=obs)
    prior = mcsim.sample(PRIOR, X, 10, R, observables=("caux_readout",))
    seq, Y, tr = check_dataset(PRIOR, X, y, tr)
    lw = log_likelihood(prior["caux_readout"], Y[tr], tr, 0.05)
    np.testing.assert_allclose(res.draws["log_weights"], lw, rtol=1e-12)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m = conditional_mean(prior["caux_readout"], Y[tr], tr, 0.05)
    test = np.setdiff1d(np.arange(5), tr)
    values = {"caux_readout": prior["caux_readout"], "predictor": m,
              "train_error": ((Y[tr] - m[:, tr]) ** 2).mean(axis=(1, 2)),
              "test_error": ((Y[test] - m[:, test]) ** 2).mean(axis=(1, 2))}
    for o, v in values.items():
        ww = w.reshape((-1,) + (1,) * (v.ndim - 1))
        mean = (ww * v).sum(axis=0)
        se = np.sqrt((ww**2 * (v - mean) ** 2).sum(axis=0))
        for r in (res, res7):
            np.testing.assert_allclose(r.mean[o], mean, rtol=1e-10)
            np.testing.assert_allclose(r.se[o], se, rtol=1e-6, atol=1e-15)
    assert res.diagnostics["ess"] == pytest.approx(1.0 / np.sum(w**2), rel=1e-10)


def test_collapsed_ess_raises_loudly():
    X, y, tr = make_dataset("linear_teacher", 12, 3, 12, seed=2, noise=0.0)
    with pytest.raises(post.ImportanceCollapseError, match=r"effective sample size [0-9.]+ of 100 prior samples"):
        post.posterior(PRIOR, X, y, tr, 4, 100, 1e-4, method="importance", observables=("caux_readout",))
    with pytest.warns(RuntimeWarning, match="effective sample size"):
        r = post.posterior(PRIOR, X, y, tr, 4, 100, 1e-4, method="importance", observables=("caux_readout",),
                           on_collapse="warn")
    assert r.diagnostics["ess_collapsed"] and r.diagnostics["ess"] < 50


@pytest.mark.parametrize("kw, match", [
    (dict(y=np.zeros(4)), "y: must have shape"),
    (dict(train=np.array([0, 9])), "train: indices"),
    (dict(train=np.array([], dtype=int)), "train: needs at least one"),
    (dict(kappa=-1.0), "kappa"),
    (dict(gamma0=0.0), "gamma0"),
    (dict(method="nuts"), "method"),
    (dict(observables=("y",)), "'y' is not available"),
    (dict(observables=("bogus",)), "unknown observable"),
])
def test_bad_input_named(kw, match):
    X, y, tr = _data()
    args = dict(prior=PRIOR, X=X, y=y, train=tr, width=5, draws=10, kappa=0.1)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        post.posterior(**args)


def test_datasets_generated_from_seed_and_validated(tmp_path):
    a = make_dataset("xor", 8, 2, 6, seed=3)
    b = make_dataset("xor", 8, 2, 6, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert set(np.unique(a[1])) <= {-1.0, 1.0}
    X, y, tr = make_dataset("sequence", 4, 2, 3, seed=0, depth=3)
    assert X.shape == (4, 4, 2) and np.array_equal(y[:, 0], X[:, 0, 0])
    with pytest.raises(ValueError, match="data.kind"):
        make_dataset("spiral", 4, 2, 3)
    with pytest.raises(ValueError, match="data.train"):
        make_dataset("xor", 4, 2, 5)
    from mcsim.datasets import load_dataset

    np.savez(tmp_path / "d.npz", X=X, y=y)
    with pytest.raises(ValueError, match="lacks array"):
        load_dataset(tmp_path / "d.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="data.file"):
        load_dataset(tmp_path / "bad.npz")


def test_importance_weight_of_given_samples_equals_posterior():
    """Prior realizations drawn elsewhere (e.g. read_point of an MPI run) weigh exactly like posterior()."""
    X, y, tr = _data()
    obs = ("chat", "caux_readout", "predictor", "train_error", "test_error")
    res = post.posterior(PRIOR, X, y, tr, 10, 300, 0.05, method="importance", observables=obs)
    samples = mcsim.sample(PRIOR, X, 10, 300, observables=("chat", "caux"))
    got = post.importance_weight(samples, y, tr, 0.05, observables=obs)
    np.testing.assert_array_equal(got.draws["log_weights"], res.draws["log_weights"])
    for o in obs:
        np.testing.assert_allclose(got.mean[o], res.mean[o], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got.se[o], res.se[o], rtol=1e-8, atol=1e-15)
    with pytest.raises(ValueError, match="samples: needs"):
        post.importance_weight({"y": samples["chat"]}, y, tr, 0.05)
    with pytest.raises(ValueError, match="train"):
        post.importance_weight(samples, y, [7], 0.05)
