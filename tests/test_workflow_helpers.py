"""Helpers shared by the workflow tests (run Snakemake as a subprocess, parse dry runs, build small
configs, run a workflow script in-process) and a self-test of the dry-run parser."""

from __future__ import annotations

import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY_CONFIG = REPO / "tests" / "data" / "tiny-config.yaml"
SCRIPTS = REPO / "workflow" / "scripts"


def snakemake_env() -> dict:
    """Environment for Snakemake subprocesses: this interpreter's venv first on PATH
    (python, mpiexec, snakemake) and the checkout on PYTHONPATH (its packages)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_snakemake(args, cwd, timeout=600, check=False, env=None, default_profile=False) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake --snakefile <repo>/Snakefile ARGS`` in ``cwd``.

    ``env`` defaults to :func:`snakemake_env`.  Without ``default_profile`` the
    repository's default workflow profile (profiles/default: quiet output) is
    switched off (``--workflow-profile none``), so dry runs list every job.
    Returns the completed process with stdout and stderr merged in ``stdout``.
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *map(str, args)]
    if not default_profile:
        cmd += ["--workflow-profile", "none"]
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


_CHUNK_ID = re.compile(r"^((?:campaign|theory)_\w+)_[0-9a-f]{8}$")


def rule_family(rule: str) -> str:
    """Generated per-chunk rule -> its family: campaign_<exp>_<id> -> 'campaign', theory_<exp>_<id> -> 'theory'."""
    m = _CHUNK_ID.match(rule)
    return rule.split("_", 1)[0] if m else rule


def family_counts(output: str) -> dict:
    """Jobs per rule family of a dry-run log (works with and without --quiet rules)."""
    counts = {}
    for rule, n in job_stats(output).items():
        counts[rule_family(rule)] = counts.get(rule_family(rule), 0) + n
    return counts


def job_stats(output: str) -> dict:
    """The first "Job stats" table of a Snakemake log: {rule: count} (without the total)."""
    lines = output.splitlines()
    start = lines.index("Job stats:") + 3  # title, header, dashes
    stats = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        stats[parts[0]] = int(parts[1])
    return stats


def load_tiny_config() -> dict:
    """The tiny test config (tests/data/tiny-config.yaml): one small experiment of every kind."""
    return yaml.safe_load(TINY_CONFIG.read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def small_config(experiments: dict) -> dict:
    """A whole config running only ``experiments`` (name -> block) at reduced statistics: one MPI task,
    PNG figures at 60 dpi (the feature-learning workflow tests)."""
    return {"statistics": "reduced", "store": "results/store",
            "resources": {"simulation": {"tasks": 1, "mpi": "mpiexec", "mem_mb_per_cpu": 1000}},
            "plots": {"formats": ["png"], "dpi": 60}, "experiments": experiments}


def set_keys(node: dict, changes: dict) -> dict:
    """Edit a nested dict in place: ``{"task__train": 4}`` sets ``node["task"]["train"] = 4``;
    the value None deletes the key.  Returns ``node``."""
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = node
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return node


def scripts_common(monkeypatch):
    """The workflow scripts' ``_common`` module, imported as the scripts import it (scripts dir on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import _common

    return _common


class _Names(SimpleNamespace):
    """Attribute namespace also indexable by name, like Snakemake's input/output/params lists."""

    def __getitem__(self, key):
        return getattr(self, key)


def run_script(name: str, monkeypatch, *, input: dict, output: dict, params: dict, log: Path) -> None:
    """Run ``workflow/scripts/<name>`` in this process with a stand-in ``snakemake`` object.

    ``input``, ``output`` and ``params`` become namespaces (``snakemake.input.sim``, ``snakemake.input["sim"]``);
    ``log`` is the rule's log file.  The script's changes to sys.path, sys.excepthook and the
    root logger's handlers are undone afterwards.
    """
    smk = SimpleNamespace(scriptdir=str(SCRIPTS), input=_Names(**input), output=_Names(**output),
                          params=_Names(**params), log=[str(log)])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        runpy.run_path(str(SCRIPTS / name), init_globals={"snakemake": smk})
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)


def test_rule_family_and_job_stats_parser():
    assert rule_family("campaign_fig2_width_0a1b2c3d") == "campaign"
    assert rule_family("theory_mmd_deadbeef") == "theory"
    assert rule_family("compare_mmd") == "compare_mmd" and rule_family("theory_mmd") == "theory_mmd"
    text = "Job stats:\njob   count\n---  -----\ncampaign_a_0123abcd  2\ntheory_a_0123abcd 1\nall 1\ntotal 4\n"
    assert job_stats(text) == {"campaign_a_0123abcd": 2, "theory_a_0123abcd": 1, "all": 1}
    assert family_counts(text) == {"campaign": 2, "theory": 1, "all": 1}


def test_dry_run_parser():
    text = (
        "rule simulate_point:\n    input: a\n    wildcards: exp=mmd, point=arch-dnn_n-8\n"
        "localrule all:\n    input: b\n"
    )
    assert dry_run_jobs(text) == [("simulate_point", {"exp": "mmd", "point": "arch-dnn_n-8"}), ("all", {})]


def test_set_keys_and_small_config():
    node = {"task": {"train": 3, "kappa": 0.5}, "grid": {"width": [40, 80]}}
    assert set_keys(node, {"task__train": 4, "task__kappa": None, "grid__depth": [2]}) is node
    assert node == {"task": {"train": 4}, "grid": {"width": [40, 80], "depth": [2]}}
    config = small_config({"e": node})
    assert config["experiments"] == {"e": node} and config["statistics"] == "reduced"
