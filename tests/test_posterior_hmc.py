"""HMC on the hidden parameters (mcsim.hmc, mcsim.posterior method="hmc").

* kappa = inf: HMC samples the prior -> KS tests against mcsim.sample on Chat, Caux, y
  (Kolmogorov distribution at the HMC effective sample size), and a mis-scaled network
  is rejected by the same test.
* Checkpointing: a ChainState copied mid-chain continues bit-identically.
* (slow) importance weighting and HMC agree within combined standard errors.
"""

import copy
import math

import numpy as np
import pytest
from scipy.stats import kstwobign

import mcsim
from mcsim import backprop, hmc
from mcsim import posterior_sampling as post
from mcsim.datasets import make_dataset
from theory import Prior

# short chains at kappa = inf: R-hat warnings are expected and irrelevant (the KS test uses the ESS)
pytestmark = pytest.mark.filterwarnings("ignore:hmc. max split-R-hat:RuntimeWarning")

#: family-wise level of each KS / agreement test (Bonferroni over the scalars compared)
ALPHA = 0.01

SCALARS = (("chat", (1, 1, 0, 0)), ("chat", (2, 0, 0, 1)), ("chat", (3, 3, 0, 1)), ("caux", (3, 3, 0, 1)),
           ("caux", (2, 1, 1, 0)), ("caux", (2, 2, 0, 0)), ("y", (0, 0)), ("y", (2, 0)))


def _ks_pvalue(hmc_draws, ess, prior_draws):
    """Two-sample KS p-value with the HMC sample counted at its effective size (asymptotic Kolmogorov law)."""
    a = np.sort(hmc_draws)
    b = np.sort(prior_draws)
    grid = np.concatenate([a, b])
    D = np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size - np.searchsorted(b, grid, side="right") / b.size))
    n1 = min(ess, a.size)
    n2 = b.size
    return float(kstwobign.sf(D * math.sqrt(n1 * n2 / (n1 + n2))))


def _prior_ks(arch, bias):
    prior = Prior(arch=arch, depth=2, activation="tanh", g2=1.5, sigma2=0.2, g2_in=1.0, bias=bias)
    X, y, tr = make_dataset("linear_teacher", 3, 2, 2, seed=1)
    obs = ("chat", "caux", "y")
    h = post.posterior(prior, X, y, tr, 6, 500, math.inf, method="hmc", chains=2, seed=3,
                       hmc={"warmup": 50, "n_leapfrog": 5, "adapt_mass": False, "thin": 2}, observables=obs)
    p = mcsim.sample(prior, X, 6, 4000, seed=3, observables=obs)
    pvals = []
    for o, idx in SCALARS:
        a = h.draws[o][(slice(None), slice(None)) + idx].ravel()
        b = p[o][(slice(None),) + idx]
        if np.ptp(b) == 0:  # deterministic entry (e.g. a DNN cross-layer Caux): must be equal
            assert np.all(a == b[0]), (o, idx)
            continue
        pvals.append(_ks_pvalue(a, h.diagnostics[f"ess_bulk/{o}"][idx], b))
    return min(pvals) * len(pvals)  # Bonferroni


@pytest.mark.parametrize("bias", ["uncorrelated", "static"])
@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_kappa_inf_hmc_samples_the_prior(arch, bias):
    assert _prior_ks(arch, bias) > ALPHA


def test_kappa_inf_ks_rejects_a_misscaled_network(monkeypatch):
    """Negative control: recurrent weights 20% too large in the explicit network are detected."""
    init = backprop.ExplicitNetwork.__init__

    def wrong(self, *a, **k):
        init(self, *a, **k)
        self.blocks = [(n, l, s, sc * (1.2 if n == "W" else 1.0), o) for n, l, s, sc, o in self.blocks]

    monkeypatch.setattr(backprop.ExplicitNetwork, "__init__", wrong)
    assert _prior_ks("rnn", "uncorrelated") < ALPHA


def test_chain_state_checkpoint_continues_bit_identically():
    prior = Prior(arch="rnn", depth=2, activation="erf", g2=1.2, sigma2=0.1, g2_in=1.0)
    X, y, tr = make_dataset("linear_teacher", 4, 2, 3, seed=0)
    net = backprop.ExplicitNetwork(prior, X, 5)
    pot = backprop.PosteriorPotential(net, y[tr], tr, 0.1)
    s = hmc.HMCSettings(warmup=30, n_leapfrog=4)
    key = 12345
    a = hmc.init_state(pot, net.prior_draw(np.random.default_rng(0)), s)
    for _ in range(20):
        hmc.step(pot, a, key, s)
    b = copy.deepcopy(a)  # the checkpoint: position, iteration counter, step size, dual averaging, mass
    for st in (a, b):
        for _ in range(30):
            hmc.step(pot, st, key, s)
    np.testing.assert_array_equal(a.position, b.position)
    assert a.log_eps == b.log_eps and a.n_accept_sum == b.n_accept_sum
    np.testing.assert_array_equal(a.inv_mass, b.inv_mass)


def test_hmc_settings_validated():
    with pytest.raises(ValueError, match="hmc.target_accept"):
        hmc.HMCSettings(target_accept=1.5)
    with pytest.raises(ValueError, match="hmc: unknown keys"):
        hmc.HMCSettings.from_dict({"leapfrog": 3})


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_importance_and_hmc_agree(arch):
    prior = Prior(arch=arch, depth=2, activation="tanh", g2=1.5, sigma2=0.1, g2_in=1.0)
    X, y, tr = make_dataset("linear_teacher", 4, 3, 3, seed=4, noise=0.05)
    obs = ("chat_diag", "caux_readout", "predictor", "train_error", "test_error")
    args = (prior, X, y, tr, 12)
    imp = post.posterior(*args, 40000, 0.05, method="importance", seed=1, observables=obs)
    assert 0.05 * 40000 < imp.diagnostics["ess"] < 0.8 * 40000  # the data matter, and weighting is valid
    h = post.posterior(*args, 1500, 0.05, method="hmc", chains=4, seed=1, observables=obs,
                       hmc={"warmup": 300, "n_leapfrog": 10})
    assert h.diagnostics["max_rhat"] < 1.05
    z = []
    for o in obs:
        se = np.sqrt(imp.se[o] ** 2 + h.se[o] ** 2)
        m = se > 0
        z.append(((imp.mean[o] - h.mean[o])[m] / se[m]).ravel())
    z = np.concatenate(z)
    from scipy.stats import norm

    crit = norm.isf(ALPHA / (2 * z.size))
    assert np.max(np.abs(z)) < crit, (np.max(np.abs(z)), crit)
