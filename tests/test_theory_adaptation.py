"""First-order kernel adaptation (theory.adaptation) and its multi-pattern O(1/n) covariance (theory.nlo_multi).

Theory-only and prior-Monte-Carlo checks (the posterior sampler's comparisons come later):

* single-pattern reduction: ``nlo_cross_covariance`` with one pattern and the
  equal-layer targets reproduces ``nlo.nlo_covariance`` -- to rounding for the
  linear activation (Isserlis), within the RQMC standard error otherwise
  (relu, erf, tanh; the reference uses closed forms / controlled quadrature);
* the RQMC error estimate is honest: over 20 seeds the standardised errors
  against the closed-form reference have a mean square consistent with the
  Student-t(R-1) distribution (neither too small: overestimated SE, nor too
  large: underestimated);
* prior Monte Carlo (``mcsim.sample``): ``n Cov(O, u)`` with ``u = sum G K``
  for every Caux/Chat entry ``O`` (all layer pairs, all patterns),
  Richardson-extrapolated over two widths, agrees with the theory within a
  Bonferroni bound; the wrong variant without cross-time per-unit
  correlations (RNN) is rejected on a pre-declared entry;
* kappa -> infinity gives zero adaptation (like 1/kappa);
* the predictor shift is the derivative of the GP mean along Delta[K].

Pre-declared MC procedure (as tests/test_theory_nlo_simulation.py): widths
``n1 = 100`` and ``n2 = 200`` with independent streams, ``V_hat = 2 (n2 Cov2) - n1 Cov1``,
``SE_hat^2 = 4 SE2^2 + SE1^2`` with the SE of a sample covariance
(``std((O - Obar)(u - ubar)) / sqrt(R)``); acceptance
``|V_hat - V_theory| <= Z sqrt(SE_hat^2 + SE_theory^2)`` with ``Z`` the two-sided
Bonferroni quantile at family-wise level 1 % over all entries of a case.
"""

import numpy as np
import pytest
from scipy.stats import norm, t as student_t

import theory
from theory import nlo, nlo_multi
from theory.adaptation import adaptation, readout_gradient

FAMILY_ALPHA = 0.01
X1 = np.array([1.2, 0.1, 1.9, 0.6])
"""Single input of the reduction tests (as in test_theory_nlo_simulation.py)."""


def _equal_layer_targets(A):
    return np.array([[c, c, 0, 0] for c in range(A + 2)])


PRIORS_1 = [
    theory.Prior("dnn", 3, "linear", 1.2, 0.2, 1.2),
    theory.Prior("rnn", 3, "linear", 1.2, 0.2, 1.2, bias="static"),
    theory.Prior("dnn", 3, "linear", 1.2, 0.3, 1.2, bias="static"),
    theory.Prior("dnn", 3, "relu", 1.2, 0.2, 1.2, nu=[1.0, 2.0, 0.5, 1.0]),
    theory.Prior("dnn", 3, "relu", 1.2, 0.4, 1.2, bias="static"),
    theory.Prior("rnn", 3, "relu", 1.2, 0.2, 1.2),
    theory.Prior("rnn", 3, "erf", 1.6, 0.3, 1.2, bias="static"),
    theory.Prior("rnn", 3, "tanh", 1.5, 0.2, 1.2),
]


@pytest.mark.parametrize("prior", PRIORS_1, ids=lambda p: f"{p.arch}-{p.activation_name}-{p.bias}")
def test_single_pattern_reduces_to_nlo_covariance(prior):
    A = prior.depth
    ref = nlo.nlo_covariance(prior, X1, 50.0)
    res = nlo_multi.nlo_cross_covariance(prior, X1[None], 50.0, targets=_equal_layer_targets(A))
    got = np.array([res.caux[a, a, 0, 0] for a in range(A + 2)])
    se = np.array([res.caux_se[a, a, 0, 0] for a in range(A + 2)])
    if prior.activation_name == "linear":
        assert res.method == "isserlis"
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    else:
        assert res.method == "rqmc"
        sub = (slice(1, None), slice(1, None))  # Caux^(0,0) is deterministic
        R = res.caux_replicates.shape[0]
        z = student_t.ppf(1 - FAMILY_ALPHA / (2 * got[sub].size), R - 1)
        assert np.all(np.abs(got[sub] - ref[sub]) <= z * se[sub]), (got[sub] - ref[sub]) / se[sub]
        assert np.all(se[sub] <= 1e-2 * np.abs(ref[sub]))  # the accuracy the docstring states


