"""HDF5 store: shards, tiling, finalize, extension, corruption detection, read_point, info.

In-process tests (``mcsim.cli.main``) with the real sampler on a tiny point.
"""

from __future__ import annotations

import json
import os
import socket

import h5py
import numpy as np
import pytest

import mcsim
import theory
from mcsim import cli, store
from mcsim.store import ShardInfo, StoreError, choose_tiling, split_range

TINY_SPEC = {
    "prior": {"arch": "dnn", "depth": 2, "activation": "relu", "g2": 1.2, "sigma2": 0.2, "g2_in": 1.2},
    "inputs": {"kind": "gaussian", "count": 2, "dim": 3, "seed": 3},
    "width": 12,
    "realizations": 24,
    "block_size": 5,
    "seed": 11,
    "method": "auto",
    "observables": ["y", "caux_diag", "chat_diag"],
}


TAG = ".caux_diag+chat_diag+y.h5"  # shard name suffix: the sorted observables of TINY_SPEC


def write_spec(path, **changes):
    spec = {**TINY_SPEC, **changes}
    path.write_text(json.dumps(spec))
    return path


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def shard_files(store_root, spec_path):
    key = theory.parse_point_spec(spec_path).point_key()
    return sorted((store_root / key / "blocks").glob("r*.h5"))


def file_ids(paths):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


@pytest.fixture()
def point(tmp_path, capsys):
    """A finished tiny run: (spec_path, store_root, out_path, stderr)."""
    spec_path = write_spec(tmp_path / "point.json")
    store_root, out = tmp_path / "store", tmp_path / "final.h5"
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", out, "--no-progress"], capsys)
    assert code == 0, err
    return spec_path, store_root, out, err


def assert_same_data(a, b):
    arrays_a, attrs_a = store.read_point(a)
    arrays_b, attrs_b = store.read_point(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name, strict=True)
    assert attrs_a["point_key"] == attrs_b["point_key"]


# --------------------------------------------------------------------------- layout


def test_final_file_layout_and_contents(point):
    spec_path, store_root, out, err = point
    spec = theory.parse_point_spec(spec_path)
    arrays, attrs = store.read_point(out)
    R, P, A = 24, 2, 2
    assert arrays["y"].shape == (R, P, 1)
    assert arrays["caux_diag"].shape == (R, A + 2, P, P)
    assert arrays["chat_diag"].shape == (R, A + 2, P, P)
    assert arrays["overflow"].shape == (R,) and arrays["overflow"].dtype == bool
    np.testing.assert_array_equal(arrays["inputs"], spec.X)
    # the merged blocks are exactly the realizations [0, R) of the sampler
    direct = mcsim.sample_point(spec, 0, R)
    for name in ("y", "caux_diag", "chat_diag", "overflow"):
        np.testing.assert_array_equal(arrays[name], direct[name], err_msg=name, strict=True)
    # self-describing attributes
    assert attrs["point_key"] == spec.point_key()
    assert json.loads(attrs["spec_json"]) == spec.raw
    assert attrs["observables"] == ["y", "caux_diag", "chat_diag"]
    for k, v in spec.prior.to_dict().items():
        np.testing.assert_array_equal(attrs[k], v, err_msg=k)
    assert attrs["width"] == 12 and attrs["realizations"] == R and attrs["seed"] == 11
    assert attrs["method_requested"] == "auto"
    assert attrs["method_resolved"] == mcsim.resolve_method(spec.prior, spec.X, spec.width)
    assert attrs["method_resolved"] in ("direct", "projected")
    assert attrs["inputs_seed"] == 3 and json.loads(attrs["inputs_spec_json"])["dim"] == 3
    for pkg in ("theory", "mcsim", "numpy", "numba", "h5py"):
        assert attrs[f"version_{pkg}"] and attrs[f"version_{pkg}"] != "unavailable"
    assert attrs["complete"] is True and attrs["created_utc"]
    assert attrs["overflow_count"] == int(arrays["overflow"].sum())
    with h5py.File(out, "r") as f:
        for name in f:
            assert str(tuple(f[name].shape)) in f[name].attrs["description"], name
    # store layout
    key_dir = store_root / spec.point_key()
    ident = json.loads((key_dir / "spec.json").read_text())
    assert ident["point_key"] == spec.point_key() and ident["width"] == 12
    names = [p.name for p in shard_files(store_root, spec_path)]
    assert names == ["r000000000-000000005" + TAG, "r000000005-000000010" + TAG, "r000000010-000000015" + TAG,
                     "r000000015-000000020" + TAG, "r000000020-000000024" + TAG]
    with h5py.File(key_dir / "blocks" / names[1], "r") as f:
        assert f.attrs["start"] == 5 and f.attrs["stop"] == 10 and f.attrs["complete"]
        assert f.attrs["point_key"] == spec.point_key() and len(f.attrs["sha256"]) == 64
    assert "5 block(s) to sample" in err


