"""The Activation object as the single place the theory dispatches on (issue 7 item 1, theory side)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import theory
from theory import gaussian
from theory.activations import FD_STEP, Activation, get_activation

X = np.array([[1.0, -0.5, 0.3], [0.2, 0.9, -1.1]])


@pytest.mark.parametrize("name", ["relu", "erf", "linear", "tanh"])
def test_builtin_derivatives_are_analytic(name):
    act = get_activation(name)
    assert act.d1 is not None and act.d2 is not None
    assert act.derivative(1) is act.d1 and act.derivative(2) is act.d2
    x = np.linspace(-2.5, 2.5, 11) + 0.05  # avoid relu's kink
    h = 1e-5
    fd1 = (act.numpy(x + h) - act.numpy(x - h)) / (2 * h)
    fd2 = (act.numpy(x + h) - 2 * act.numpy(x) + act.numpy(x - h)) / h**2
    assert np.allclose(act.d1(x), fd1, atol=1e-8)
    assert np.allclose(act.d2(x), fd2, atol=2e-4)
    assert act.d1(np.zeros((2, 3))).shape == (2, 3)


def test_closed_forms_live_on_the_object():
    assert get_activation("tanh").closed is None
    for name in ("relu", "erf", "linear"):
        assert get_activation(name).closed is not None
    assert get_activation("relu").closed.fourth_moment_pair is not None
    assert get_activation("erf").closed.fourth_moment_pair is None  # quadrature


def test_gaussian_dispatches_on_the_activation_object():
    """An Activation carrying relu's closed forms under another name is treated as relu
    (no string comparison anywhere), and public functions accept the object itself."""
    relu = get_activation("relu")
    mine = Activation(name="my-relu", identity="my-relu#0", numpy=relu.numpy, scalar=relu.scalar,
                      builtin=False, closed=relu.closed)
    c = np.array([0.3, 1.0, 2.0])
    assert np.array_equal(gaussian.pair(mine, c, c[::-1], 0.2 * c), gaussian.pair("relu", c, c[::-1], 0.2 * c))
    assert theory.fixed_point(mine, 1.2, 0.2) == 0.2 / 0.4
    with pytest.raises(ValueError, match=r"^g2: .*ReLU needs g2 < 2"):
        theory.fixed_point(mine, 2.5, 0.2)
    pr = theory.Prior("rnn", 3, get_activation("tanh"), 1.4, 0.1, 1.0)
    assert np.array_equal(theory.kernel(pr, X), theory.kernel(theory.Prior("rnn", 3, "tanh", 1.4, 0.1, 1.0), X))


def test_custom_derivative_fallback_is_fourth_order_and_documented():
    act = get_activation(lambda x: np.tanh(x) + 0.1 * x)
    assert act.d1 is None and act.closed is None
    d1 = act.derivative(1)
    assert d1 is act.derivative(1)  # one function object per order (quadrature memoisation keys on it)
    x = np.linspace(-3, 3, 13)
    exact1 = 1 - np.tanh(x) ** 2 + 0.1
    exact2 = -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)
    assert np.max(np.abs(d1(x) - exact1)) < 1e-10
    assert np.max(np.abs(act.derivative(2)(x) - exact2)) < 1e-8
    assert FD_STEP == 2e-3
    with pytest.raises(ValueError, match="^order"):
        act.derivative(3)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("os:getcwd", r"^activation: 'os:getcwd' cannot be applied to a float64 array \(TypeError"),
        ("math:tanh", r"^activation: 'math:tanh' cannot be applied to a float64 array"),
        (lambda x: np.sum(x), r"^activation: 'custom:.*' must map a float64 array of shape \(2, 4\)"),
        (lambda x: x > 0, r"^activation: .* got an array of dtype bool"),
        (lambda x: np.log(x), r"^activation: .* returned non-finite values"),
        (lambda x: [1.0], r"^activation: .* got list"),
    ],
)
def test_custom_activation_validated_before_theory_uses_it(bad, match):
    """One line naming ``activation`` from every theory entry point, instead of a traceback
    (old code: TypeError/AttributeError tracebacks from deep inside the quadrature, or NaN)."""
    prior = theory.Prior("rnn", 3, bad, 1.2, 0.2, 1.0)  # resolving only imports: mcsim may sample it
    calls = [
        lambda: theory.kernel(prior, X),
        lambda: theory.nlo_variance(prior, X[0], 10),
        lambda: theory.fixed_point(bad, 1.0, 0.1),
        lambda: theory.phase_diagram(bad, [1.0], [0.1]),
        lambda: gaussian.pair(bad, 1.0, 1.0, 0.5),
        lambda: get_activation(bad).validated(),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_registered_activation_is_validated_on_use():
    theory.register_activation("nonfinite-in-test", lambda x: 1.0 / x)
    with pytest.raises(ValueError, match="^activation: 'nonfinite-in-test' returned non-finite"):
        theory.kernel(theory.Prior("dnn", 2, "nonfinite-in-test", 1.0, 0.1, 1.0), X)


@pytest.mark.parametrize("argv", [
    ["phase-diagram", "--activation", "os:getcwd", "--g2", "0.5", "2", "3", "--sigma2", "0", "1", "2"],
])
def test_cli_bad_activation_is_one_line_exit_2(tmp_path, argv):
    res = subprocess.run([sys.executable, "-m", "theory", *argv, "--out", str(tmp_path / "x.h5")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: activation: 'os:getcwd' cannot be applied"), res.stderr


def test_custom_identity_covers_module_constants_and_helpers(tmp_path, monkeypatch):
    """Editing a module constant or a helper a custom activation reads changes its identity
    (and so its point keys and compiled kernels); restoring it restores the identity."""
    from theory.activations import code_hash

    (tmp_path / "lk_mod.py").write_text(
        "import numpy as np\nALPHA = 0.1\n\ndef helper(x):\n    return x\n\n"
        "def leaky(x):\n    return np.where(x > 0, helper(x), ALPHA * x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lk_mod

    base = code_hash(lk_mod.leaky)
    monkeypatch.setattr(lk_mod, "ALPHA", 0.3)
    assert code_hash(lk_mod.leaky) != base
    monkeypatch.setattr(lk_mod, "ALPHA", 0.1)
    assert code_hash(lk_mod.leaky) == base
    monkeypatch.setattr(lk_mod, "helper", lambda x: 2 * x)
    assert code_hash(lk_mod.leaky) != base


def test_kernel_set_key_covers_the_activation_module(tmp_path, monkeypatch):
    """The built-in scalar activations (and the constants Numba freezes into them) live in
    theory/activations.py: editing that file must give every kernel set a new key, so a
    disk-cached set compiled from the old file is never loaded."""
    import theory.activations as acts
    from mcsim import _kernelsets

    key = _kernelsets._set_key(get_activation("erf"))
    edited = tmp_path / "activations.py"
    edited.write_text(open(acts.__file__).read().replace("_SQRT_PI_HALF = 0.5 *", "_SQRT_PI_HALF = 2.0 *"))
    monkeypatch.setattr(acts, "__file__", str(edited))
    assert _kernelsets._set_key(get_activation("erf")) != key