def test_rqmc_error_estimate_is_honest():
    """Standardised errors vs the closed-form (relu) reference over 20 seeds: mean z^2 ~ t(R-1) second moment."""
    prior = theory.Prior("rnn", 2, "relu", 1.2, 0.2, 1.2)
    ref = nlo.nlo_covariance(prior, X1, 1.0)[-1, -1]
    tg = np.array([[3, 3, 0, 0]])
    R = 8
    z = []
    for seed in range(20):
        res = nlo_multi.nlo_cross_covariance(prior, X1[None], 1.0, targets=tg, points=2**12, replicates=R, seed=seed)
        z.append((res.caux[3, 3, 0, 0, 0] - ref) / res.caux_se[3, 3, 0, 0, 0])
    z2 = np.mean(np.square(z))
    # t(7): E z^2 = 7/5, sd of the mean of 20 is about 0.63; 0.2 would mean an SE three times too large
    assert 0.2 < z2 < 1.4 + 3 * 0.63, z


def test_rqmc_is_a_function_of_the_seed():
    prior = theory.Prior("dnn", 2, "erf", 1.2, 0.2, 1.2)
    X = np.array([[1.0, 0.2], [0.3, -0.7]])
    a = nlo_multi.nlo_cross_covariance(prior, X, 10.0, points=2**10, seed=3)
    b = nlo_multi.nlo_cross_covariance(prior, X, 10.0, points=2**10, seed=3)
    c = nlo_multi.nlo_cross_covariance(prior, X, 10.0, points=2**10, seed=4)
    np.testing.assert_array_equal(a.caux, b.caux)
    assert not np.array_equal(a.caux, c.caux)


