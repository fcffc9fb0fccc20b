"""Deep linear networks: forward-backward MAP kernels, Li-Sompolinsky renormalisation, exact predictor.

Three independent routes are cross-checked (all deterministic numerics):

* ``map_kernels`` (slides' forward-backward equations, conventions derived in
  theory/proportional.py) expanded to first order in 1/n at fixed P equals the
  first-order adaptation ``theory.adaptation`` (Cov(Caux^(l,l), K) G from
  Isserlis), at every layer: ``n (C_l - Cbar_l) -> n Delta[Caux^(l,l)]`` with an
  error falling like 1/n;
* the exact finite-n posterior-mean predictor (scalar mixture over the
  per-layer norms, 1-D quadrature) at fixed P: ``n (E_post f - m(Kbar))`` tends
  to the first-order theory ``predictor_fluctuation + predictor``;
* Li & Sompolinsky's saddle point approaches the exact predictor in the
  proportional limit ``P = alpha n`` (error falling like 1/n).
"""

import numpy as np
import pytest

import theory
from theory.adaptation import adaptation
from theory.proportional import ConvergenceError, exact_predictor, li_sompolinsky, map_kernels, posterior_kernels

KAPPA = 0.2
GAMMA0 = 1.5
PRIOR = theory.Prior("dnn", 2, "linear", [1.3, 0.9], 0.0, 1.0, g2_out=0.8)


def _fixed_task(P=4, n_in=12):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(P, n_in))
    y = X @ rng.normal(size=n_in) / np.sqrt(n_in)
    return X, y


def test_map_kernels_first_order_equals_adaptation_theory():
    X, y = _fixed_task()
    ad = adaptation(PRIOR, X, y, np.arange(4), KAPPA, 1.0, gamma0=GAMMA0)  # n Delta
    L = PRIOR.depth + 1
    scale = np.abs(ad.caux[L, L]).max()
    err = {}
    for n in (1e3, 1e4):
        m = map_kernels(PRIOR, X, y, KAPPA, n, gamma0=GAMMA0)
        assert m.residual < 1e-10 and m.iterations > 1
        err[n] = max(np.abs(n * (m.C[l] - m.nngp[l]) - ad.caux[l, l]).max() for l in range(L + 1))
    assert err[1e4] < 1e-3 * scale
    assert 7 < err[1e3] / err[1e4] < 13  # the remainder is O(1/n)


def test_posterior_kernels_first_order_equals_adaptation_theory():
    """The exact layer recursion at the saddle point, at fixed P: n (C_l - Cbar_l) -> n Delta[Caux^(l,l)]."""
    X, y = _fixed_task()
    ad = adaptation(PRIOR, X, y, np.arange(4), KAPPA, 1.0, gamma0=GAMMA0)
    L = PRIOR.depth + 1
    scale = np.abs(ad.caux[L, L]).max()
    err = {}
    for n in (1e3, 1e4):
        pk = posterior_kernels(PRIOR, X, y, KAPPA, n, gamma0=GAMMA0)
        assert np.array_equal(pk.C[0], pk.nngp[0])
        err[n] = max(np.abs(n * (pk.C[l] - pk.nngp[l]) - ad.caux[l, l]).max() for l in range(L + 1))
    assert err[1e4] < 1e-3 * scale
    assert 7 < err[1e3] / err[1e4] < 13  # the remainder is O(1/n)


def test_posterior_kernels_rank_one_signal_differs_from_map_at_finite_alpha():
    """At P = alpha n the MAP and posterior-mean kernels part at O(1) along the target, not elsewhere."""
    prior = theory.Prior("dnn", 1, "linear", 1.0, 0.0, 1.0)
    gap = {}
    for n in (100, 400):
        P = n // 2
        rng = np.random.default_rng(1)
        X = rng.normal(size=(P, n))
        y = X @ rng.normal(size=n) / np.sqrt(n)
        pk = posterior_kernels(prior, X, y, 0.05, n)
        mp = map_kernels(prior, X, y, 0.05, n)
        u = y / np.linalg.norm(y)
        L = 2
        proj = lambda C: u @ C @ u / (u @ pk.nngp[L] @ u)  # noqa: E731
        gap[n] = proj(pk.C[L]) - proj(mp.C[L])
        assert proj(pk.C[L]) - 1.0 > 0.3  # a strong learning signal
        assert abs(np.trace(pk.C[L]) - np.trace(mp.C[L])) < 5.0 / n * np.trace(pk.nngp[L])
    assert min(gap.values()) > 0.1 and abs(gap[400] - gap[100]) < 0.5 * gap[400]  # O(1), not O(1/n)