def test_rerun_complete_point_samples_nothing(point, capsys):
    spec_path, store_root, out, _ = point
    before = file_ids(shard_files(store_root, spec_path))
    out2 = out.parent / "again.h5"
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", out2, "--no-progress"], capsys)
    assert code == 0, err
    assert "5 shard(s) reused covering 24 realizations; 0 block(s) to sample" in err
    assert file_ids(shard_files(store_root, spec_path)) == before
    assert_same_data(out, out2)


# --------------------------------------------------------------------------- extension


def test_extension_samples_only_new_blocks_and_equals_fresh_run(tmp_path, capsys):
    spec_path = write_spec(tmp_path / "point.json", realizations=12)
    store_root = tmp_path / "store"
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "r12.h5",
                            "--no-progress"], capsys)
    assert code == 0, err
    old = file_ids(shard_files(store_root, spec_path))
    assert sorted(old) == ["r000000000-000000005" + TAG, "r000000005-000000010" + TAG, "r000000010-000000012" + TAG]
    # raise R to 24 via the spec file
    write_spec(spec_path, realizations=24)
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "ext.h5",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert "3 shard(s) reused covering 12 realizations; 3 block(s) to sample: [12, 15), [15, 20), [20, 24)" in err
    new = file_ids(shard_files(store_root, spec_path))
    assert {k: new[k] for k in old} == old  # old shards untouched
    # fresh run with R = 24 (different tiling) in another store
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", tmp_path / "fresh", "--out", tmp_path / "fresh.h5",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert_same_data(tmp_path / "ext.h5", tmp_path / "fresh.h5")
    # shrinking R reuses (slices) shards and samples nothing
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "r7.h5",
                            "--realizations", "7", "--no-progress"], capsys)
    assert code == 0 and "0 block(s) to sample" in err
    a7, _ = store.read_point(tmp_path / "r7.h5")
    a24, _ = store.read_point(tmp_path / "fresh.h5")
    np.testing.assert_array_equal(a7["caux_diag"], a24["caux_diag"][:7], strict=True)


def test_specs_differing_in_observables_share_realizations(tmp_path, capsys):
    """Failed on the old code: the second spec resampled all 5 blocks and overwrote the first spec's shards."""
    spec_path = write_spec(tmp_path / "point.json", observables=["y"])
    store_root = tmp_path / "store"
    assert run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "y.h5",
                    "--no-progress"], capsys)[0] == 0
    write_spec(spec_path, observables=["y", "caux_readout"])
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "both.h5",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert "5 block(s) to sample" in err and "stored without ['caux_readout']; sampling only those" in err
    arrays, attrs = store.read_point(tmp_path / "both.h5")
    assert attrs["observables"] == ["y", "caux_readout"] and arrays["caux_readout"].shape == (24, 2, 2)
    y_only, _ = store.read_point(tmp_path / "y.h5")
    np.testing.assert_array_equal(arrays["y"], y_only["y"], strict=True)
    # going back to the first selection samples nothing, and every shard of both runs is still there
    write_spec(spec_path, observables=["y"])
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", tmp_path / "y2.h5",
                            "--no-progress"], capsys)
    assert code == 0 and "0 block(s) to sample" in err, err
    assert len(shard_files(store_root, spec_path)) == 10
    assert_same_data(tmp_path / "y.h5", tmp_path / "y2.h5")


# --------------------------------------------------------------------------- corruption


def finalize_cli(spec_path, store_root, out, capsys):
    return run_cli(["finalize", "--spec", spec_path, "--store", store_root, "--out", out], capsys)


def test_truncated_shard_detected_by_finalize(point, capsys):
    spec_path, store_root, out, _ = point
    shard = shard_files(store_root, spec_path)[1]
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size // 2)
    out2 = out.parent / "fin.h5"
    code, _, err = finalize_cli(spec_path, store_root, out2, capsys)
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "missing realization ranges [5, 10)" in err and "r000000005-000000010" + TAG in err
    assert "truncated" in err
    assert not out2.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_missing_shard_detected_by_finalize(point, capsys):
    spec_path, store_root, out, _ = point
    shard_files(store_root, spec_path)[3].unlink()
    out2 = out.parent / "fin.h5"
    code, _, err = finalize_cli(spec_path, store_root, out2, capsys)
    assert code == 1 and "missing realization ranges [15, 20)" in err and "Traceback" not in err
    assert not out2.exists()


