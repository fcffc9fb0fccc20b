"""Simulation-based calibration of the HMC posterior sampler (Talts et al. 2018, arXiv:1804.06788).

Tiny DNN (n = 3, A = 1, P = 3 training patterns, 10 outputs): for each replicate draw Theta from the
prior, Y from the likelihood N(0, K_DD(Theta) + kappa I), run one HMC chain on the
posterior and record the rank of each test scalar of the true Theta among the (thinned)
posterior draws.  For a correct sampler the ranks are uniform on 0..L; a chi^2 test on
B bins per scalar, Bonferroni over the scalars, at family-wise level ALPHA.  The same test
must reject a deliberately wrong sampler: the data term scaled by 2 in both the energy
and the gradient (a wrong *gradient* alone is corrected exactly by the Metropolis step,
so it would not make the sampler wrong).
"""

import numpy as np
import pytest
from scipy.stats import chi2

from mcsim import hmc
from mcsim._rng import realization_generator, stream_key
from mcsim.backprop import ExplicitNetwork, PosteriorPotential
from mcsim.readout_posterior import loglik_and_dK
from theory import Prior

ALPHA = 0.01
KAPPA = 0.05
N_OUT = 10  # independent output columns: each is a draw of N(0, K_DD + kappa I), so the data inform K
DRAWS = 39  # ranks 0..39
BINS = 8  # 40 ranks -> 8 bins of 5
REPLICATES = 160
SETTINGS = hmc.HMCSettings(warmup=100, n_leapfrog=8, thin=4)  # thinned draws: ESS ~ 35-42 of 39


def _scalars(net, z, Y):
    """Scalars invariant under the network's symmetries (sign flips, permutations of hidden units).

    The posterior over raw weights is multimodal (flipping the signs of a tanh unit's weights
    leaves K unchanged), so single weights are not usable SBC scalars for a local sampler.
    The log-likelihood of the replicate's data is the most sensitive one (Talts et al. Sec. 4).
    """
    H, PHI = net.forward(z)
    K = net.readout_kernel(PHI[-1])
    return np.array([z @ z / z.size, K[0, 1], np.log(K[2, 2]), H[1][0] @ H[1][1] / H[1].shape[1],
                     H[0][1] @ H[0][2] / H[0].shape[1], loglik_and_dK(K, Y, KAPPA)[0]])


def _sbc_pvalue(data_scale, seed=0):
    prior = Prior(arch="dnn", depth=1, activation="tanh", g2=1.5, sigma2=0.2, g2_in=1.5, n_out=N_OUT)
    X = np.array([[1.0, 0.0], [0.6, 0.8], [-0.5, 0.7]])
    net = ExplicitNetwork(prior, X, 3)
    train = np.arange(3)
    ranks = []
    for s in range(REPLICATES):
        rng = realization_generator(stream_key(seed, "sbc-truth"), s)
        z_true = net.prior_draw(rng)
        K = net.readout_kernel(net.forward(z_true)[1][-1])
        Y = np.linalg.cholesky(K + KAPPA * np.eye(3)) @ rng.standard_normal((3, N_OUT))
        pot = PosteriorPotential(net, Y, train, KAPPA, data_scale=data_scale)
        state = hmc.init_state(pot, net.prior_draw(rng), SETTINGS)
        key = stream_key(seed, f"sbc-chain-{s}")
        draws = []
        while state.iteration < SETTINGS.warmup + DRAWS * SETTINGS.thin:
            hmc.step(pot, state, key, SETTINGS)
            i = state.iteration - SETTINGS.warmup
            if i > 0 and i % SETTINGS.thin == 0:
                draws.append(_scalars(net, state.position, Y))
        ranks.append(np.sum(np.asarray(draws) < _scalars(net, z_true, Y), axis=0))
    ranks = np.asarray(ranks)  # (REPLICATES, scalars)
    pvals = []
    for j in range(ranks.shape[1]):
        counts = np.bincount(ranks[:, j] * BINS // (DRAWS + 1), minlength=BINS)
        E = REPLICATES / BINS
        pvals.append(chi2.sf(np.sum((counts - E) ** 2 / E), BINS - 1))
    return min(1.0, min(pvals) * len(pvals))


@pytest.mark.slow
def test_sbc_ranks_uniform():
    assert _sbc_pvalue(1.0) > ALPHA


@pytest.mark.slow
def test_sbc_rejects_wrong_sampler():
    assert _sbc_pvalue(2.0) < ALPHA
