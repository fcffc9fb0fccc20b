"""Resume after a real SIGKILL: the rerun samples only the missing blocks and the result is bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import theory
from mcsim import cli, store

SPEC = {
    "prior": {"arch": "dnn", "depth": 3, "activation": "tanh", "g2": 1.3, "sigma2": 0.1, "g2_in": 1.0,
              "bias": "static"},
    "inputs": {"kind": "gaussian", "count": 3, "dim": 4, "seed": 5},
    "width": 9,
    "realizations": 24,
    "block_size": 3,
    "seed": 4,
    "observables": ["y", "chat_diag", "caux_readout"],
}


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path, capsys, subprocess_env):
    spec_path = tmp_path / "point.json"
    spec_path.write_text(json.dumps(SPEC))
    key = theory.parse_point_spec(spec_path).point_key()
    store_root, out = tmp_path / "store", tmp_path / "resumed.h5"
    blocks = store_root / key / "blocks"
    cmd = [sys.executable, "-m", "mcsim", "run", "--spec", str(spec_path), "--store", str(store_root),
           "--out", str(out), "--no-progress"]
    slow = ["--test-hooks", json.dumps({"block_delay": 0.5})]
    # a real subprocess slowed by the test hook (0.5 s after each of the 8 blocks), killed with SIGKILL
    # as soon as the first block file exists
    proc = subprocess.Popen(cmd + slow, env=subprocess_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not list(blocks.glob("r*.h5")):
            assert proc.poll() is None, "run ended before writing a block"
            assert time.monotonic() < deadline, "no block file appeared"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    survivors = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in blocks.glob("r*.h5")}
    assert 1 <= len(survivors) < 8

    # rerun (in-process, no delay): only the missing blocks are sampled, old shards are untouched
    code = cli.main(["run", "--spec", str(spec_path), "--store", str(store_root), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{len(survivors)} shard(s) reused" in err
    assert f"{8 - len(survivors)} block(s) to sample" in err
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in blocks.glob("r*.h5")}
    assert len(after) == 8 and {k: after[k] for k in survivors} == survivors

    # identical to an uninterrupted run
    code = cli.main(["run", "--spec", str(spec_path), "--store", str(tmp_path / "fresh"),
                     "--out", str(tmp_path / "fresh.h5"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    resumed, _ = store.read_point(out)
    fresh, _ = store.read_point(tmp_path / "fresh.h5")
    assert sorted(resumed) == sorted(fresh) == sorted(["y", "chat_diag", "caux_readout", "overflow", "inputs"])
    for name in fresh:
        np.testing.assert_array_equal(resumed[name], fresh[name], err_msg=name, strict=True)