def test_corrupt_shard_bytes_detected_by_checksum(point, capsys):
    spec_path, store_root, out, _ = point
    shard = shard_files(store_root, spec_path)[2]
    with h5py.File(shard, "r") as f:
        offset = f["caux_diag"].id.get_offset()
    assert offset is not None
    with open(shard, "r+b") as f:  # flip one data byte, leaving the HDF5 structure intact
        f.seek(offset + 3)
        byte = f.read(1)
        f.seek(offset + 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    out2 = out.parent / "fin.h5"
    code, _, err = finalize_cli(spec_path, store_root, out2, capsys)
    assert code == 1 and "checksum mismatch" in err and "[10, 15)" in err
    assert not out2.exists()


def test_run_repairs_bad_shards(point, capsys):
    spec_path, store_root, out, _ = point
    shards = shard_files(store_root, spec_path)
    with open(shards[0], "r+b") as f:
        f.truncate(100)
    shards[4].unlink()
    keep = file_ids(shards[1:4])
    out2 = out.parent / "repaired.h5"
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", out2, "--no-progress"], capsys)
    assert code == 0, err
    assert "bad shard r000000000-000000005" + TAG in err
    assert "2 block(s) to sample: [0, 5), [20, 24)" in err
    assert file_ids(shard_files(store_root, spec_path)[1:4]) == keep
    assert_same_data(out, out2)
    key = theory.parse_point_spec(spec_path).point_key()
    assert len(list((store_root / key / "corrupt").iterdir())) == 1


def test_temp_files_of_dead_writers_are_cleaned_and_ignored(point, capsys):
    spec_path, store_root, out, _ = point
    bdir = shard_files(store_root, spec_path)[0].parent
    host = socket.gethostname().split(".")[0].replace("-", "_")
    dead = bdir / f".tmp-{host}-999999999-deadbeef-r000000000-000000005.h5"
    live = bdir / f".tmp-{host}-{os.getpid()}-cafecafe-r000000005-000000010.h5"
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", out.parent / "x.h5",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert "removed 1 temp file(s)" in err and "0 block(s) to sample" in err
    assert not dead.exists() and live.exists()


def test_concurrent_run_waits_for_the_lock(point, capsys):
    """A second run of a locked point waits for the holder instead of racing it."""
    import threading

    spec_path, store_root, out, _ = point
    key = theory.parse_point_spec(spec_path).point_key()
    lock = store.PointLock(store_root / key)
    assert lock.acquire() is None
    timer = threading.Timer(1.0, lock.release)
    timer.start()
    try:
        code, _, err = run_cli(["run", "--spec", spec_path, "--store", store_root, "--out", out.parent / "x.h5",
                                "--no-progress"], capsys)
    finally:
        timer.join()
    assert code == 0, err
    assert "another run of this point holds its lock" in err and f"pid={os.getpid()}" in err
    assert "0 block(s) to sample" in err


# --------------------------------------------------------------------------- tiling


def _shard(a, b):
    return ShardInfo(store.blocks_dir("x") / store.block_name(a, b, ["y"]), a, b, ok=True, observables=("y",))


def test_choose_tiling_is_deterministic_and_exact():
    shards = [_shard(0, 5), _shard(5, 10), _shard(0, 8), _shard(8, 16), _shard(20, 30), _shard(10, 12)]
    pieces, gaps = choose_tiling(shards, 25)
    assert [(s.start, s.stop, lo, hi) for s, lo, hi in pieces] == [(0, 8, 0, 8), (8, 16, 8, 16), (20, 30, 20, 25)]
    assert gaps == [(16, 20)]
    pieces2, _ = choose_tiling(list(reversed(shards)), 25)
    assert [(s.path, lo, hi) for s, lo, hi in pieces2] == [(s.path, lo, hi) for s, lo, hi in pieces]
    assert choose_tiling([], 3) == ([], [(0, 3)])
    assert split_range(12, 24, 5) == [(12, 15), (15, 20), (20, 24)]
    assert split_range(0, 10, 5) == [(0, 5), (5, 10)]


# --------------------------------------------------------------------------- read_point / info


def test_read_point_rejects_non_final_files(point, tmp_path):
    spec_path, store_root, out, _ = point
    with pytest.raises(StoreError, match="no such point file"):
        store.read_point(tmp_path / "nope.h5")
    with pytest.raises(StoreError, match="not a finalised mcsim point file"):
        store.read_point(shard_files(store_root, spec_path)[0])
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:
        f.attrs["mcsim_format"] = store.POINT_FORMAT
    with pytest.raises(StoreError, match="incomplete"):
        store.read_point(partial)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="unreadable"):
        store.read_point(garbage)


def test_info_summaries(point, capsys):
    spec_path, store_root, out, _ = point
    code, txt, _ = run_cli(["info", out], capsys)
    assert code == 0
    assert "realizations: 24" in txt and "/caux_diag: shape (24, 4, 2, 2)" in txt and "overflow count: 0" in txt
    assert "arch=dnn" in txt and "width: 12" in txt
    shard_files(store_root, spec_path)[2].unlink()
    code, txt, _ = run_cli(["info", store_root], capsys)
    assert code == 0 and "1 point(s)" in txt and "missing in [0, 24): [10, 15)" in txt
    write_spec(spec_path, realizations=30)
    code, txt, _ = run_cli(["info", store_root, "--spec", spec_path, "--verify"], capsys)
    assert code == 0 and "missing in [0, 30): [10, 15), [24, 30)" in txt
    assert "caux_diag (R, 4, 2, 2)" in txt
    code, _, err = run_cli(["info", store_root / "nope"], capsys)
    assert code == 2 and "error: path: no such file or directory" in err
