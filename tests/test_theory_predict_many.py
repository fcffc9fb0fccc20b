"""``python -m theory predict-many``: one process predicts a chunk of points (issue 8 item 1).

Checks: the files equal ``theory predict``'s, current files are skipped, a changed
spec or an incomplete file is recomputed, bad input stops before any work (exit 2),
and a failing point is named while the others are still written (exit 1).
"""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

SPEC = {"prior": {"arch": "rnn", "depth": 4, "activation": "relu", "g2": 1.6, "sigma2": 0.2, "g2_in": 1.6,
                  "bias": "uncorrelated", "n_out": 1},
        "inputs": {"kind": "gaussian", "count": 2, "dim": 4, "mean": 0.0, "std": 1.0, "seed": 3},
        "width": 50, "seed": 1, "method": "auto"}
# the kernel overflows (test_theory_nonfinite.py): a runtime failure of this point only
OVERFLOW = {**SPEC, "prior": {**SPEC["prior"], "arch": "dnn", "depth": 400, "g2": 20.0, "g2_in": 1.0},
            "inputs": {"kind": "gaussian", "count": 1, "dim": 4, "mean": 0.0, "std": 1.0, "seed": 3}}


def _theory(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "theory", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _chunk(tmp_path, points, name="chunk.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"points": [{"name": n, "spec": s, "out": str(tmp_path / "out" / f"{n}.h5")}
                                           for n, s in points]}))
    return path


def _datasets(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, f.attrs["spec_json"]


@pytest.fixture
def env(subprocess_env, tmp_path):
    return subprocess_env()


def test_predict_many_writes_what_predict_writes_and_skips_current_files(env, tmp_path):
    other = {**SPEC, "width": 80, "prior": {**SPEC["prior"], "arch": "dnn"}}
    chunk = _chunk(tmp_path, [("a", SPEC), ("b", other)])
    res = _theory(["predict-many", "--specs", chunk], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "2 computed, 0 already current, 0 failed of 2" in res.stdout
    (tmp_path / "a.json").write_text(json.dumps(SPEC))
    assert _theory(["predict", "--spec", tmp_path / "a.json", "--out", tmp_path / "single.h5"], env, tmp_path).returncode == 0
    many, single = _datasets(tmp_path / "out" / "a.h5"), _datasets(tmp_path / "single.h5")
    assert many[1] == single[1] and set(many[0]) == set(single[0])
    for key in many[0]:
        np.testing.assert_array_equal(many[0][key], single[0][key])
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    res = _theory(["predict-many", "--specs", chunk], env, tmp_path)
    assert res.returncode == 0 and "0 computed, 2 already current" in res.stdout, res.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == mtimes
    # a changed spec and an incomplete file are recomputed; the current one is not
    (tmp_path / "out" / "b.h5").write_bytes(b"truncated")
    chunk = _chunk(tmp_path, [("a", {**SPEC, "width": 60}), ("b", other)], "chunk2.json")
    res = _theory(["predict-many", "--specs", chunk], env, tmp_path)
    assert res.returncode == 0 and "2 computed, 0 already current" in res.stdout, res.stdout
    assert json.loads(_datasets(tmp_path / "out" / "a.h5")[1])["width"] == 60
    # another quadrature request is another result
    res = _theory(["predict-many", "--specs", chunk, "--quad-order", "40"], env, tmp_path)
    assert "2 computed" in res.stdout, res.stdout


def test_predict_many_bad_input_stops_before_any_work(env, tmp_path):
    bad = {**SPEC, "prior": {**SPEC["prior"], "g2": -1.0}}
    chunk = _chunk(tmp_path, [("good", SPEC), ("bad", bad)])
    res = _theory(["predict-many", "--specs", chunk], env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: bad: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "dup.json").write_text(json.dumps({"points": [{"name": "a", "spec": SPEC, "out": "x.h5"}] * 2}))
    res = _theory(["predict-many", "--specs", tmp_path / "dup.json"], env, tmp_path)
    assert res.returncode == 2 and "unique" in res.stderr, res.stderr


def test_predict_many_names_a_failing_point_and_writes_the_others(env, tmp_path):
    chunk = _chunk(tmp_path, [("ok", SPEC), ("overflow", OVERFLOW)])
    res = _theory(["predict-many", "--specs", chunk], env, tmp_path)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "error: overflow: " in res.stderr and "1 point(s) failed: overflow" in res.stderr, res.stderr
    assert (tmp_path / "out" / "ok.h5").is_file() and not (tmp_path / "out" / "overflow.h5").exists()


def test_one_chunk_parser_for_theory_and_mcsim(tmp_path):
    """``theory.spec.parse_chunk`` is the chunk parser of both CLIs: same checks, same messages."""
    from mcsim import campaign
    from mcsim.driver import UserError
    from theory.spec import parse_chunk

    out = str(tmp_path / "a.h5")
    cases = [
        ({"points": [{"name": "a", "spec": SPEC, "out": out}, {"name": "a", "spec": SPEC, "out": out + "2"}]},
         "specs: chunk.json: duplicate point name 'a'"),
        ({"points": [{"name": "a", "spec": SPEC, "out": out}, {"name": "b", "spec": SPEC, "out": out}]},
         "specs: chunk.json: duplicate out"),
        ({"points": [{"name": "bad", "spec": {**SPEC, "width": 0}, "out": out}]}, "bad: width: "),
        ({"points": [{"name": "a", "spec": SPEC}]}, "specs: chunk.json: points[0]: missing keys ['out']"),
    ]
    for raw, message in cases:
        with pytest.raises(ValueError) as theory_err:
            parse_chunk(raw, "chunk.json")
        with pytest.raises(UserError) as mcsim_err:
            campaign.parse_chunk(raw, "chunk.json")
        assert str(theory_err.value).startswith(message), theory_err.value
        assert str(mcsim_err.value) == str(theory_err.value)
    good = parse_chunk({"points": [{"name": "a", "spec": SPEC, "out": out}]}, "chunk.json")
    assert [(p.name, p.spec.width, str(p.out)) for p in good] == [("a", SPEC["width"], out)]
