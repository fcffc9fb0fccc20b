"""Analytic checks of the 1/n theory and the stability helpers."""

import math

import numpy as np
import pytest

import theory
from theory import nlo

X1 = np.array([1.0, -0.5, 2.0, 0.3])


def test_relu_F_and_G_dnn():
    g2, A = 1.2, 5
    pr = theory.Prior("dnn", A, "relu", g2, 0.2, 1.2)
    F = nlo.propagation_factors(pr, X1)
    assert np.allclose(F, g2 / 2, rtol=1e-14)  # Eq. 66
    C = nlo.single_input_kernel(pr, X1)
    G = nlo.source_matrix(pr, X1)
    c = np.diagonal(C)[: A + 1]
    assert np.allclose(np.diagonal(G), 1.25 * g2**2 * c**2, rtol=1e-13)  # Eq. 67
    assert np.all(G[~np.eye(A + 1, dtype=bool)] == 0)


def test_dnn_variance_matches_eq44_by_hand():
    g2, s2, A, n = 1.2, 0.2, 4, 300
    pr = theory.Prior("dnn", A, "relu", g2, s2, 1.2)
    C = np.diagonal(nlo.single_input_kernel(pr, X1))
    var = theory.nlo_variance(pr, X1, n)
    F = g2 / 2
    for a in range(1, A + 2):
        expected = sum(F ** (2 * (a - ap)) * 1.25 * g2**2 * C[ap - 1] ** 2 for ap in range(1, a + 1)) / n
        assert var[a] == pytest.approx(expected, rel=1e-12)
    assert var[0] == 0.0


def test_relu_depth_scale_paper_value():
    g2 = 1.2
    tau = theory.depth_scale("relu", g2, 0.2)
    assert tau == pytest.approx(1.0 / (math.log(2) - math.log(g2)), rel=1e-12)  # (ln 2 - 2 ln g)^-1
    assert 1.9 < tau < 2.0  # "about 2" in the paper


def test_dnn_variance_with_nu_uses_layer_widths():
    A, n = 3, 100
    nu = [1.0, 2.0, 0.5, 4.0]
    pr = theory.Prior("dnn", A, "relu", 1.2, 0.2, 1.2, nu=nu)
    pr1 = theory.Prior("dnn", A, "relu", 1.2, 0.2, 1.2)
    C = np.diagonal(nlo.single_input_kernel(pr, X1))
    var = theory.nlo_variance(pr, X1, n)
    F = 0.6
    for a in range(1, A + 2):
        expected = sum(F ** (2 * (a - ap)) * 1.25 * 1.44 * C[ap - 1] ** 2 / (nu[ap - 1] * n) for ap in range(1, a + 1))
        assert var[a] == pytest.approx(expected, rel=1e-12)
    assert not np.allclose(var, theory.nlo_variance(pr1, X1, n))


def test_rnn_above_dnn_and_one_over_n():
    pr_d = theory.Prior("dnn", 10, "relu", 1.2, 0.2, 1.2)
    pr_r = theory.Prior("rnn", 10, "relu", 1.2, 0.2, 1.2)
    vd, vr = theory.nlo_variance(pr_d, X1, 500), theory.nlo_variance(pr_r, X1, 500)
    assert np.allclose(vr[:3], vd[:3], rtol=1e-12)  # C^(1,0) = 0: no cross source before a = 3
    assert np.all(vr[3:] > vd[3:])
    assert np.allclose(theory.nlo_variance(pr_r, X1, 1000), vr / 2)


def test_rnn_erf_single_input_equals_dnn():
    # erf, uncorrelated bias, input at a = 0: cross-time kernel vanishes -> G diagonal -> DNN = RNN
    pr_d = theory.Prior("dnn", 5, "erf", 1.6, 0.2, 1.6)
    pr_r = theory.Prior("rnn", 5, "erf", 1.6, 0.2, 1.6)
    assert np.allclose(theory.nlo_covariance(pr_d, X1, 100), theory.nlo_covariance(pr_r, X1, 100), rtol=1e-10)


def test_covariance_structure_and_consistency():
    pr = theory.Prior("rnn", 6, "tanh", 1.4, 0.1, 1.0)
    cov = theory.nlo_covariance(pr, X1, 200)
    assert cov.shape == (8, 8)
    assert np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > -1e-12
    assert np.all(cov[0] == 0)
    assert np.allclose(np.diagonal(cov), theory.nlo_variance(pr, X1, 200))
    assert theory.output_fourth_cumulant(pr, X1, 200) == pytest.approx(3 * cov[-1, -1])