def test_exact_predictor_first_order_equals_adaptation_theory():
    X, y = _fixed_task()
    ad = adaptation(PRIOR, X, y, np.arange(4), KAPPA, 1.0, gamma0=GAMMA0)
    first = (ad.predictor_fluctuation + ad.predictor)[:, 0]
    err = {}
    for n in (1e4, 1e5):
        ex = exact_predictor(PRIOR, X, y, KAPPA, n, gamma0=GAMMA0)
        assert ex.error < 1e-12
        err[n] = np.abs(n * (ex.predictor[:, 0] - ad.predictor_prior[:, 0]) - first).max()
    assert err[1e5] < 1e-3 * np.abs(first).max()
    assert 5 < err[1e4] / err[1e5] < 20


def _proportional_task(depth, n, alpha=0.2, kappa=0.05):
    prior = theory.Prior("dnn", depth, "linear", 1.0, 0.0, 1.0)
    P = int(alpha * n)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(P, 4 * P))
    y = 3.0 * X @ rng.normal(size=4 * P) / np.sqrt(4 * P)  # strong signal: u clearly away from 1
    ls = li_sompolinsky(prior, X, y, kappa, n)
    ex = exact_predictor(prior, X, y, kappa, n)
    K = theory.kernel(prior, X)[depth + 1, depth + 1]
    m0 = K @ np.linalg.solve(K + kappa * np.eye(P), y[:, None])
    return ls, ex, m0


@pytest.mark.parametrize("depth", [0, 1])
def test_li_sompolinsky_kernel_scale_is_exact_up_to_one_over_n(depth):
    """At fixed alpha the saddle-point u differs from the exact posterior mean of u by O(1/n)."""
    du = {}
    for n in (200, 800):
        ls, ex, _ = _proportional_task(depth, n)
        assert ex.error < 1e-12
        assert ls.u > 1.5  # a strong renormalisation (the NNGP has u = 1)
        du[n] = n * abs(ls.u - ex.u_mean)
        assert abs(ls.u - ex.u_mean) < 0.01 * (ls.u - 1.0)
    assert 0.8 < du[200] / du[800] < 1.25  # |u_LS - u_exact| falls like 1/n


@pytest.mark.slow
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_li_sompolinsky_approaches_exact_predictor_in_proportional_limit(depth):
    rel = {}
    for n in (800, 3200):
        ls, ex, m0 = _proportional_task(depth, n)
        shift = np.linalg.norm(ex.predictor - m0)  # the O(alpha) feature-learning effect
        rel[n] = np.linalg.norm(ls.predictor - ex.predictor) / shift
    assert rel[3200] < 1e-3
    assert 3 < rel[800] / rel[3200] < 5  # O(1/n)


def test_map_kernels_reports_non_convergence():
    X, y = _fixed_task()
    with pytest.raises(ConvergenceError, match="not converged after 3 iterations"):
        map_kernels(PRIOR, X, y, KAPPA, 10.0, gamma0=GAMMA0, max_iter=3)


@pytest.mark.parametrize("prior,kw,match", [
    (theory.Prior("dnn", 1, "relu", 1.0, 0.0, 1.0), {}, "prior"),
    (theory.Prior("rnn", 1, "linear", 1.0, 0.0, 1.0), {}, "prior"),
    (theory.Prior("dnn", 1, "linear", 1.0, 0.1, 1.0), {}, "sigma2"),
    (PRIOR, dict(kappa=0.0), "kappa"),
    (PRIOR, dict(gamma0=-1.0), "gamma0"),
    (PRIOR, dict(y=np.zeros((4, 2))), "y"),
    (PRIOR, dict(damping=0.0), "damping"),
])
def test_bad_input_names_the_argument(prior, kw, match):
    X, y = _fixed_task()
    args = dict(X=X, y=y, kappa=KAPPA, width=100.0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        map_kernels(prior, **args)
    if "damping" not in kw:
        with pytest.raises(ValueError, match=match):
            posterior_kernels(prior, **args)


def test_target_projections_shapes_and_bad_input():
    from theory.proportional_comparison import target_projections

    X, y = _fixed_task()
    pk = posterior_kernels(PRIOR, X, y, KAPPA, 50.0, gamma0=GAMMA0)
    r = target_projections(np.stack([pk.C, pk.nngp]), y, pk.nngp)
    assert r.shape == (2, PRIOR.depth + 1)
    assert np.allclose(r[1], 1.0)
    u = y / np.linalg.norm(y)
    assert np.isclose(r[0, -1], u @ pk.C[-1] @ u / (u @ pk.nngp[-1] @ u))
    with pytest.raises(ValueError, match="C: need shape"):
        target_projections(pk.C[:, :3, :3], y, pk.nngp)
