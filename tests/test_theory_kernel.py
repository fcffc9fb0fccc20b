"""Mean-field kernel: structure, closed-form recursions, independent reference."""

import math

import numpy as np
import pytest

import theory

ACTIVATIONS = ["relu", "erf", "linear", "tanh", lambda x: np.tanh(x) + 0.1 * x]
BIASES = ["uncorrelated", "static"]


def _x(P=3, n_in=5, seed=0):
    return np.random.default_rng(seed).standard_normal((P, n_in)) + 0.5


def test_relu_diagonal_is_eq57_and_converges_to_fixed_point():
    g2, s2, g2_in, A = 1.2, 0.2, 1.6, 40
    x = _x(1)
    C = theory.kernel(theory.Prior("dnn", A, "relu", g2, s2, g2_in), x)
    c = s2 + g2_in * float(x[0] @ x[0]) / x.shape[1]
    for a in range(A + 1):
        assert C[a, a, 0, 0] == pytest.approx(c, rel=1e-13)
        c = g2 / 2 * c + s2  # Eq. 57
    assert C[A + 1, A + 1, 0, 0] == pytest.approx(c, rel=1e-13)  # readout uses the same g2, sigma2
    q_star = s2 / (1 - g2 / 2)
    assert C[A, A, 0, 0] == pytest.approx(q_star, rel=1e-6)
    assert theory.fixed_point("relu", g2, s2) == pytest.approx(q_star, rel=1e-14)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=["relu", "erf", "linear", "tanh", "custom"])
@pytest.mark.parametrize("bias", BIASES)
def test_dnn_and_rnn_diagonals_agree(act, bias):
    X = _x(3)
    kw = dict(activation=act, g2=1.3, sigma2=0.1, g2_in=1.1, bias=bias)
    Cd = theory.kernel(theory.Prior("dnn", 6, **kw), X)
    Cr = theory.kernel(theory.Prior("rnn", 6, **kw), X)
    for a in range(8):
        assert np.allclose(Cd[a, a], Cr[a, a], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bias, expected", [("uncorrelated", 0.0), ("static", 0.3)])
def test_dnn_off_diagonal_blocks(bias, expected):
    A = 5
    C = theory.kernel(theory.Prior("dnn", A, "relu", 1.4, 0.3, 1.0, bias=bias), _x(2))
    for a in range(A + 1):
        for b in range(A + 1):
            if a != b:
                assert np.all(C[a, b] == expected)
    assert np.all(C[A + 1, : A + 1] == 0) and np.all(C[: A + 1, A + 1] == 0)


def test_rnn_cross_time_relu_nonzero_erf_zero():
    A = 6
    X = _x(1)
    Crelu = theory.kernel(theory.Prior("rnn", A, "relu", 1.6, 0.2, 1.6), X)
    Cerf = theory.kernel(theory.Prior("rnn", A, "erf", 1.6, 0.2, 1.6), X)
    for a in range(2, A + 1):
        for b in range(1, a):
            assert Crelu[a, b, 0, 0] > 1e-3
            assert abs(Cerf[a, b, 0, 0]) < 1e-14  # Eq. 39: odd phi, input at a = 0 only
    # static bias makes erf cross-time entries non-zero
    Cs = theory.kernel(theory.Prior("rnn", A, "erf", 1.6, 0.2, 1.6, bias="static"), X)
    assert Cs[4, 2, 0, 0] > 0.2


def test_kernel_symmetry_rnn_sequences():
    A = 4
    X = np.random.default_rng(5).standard_normal((3, A + 1, 2))
    C = theory.kernel(theory.Prior("rnn", A, "tanh", 1.5, 0.1, 1.0), X)
    assert C.shape == (A + 2, A + 2, 3, 3)
    assert np.allclose(C, C.transpose(1, 0, 3, 2))
    # full kernel over (a, alpha) is PSD
    M = C[: A + 1, : A + 1].transpose(0, 2, 1, 3).reshape((A + 1) * 3, (A + 1) * 3)
    assert np.linalg.eigvalsh(M).min() > -1e-10


def _reference_dnn_kernel(act, g2, s2, g2_in, A, X):
    """Loop-based DNN kernel with the arc-cosine (relu) / arcsin (erf) formulas."""
    P, n_in = X.shape
    K = np.empty((P, P))
    for i in range(P):
        for j in range(P):
            K[i, j] = s2 + g2_in * sum(X[i, k] * X[j, k] for k in range(n_in)) / n_in
    out = [K.copy()]
    for _ in range(A + 1):  # A hidden steps and the readout
        new = np.empty((P, P))
        for i in range(P):
            for j in range(P):
                kii, kjj, kij = K[i, i], K[j, j], K[i, j]
                if act == "relu":
                    cos_t = max(-1.0, min(1.0, kij / math.sqrt(kii * kjj)))
                    t = math.acos(cos_t)
                    e = math.sqrt(kii * kjj) / (2 * math.pi) * (math.sin(t) + (math.pi - t) * cos_t)
                else:
                    e = 2 / math.pi * math.asin(kij / math.sqrt((2 / math.pi + kii) * (2 / math.pi + kjj)))
                new[i, j] = s2 + g2 * e
        K = new
        out.append(K.copy())
    return out


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_dnn_multi_input_matches_reference(act):
    X = np.random.default_rng(7).standard_normal((5, 3))
    A, g2, s2, g2_in = 4, 1.6, 0.2, 1.3
    C = theory.kernel(theory.Prior("dnn", A, act, g2, s2, g2_in), X)
    ref = _reference_dnn_kernel(act, g2, s2, g2_in, A, X)
    for a in range(A + 2):
        assert np.allclose(C[a, a], ref[a], rtol=1e-12, atol=1e-14)


def test_per_layer_parameters_dnn():
    X = _x(2)
    pr = theory.Prior("dnn", 3, "linear", [1.0, 2.0, 0.5], [0.1, 0.2, 0.3, 0.4], 1.0, g2_out=3.0, sigma2_out=0.05)
    C = theory.kernel(pr, X)
    c0 = 0.1 + X @ X.T / X.shape[1]
    c1 = 0.2 + 1.0 * c0
    c2 = 0.3 + 2.0 * c1
    c3 = 0.4 + 0.5 * c2
    assert np.allclose(C[3, 3], c3) and np.allclose(C[4, 4], 0.05 + 3.0 * c3)


def test_kernel_bad_inputs():
    pr = theory.Prior("rnn", 3, "relu", 1.2, 0.2, 1.0)
    with pytest.raises(ValueError, match="^X"):
        theory.kernel(pr, np.zeros((2, 3, 4)))  # wrong sequence length
    with pytest.raises(ValueError, match="^X"):
        theory.kernel(pr, np.zeros(4))
    with pytest.raises(ValueError, match="^X"):
        theory.kernel(pr, np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="^prior"):
        theory.kernel({"arch": "rnn"}, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="^quad_order"):
        theory.kernel(theory.Prior("rnn", 3, "tanh", 1.2, 0.2, 1.0), np.ones((1, 2)), quad_order=0)
    with pytest.raises(ValueError, match="^sigma2"):
        theory.Prior("rnn", 3, "relu", 1.2, -0.2, 1.0)
    with pytest.raises(ValueError, match="^activation"):
        theory.Prior("rnn", 3, "softsign", 1.2, 0.2, 1.0)