def test_response_and_input_propagation():
    pr = theory.Prior("dnn", 4, "relu", 1.2, 0.2, 1.2, g2_out=0.8)
    prop = theory.input_propagation(pr, X1)
    F = np.array([0.6, 0.6, 0.6, 0.6, 0.4])  # F_A uses g_out
    assert np.allclose(prop, np.concatenate([[1.0], np.cumprod(F)]))
    R = theory.response(pr, X1, 50)
    assert R.shape == (6, 6)
    assert np.all(np.triu(R, 1) == 0)  # causal: no response of layer a to sources at e > a
    assert R[3, 1] == pytest.approx(0.36 / 50)
    assert R[5, 5] == pytest.approx(1 / 50)
    # Eq. 42 check by finite differences of the mean-field recursion in the input kernel
    eps = 1e-6
    prd = theory.Prior("dnn", 4, "relu", 1.2, 0.2 + eps, 1.2, sigma2_out=0.2, g2_out=0.8)  # shifts C^(0,0) ...
    Cp = np.diagonal(nlo.single_input_kernel(prd, X1))
    C0 = np.diagonal(nlo.single_input_kernel(pr, X1))
    # ... but sigma2 also enters every layer; the linear response sums the propagated shifts
    expected = np.array([sum(prop[a] / prop[e] for e in range(0, min(a, 4) + 1)) for a in range(6)]) * eps
    assert np.allclose(Cp - C0, expected, rtol=1e-5, atol=1e-12)


def test_nlo_bad_inputs():
    pr = theory.Prior("rnn", 3, "relu", 1.2, 0.2, 1.0)
    with pytest.raises(ValueError, match="^width"):
        theory.nlo_variance(pr, X1, 0.5)
    with pytest.raises(ValueError, match="^width"):
        theory.nlo_covariance(pr, X1, float("nan"))
    with pytest.raises(ValueError, match="^x"):
        theory.nlo_variance(pr, np.ones((2, 4)), 10)
    with pytest.raises(ValueError, match="^x"):
        theory.input_propagation(pr, np.array([np.inf, 1.0]))


# ---------------------------------------------------------------- stability
def test_fixed_points_closed_form_and_iteration():
    assert theory.fixed_point("linear", 0.5, 0.2) == pytest.approx(0.4)
    for act in ("erf", "tanh"):
        q = theory.fixed_point(act, 1.5, 0.3)
        from theory import gaussian

        assert q == pytest.approx(0.3 + 1.5 * float(gaussian.second_moment(act, q)), rel=1e-11)
    # custom callable (relu via lambda) reaches the closed form
    q = theory.fixed_point(lambda x: np.maximum(x, 0), 1.2, 0.2, quad_order=80)
    assert q == pytest.approx(0.2 / 0.4, rel=1e-3)


def test_fixed_point_errors():
    with pytest.raises(ValueError, match="^g2"):
        theory.fixed_point("relu", 2.0, 0.2)
    with pytest.raises(ValueError, match="^g2"):
        theory.depth_scale("relu", 2.5, 0.2)
    with pytest.raises(ValueError, match="^g2"):
        theory.fixed_point(lambda x: 2 * x, 1.0, 0.2)
    with pytest.raises(ValueError, match="^sigma2"):
        theory.chi1("tanh", 1.0, -0.1)
    with pytest.raises(ValueError, match="^activation"):
        theory.fixed_point("nope", 1.0, 0.1)


def test_chi1_values():
    assert theory.chi1("relu", 1.2, 0.2) == pytest.approx(0.6)
    q = theory.fixed_point("erf", 1.0, 0.5)
    assert theory.chi1("erf", 1.0, 0.5) == pytest.approx(1 / math.sqrt(1 + math.pi * q))


def test_phase_diagram_tanh():
    g2 = np.linspace(0.5, 3.0, 6)
    s2 = np.array([0.0, 0.05, 0.5])
    pd = theory.phase_diagram("tanh", g2, s2)
    for key in ("q_star", "chi1", "tau", "tau_F", "F", "c_star", "chi_c"):
        assert pd[key].shape == (6, 3)
    assert not np.any(np.isnan(pd["q_star"]))  # bounded activation: a fixed point always exists
    ordered = pd["chi1"] < 1
    assert np.all(pd["c_star"][ordered] == 1.0)
    assert np.allclose(pd["tau"][ordered], -1 / np.log(pd["chi1"][ordered]))
    chaotic = pd["chi1"] > 1
    assert chaotic.any() and np.all(pd["c_star"][chaotic] < 1) and np.all(pd["chi_c"][chaotic] < 1)
    assert np.all(np.isfinite(pd["tau"][ordered | chaotic]))
    # relu: no fixed point for g2 >= 2 -> NaN there only
    pr = theory.phase_diagram("relu", [1.0, 1.9, 2.0, 2.5], [0.1, 0.2])
    assert np.all(np.isnan(pr["q_star"][2:])) and np.all(np.isfinite(pr["q_star"][:2]))
    assert np.allclose(pr["tau_F"][:2], -1 / np.log(np.array([[0.5], [0.95]])))
    with pytest.raises(ValueError, match="^g2_values"):
        theory.phase_diagram("tanh", [-1.0], [0.1])
