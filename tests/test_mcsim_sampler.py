"""mcsim.sample: shapes, reproducibility, overflow handling and input validation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest

import mcsim
import theory

ALL_OBS = ("y", "caux", "chat", "caux_diag", "chat_diag", "caux_readout", "chat_readout")


def _prior(arch="dnn", act="relu", bias="uncorrelated", depth=3, **kw):
    return theory.Prior(arch, depth, act, kw.pop("g2", 1.4), kw.pop("sigma2", 0.2), 1.1, bias=bias, **kw)


X1 = np.random.default_rng(0).standard_normal((2, 5))


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
@pytest.mark.parametrize("method", ["projected", "direct"])
def test_shapes_and_consistency(arch, method):
    A, P, n_out, R = 3, 2, 3, 5
    prior = _prior(arch, depth=A, n_out=n_out)
    res = mcsim.sample(prior, X1, 16, R, method=method, observables=ALL_OBS)
    assert set(res) == set(ALL_OBS) | {"overflow"}
    assert res["y"].shape == (R, P, n_out)
    assert res["caux"].shape == res["chat"].shape == (R, A + 2, A + 2, P, P)
    assert res["caux_diag"].shape == res["chat_diag"].shape == (R, A + 2, P, P)
    assert res["caux_readout"].shape == (R, P, P)
    assert res["overflow"].shape == (R,) and res["overflow"].dtype == bool
    idx = np.arange(A + 2)
    for name in ("caux", "chat"):
        full = res[name]
        np.testing.assert_array_equal(full[:, idx, idx], res[name + "_diag"])
        np.testing.assert_array_equal(full[:, A + 1, A + 1], res[name + "_readout"])
        assert np.all(full[:, A + 1, : A + 1] == 0) and np.all(full[:, : A + 1, A + 1] == 0)
        np.testing.assert_allclose(full, full.transpose(0, 2, 1, 4, 3), rtol=1e-13, atol=1e-15)
    # chat readout = (1/n_out) y.y
    np.testing.assert_allclose(res["chat_readout"], np.einsum("rpk,rqk->rpq", res["y"], res["y"]) / n_out, rtol=1e-12)
    # caux at a = 0 is deterministic: sigma^2 + g0^2/n_in x.x
    c00 = 0.2 + 1.1 / 5 * X1 @ X1.T
    np.testing.assert_allclose(res["caux_diag"][:, 0], np.broadcast_to(c00, (R, P, P)), rtol=1e-12)
    if arch == "dnn":
        # different layers of an uncorrelated-bias DNN share nothing: Caux^(a!=b) = 0
        assert np.all(res["caux"][:, 1, 2] == 0)


def test_only_requested_observables_returned():
    res = mcsim.sample(_prior(), X1, 8, 3, observables=("caux_readout",))
    assert set(res) == {"caux_readout", "overflow"}


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
@pytest.mark.parametrize("method", ["projected", "direct"])
def test_block_split_bit_identical(arch, method):
    prior = _prior(arch, bias="static", depth=3, n_out=2)
    X = np.random.default_rng(1).standard_normal((3, 4, 3))  # sequences
    full = mcsim.sample(prior, X, 12, 9, seed=5, method=method, start=4, observables=ALL_OBS)
    parts = [
        mcsim.sample(prior, X, 12, stop - start, seed=5, method=method, start=start, observables=ALL_OBS)
        for start, stop in ((4, 5), (5, 9), (9, 13))
    ]
    for k in full:
        assert np.array_equal(full[k], np.concatenate([p[k] for p in parts])), k
    other_seed = mcsim.sample(prior, X, 12, 9, seed=6, method=method, start=4)
    assert not np.array_equal(other_seed["y"], full["y"])


def test_point_key_controls_stream():
    prior = _prior()
    a = mcsim.sample(prior, X1, 8, 3, point_key="abc")
    b = mcsim.sample(prior, X1, 8, 3, point_key="abc")
    c = mcsim.sample(prior, X1, 8, 3, point_key="abd")
    assert np.array_equal(a["y"], b["y"]) and not np.array_equal(a["y"], c["y"])


def test_sample_point_matches_sample():
    spec = theory.parse_point_spec({
        "prior": {"arch": "rnn", "depth": 3, "activation": "erf", "g2": 1.2, "sigma2": 0.1, "g2_in": 1.0},
        "inputs": {"kind": "gaussian", "count": 2, "dim": 4, "seed": 3},
        "width": 20, "realizations": 10, "seed": 4, "method": "projected",
        "observables": ["y", "chat_diag"],
    })
    a = mcsim.sample_point(spec, 2, 7)
    b = mcsim.sample(spec.prior, spec.X, 20, 5, seed=4, method="projected",
                     observables=("y", "chat_diag"), start=2, point_key=spec.point_key())
    assert set(a) == {"y", "chat_diag", "overflow"}
    for k in a:
        assert np.array_equal(a[k], b[k])
    with pytest.raises(ValueError, match="^stop"):
        mcsim.sample_point(spec, 5, 5)


_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, numpy as np, theory, mcsim
    h = hashlib.sha256()
    X = np.random.default_rng(2).standard_normal((3, 6)); X[1] = X[0]
    for arch in ("dnn", "rnn"):
        for method in ("projected", "direct"):
            prior = theory.Prior(arch, 4, "tanh", 1.3, 0.1, 1.0, bias="static", n_out=2)
            res = mcsim.sample(prior, X, 64, 6, seed=3, method=method,
                               observables=("y", "caux", "chat"))
            for k in sorted(res):
                h.update(np.ascontiguousarray(res[k]).tobytes())
    print(h.hexdigest())
    """
)


