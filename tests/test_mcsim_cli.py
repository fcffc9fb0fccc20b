"""``python -m mcsim`` command line: help, user errors (clean one-line message, exit code), bench delegation."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from mcsim import cli

TINY_SPEC = {
    "prior": {"arch": "dnn", "depth": 2, "activation": "relu", "g2": 1.2, "sigma2": 0.2, "g2_in": 1.2},
    "inputs": {"kind": "gaussian", "count": 2, "dim": 3, "seed": 3},
    "width": 12,
    "realizations": 10,
    "block_size": 5,
    "seed": 11,
}


def write_spec(path, **changes):
    path.write_text(json.dumps({**TINY_SPEC, **changes}))
    return path


def assert_one_line_error(err, *fragments):
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, err)


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing-spec", ["error: spec: file not found"]),
        ("bad-json", ["error: spec:", "not valid JSON"]),
        ("bad-width", ["error: width: must be an integer >= 1"]),
        ("bad-activation", ["error: prior.activation: unknown activation"]),
        ("unknown-key", ["error: spec: unknown keys ['widht']"]),
        ("out-dir-missing", ["error: out: directory does not exist"]),
        ("store-is-file", ["error: store:", "not a directory"]),
    ],
)
def test_run_user_errors_exit_2_with_one_line(tmp_path, capsys, case, fragments):
    spec = write_spec(tmp_path / "p.json")
    store, out = tmp_path / "store", tmp_path / "out.h5"
    if case == "missing-spec":
        spec = tmp_path / "missing.json"
    elif case == "bad-json":
        spec.write_text("{not json")
    elif case == "bad-width":
        write_spec(spec, width=-3)
    elif case == "bad-activation":
        write_spec(spec, prior={**TINY_SPEC["prior"], "activation": "sigmoidish"})
    elif case == "unknown-key":
        write_spec(spec, widht=3)
    elif case == "out-dir-missing":
        out = tmp_path / "no" / "such" / "dir" / "out.h5"
    elif case == "store-is-file":
        store.write_text("x")
    code = cli.main(["run", "--spec", str(spec), "--store", str(store), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert_one_line_error(err, *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "--spec", "x.json"], "the following arguments are required: --store, --out"),
        (["run", "--spec", "x", "--store", "s", "--out", "o", "--block-size", "0"], "error: argument --block-size: must be an integer >= 1"),
        (["run", "--spec", "x", "--store", "s", "--out", "o", "--realizations", "many"], "argument --realizations: must be an integer"),
        (["info"], "the following arguments are required: path"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert_one_line_error(capsys.readouterr().err, fragment)


def test_finalize_user_errors(tmp_path, capsys):
    spec = write_spec(tmp_path / "p.json")
    code = cli.main(["finalize", "--spec", str(spec), "--store", str(tmp_path / "nostore"), "--out", str(tmp_path / "o.h5")])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "error: store: no such directory")
    (tmp_path / "store").mkdir()
    code = cli.main(["finalize", "--spec", str(spec), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "o.h5")])
    assert code == 1
    assert_one_line_error(capsys.readouterr().err, "has no directory in store")


def test_bench_delegates_to_mcsim_bench(monkeypatch):
    seen = []
    fake = types.ModuleType("mcsim.bench")
    fake.main = lambda argv: seen.append(list(argv)) or 0
    monkeypatch.setitem(sys.modules, "mcsim.bench", fake)
    import mcsim

    monkeypatch.setattr(mcsim, "bench", fake, raising=False)
    assert cli.main(["bench", "--quick", "-n", "3"]) == 0
    assert seen == [["--quick", "-n", "3"]]


def test_help_and_user_error_in_a_real_subprocess(tmp_path, subprocess_env):
    env = subprocess_env()
    res = subprocess.run([sys.executable, "-m", "mcsim", "--help"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0
    for word in ("run", "finalize", "info", "bench", "mpiexec", "exit codes: 0 success; 1 runtime failure",
                 "2 bad input", "error: <key>: <what>"):
        assert word in res.stdout, word
    res = subprocess.run([sys.executable, "-m", "mcsim", "run", "--help"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0 and "exit codes: 0 success; 1 runtime failure" in res.stdout
    assert "2 bad input" in res.stdout and "SAMPLER_STREAM_VERSION" in res.stdout
    res = subprocess.run([sys.executable, "-m", "mcsim", "run", "--spec", str(tmp_path / "nope.json"), "--store",
                          str(tmp_path / "s"), "--out", str(tmp_path / "o.h5")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "error: spec: file not found")
    res = subprocess.run([sys.executable, "-m", "mcsim", "explode"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2 and "invalid choice" in res.stderr and "Traceback" not in res.stderr


class _FakeTTY:
    def __init__(self):
        self.chunks = []

    def isatty(self):
        return True

    def write(self, text):
        self.chunks.append(text)

    def flush(self):
        pass


def test_progress_display_tty_and_plain(monkeypatch):
    import io

    from mcsim import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    plain = io.StringIO()
    prog = progress.Progress(4, 40, interval=10.0, stream=plain)
    clock[0] += 5.0
    prog.update(1, 10)  # not yet due: plain streams print every `interval` seconds
    assert plain.getvalue() == ""
    clock[0] += 6.0
    prog.update(2, 20)
    line = plain.getvalue()
    assert line.count("\n") == 1 and "blocks 2/4" in line and "realizations 20/40 (50%)" in line
    assert "1.82 real/s" in line and "ETA 0:00:11" in line
    prog.close(4, 40)
    assert plain.getvalue().splitlines()[-1].startswith("mcsim: blocks 4/4, realizations 40/40 (100%)")

    tty = _FakeTTY()
    prog = progress.Progress(4, 40, stream=tty)
    clock[0] += 1.0
    prog.update(1, 10)
    prog.close(4, 40)
    assert tty.chunks[0].startswith("\rmcsim: blocks 1/4") and tty.chunks[-1] == "\n"

    quiet = io.StringIO()
    prog = progress.Progress(4, 40, enabled=False, stream=quiet)
    prog.update(4, 40, force=True)
    prog.close(4, 40)
    assert quiet.getvalue() == ""


def test_values_rejected_by_the_sampler_are_user_errors(tmp_path, capsys):
    spec = write_spec(tmp_path / "p.json", observables=["y", "no_such_observable"])
    code = cli.main(["run", "--spec", str(spec), "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o.h5")])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "error: observables:", "no_such_observable")