def test_cov_is_symmetric_in_patterns_and_scales_as_one_over_n():
    prior = theory.Prior("rnn", 2, "linear", 1.1, 0.2, 1.0, bias="static")
    X = np.random.default_rng(0).normal(size=(3, 4))
    c1 = nlo_multi.nlo_cross_covariance(prior, X, 1.0)
    c2 = nlo_multi.nlo_cross_covariance(prior, X, 100.0)
    np.testing.assert_allclose(c2.caux * 100.0, c1.caux, rtol=1e-12)
    P = 3
    cov = c1.caux[3, 3].reshape(P * P, P * P)  # Cov(K, K) over pattern pairs
    np.testing.assert_allclose(cov, cov.T, rtol=1e-12, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-12)
    # Caux^(a,b) swapped layers = pattern transpose
    np.testing.assert_allclose(c1.chat[2, 1], c1.chat[1, 2].transpose(1, 0, 2), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------- prior Monte Carlo
X3 = np.random.default_rng(1).normal(size=(3, 4))
Y3 = np.array([1.0, -0.6, 0.4])
KAPPA = 0.5
N1 = 100


def _mc_scaled_cov(prior, n, R, seed, G, X=X3):
    """``n Cov(O, u)``, ``u = sum G Caux^(A+1,A+1)``, and its SE for O in caux, chat (R, A+2, A+2, P, P)."""
    import mcsim

    A1 = prior.depth + 1
    s = mcsim.sample(prior, X, n, R, seed=seed, observables=("caux", "chat"))
    assert not np.any(s["overflow"])
    u = np.einsum("rpq,pq->r", s["caux"][:, A1, A1], G)
    du = u - u.mean()
    out = {}
    for name in ("caux", "chat"):
        d = s[name] - s[name].mean(axis=0)
        prod = d * du[:, None, None, None, None]
        out[name] = (n * prod.sum(axis=0) / (R - 1), n * prod.std(axis=0) / np.sqrt(R))
    return out


def _extrapolated(prior, R, seed, G, X=X3):
    m1 = _mc_scaled_cov(prior, N1, R, seed, G, X)  # the point key includes the width: independent streams
    m2 = _mc_scaled_cov(prior, 2 * N1, R, seed, G, X)
    return {k: (2 * m2[k][0] - m1[k][0], np.sqrt(4 * m2[k][1] ** 2 + m1[k][1] ** 2)) for k in m1}


def _theory(prior, G, drop=False, X=X3):
    cov = nlo_multi.nlo_cross_covariance(prior, X, 1.0, _drop_cross_layer=drop)
    return {k: (getattr(cov, k) @ G.ravel(), getattr(cov, k + "_se") @ np.abs(G.ravel())) for k in ("caux", "chat")}


def _G(prior, X=X3):
    A1 = prior.depth + 1
    return readout_gradient(theory.kernel(prior, X)[A1, A1], Y3[:, None], KAPPA)


XSEQ = np.random.default_rng(3).normal(size=(3, 3, 4))
"""Input sequences (P = 3, A+1 = 3 steps) for the sequence cases."""

MC_CASES = [
    pytest.param(theory.Prior("rnn", 2, "linear", 1.2, 0.3, 1.2, bias="static"), 4000, 5, X3, id="rnn-linear-static"),
    pytest.param(theory.Prior("dnn", 2, "linear", 1.2, 0.3, 1.2), 4000, 6, X3, id="dnn-linear",
                 marks=pytest.mark.slow),
    pytest.param(theory.Prior("rnn", 2, "relu", 1.2, 0.3, 1.2), 8000, 7, X3, id="rnn-relu", marks=pytest.mark.slow),
    pytest.param(theory.Prior("dnn", 2, "relu", 1.2, 0.3, 1.2, bias="static"), 4000, 8, X3, id="dnn-relu-static",
                 marks=pytest.mark.slow),
    pytest.param(theory.Prior("rnn", 2, "relu", 1.2, 0.3, 1.2), 6000, 5, XSEQ, id="rnn-relu-sequences",
                 marks=pytest.mark.slow),
    pytest.param(theory.Prior("dnn", 2, "linear", 1.2, 0.3, 1.2), 6000, 5, XSEQ, id="dnn-linear-sequences",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("prior,R,seed,X", MC_CASES)
def test_cov_with_readout_matches_prior_monte_carlo(prior, R, seed, X):
    G = _G(prior, X)
    mc = _extrapolated(prior, R, seed, G, X)
    th = _theory(prior, G, X=X)
    n_entries = sum(v[0].size for v in mc.values())
    Z = norm.ppf(1 - FAMILY_ALPHA / (2 * n_entries))
    for k in mc:
        v_hat, se_hat = mc[k]
        v_th, se_th = th[k]
        se = np.sqrt(se_hat**2 + se_th**2)
        det = se_hat <= 1e-8 * np.abs(v_hat).max()  # deterministic entries: theory must be 0 as well
        assert np.all(np.abs(v_th[det]) <= 1e-10 * np.abs(v_th).max()), k
        z = np.abs(v_hat - v_th)[~det] / se[~det]
        assert np.all(z <= Z), f"{k}: max |z| = {z.max():.2f} > {Z:.2f}"


def test_dropping_cross_time_sources_is_rejected():
    """RNN linear static bias: the pre-declared entry n Cov(Chat^(2,1)_{00}, u) rejects the variant."""
    prior = theory.Prior("rnn", 2, "linear", 1.2, 0.3, 1.2, bias="static")
    G = _G(prior)
    mc = _extrapolated(prior, 4000, 5, G)
    right = _theory(prior, G)["chat"][0][2, 1, 0, 0]
    wrong = _theory(prior, G, drop=True)["chat"][0][2, 1, 0, 0]
    v_hat, se_hat = mc["chat"][0][2, 1, 0, 0], mc["chat"][1][2, 1, 0, 0]
    assert abs(v_hat - wrong) > norm.ppf(1 - FAMILY_ALPHA / 2) * se_hat
    assert abs(v_hat - right) < abs(v_hat - wrong)


# ------------------------------------------------------------------- adaptation
def _task():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    y = X @ np.array([1.0, -0.5, 0.3])
    return X, y


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_adaptation_vanishes_as_kappa_grows(arch):
    X, y = _task()
    prior = theory.Prior(arch, 2, "linear", 1.2, 0.2, 1.2, bias="static")
    d = {k: adaptation(prior, X, y, [0, 1, 2], k, 100.0) for k in (1e3, 1e6)}
    inf = adaptation(prior, X, y, [0, 1, 2], np.inf, 100.0)
    assert np.all(inf.caux == 0) and np.all(inf.chat == 0) and np.all(inf.predictor == 0)
    assert inf.test_error == 0
    big = np.abs(d[1e3].caux).max()
    assert big > 0
    # G = -(n_out/2) / kappa + O(kappa^-2): kappa Delta converges
    np.testing.assert_allclose(1e6 * d[1e6].caux, 1e3 * d[1e3].caux, rtol=5e-3, atol=1e-3 * 1e3 * big)


def test_predictor_shift_is_directional_derivative_of_gp_mean():
    X, y = _task()
    prior = theory.Prior("rnn", 2, "relu", 1.2, 0.2, 1.2)
    train, test = np.array([0, 1, 2]), np.array([3])
    r = adaptation(prior, X, y, train, 0.3, 100.0, gamma0=2.0, points=2**10)
    A1 = prior.depth + 1
    dK = r.caux[A1, A1] / r.gamma0
    eps = 1e-4

    def mean(K):
        return theory.gp_predict(K, y[train], train, np.arange(4), noise=0.3)[0]

    fd = (mean(r.kernel + eps * dK) - mean(r.kernel - eps * dK)) / (2 * eps)
    np.testing.assert_allclose(r.predictor[:, 0], np.ravel(fd), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(r.predictor_prior[:, 0], np.ravel(mean(r.kernel)), rtol=1e-12)
    resid = r.predictor_prior[test, 0] - y[test]
    assert r.test_error == pytest.approx(2 * np.mean(resid * r.predictor[test, 0]))
    assert r.test_error_prior == pytest.approx(np.mean(resid**2))


def test_adaptation_delta_is_cov_times_gradient():
    """Delta[O] = sum Cov(O, K) G with Cov from nlo_cross_covariance (gamma0 scaling included)."""
    X, y = _task()
    prior = theory.Prior("dnn", 2, "linear", 1.2, 0.2, 1.2)
    train = [0, 2]
    r = adaptation(prior, X, y, train, 0.2, 50.0, gamma0=3.0)
    cov = nlo_multi.nlo_cross_covariance(prior, X, 50.0, targets=nlo_multi.readout_targets(prior, train))
    K = theory.kernel(prior, X)[3, 3] / 3.0
    G = readout_gradient(K[np.ix_(train, train)], y[train][:, None], 0.2)
    np.testing.assert_allclose(r.chat, cov.chat @ G.ravel() / 3.0, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(r.kernel, K)
    assert 0 < r.expansion_parameter < 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(kappa=-1.0), "kappa"),
    (dict(kappa="x"), "kappa"),
    (dict(gamma0=0.0), "gamma0"),
    (dict(train=[0, 7]), "train"),
    (dict(y=np.zeros(3)), "y"),
    (dict(width=0.5), "width"),
    (dict(method="isserlis"), "method"),
    (dict(points=1000), "points"),
    (dict(replicates=1), "replicates"),
])
def test_bad_input_names_the_argument(kwargs, match):
    X, y = _task()
    args = dict(prior=theory.Prior("rnn", 1, "relu", 1.2, 0.2, 1.2), X=X, y=y, train=[0, 1], kappa=0.1,
                width=10.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        adaptation(**args)


def test_bad_targets_and_zero_variance():
    prior = theory.Prior("dnn", 1, "linear", 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="targets"):
        nlo_multi.nlo_cross_covariance(prior, X3, 1.0, targets=[[0, 0, 0, 5]])
    with pytest.raises(ValueError, match="variance"):
        nlo_multi.nlo_cross_covariance(prior, np.zeros((2, 3)), 1.0)


# ------------------------------------------------- importance-weighted prior samples
X4 = np.random.default_rng(1).normal(size=(4, 4))
Y4 = np.array([1.0, -0.6, 0.4, 0.3])
TRAIN4 = np.array([0, 1, 2])


def _importance_shift(prior, n, R, seed):
    """``n (E_w[O] - E[O])`` with exact weights ``N(Y_D | 0, K_DD + kappa I)`` and the SE of the ratio estimator.

    The weights and the per-realisation predictor come from mcsim's importance
    weighting (:func:`mcsim.importance_weight`, :mod:`mcsim.readout_posterior`),
    the one definition.  Observables: caux, chat (A+2, A+2, P, P) (chat with
    the prior outputs' readout block, as the theory) and the per-realisation
    predictor ``m = K_{.D} (K_DD + kappa I)^-1 Y_D`` (P,).
    """
    import mcsim
    from mcsim.readout_posterior import conditional_mean

    A1 = prior.depth + 1
    s = mcsim.sample(prior, X4, n, R, seed=seed, observables=("caux", "chat"))
    assert not s["overflow"].any()
    # min_ess = 0.9 R: ESS / R > 0.9, first order is the right regime (else ImportanceCollapseError)
    res = mcsim.importance_weight(s, Y4, TRAIN4, KAPPA, 1.0, observables=("caux", "predictor"), min_ess=0.9 * R)
    logw = res.draws["log_weights"]
    w = np.exp(logw - logw.max())
    w /= w.mean()
    obs = dict(s, predictor=conditional_mean(s["caux"][:, A1, A1], Y4[TRAIN4, None], TRAIN4, KAPPA, 1.0)[:, :, 0])
    out = {}
    for k in ("caux", "chat", "predictor"):
        O = obs[k]
        wk = w.reshape((R,) + (1,) * (O.ndim - 1))
        Ob, Ow = O.mean(axis=0), (wk * O).mean(axis=0)
        if k in res.mean:  # the same weighted mean as mcsim's
            np.testing.assert_allclose(Ow, res.mean[k].reshape(Ow.shape), rtol=1e-9, atol=1e-12)
        psi = wk * (O - Ow) - (O - Ob)  # influence function of the difference of the two means
        out[k] = (n * (Ow - Ob), n * psi.std(axis=0) / np.sqrt(R))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("prior,R,seed", [
    pytest.param(theory.Prior("rnn", 2, "linear", 1.2, 0.3, 1.2, bias="static"), 6000, 9, id="rnn-linear-static"),
    pytest.param(theory.Prior("rnn", 2, "relu", 1.2, 0.3, 1.2), 8000, 9, id="rnn-relu"),
    pytest.param(theory.Prior("dnn", 2, "relu", 1.2, 0.3, 1.2, bias="static"), 6000, 9, id="dnn-relu-static"),
])
def test_importance_weighted_shift_converges_to_first_order_theory(prior, R, seed):
    """n Delta from exactly weighted prior samples, Richardson over n = 100, 200, vs theory.adaptation."""
    m1 = _importance_shift(prior, N1, R, seed)
    m2 = _importance_shift(prior, 2 * N1, R, seed)
    th = adaptation(prior, X4, Y4, TRAIN4, KAPPA, 1.0)
    n_entries = sum(v[0].size for v in m1.values())
    Z = norm.ppf(1 - FAMILY_ALPHA / (2 * n_entries))
    z0_max = 0.0
    for k in m1:
        v_hat = 2 * m2[k][0] - m1[k][0]
        se_hat = np.sqrt(4 * m2[k][1] ** 2 + m1[k][1] ** 2)
        v_th = getattr(th, k) if k != "predictor" else th.predictor[:, 0]
        se_th = getattr(th, k + "_se") if k != "predictor" else th.predictor_se[:, 0]
        live = se_hat > 1e-8 * np.abs(v_hat).max()  # deterministic entries carry only rounding
        z = np.abs(v_hat - v_th)[live] / np.sqrt(se_hat[live] ** 2 + se_th[live] ** 2)
        assert np.all(z <= Z), f"{k}: max |z| = {z.max():.2f} > {Z:.2f}"
        # negative control: the unweighted mean (no shift) in place of v_hat
        z0_max = max(z0_max, float((np.abs(v_th)[live] / np.sqrt(se_hat[live] ** 2 + se_th[live] ** 2)).max()))
    assert z0_max > Z, f"negative control: the test cannot tell the unweighted mean (max |z| = {z0_max:.2f})"


# ------------------------------------------------------------------- CLI
def test_cli_adaptation(tmp_path, capsys):
    import json

    import h5py

    from theory.cli import main

    spec = {
        "prior": {"arch": "rnn", "depth": 2, "activation": "linear", "g2": 1.2, "sigma2": 0.2, "g2_in": 1.2,
                  "bias": "static"},
        "inputs": {"count": 4, "dim": 3, "seed": 2},
        "width": 100,
    }
    (tmp_path / "point.json").write_text(json.dumps(spec))
    task = {"y": [1.0, -0.5, 0.2, 0.7], "train": [0, 1, 2], "kappa": 0.1, "gamma0": 2.0}
    (tmp_path / "task.json").write_text(json.dumps(task))
    out = tmp_path / "adapt.h5"
    argv = ["adaptation", "--spec", str(tmp_path / "point.json"), "--task", str(tmp_path / "task.json"),
            "--out", str(out)]
    assert main(argv) == 0
    ps = theory.parse_point_spec(tmp_path / "point.json")
    ref = adaptation(ps.prior, ps.X, task["y"], task["train"], 0.1, 100, gamma0=2.0)
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["chat_shift"][()], ref.chat)
        np.testing.assert_allclose(f["predictor_shift"][()], ref.predictor)
        assert f.attrs["test_error"] == pytest.approx(ref.test_error)
        assert f.attrs["method"] == "isserlis" and f["caux_shift"].attrs["description"]
    task["colour"] = 1
    (tmp_path / "task.json").write_text(json.dumps(task))
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: task: unknown key")


def test_combination_se_is_honest_and_tighter_than_the_entrywise_bound():
    """The RQMC SE of a linear combination of shift entries, taken over the replicates of the combination
    (``Adaptation.combination_se``): over 20 seeds the standardised errors against a 16x more precise run have a
    mean square consistent with t(R-1) (as the per-entry SE above), and the entry-by-entry bound
    ``sum |u_i| se_ij |u_j|`` it replaced is at least as large (here about 10x: the entries share replicates)."""
    from theory.adaptation_comparison import unit_direction

    prior = theory.Prior("rnn", 2, "relu", 1.2, 0.2, 1.2)
    X = np.random.default_rng(1).normal(size=(4, 4))
    y, train = np.array([0.5, -1.0, 0.8, 0.3]), [0, 1, 2]
    u, D = unit_direction(y, np.array(train)), np.ix_(train, train)

    def cross(x):  # u^T Delta[Chat^(1,2)]_DD u, a cross-time entry of claim 10
        return u @ x[1, 2][D] @ u

    ref = adaptation(prior, X, y, train, 0.5, 1.0, points=2**15, replicates=16, seed=100)
    z, ratio = [], []
    for seed in range(20):
        a = adaptation(prior, X, y, train, 0.5, 1.0, points=2**11, replicates=8, seed=seed)
        se = a.combination_se("chat", cross)
        z.append((cross(a.chat) - cross(ref.chat)) / np.hypot(se, ref.combination_se("chat", cross)))
        ratio.append(float(np.abs(u) @ a.chat_se[1, 2][D] @ np.abs(u)) / se)
    z2 = np.mean(np.square(z))
    assert 0.2 < z2 < 1.4 + 3 * 0.63, z  # t(7): E z^2 = 7/5; sd of the mean of 20 about 0.63
    assert min(ratio) >= 1.0 and np.median(ratio) > 3.0, ratio
    exact = adaptation(theory.Prior("dnn", 2, "linear", 1.2, 0.2, 1.2), X, y, train, 0.5, 1.0)
    assert exact.combination_se("chat", cross) == 0.0
    with pytest.raises(ValueError, match="field"):
        exact.combination_se("kernel", cross)
