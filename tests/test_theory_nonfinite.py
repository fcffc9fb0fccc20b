"""Non-finite theory results are detected and reported (issue 7 item 7).

The old code wrote a kernel with NaN/inf entries (``np.sqrt(c_uu * c_vv)``
overflowing above ~1e154) for dnn, g2 = 20, A = 300 and exited 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import theory

POINT = dict(g2=20.0, sigma2=0.2, g2_in=1.0)
X1 = np.array([[1.0, -0.5, 2.0], [0.3, 0.2, -1.0]])


def test_relu_kernel_is_finite_where_the_true_value_is():
    """A = 300: C ~ 1e300 is representable; the old code returned 581 NaN + 4 inf here."""
    A = 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning either
        C = theory.kernel(theory.Prior("dnn", A, "relu", **POINT), X1)
    assert np.all(np.isfinite(C))
    assert C[A + 1, A + 1].max() > 1e300
    # the diagonal follows Eq. 57 exactly, also at 1e300
    c = 0.2 + X1[0] @ X1[0] / 3
    for a in range(A + 1):
        assert C[a, a, 0, 0] == pytest.approx(c, rel=1e-12)
        c = 10.0 * c + 0.2
    # off-diagonal pattern entries: arc-cosine formula with a finite correlation
    rho = C[A, A, 0, 1] / np.sqrt(C[A, A, 0, 0] * 1.0) / np.sqrt(C[A, A, 1, 1])
    assert -1.0 <= rho <= 1.0


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_kernel_overflow_names_the_point_and_layer(arch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(theory.NonFiniteTheoryError) as info:
            theory.kernel(theory.Prior(arch, 400, "relu", **POINT), X1)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("kernel: non-finite result")
    for part in (f"arch={arch}", "depth=400", "activation=relu", "g2=20", "sigma2=0.2"):
        assert part in msg, (part, msg)
    # the variance passes 1.8e308 at layer 308 (C^(a,a) ~ 10^a); the RNN one step later for pattern 2
    first = int(msg.split("first at layer a = ")[1].split(";")[0])
    assert 306 <= first <= 310, msg
    assert not isinstance(info.value, ValueError)  # a runtime failure, not bad input


def test_nlo_overflow_names_the_point_and_layer():
    """Kernel finite (1e300), but the NLO source ~ C^2 exceeds float64."""
    prior = theory.Prior("dnn", 300, "relu", **POINT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(theory.NonFiniteTheoryError, match=r"^source_matrix: .*first at layer a = 15\d; .*depth=300"):
            theory.nlo_variance(prior, X1[0], 100)
        # tiny input, no bias: the kernel stays finite (~1e100), prod F_k = 10^a does not
        with pytest.raises(theory.NonFiniteTheoryError, match=r"^input_propagation: .*first at layer a = 309;"):
            theory.input_propagation(theory.Prior("dnn", 400, "relu", 20.0, 0.0, 1.0), np.array([1e-150]))


@pytest.mark.parametrize("depth, what", [(300, "source_matrix"), (400, "kernel")])
def test_cli_predict_non_finite_exits_1_with_one_line(tmp_path, depth, what):
    spec = {"prior": {"arch": "dnn", "depth": depth, "activation": "relu", **POINT},
            "inputs": {"count": 2, "dim": 3, "seed": 0}, "width": 100}
    path = tmp_path / "point.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "theory.h5"
    res = subprocess.run([sys.executable, "-m", "theory", "predict", "--spec", str(path), "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {what}: non-finite result"), res.stderr
    assert f"depth={depth}" in lines[0] and "arch=dnn" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
