"""Projected (reduced) and direct (materialised) samplers agree in distribution.

Procedure (pre-declared): for each configuration both samplers draw R = 300
independent realizations at small width (n = 40, depth A = 4, so finite-size
non-Gaussian structure is present).  A fixed set of scalar statistics per
realization (outputs, readout Caux entries, Chat diagonals at two layers, a
cross-layer/time Chat entry) is compared with

* two-sample Kolmogorov-Smirnov tests (scipy.stats.ks_2samp), Bonferroni
  corrected: each at level ``ALPHA_KS / m``;
* one MMD two-sample permutation test on the joint standardised statistics
  (RBF kernel, median bandwidth, 2000 permutations) at level ``ALPHA_MMD``.

Family-wise level per configuration: ``ALPHA_KS + ALPHA_MMD = 0.002``
(about 17 configurations, so the chance of any false alarm at a new seed is
about 3 %).  Seeds are fixed.  ``test_detects_wrong_sampler`` checks that the
same procedure has power: an RNN sampled with fresh weights per step (i.e. a
DNN) is rejected.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mcsim
import theory

ALPHA_KS = 0.001
ALPHA_MMD = 0.001
N_PERM = 2000
R = 300
WIDTH = 40
DEPTH = 4


def _statistics(res: dict, A: int) -> tuple[np.ndarray, list[str]]:
    """Per-realization scalar statistics, shape (R, m)."""
    y = res["y"]
    chat = res["chat"]
    caux = res["caux"]
    cols = {
        "y[0,0]": y[:, 0, 0],
        "y[1,1]": y[:, 1, min(1, y.shape[2] - 1)],
        "caux_readout[0,0]": caux[:, A + 1, A + 1, 0, 0],
        "caux_readout[0,1]": caux[:, A + 1, A + 1, 0, 1],
        "chat[1,1][0,0]": chat[:, 1, 1, 0, 0],
        "chat[A,A][0,1]": chat[:, A, A, 0, 1],
        "chat[1,A][0,0]": chat[:, 1, A, 0, 0],
        "chat[A-1,A][1,1]": chat[:, A - 1, A, 1, 1],
    }
    return np.column_stack(list(cols.values())), list(cols)


def _mmd_pvalue(a: np.ndarray, b: np.ndarray, n_perm: int, seed: int) -> float:
    """Permutation p-value of the (biased) MMD^2 statistic, RBF kernel with median bandwidth."""
    z = np.vstack([a, b])
    mu, sd = z.mean(0), z.std(0)
    sd[sd == 0] = 1.0
    z = (z - mu) / sd
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    bw2 = np.median(d2[np.triu_indices_from(d2, 1)])
    Kmat = np.exp(-d2 / bw2)
    na, nb = len(a), len(b)
    w0 = np.concatenate([np.full(na, 1.0 / na), np.full(nb, -1.0 / nb)])
    rng = np.random.default_rng(seed)
    W = np.empty((len(w0), n_perm + 1))
    W[:, 0] = w0
    for k in range(n_perm):
        W[:, k + 1] = rng.permutation(w0)
    mmd2 = np.einsum("ik,ik->k", W, Kmat @ W)
    return float((1 + np.sum(mmd2[1:] >= mmd2[0])) / (n_perm + 1))


def two_sample_test(a: np.ndarray, b: np.ndarray, names: list[str], seed: int = 0) -> dict:
    """Return p-values and the rejection decision of the pre-declared procedure."""
    m = a.shape[1]
    ks = {names[j]: stats.ks_2samp(a[:, j], b[:, j]).pvalue for j in range(m)}
    p_mmd = _mmd_pvalue(a, b, N_PERM, seed)
    reject = min(ks.values()) < ALPHA_KS / m or p_mmd < ALPHA_MMD
    return {"ks": ks, "mmd": p_mmd, "reject": reject}


def _inputs(kind: str, A: int):
    rng = np.random.default_rng(12345)
    if kind == "single":
        X = rng.normal(0.5, 1.0, size=(3, 4))
        X[2] = X[0]  # duplicated pattern: singular input Gram matrix
        return X
    X = rng.standard_normal((3, A + 1, 4))
    X[2] = X[0]
    return X


CONFIGS = [
    (arch, bias, act, "single")
    for arch in ("dnn", "rnn")
    for bias in ("uncorrelated", "static")
    for act in ("relu", "erf", "tanh")
] + [
    (arch, bias, "relu", "sequence") for arch in ("dnn", "rnn") for bias in ("uncorrelated", "static")
]


def _run(prior, X, width, method, seed=7):
    return mcsim.sample(prior, X, width, R, seed=seed, method=method, observables=("y", "caux", "chat"))


@pytest.mark.parametrize("arch,bias,act,kind", CONFIGS)
def test_projected_matches_direct(arch, bias, act, kind):
    prior = theory.Prior(arch, DEPTH, act, 1.5, 0.2, 1.2, bias=bias, n_out=2)
    X = _inputs(kind, DEPTH)
    rp = _run(prior, X, WIDTH, "projected")
    rd = _run(prior, X, WIDTH, "direct")
    for res in (rp, rd):
        assert not res["overflow"].any()
        # duplicated pattern -> bitwise identical hidden states and outputs (exact rank-deficient handling)
        assert np.array_equal(res["chat"][..., 0, 0], res["chat"][..., 2, 2])
        assert np.array_equal(res["y"][:, 0], res["y"][:, 2])
    a, names = _statistics(rp, DEPTH)
    b, _ = _statistics(rd, DEPTH)
    out = two_sample_test(a, b, names)
    assert not out["reject"], out


def test_rnn_projection_saturates_basis():
    """A P > n: the revealed basis becomes complete (k = n) and must still be exact."""
    A, n = 5, 8
    prior = theory.Prior("rnn", A, "relu", 1.5, 0.2, 1.2, bias="uncorrelated", n_out=2)
    X = np.random.default_rng(3).standard_normal((3, 4))
    rp = mcsim.sample(prior, X, n, R, seed=11, method="projected", observables=("y", "caux", "chat"))
    rd = mcsim.sample(prior, X, n, R, seed=11, method="direct", observables=("y", "caux", "chat"))
    a, names = _statistics(rp, A)
    b, _ = _statistics(rd, A)
    out = two_sample_test(a, b, names)
    assert not out["reject"], out


def test_detects_wrong_sampler():
    """Power check: the same procedure rejects a DNN (fresh W per step) posing as the RNN."""
    X = _inputs("single", DEPTH)
    rnn = theory.Prior("rnn", DEPTH, "relu", 1.5, 0.2, 1.2, bias="uncorrelated", n_out=2)
    dnn = theory.Prior("dnn", DEPTH, "relu", 1.5, 0.2, 1.2, bias="uncorrelated", n_out=2)
    a, names = _statistics(_run(rnn, X, WIDTH, "direct"), DEPTH)
    b, _ = _statistics(_run(dnn, X, WIDTH, "projected"), DEPTH)
    out = two_sample_test(a, b, names)
    assert out["reject"], out
    assert out["ks"]["chat[1,A][0,0]"] < ALPHA_KS / len(names)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_projected_matches_direct_unequal_widths(act):
    """DNN with layer widths nu = (1, 2, 0.5, 1.5, 1) n and sequence inputs (diagonal observables)."""
    prior = theory.Prior("dnn", DEPTH, act, 1.5, 0.2, 1.2, nu=[1.0, 2.0, 0.5, 1.5, 1.0], n_out=2)
    X = _inputs("sequence", DEPTH)
    obs = ("y", "caux_diag", "chat_diag")
    rp = mcsim.sample(prior, X, WIDTH, R, seed=9, method="projected", observables=obs)
    rd = mcsim.sample(prior, X, WIDTH, R, seed=9, method="direct", observables=obs)

    def stats_(res):
        cols = {
            "y[0,0]": res["y"][:, 0, 0],
            "caux_readout[0,1]": res["caux_diag"][:, DEPTH + 1, 0, 1],
            "chat[1,1][0,0]": res["chat_diag"][:, 1, 0, 0],
            "chat[2,2][0,1]": res["chat_diag"][:, 2, 0, 1],
            "caux[3,3][1,1]": res["caux_diag"][:, 3, 1, 1],
            "chat[A,A][0,0]": res["chat_diag"][:, DEPTH, 0, 0],
        }
        return np.column_stack(list(cols.values())), list(cols)

    a, names = stats_(rp)
    b, _ = stats_(rd)
    out = two_sample_test(a, b, names)
    assert not out["reject"], out


def test_projected_matches_direct_deep_rnn():
    """Deep RNN (A = 30, basis of up to A P = 60 directions in n = 150): no loss of orthogonality."""
    A = 30
    prior = theory.Prior("rnn", A, "relu", 1.6, 0.2, 1.6, n_out=2)
    X = np.random.default_rng(0).normal(1.0, 1.0, size=(2, 50))
    rp = mcsim.sample(prior, X, 150, R, seed=1, method="projected", observables=("y", "caux", "chat"))
    rd = mcsim.sample(prior, X, 150, R, seed=1, method="direct", observables=("y", "caux", "chat"))
    a, names = _statistics(rp, A)
    b, _ = _statistics(rd, A)
    extra = lambda r: np.column_stack([r["chat"][:, 10, A, 0, 0], r["chat"][:, A, A, 0, 1]])  # noqa: E731
    a = np.column_stack([a, extra(rp)])
    b = np.column_stack([b, extra(rd)])
    out = two_sample_test(a, b, names + ["chat[10,A][0,0]", "chat[A,A][0,1]"])
    assert not out["reject"], out
