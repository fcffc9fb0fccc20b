"""Helpers shared by the workflow tests (run Snakemake as a subprocess, parse dry runs)
and a self-test of the dry-run parser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY_CONFIG = REPO / "tests" / "data" / "tiny-config.yaml"


def snakemake_env() -> dict:
    """Environment for Snakemake subprocesses: this interpreter's venv first on PATH
    (python, mpiexec, snakemake) and the checkout on PYTHONPATH (its packages)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_snakemake(args, cwd, timeout=600, check=False, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake --snakefile <repo>/Snakefile ARGS`` in ``cwd``.

    ``env`` defaults to :func:`snakemake_env`.  Returns the completed process
    with stdout and stderr merged in ``stdout``.
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *map(str, args)]
    proc = subprocess.run(
        cmd, cwd=cwd, env=env or snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


_RULE = re.compile(r"^(?:local)?rule (\w+):\s*$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def dry_run_jobs(output: str) -> list[tuple[str, dict]]:
    """Parse a ``snakemake -n`` log into [(rule, wildcards dict), ...]."""
    jobs = []
    for line in output.splitlines():
        m = _RULE.match(line)
        if m:
            jobs.append((m.group(1), {}))
            continue
        m = _WILDCARDS.match(line)
        if m and jobs:
            jobs[-1][1].update(dict(item.split("=", 1) for item in m.group(1).split(", ")))
    return jobs


def load_tiny_config() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_dry_run_parser():
    text = (
        "rule simulate_point:\n    input: a\n    wildcards: exp=mmd, point=arch-dnn_n-8\n"
        "localrule all:\n    input: b\n"
    )
    assert dry_run_jobs(text) == [("simulate_point", {"exp": "mmd", "point": "arch-dnn_n-8"}), ("all", {})]
