"""Custom activations: registered names and import paths ``"module:function"``, through
theory, mcsim, the mcsim CLI (a separate process) and the workflow (dry runs, one tiny real run)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import mcsim
import theory
from mcsim import store
from test_workflow_helpers import load_tiny_config, run_snakemake, snakemake_env, write_config

MODULE = "custom_acts_for_tests"
"""Name of the module the tests write into a temporary directory (put on ``sys.path`` / ``PYTHONPATH``)."""

MODULE_SOURCE = textwrap.dedent(
    """
    import math

    import numba
    import numpy as np


    @numba.vectorize(["float64(float64)"])
    def tanh_again(x):
        return math.tanh(x)


    @numba.njit
    def softplus(x):
        return np.log1p(np.exp(x))


    NOT_CALLABLE = 3.0
    """
)


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    """Directory holding ``custom_acts_for_tests.py``, importable in this process."""
    moddir = tmp_path / "mods"
    moddir.mkdir()
    (moddir / f"{MODULE}.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(moddir))
    sys.modules.pop(MODULE, None)
    yield moddir
    sys.modules.pop(MODULE, None)


X = np.array([[1.0, -0.5, 0.3], [0.2, 0.9, -1.1]])
BASE = dict(depth=3, g2=1.4, sigma2=0.1, g2_in=1.0)


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_import_path_tanh_equals_builtin_tanh(custom_module, arch):
    """A numba ufunc computing tanh, given by import path, reproduces the built-in tanh exactly
    (same quadrature in theory; same random stream and kernels in mcsim)."""
    ref = theory.Prior(arch, activation="tanh", **BASE)
    cus = theory.Prior(arch, activation=f"{MODULE}:tanh_again", **BASE)
    # entries that vanish by symmetry (tanh is odd) differ at the 1e-34 rounding level: absolute floor
    np.testing.assert_allclose(theory.kernel(cus, X), theory.kernel(ref, X), rtol=1e-12, atol=1e-14)
    kw = dict(width=16, realizations=6, point_key="same-stream", observables=("y", "caux_diag"))
    a, b = mcsim.sample(ref, X, **kw), mcsim.sample(cus, X, **kw)
    for name in ("y", "caux_diag"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-12, err_msg=name)


def test_each_activation_gets_its_own_kernel_set(custom_module):
    """Built-in and custom kernels never share a module, a dispatcher or a symbol (issue 7): a custom
    tanh and the built-in tanh get different sets; a set is built once per activation and process;
    built-in sets are disk-cached from a generated source file of their own, custom sets are not."""
    from mcsim._kernelsets import kernel_set

    builtin = kernel_set("tanh")
    custom = kernel_set(f"{MODULE}:tanh_again")
    assert kernel_set("tanh") is builtin and kernel_set(theory.Prior("rnn", activation="tanh", **BASE).act) is builtin
    assert kernel_set(f"{MODULE}:tanh_again") is custom
    assert builtin.disk_cached and builtin.source.is_file() and builtin.source.stem == builtin.module_name
    assert not custom.disk_cached and custom.source is None
    assert custom.module_name != builtin.module_name != kernel_set("relu").module_name
    H = np.array([[0.3, -1.2]])
    for ks in (builtin, custom):
        out = np.empty_like(H)
        ks.apply_act(H, 2, out)
        np.testing.assert_array_equal(out, np.tanh(H))
        for name in ("apply_act", "dnn_projected_block", "rnn_projected_block"):
            disp = getattr(ks, name)
            assert disp.py_func.__module__ == ks.module_name
            for cres in disp.overloads.values():  # mangled names start with the set's own module
                assert f"{len(ks.module_name)}{ks.module_name}" in cres.fndesc.mangled_name
    assert custom.apply_act is not builtin.apply_act
    assert custom.gram is builtin.gram  # activation-independent kernels are shared, compiled once


def test_kernel_set_source_is_not_a_module_of_its_own():
    with pytest.raises(ImportError, match="source of the per-activation kernel sets"):
        import mcsim._kernels_act  # noqa: F401


def test_registered_activation_sample_means_match_theory():
    """Registered softplus: the simulated mean of Caux at the readout matches theory.kernel within SEM."""

    @numba.njit
    def my_softplus(x):
        return np.log1p(np.exp(x))

    mcsim.register_activation("softplus_registered_in_test", my_softplus)
    mcsim.register_activation("softplus_registered_in_test", my_softplus)  # same function again: fine
    prior = theory.Prior("rnn", activation="softplus_registered_in_test", **BASE)
    assert prior.to_dict()["activation"] == "softplus_registered_in_test"  # serialisable
    K = theory.kernel(prior, X[:1])
    out = mcsim.sample(prior, X[:1], width=300, realizations=400, seed=3, observables=("caux_diag",))
    c = out["caux_diag"][:, :, 0, 0]
    sem = c.std(axis=0, ddof=1) / math.sqrt(c.shape[0])
    z = (c.mean(axis=0)[1:] - np.diagonal(K[:, :, 0, 0])[1:]) / sem[1:]
    # 4 entries, two-sided Bonferroni at 1 %: |z| <= 3.02; the 1/n bias (~1e-3 relative) is << SEM
    assert np.all(np.abs(z) <= 3.02), z


def test_registration_errors_name_the_problem():
    @numba.njit
    def f(x):
        return x

    with pytest.raises(ValueError, match="^name: 'relu' is a built-in"):
        mcsim.register_activation("relu", f)
    with pytest.raises(ValueError, match="^name: an activation name must match"):
        mcsim.register_activation("a:b", f)
    with pytest.raises(ValueError, match="^fn: expected a callable"):
        mcsim.register_activation("not_callable_in_test", 3.0)
    with pytest.raises(ValueError, match="^activation: a custom activation must be a numba-jittable"):
        mcsim.register_activation("object_valued_in_test", lambda x: np.asarray(x, dtype=object))
    mcsim.register_activation("taken_in_test", f)
    with pytest.raises(ValueError, match="^name: activation 'taken_in_test' is already registered"):
        mcsim.register_activation("taken_in_test", numba.njit(lambda x: x))


def test_bad_import_paths_give_clear_errors(custom_module):
    with pytest.raises(ValueError, match="^activation: cannot import module 'no_such_module_xyz'"):
        theory.Prior("dnn", activation="no_such_module_xyz:f", **BASE)
    with pytest.raises(ValueError, match=f"^activation: module '{MODULE}' has no attribute 'nope'"):
        theory.Prior("dnn", activation=f"{MODULE}:nope", **BASE)
    with pytest.raises(ValueError, match=f"^activation: '{MODULE}:NOT_CALLABLE' is not callable"):
        theory.Prior("dnn", activation=f"{MODULE}:NOT_CALLABLE", **BASE)
    with pytest.raises(ValueError, match="^activation: malformed import path"):
        theory.Prior("dnn", activation="a b:c", **BASE)
    with pytest.raises(ValueError, match="^activation: unknown activation 'softsign'; allowed: .*module:function"):
        theory.Prior("dnn", activation="softsign", **BASE)


def test_mcsim_cli_resolves_import_path_in_its_own_process(custom_module, tmp_path):
    """``python -m mcsim run`` with an import-path activation (module on PYTHONPATH) writes the same
    realizations as in-process sampling of that spec."""
    spec = {
        "prior": {"arch": "rnn", "activation": f"{MODULE}:softplus", **BASE},
        "inputs": {"kind": "gaussian", "count": 2, "dim": 3, "seed": 5},
        "width": 12, "realizations": 8, "block_size": 4, "seed": 9, "observables": ["y", "caux_diag"],
    }
    spec_path = tmp_path / "point.json"
    spec_path.write_text(json.dumps(spec))
    env = snakemake_env()
    env["PYTHONPATH"] = f"{custom_module}:{env['PYTHONPATH']}"
    out = tmp_path / "point.h5"
    cmd = [sys.executable, "-m", "mcsim", "run", "--spec", spec_path, "--store", tmp_path / "store", "--out", out,
           "--no-progress"]
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    arrays, attrs = store.read_point(out)
    assert attrs["activation"] == f"{MODULE}:softplus"  # the file says which activation it holds
    ref = mcsim.sample_point(theory.parse_point_spec(spec), 0, 8)
    for name in ("y", "caux_diag"):
        np.testing.assert_array_equal(arrays[name], ref[name], err_msg=name)

    env["PYTHONPATH"] = snakemake_env()["PYTHONPATH"]  # module not importable: clear error, exit 2 (bad input)
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2
    assert f"error: prior.activation: cannot import module '{MODULE}'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_mcsim_cli_rejects_activation_numba_cannot_compile(tmp_path):
    """A NumPy-valid activation that Numba cannot compile (a SciPy ufunc) is bad input: exit 2,
    one line naming ``prior.activation``, before any store work (no point directory)."""
    spec = {
        "prior": {"arch": "dnn", "activation": "scipy.special:expit", **BASE},
        "inputs": {"kind": "gaussian", "count": 2, "dim": 3, "seed": 5},
        "width": 12, "realizations": 8, "block_size": 4,
    }
    spec_path = tmp_path / "point.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "mcsim", "run", "--spec", spec_path, "--store", tmp_path / "store",
           "--out", tmp_path / "point.h5", "--no-progress"]
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=snakemake_env(), timeout=300)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: prior.activation: ") and "numba" in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def _custom_config(activation):
    config = load_tiny_config()
    kernel = config["experiments"]["kernel"]
    kernel["grid"].update(activation=[activation], arch=["rnn"], width=[40])
    kernel["realizations"] = 20
    config["experiments"] = {"kernel": kernel}
    return config


def test_workflow_plans_import_path_activation_and_rejects_unimportable(custom_module, tmp_path):
    env = snakemake_env()
    env["PYTHONPATH"] = f"{custom_module}:{env['PYTHONPATH']}"
    ok = write_config(tmp_path / "ok.yaml", _custom_config(f"{MODULE}:softplus"))
    proc = run_snakemake(["-n", "--configfile", ok], cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # the campaign job of the experiment declares one output file per point
    points = set(re.findall(r"results/kernel/sim/([^,\s]+)\.h5", proc.stdout))
    assert points == {f"arch-rnn_bias-uncorrelated_act-{MODULE}.softplus_n-40_A-6_g2-1.6_s2-0.2_in-0"}

    bad = write_config(tmp_path / "bad.yaml", _custom_config(f"{MODULE}:nope"))
    proc = run_snakemake(["-n", "--configfile", bad], cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode != 0
    assert (f"experiments.kernel.grid.activation: activation: module '{MODULE}' has no attribute 'nope'"
            in proc.stdout), proc.stdout[-3000:]
    assert "Building DAG" not in proc.stdout


@pytest.mark.slow
def test_workflow_runs_with_import_path_activation(custom_module, tmp_path):
    """A tiny real kernel experiment with softplus given by import path runs end to end."""
    env = snakemake_env()
    env["PYTHONPATH"] = f"{custom_module}:{env['PYTHONPATH']}"
    cfg = write_config(tmp_path / "cfg.yaml", _custom_config(f"{MODULE}:softplus"))
    proc = run_snakemake(["--cores", "2", "--configfile", cfg], cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    figures = sorted((tmp_path / "results").rglob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures), figures
