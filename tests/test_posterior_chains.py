"""HMC posterior chains through the chain store: resume, extension, corruption, MPI rank independence.

Every run is ``python -m mcsim posterior`` in a subprocess (a real SIGKILL
needs a process of its own).  "Bit-identical" compares every dataset and
every root attribute of the final files exactly, except the provenance
attribute ``mpi_ranks``; the reference is the in-process run without a store.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mcsim.posterior_sampling import prepare_posterior
from mcsim.posterior_cli import load_posterior_spec
from mcsim.posterior_store import PosteriorPoint, SegmentError, load_chain, read_segment, segment_name

TIMEOUT = 300
SPEC = {"prior": {"arch": "rnn", "depth": 1, "activation": "tanh", "g2": 1.5, "sigma2": 0.1, "g2_in": 1.0},
        "data": {"kind": "sequence", "count": 4, "dim": 2, "train": 3, "seed": 0, "noise": 0.05},
        "width": 3, "draws": 12, "kappa": 0.1, "gamma0": 1.0, "method": "hmc", "chains": 3, "seed": 1,
        "hmc": {"warmup": 20, "n_leapfrog": 3},
        "observables": ["chat", "predictor", "train_error", "y"]}


def _spec(tmp_path, name="spec.json", **changes):
    doc = dict(SPEC, **changes)
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


@pytest.fixture(scope="module")
def mcsim_posterior(subprocess_env):
    def run(*args, launcher=(), env=None):
        cmd = [*launcher, sys.executable, "-m", "mcsim", "posterior", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env or subprocess_env(), timeout=TIMEOUT)
    return run


def _contents(path) -> dict:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            if k != "mpi_ranks":
                out[f"@{k}"] = v
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        for g in f.values():
            for k, v in g.attrs.items():
                out[f"{g.name}@{k}"] = v
    return out


def assert_identical(a, b, ignore=("@posterior_key",)):
    ca, cb = _contents(a), _contents(b)
    for k in ignore:
        ca.pop(k, None)
        cb.pop(k, None)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        x, y = np.asarray(ca[k]), np.asarray(cb[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), k
        else:
            assert np.array_equal(x, y), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mcsim_posterior):
    """In-process (no store) final files for 12 and 8 draws."""
    d = tmp_path_factory.mktemp("ref")
    out = {}
    for draws in (12, 8):
        res = mcsim_posterior("--spec", _spec(d, f"spec{draws}.json", draws=draws), "--out", d / f"ref{draws}.h5")
        assert res.returncode == 0, res.stderr
        out[draws] = d / f"ref{draws}.h5"
    return out


def _segments(store):
    return sorted(p.name for p in store.glob("*/blocks/*.h5") if not p.name.startswith(".tmp-"))


def test_store_run_equals_in_process_and_a_rerun_reuses_every_chain(tmp_path, mcsim_posterior, reference):
    spec, st = _spec(tmp_path), tmp_path / "st"
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "a.h5", "--checkpoint-every", 7)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("hmc: max R-hat ") and res.stdout.rstrip().endswith(str(tmp_path / "a.h5"))
    assert_identical(tmp_path / "a.h5", reference[12])
    segs = _segments(st)
    assert len(segs) == 3 * 5  # 32 iterations in checkpoints at 7, 14, 21, 28, 32
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "b.h5")
    assert res.returncode == 0, res.stderr
    assert "0 to (re)sample" in res.stderr
    assert _segments(st) == segs
    assert_identical(tmp_path / "b.h5", tmp_path / "a.h5", ignore=())


def test_sigkill_mid_chain_then_rerun_is_bit_identical(tmp_path, mcsim_posterior, reference):
    spec, st = _spec(tmp_path), tmp_path / "st"
    # killed at iteration 9 of chain 0, inside warm-up (the mass matrix collects draws 5..9, dual averaging runs)
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "k.h5", "--checkpoint-every", 3,
                          "--test-hooks", json.dumps({"kill_after_blocks": 3}))
    assert res.returncode == -9, res.stderr  # a real SIGKILL
    assert not (tmp_path / "k.h5").exists()
    segs = _segments(st)
    assert segs == [segment_name(0, 3 * i, 3 * i + 3) for i in range(3)]
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "k.h5", "--checkpoint-every", 3)
    assert res.returncode == 0, res.stderr
    assert set(segs) <= set(_segments(st))
    assert_identical(tmp_path / "k.h5", reference[12])


def test_more_draws_extend_the_chains_without_repeating_warmup(tmp_path, mcsim_posterior, reference):
    st = tmp_path / "st"
    res = mcsim_posterior("--spec", _spec(tmp_path, "s8.json", draws=8), "--store", st, "--out", tmp_path / "8.h5",
                          "--checkpoint-every", 10)
    assert res.returncode == 0, res.stderr
    assert_identical(tmp_path / "8.h5", reference[8])
    before = {p.name: p.stat().st_ino for p in st.glob("*/blocks/*.h5")}
    res = mcsim_posterior("--spec", _spec(tmp_path), "--store", st, "--out", tmp_path / "12.h5",
                          "--checkpoint-every", 10)
    assert res.returncode == 0, res.stderr
    after = {p.name: p.stat().st_ino for p in st.glob("*/blocks/*.h5")}
    assert all(after[k] == v for k, v in before.items())  # earlier checkpoints (warm-up included) are kept
    # checkpoints at absolute multiples of 10: 28 -> 30 -> 32
    assert sorted(set(after) - set(before)) == sorted(segment_name(c, a, b) for c in range(3)
                                                      for a, b in ((28, 30), (30, 32)))
    assert_identical(tmp_path / "12.h5", reference[12])
    # and asking for fewer draws again reads the first ones of the longer chains
    res = mcsim_posterior("--spec", _spec(tmp_path, "s8.json", draws=8), "--store", st, "--out", tmp_path / "8b.h5")
    assert res.returncode == 0, res.stderr
    assert_identical(tmp_path / "8b.h5", reference[8])


def test_corrupt_and_partial_segments_are_quarantined_and_recomputed(tmp_path, mcsim_posterior, reference):
    spec, st = _spec(tmp_path), tmp_path / "st"
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "a.h5", "--checkpoint-every", 10)
    assert res.returncode == 0, res.stderr
    (blocks,) = st.glob("*/blocks")
    partial = blocks / segment_name(1, 10, 20)
    partial.write_bytes(partial.read_bytes()[:1500])  # truncated
    import h5py

    with h5py.File(blocks / segment_name(2, 0, 10), "r+") as f:  # flipped data, checksum no longer matches
        f["accept"][3] = 0.0
    run = prepare_posterior(**load_posterior_spec(spec))
    key = PosteriorPoint(run).point_key()
    problem = run.chain_problem()
    with pytest.raises(SegmentError, match="truncated or unreadable"):
        read_segment(partial, key, problem)
    with pytest.raises(SegmentError, match="checksum mismatch"):
        load_chain(blocks.parent, key, problem, 2)
    from mcsim.info import describe_path

    info = describe_path(st)
    assert "chain 0: iterations [0, 32) valid, 12 kept draws" in info
    assert "chain 1: iterations [0, 10) valid" in info and "chain 2: iterations [0, 0) valid" in info
    assert "BAD segment c000001-i000000010-000000020.h5: truncated" in info
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "b.h5")
    assert res.returncode == 0, res.stderr
    assert "bad chain segment c000001-i000000010-000000020.h5: truncated" in res.stderr
    assert "bad chain segment c000002-i000000000-000000010.h5: checksum mismatch" in res.stderr
    assert "follows the bad segment" in res.stderr  # later segments of those chains are not reused either
    assert len(list((blocks.parent / "corrupt").iterdir())) == 3 + 4  # chain 1: 10-20, 20-30, 30-32; chain 2: all 4
    assert "2 to (re)sample" in res.stderr
    assert_identical(tmp_path / "b.h5", reference[12])


@pytest.mark.parametrize("args, env, message", [
    (["--store", "{st}", "--checkpoint-every", "0"], {}, "checkpoint-every: must be an integer >= 1"),
    (["--checkpoint-every", "5"], {}, "store: --checkpoint-every and --test-hooks need --store"),
    (["--store", "{st}", "--test-hooks", "{\"nope\": 1}"], {}, "test-hooks: unknown keys"),
    ([], {"PMI_SIZE": "2"}, "store: running on 2 MPI ranks needs --store"),
    (["--store", "{st}", "--spec", "{bad}"], {}, "hmc.warmup: must be an integer >= 0"),
])
def test_bad_input_exits_2(tmp_path, mcsim_posterior, subprocess_env, args, env, message):
    spec = _spec(tmp_path)
    bad = _spec(tmp_path, "bad.json", hmc={"warmup": -1})
    args = [a.replace("{st}", str(tmp_path / "st")).replace("{bad}", str(bad)) for a in args]
    res = mcsim_posterior("--spec", spec, "--out", tmp_path / "o.h5", *args, env=subprocess_env(**env))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert not (tmp_path / "o.h5").exists()


def test_store_refuses_importance(tmp_path, mcsim_posterior):
    res = mcsim_posterior("--spec", _spec(tmp_path, method="importance", observables=["chat"], draws=64),
                          "--store", tmp_path / "st", "--out", tmp_path / "o.h5")
    assert res.returncode == 2
    assert "store: --store holds HMC chains" in res.stderr


@pytest.mark.mpi
def test_one_and_two_ranks_bit_identical(tmp_path, mcsim_posterior, mpiexec, reference):
    spec = _spec(tmp_path)
    res = mcsim_posterior("--spec", spec, "--store", tmp_path / "st2", "--out", tmp_path / "two.h5",
                          "--checkpoint-every", 6, launcher=(mpiexec, "-n", "2"))
    assert res.returncode == 0, res.stderr
    res = mcsim_posterior("--spec", spec, "--store", tmp_path / "st1", "--out", tmp_path / "one.h5",
                          launcher=(mpiexec, "-n", "1"))
    assert res.returncode == 0, res.stderr
    import h5py

    with h5py.File(tmp_path / "two.h5", "r") as f:
        assert int(f.attrs["mpi_ranks"]) == 2
    assert_identical(tmp_path / "two.h5", tmp_path / "one.h5", ignore=())
    assert_identical(tmp_path / "two.h5", reference[12])


def test_failing_chain_exits_1(tmp_path, mcsim_posterior):
    res = mcsim_posterior("--spec", _spec(tmp_path), "--store", tmp_path / "st", "--out", tmp_path / "o.h5",
                          "--test-hooks", json.dumps({"fail_rank": 0}))
    assert res.returncode == 1, res.stderr
    assert "error: sampling: failed on rank 0 (RuntimeError: test hook" in res.stderr
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.mpi
@pytest.mark.slow
def test_two_ranks_sigkill_then_resume_bit_identical(tmp_path, mcsim_posterior, mpiexec, reference):
    spec, st = _spec(tmp_path), tmp_path / "st"
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "k.h5", "--checkpoint-every", 3,
                          "--test-hooks", json.dumps({"kill_after_blocks": 2}), launcher=(mpiexec, "-n", "2"))
    assert res.returncode != 0
    assert not (tmp_path / "k.h5").exists()
    killed = _segments(st)
    assert 2 <= len(killed) < 3 * 11  # some checkpoints, not all of them
    res = mcsim_posterior("--spec", spec, "--store", st, "--out", tmp_path / "k.h5", "--checkpoint-every", 3,
                          launcher=(mpiexec, "-n", "2"))
    assert res.returncode == 0, res.stderr
    assert set(killed) <= set(_segments(st))
    assert not list(st.glob("*/blocks/.tmp-*"))  # a segment a killed rank was writing is removed, never read
    assert_identical(tmp_path / "k.h5", reference[12])
