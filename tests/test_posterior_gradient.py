"""Back-propagated gradient of the posterior potential vs central finite differences (mcsim.backprop)."""

import numpy as np
import pytest

from theory import Prior
from theory.activations import BUILTIN_NAMES
from mcsim.backprop import ExplicitNetwork, PosteriorPotential

#: relative accuracy demanded of the gradient (issue 10)
RTOL = 1e-6


def _problem(arch, bias, act, kappa=0.3, gamma0=1.5, seq=False):
    A = 3
    prior = Prior(arch=arch, depth=A, activation=act, g2=1.4, sigma2=0.3, g2_in=1.2, bias=bias, n_out=2)
    rng = np.random.default_rng(7)
    P, n_in = 5, 3
    X = rng.standard_normal((P, A + 1, n_in) if seq else (P, n_in))
    net = ExplicitNetwork(prior, X, width=6)
    train = np.array([0, 2, 3, 4])
    Y = rng.standard_normal((train.size, 2))
    return net, PosteriorPotential(net, Y, train, kappa, gamma0)


def _fd_check(pot, seed=1, ndirs=4, h=1e-5):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(pot.dim)
    u, g = pot.value_and_grad(z)
    assert np.isfinite(u)
    assert u == pytest.approx(pot.value(z), rel=1e-13)
    for _ in range(ndirs):
        v = rng.standard_normal(pot.dim)
        v /= np.linalg.norm(v)
        # fourth-order central difference of the directional derivative
        f = lambda t: pot.value(z + t * v)  # noqa: E731
        fd = (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)
        an = float(g @ v)
        assert abs(fd - an) <= RTOL * max(np.linalg.norm(g), 1e-300), (fd, an)


@pytest.mark.parametrize("act", BUILTIN_NAMES)
@pytest.mark.parametrize("bias", ["uncorrelated", "static"])
@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_gradient_matches_finite_differences(arch, bias, act):
    net, pot = _problem(arch, bias, act)
    _fd_check(pot)


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_gradient_sequence_inputs(arch):
    net, pot = _problem(arch, "uncorrelated", "tanh", seq=True)
    assert sum(1 for b in net.blocks if b[0] == "W_in") == (1 if arch == "rnn" else 4)
    _fd_check(pot)


def test_layout_counts_shared_weights_once():
    prior = Prior(arch="rnn", depth=4, activation="tanh", g2=1.0, sigma2=0.0, g2_in=1.0)
    net = ExplicitNetwork(prior, np.ones((2, 3)), width=5)
    assert net.dim == 5 * 3 + 5 * 5  # W_in and one shared W, no bias (sigma2 = 0)
    prior = Prior(arch="dnn", depth=4, activation="tanh", g2=1.0, sigma2=0.1, g2_in=1.0)
    net = ExplicitNetwork(prior, np.ones((2, 3)), width=5)
    assert net.dim == 5 * 3 + 4 * 5 * 5 + 5 * 5
