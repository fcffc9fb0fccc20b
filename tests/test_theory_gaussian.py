"""Gaussian expectations: closed forms vs quadrature vs Monte Carlo."""

import math

import numpy as np
import pytest

from theory import gaussian
from theory.prior import activation_function


def _random_covariances(rng, m, cmax):
    cuu = rng.uniform(0.05, cmax, m)
    cvv = rng.uniform(0.05, cmax, m)
    r = rng.uniform(-1.0, 1.0, m)
    r[:3] = [1.0, -1.0, 0.0]  # edge correlations
    cvv[:2] = cuu[:2]
    return cuu, cvv, r * np.sqrt(cuu * cvv)


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_quadrature_matches_closed_form_pair(act):
    # erf is accurate to 1e-8 at order 40 for variances <= 1 (measured 6e-12); the
    # error grows with the variance (measured 2e-7 at c <= 2, 5e-6 at c <= 3), see
    # test_quadrature_error_report.
    cuu, cvv, cuv = _random_covariances(np.random.default_rng(0), 300, 1.0)
    f = activation_function(act)
    quad = gaussian.quad_2d(f, f, cuu, cvv, cuv, 40)
    exact = gaussian.pair(act, cuu, cvv, cuv)
    err = float(np.max(np.abs(quad - exact)))
    print(f"{act}: max |quad40 - closed| = {err:.3e}")
    assert err < 1e-8


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_quadrature_matches_closed_form_derivative(act):
    c = np.random.default_rng(1).uniform(0.0, 1.0, 200)
    f = activation_function(act)
    err = float(np.max(np.abs(gaussian.d_second_moment(f, c, 40) - gaussian.d_second_moment(act, c))))
    print(f"{act}: max |d<phi^2>/dc quad40 - closed| = {err:.3e}")
    assert err < 1e-8


def test_quadrature_error_report():
    """Record the measured quadrature errors (printed with pytest -s)."""
    rng = np.random.default_rng(2)
    relu = activation_function("relu")
    erf = activation_function("erf")
    tanh = activation_function("tanh")
    for cmax in (1.0, 3.0):
        cuu, cvv, cuv = _random_covariances(rng, 200, cmax)
        e_relu = np.max(np.abs(gaussian.quad_2d(relu, relu, cuu, cvv, cuv, 40) - gaussian.pair("relu", cuu, cvv, cuv)))
        e_erf = np.max(np.abs(gaussian.quad_2d(erf, erf, cuu, cvv, cuv, 40) - gaussian.pair("erf", cuu, cvv, cuv)))
        e_tanh = np.max(np.abs(gaussian.quad_2d(tanh, tanh, cuu, cvv, cuv, 40) - gaussian.quad_2d(tanh, tanh, cuu, cvv, cuv, 200)))
        print(f"c <= {cmax}: order-40 max error relu {e_relu:.2e}, erf {e_erf:.2e}, tanh (vs order 200) {e_tanh:.2e}")
        # relu has a kink: Gauss-Hermite converges only algebraically; the closed form is used in practice.
        assert e_relu < 2e-2 * cmax
        assert e_erf < 1e-4
        assert e_tanh < 1e-3


def test_relu_four_point_closed_form_matches_monte_carlo():
    rng = np.random.default_rng(3)
    cuu, cvv, rho = 1.3, 0.7, 0.6
    cuv = rho * math.sqrt(cuu * cvv)
    L = np.linalg.cholesky([[cuu, cuv], [cuv, cvv]])
    z = rng.standard_normal((2, 2_000_000))
    u, v = L @ z
    samples = np.maximum(u, 0) ** 2 * np.maximum(v, 0) ** 2
    mc, se = samples.mean(), samples.std() / math.sqrt(samples.size)
    exact = float(gaussian.fourth_moment_pair("relu", cuu, cvv, cuv))
    assert abs(mc - exact) < 4.5 * se  # 4.5 sigma: p ~ 7e-6
    # limits: rho = 1 -> E[relu^4] = 3 c^2 / 2; rho = 0 -> (c_uu/2)(c_vv/2)
    assert gaussian.fourth_moment_pair("relu", 2.0, 2.0, 2.0) == pytest.approx(6.0, rel=1e-12)
    assert gaussian.fourth_moment_pair("relu", 2.0, 3.0, 0.0) == pytest.approx(1.5, rel=1e-12)


def test_relu_four_point_matches_high_order_quadrature():
    sq = lambda h: np.maximum(h, 0.0) ** 4  # noqa: E731  (relu^2 squared as 1-D check)
    c = np.array([0.5, 1.0, 2.0])
    assert np.allclose(gaussian.quad_1d(sq, c, 60), gaussian.fourth_moment_pair("relu", c, c, c), rtol=1e-3)


def test_derivative_pair_closed_forms_vs_quadrature():
    cuu, cvv, cuv = _random_covariances(np.random.default_rng(4), 100, 1.0)
    d_erf = lambda x: np.exp(-0.25 * math.pi * x**2)  # noqa: E731
    quad = gaussian.quad_2d(d_erf, d_erf, cuu, cvv, cuv, 60)
    assert np.max(np.abs(quad - gaussian.derivative_pair("erf", cuu, cvv, cuv))) < 1e-8


def test_callable_derivatives_use_finite_differences_consistently():
    c = np.array([0.3, 1.0])
    custom = lambda x: np.tanh(x)  # noqa: E731
    assert np.allclose(gaussian.derivative_pair(custom, c, c, c), gaussian.derivative_pair("tanh", c, c, c), atol=1e-8)
    # Price: d<phi^2>/dc = <phi'^2 + phi phi''> for tanh (phi'' = -2 tanh sech^2)
    t = lambda h: 1 - np.tanh(h) ** 2  # noqa: E731
    price = gaussian.quad_1d(lambda h: t(h) ** 2 - 2 * np.tanh(h) ** 2 * t(h), c, 80)
    assert np.allclose(gaussian.d_second_moment("tanh", c, 80), price, atol=1e-10)
    # c = 0 fallback: (phi^2)''(0)/2 = tanh'(0)^2 = 1
    assert gaussian.d_second_moment("tanh", np.array([0.0]))[0] == pytest.approx(1.0, abs=1e-6)


def test_quad_order_validation():
    with pytest.raises(ValueError, match="^quad_order"):
        gaussian.pair("tanh", 1.0, 1.0, 0.5, quad_order=1)