def test_bit_identical_across_thread_counts():
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ)
        env.update(NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True,
                             text=True, timeout=600, check=True)
        digests.append(out.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
@pytest.mark.parametrize("method", ["projected", "direct"])
def test_overflow_recorded_and_warned(arch, method):
    # relu with g^2 = 1e6: the variance grows by g^2/2 per layer and overflows after ~55 layers
    prior = theory.Prior(arch, 70, "relu", 1e6, 0.1, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray numpy floating-point warnings
        with pytest.warns(RuntimeWarning, match="overflow"):
            res = mcsim.sample(prior, X1[:1], 10, 4, method=method, observables=("y", "chat_diag"))
    assert res["overflow"].all()
    stable = mcsim.sample(_prior(arch), X1, 10, 4, method=method)
    assert not stable["overflow"].any()


def test_custom_numba_activation_matches_builtin():
    @numba.njit
    def my_tanh(x):
        return math.tanh(x)

    base = dict(arch="dnn", depth=3, g2=1.3, sigma2=0.1, g2_in=1.0)
    ref = mcsim.sample(theory.Prior(activation="tanh", **base), X1, 12, 4, point_key="k",
                       observables=("y", "caux_diag"))
    cus = mcsim.sample(theory.Prior(activation=my_tanh, **base), X1, 12, 4, point_key="k",
                       observables=("y", "caux_diag"))
    np.testing.assert_allclose(cus["y"], ref["y"], rtol=1e-12)
    np.testing.assert_allclose(cus["caux_diag"], ref["caux_diag"], rtol=1e-12)


def test_non_jittable_activation_rejected():
    prior = theory.Prior("dnn", 2, lambda x: np.asarray(x, dtype=object), 1.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="^activation"):
        mcsim.sample(prior, X1, 8, 2)


def test_resolve_method():
    dnn = _prior("dnn", depth=30)
    assert mcsim.resolve_method(dnn, X1[:1], 2000) == "projected"
    rnn = _prior("rnn", depth=30)
    assert mcsim.resolve_method(rnn, X1[:1], 2000) == "projected"
    # A P approaching n: the projected RNN is not cheaper
    X = np.random.default_rng(0).standard_normal((40, 5))
    assert mcsim.resolve_method(rnn, X, 200) == "direct"
    assert mcsim.resolve_method(rnn, X, 200, "projected") == "projected"


def test_weight_averaged_overlaps():
    prior = _prior("dnn", depth=3)
    out = mcsim.weight_averaged_overlaps(prior, 3, 30, 20, seed=1, n_in=4, input_seed=2)
    assert out["mean"].shape == out["sem"].shape == (3, 5)
    assert out["inputs"].shape == (3, 4)
    x = out["inputs"]
    np.testing.assert_allclose(out["mean"][:, 0], 0.2 + 1.1 / 4 * np.sum(x * x, axis=1), rtol=1e-12)
    assert np.all(out["sem"][:, 0] < 1e-12) and np.all(out["sem"][:, 1:] > 0)
    res = mcsim.sample(prior, x[1:2], 30, 20, seed=1, method="auto", observables=("caux_diag",))
    np.testing.assert_allclose(out["mean"][1], res["caux_diag"][:, :, 0, 0].mean(0), rtol=1e-12)
    with pytest.raises(ValueError, match="^n_in"):
        mcsim.weight_averaged_overlaps(prior, 3, 30, 20)


@pytest.mark.parametrize(
    "kwargs,param",
    [
        (dict(width=0), "width"),
        (dict(width=2.5), "width"),
        (dict(realizations=0), "realizations"),
        (dict(realizations=1.5), "realizations"),
        (dict(method="fast"), "method"),
        (dict(observables=("y", "bogus")), "observables"),
        (dict(observables=()), "observables"),
        (dict(seed=-1), "seed"),
        (dict(start=-3), "start"),
        (dict(X=np.ones(5)), "X"),
        (dict(X=np.ones((2, 3, 5))), "X"),
        (dict(X=np.full((2, 5), np.nan)), "X"),
        (dict(prior="dnn"), "prior"),
        (dict(point_key=5), "point_key"),
    ],
)
def test_bad_input_names_parameter(kwargs, param):
    args = dict(prior=_prior(), X=X1, width=8, realizations=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{param}"):
        mcsim.sample(**args)


def test_unequal_widths_full_observables_rejected():
    prior = theory.Prior("dnn", 2, "relu", 1.0, 0.1, 1.0, nu=[1.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="^observables.*chat_diag"):
        mcsim.sample(prior, X1, 8, 2, observables=("chat",))
    res = mcsim.sample(prior, X1, 8, 2, observables=("chat_diag", "caux_diag", "y"), method="direct")
    assert res["chat_diag"].shape == (2, 4, 2, 2)
    res = mcsim.sample(prior, X1, 8, 2, observables=("chat_diag", "caux_diag", "y"), method="projected")
    assert res["chat_diag"].shape == (2, 4, 2, 2)


def test_bench_smoke(capsys):
    """The benchmark runs and prints one row per configuration (speed is not asserted)."""
    from mcsim import bench

    assert bench.main(["--n", "40", "--arch", "rnn", "--shape", "A15P10", "--min-time", "0.01",
                       "--max-direct", "1", "--rounds", "1", "--targets", "no"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("rnn")]
    assert len(rows) == 1 and len(rows[0].split()) == 15
    assert "GEMM rate" in out


def test_bench_cost_model_smoke(capsys):
    """``bench_cost_model`` measures both samplers and the prediction on a configuration (speed not asserted)."""
    from mcsim import bench

    r = bench.bench_cost_model(("tiny", "rnn", 8, 2, 2, 4, 1.6, 0.2), 0.01, 1, ("y",))
    for m in ("projected", "direct"):
        assert r[f"measured_{m}"] > 0 and r[f"predicted_{m}"] > 0 and r[f"ns_per_normal_{m}"] > 0
    assert r["auto"] in ("projected", "direct") and r["fastest"] in ("projected", "direct")
    bench._cost_model_table([("tiny", "dnn", 8, 2, 2, 4, 1.6, 0.2)], 0.01, 1, ("y",))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny")]
    assert len(rows) == 1 and len(rows[0].split()) == 12, rows


def test_bench_posterior_smoke(capsys):
    """``mcsim bench --posterior`` runs the posterior benchmark: gradient and importance rows for DNN and RNN."""
    from mcsim import bench

    assert bench.main(["--posterior", "--n", "16", "--depth", "2", "--patterns", "3", "--min-time", "0.01",
                       "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "posterior bench" in out and "grad/s" in out and "imp/s" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("dnn", "rnn"))]
    assert [r[:4] for r in rows] == [[a, "16", "2", "3"] for a in ("dnn", "rnn")] * 2, out
    with pytest.raises(SystemExit):
        bench.main(["--depth", "2"])  # --depth belongs to --posterior
    with pytest.raises(SystemExit):
        bench.main(["--posterior", "--n", "16", "32"])
