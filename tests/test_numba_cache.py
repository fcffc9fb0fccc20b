"""The Numba disk cache cannot make one activation's kernels compute with another's.

Regression test for issue 7, item 1: once a custom activation's kernels had been
compiled in a process, built-in kernels loaded from a warm disk cache could call
the custom activation (wrong numbers, no warning).  Two processes share one fresh
``NUMBA_CACHE_DIR``, in both orders:

``custom``
    samples with two custom activations given by import path (a
    ``numba.vectorize`` ufunc and an ``numba.njit`` function, from a module this
    test writes and puts on ``PYTHONPATH``), DNN and RNN, projected and direct,
    and then every built-in case;
``builtin``
    samples only the built-in cases (relu, erf, tanh, linear; DNN and RNN;
    projected and direct).

Every built-in result must be bit-identical to the same case sampled by a
``builtin`` process in a third, empty cache directory, and every custom result
to the ``custom`` process that ran first in an empty cache.

The case orders matter only for the code before the fix, where the bug needed
a coincidence of Numba's per-process function counters: with the built-in
process starting with the RNN and the custom process with the softplus DNN,
the built-in ``apply_act`` compiled by one process and the custom copy compiled
by the other got the same mangled symbol name, and the custom process's
built-in RNN kernel, loaded from the cache, called the custom copy.

Run as a script (``python tests/test_numba_cache.py MODE OUT.npz``) this file
is the worker process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MODULE = "cache_acts_for_tests"
"""Module with the custom activations (written into a temporary directory)."""

MODULE_SOURCE = textwrap.dedent(
    """
    import math

    import numba
    import numpy as np


    @numba.vectorize(["float64(float64)"])
    def tanh_ufunc(x):
        return math.tanh(x)


    @numba.njit
    def softplus(x):
        return np.log1p(np.exp(x))
    """
)

BUILTINS = ("relu", "erf", "tanh", "linear")
CUSTOMS = (f"{MODULE}:softplus", f"{MODULE}:tanh_ufunc")
METHODS = ("projected", "direct")


def _cases(activations, archs):
    return [(act, arch, method) for act in activations for arch in archs for method in METHODS]


def _mode_cases(mode):
    """The cases of a worker process, in the order it samples them (tuples act, arch, method)."""
    if mode == "custom":
        return _cases(CUSTOMS, ("dnn", "rnn")) + _cases(BUILTINS, ("dnn", "rnn"))
    return _cases(BUILTINS, ("rnn", "dnn"))


def _sample_case(act, arch, method) -> np.ndarray:
    """All observables of one small case, concatenated into one float64 vector."""
    import mcsim
    import theory

    X = np.array([[1.0, -0.5, 0.3], [0.2, 0.9, -1.1]])
    prior = theory.Prior(arch, 3, act, g2=1.4, sigma2=0.1, g2_in=1.0)
    out = mcsim.sample(prior, X, width=6, realizations=3, seed=11, method=method,
                       observables=("y", "caux", "chat"), point_key=f"cache-test-{arch}-{method}")
    return np.concatenate([out[name].ravel() for name in ("y", "caux", "chat")])


def _worker(mode: str, out_path: str) -> None:
    """Sample the cases of ``mode`` ("custom": customs then built-ins; "builtin") in this order."""
    results = {"|".join(case): _sample_case(*case) for case in _mode_cases(mode)}
    np.savez(out_path, **results)


# --------------------------------------------------------------------------- test
def _run(mode: str, cache: Path, out: Path, moddir: Path) -> dict:
    from conftest import _checkout_env

    env = _checkout_env(NUMBA_CACHE_DIR=cache)
    env["PYTHONPATH"] = os.pathsep.join([str(moddir), env["PYTHONPATH"]])
    res = subprocess.run([sys.executable, __file__, mode, str(out)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"{mode} process in {cache.name} failed:\n{res.stderr[-4000:]}"
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def test_builtin_and_custom_kernels_survive_a_shared_warm_cache(tmp_path):
    moddir = tmp_path / "mods"
    moddir.mkdir()
    (moddir / f"{MODULE}.py").write_text(MODULE_SOURCE)

    def chain(cache, modes):
        return [_run(mode, tmp_path / cache, tmp_path / f"{cache}-{i}-{mode}.npz", moddir)
                for i, mode in enumerate(modes)]

    plans = {
        "builtin-then-custom": ("builtin", "custom"),
        "custom-then-builtin": ("custom", "builtin"),
        "reference": ("builtin",),           # a third, empty cache directory
    }
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        futures = {name: pool.submit(chain, name, modes) for name, modes in plans.items()}
        runs = {name: fut.result() for name, fut in futures.items()}

    ref = dict(runs["reference"][0])
    # custom results: the custom process that ran in an empty cache
    ref.update({k: v for k, v in runs["custom-then-builtin"][0].items() if k.split("|")[0] in CUSTOMS})
    bad = []
    for plan, modes in plans.items():
        for mode, result in zip(modes, runs[plan]):
            assert set(result) == {"|".join(c) for c in _mode_cases(mode)}
            for case, values in result.items():
                if values.tobytes() != ref[case].tobytes():
                    diff = float(np.max(np.abs(values - ref[case])))
                    bad.append(f"{plan}: {mode} process, {case}: max |diff| {diff:.3g}")
    assert not bad, "results differ from an empty-cache run:\n" + "\n".join(bad)

if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
