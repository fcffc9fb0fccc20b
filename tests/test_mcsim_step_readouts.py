"""``y_steps``: the readout of every depth a = 0..A from one realization of the depth-A network.

Statistical checks (fixed seeds, tolerances from standard errors): at every
step a the per-step readouts have the law of the outputs of a separately
simulated depth-a network, and their covariance is the mean-field readout
kernel of depth a (:func:`theory.readout_kernels`).
"""

import numpy as np
import pytest

import mcsim
import theory

P, N_IN, WIDTH, A, R = 3, 4, 200, 4, 3000


def _prior(arch, depth, bias="uncorrelated"):
    return theory.Prior(arch, depth=depth, activation="relu", g2=1.6, sigma2=0.2, g2_in=1.6, bias=bias)


def _second_moments(y):
    """Entries (p <= q) of E[y_p y_q] over realizations with their SE: (m,), (m,)."""
    iu, ju = np.triu_indices(y.shape[1])
    prod = y[:, iu] * y[:, ju]
    return prod.mean(axis=0), prod.std(axis=0, ddof=1) / np.sqrt(y.shape[0])


@pytest.mark.parametrize("bias", ["uncorrelated", "static"])
@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_theory_readout_kernels_are_the_readouts_of_shallower_networks(arch, bias):
    X = np.random.default_rng(0).standard_normal((P, N_IN))
    K = theory.readout_kernels(_prior(arch, 6, bias), X)
    assert K.shape == (7, P, P)
    for a in range(7):
        np.testing.assert_allclose(K[a], theory.kernel(_prior(arch, a, bias), X)[a + 1, a + 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_step_readouts_match_separate_networks_and_theory(arch):
    X = np.random.default_rng(1).standard_normal((P, N_IN))
    deep = mcsim.sample(_prior(arch, A), X, WIDTH, R, seed=11, observables=("y_steps",))
    ys = deep["y_steps"][..., 0]
    assert deep["y_steps"].shape == (R, A + 1, P, 1) and not deep["overflow"].any()
    K = theory.readout_kernels(_prior(arch, A), X)
    iu, ju = np.triu_indices(P)
    for a in range(A + 1):
        sep = mcsim.sample(_prior(arch, a), X, WIDTH, R, seed=12, observables=("y",))["y"][:, :, 0]
        m1, s1 = _second_moments(ys[:, a])
        m2, s2 = _second_moments(sep)
        z_sep = (m1 - m2) / np.hypot(s1, s2)
        z_th = (m1 - K[a][iu, ju]) / s1
        assert np.abs(z_sep).max() < 4.0, (a, z_sep)
        assert np.abs(z_th).max() < 4.0, (a, z_th)
        # means are zero (N(0, K) given the realization)
        assert np.all(np.abs(ys[:, a].mean(axis=0)) < 4.0 * ys[:, a].std(axis=0) / np.sqrt(R))


def test_step_readouts_detect_a_wrong_depth():
    """The comparison above has power: the readout of step a-1 is not that of a depth-a network."""
    X = np.random.default_rng(1).standard_normal((P, N_IN))
    ys = mcsim.sample(_prior("rnn", A), X, WIDTH, R, seed=11, observables=("y_steps",))["y_steps"][..., 0]
    K = theory.readout_kernels(_prior("rnn", A), X)
    iu, ju = np.triu_indices(P)
    m, s = _second_moments(ys[:, 0])
    assert np.abs((m - K[1][iu, ju]) / s).max() > 6.0


@pytest.mark.parametrize("method", ["projected", "direct"])
def test_step_readouts_bit_identical_across_block_splits(method):
    prior = _prior("rnn", 3, "static")
    X = np.random.default_rng(2).standard_normal((P, N_IN))
    whole = mcsim.sample(prior, X, 20, 7, seed=5, method=method, observables=("y_steps", "y"))
    parts = [mcsim.sample(prior, X, 20, k, seed=5, method=method, observables=("y_steps",), start=s)
             for s, k in ((0, 3), (3, 4))]
    np.testing.assert_array_equal(np.concatenate([p["y_steps"] for p in parts]), whole["y_steps"])
    # an independent draw, not a copy of y
    assert not np.array_equal(whole["y_steps"][:, -1], whole["y"])


def test_step_readouts_refuse_zero_hidden_gain():
    prior = theory.Prior("dnn", depth=2, activation="relu", g2=[1.0, 0.0], sigma2=0.2, g2_in=1.0)
    with pytest.raises(ValueError, match="^observables: y_steps.*g2 > 0"):
        mcsim.sample(prior, np.ones((2, 3)), 10, 2, observables=("y_steps",))
    with pytest.raises(ValueError, match="^prior: readout kernels by depth need g2 > 0"):
        theory.readout_kernels(prior, np.ones((2, 3)))
