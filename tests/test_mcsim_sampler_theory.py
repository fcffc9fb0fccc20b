"""Simulation vs mean-field theory (theory.kernel) and NLO variance (theory.nlo_variance).

Pre-declared procedures
-----------------------
Means.  ``E[Caux]`` and ``E[Chat]`` at width n equal the mean-field kernel C up
to an O(1/n) bias (tadpole corrections; the RNN shows about 12 C / n at
depth 5 for ReLU).  We remove it by Richardson extrapolation from two widths,
``C_est = (n2 m(n2) - n1 m(n1)) / (n2 - n1)``, whose remaining bias is
``O(1/(n1 n2))`` (<< SE here), and require ``|C_est - C| <= z SE_est`` for every
random entry, z Bonferroni-corrected for a family-wise level 0.001 per
configuration.  Deterministic entries (a = 0, DNN cross-layer Caux, readout
cross blocks) must match to rounding.  For the ReLU DNN with a single input the
diagonal recursion is linear, ``E[Caux^(a,a)] = sigma^2 + g^2/2 E[Chat^(a-1,a-1)]``,
so there is no O(1/n) bias at all: checked at n = 1000 without extrapolation.

Variances.  ``n Var[Caux^(a,a)]`` vs ``n`` times ``theory.nlo_variance`` for
n in {100, 400, 1600}: at n = 1600 every layer must agree within z SE (SE of
a sample variance from the fourth central moment) plus an O(1/n) allowance,
namely the deviation observed at n = 100 scaled by 100/1600 (the NLO result
is exact up to relative O(1/n) corrections).  For the ReLU RNN readout, where
the finite-size correction at n = 100 is significant, the deviation must shrink.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mcsim
import theory

ALPHA = 0.001


def _z(m: int, alpha: float = ALPHA) -> float:
    return float(stats.norm.isf(alpha / (2 * max(m, 1))))


def _mean_sem(v):
    return v.mean(0), v.std(0, ddof=1) / np.sqrt(v.shape[0])


MEAN_CONFIGS = [
    ("dnn", "relu", "uncorrelated"),
    ("dnn", "erf", "static"),
    ("rnn", "relu", "uncorrelated"),
    ("rnn", "relu", "static"),
    ("rnn", "erf", "uncorrelated"),
    ("rnn", "tanh", "static"),
]


@pytest.mark.slow
@pytest.mark.parametrize("arch,act,bias", MEAN_CONFIGS)
def test_means_match_kernel(arch, act, bias):
    A, n1, n2, R = 5, 250, 1000, 1500
    prior = theory.Prior(arch, A, act, 1.5, 0.2, 1.2, bias=bias)
    X = np.random.default_rng(1).standard_normal((2, 4))
    C = theory.kernel(prior, X)
    r1 = mcsim.sample(prior, X, n1, R, seed=21, observables=("caux", "chat"))
    r2 = mcsim.sample(prior, X, n2, R, seed=22, observables=("caux", "chat"))
    for name in ("caux", "chat"):
        m1, s1 = _mean_sem(r1[name])
        m2, s2 = _mean_sem(r2[name])
        est = (n2 * m2 - n1 * m1) / (n2 - n1)
        se = np.sqrt((n2 * s2) ** 2 + (n1 * s1) ** 2) / (n2 - n1)
        scale = np.abs(C).max()
        random = se > 1e-12 * scale
        det = ~random
        np.testing.assert_allclose(m2[det], C[det], rtol=1e-10, atol=1e-12 * scale, err_msg=name)
        z = _z(int(random.sum()))
        dev = np.abs(est - C)[random] / se[random]
        assert dev.max() <= z, (name, dev.max(), z, np.argwhere(random)[dev.argmax()])


def test_relu_dnn_diagonal_is_unbiased():
    A, n, R = 6, 1000, 400
    prior = theory.Prior("dnn", A, "relu", 1.5, 0.2, 1.2)
    x = np.random.default_rng(4).normal(1.0, 1.0, size=(1, 8))
    C = np.einsum("aapq->apq", theory.kernel(prior, x))[1:, 0, 0]
    res = mcsim.sample(prior, x, n, R, seed=3, observables=("caux_diag", "chat_diag"))
    z = _z(2 * (A + 1))
    for name in ("caux_diag", "chat_diag"):
        m, s = _mean_sem(res[name][:, 1:, 0, 0])
        assert np.all(np.abs(m - C) <= z * s), (name, (m - C) / s)


def _var_and_se(v):
    c = v - v.mean(0)
    var = (c**2).sum(0) / (len(v) - 1)
    m4 = (c**4).mean(0)
    return var, np.sqrt(np.maximum(m4 - var**2, 0.0) / len(v))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_variance_approaches_nlo(arch):
    A, R = 4, 4000
    widths = (100, 400, 1600)
    prior = theory.Prior(arch, A, "relu", 1.2, 0.2, 1.2)
    x = np.random.default_rng(5).standard_normal(4)
    dev, se = {}, {}
    for i, n in enumerate(widths):
        nv = np.asarray(theory.nlo_variance(prior, x, n))
        assert nv.shape == (A + 2,) and nv[0] == 0.0
        res = mcsim.sample(prior, x[None], n, R, seed=30 + i, observables=("caux_diag",))
        var, s = _var_and_se(res["caux_diag"][:, 1:, 0, 0])
        dev[n] = n * (var - nv[1:])
        se[n] = n * s
    z = _z(A + 1)
    allowance = np.abs(dev[100]) * 100 / 1600
    assert np.all(np.abs(dev[1600]) <= z * se[1600] + allowance), (dev, se)
    if arch == "rnn":
        # readout: finite-size correction clearly visible at n = 100 and it must shrink
        assert abs(dev[100][-1]) > z * se[100][-1], (dev[100], se[100])
        assert abs(dev[1600][-1]) < abs(dev[100][-1])
