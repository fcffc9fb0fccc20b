"""Static checks of the SLURM profile in slurm/ (no cluster needed).

The profile refers to rules by name and must turn the simulation rule into an
srun-launched MPI job; these tests catch a renamed rule or a profile that no
longer applies, in seconds, on any machine.  The real submission through a
running SLURM cluster is tested in tests/test_slurm.py.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm"
TINY_CONFIG = REPO / "tests" / "data" / "tiny-config.yaml"
SIM_RULE = "simulate_point"


def _snakemake(args, cwd, timeout=120):
    """Run the venv's snakemake with the repository Snakefile in directory cwd."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd)]
    return subprocess.run(cmd + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def profile():
    with open(PROFILE / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_profile_uses_slurm_executor_with_retries(profile):
    assert profile["executor"] == "slurm"
    assert int(profile["jobs"]) >= 1
    assert int(profile["retries"]) >= 1
    # runtime grows with the attempt, so a retry after a time-out gets more time
    assert "attempt" in str(profile["default-resources"]["runtime"])
    assert "attempt" in str(profile["set-resources"][SIM_RULE]["runtime"])


def test_profile_simulation_rule_is_srun_mpi_job(profile):
    sim = profile["set-resources"][SIM_RULE]
    assert sim["mpi"].split()[0] == "srun"
    assert "--mpi=" in sim["mpi"]
    # the SLURM plugin rejects MPI jobs with fewer than 2 tasks
    assert isinstance(sim["tasks"], int) and sim["tasks"] >= 2
    assert sim["cpus_per_task"] == 1
    assert int(sim["mem_mb_per_cpu"]) > 0


def test_profile_rule_names_exist_in_workflow(profile, tmp_path):
    res = _snakemake(["--configfile", str(TINY_CONFIG), "--list-rules"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rules = set(res.stdout.split())
    unknown = set(profile["set-resources"]) - rules
    assert not unknown, f"slurm/config.yaml set-resources names unknown rules {unknown}; rules: {sorted(rules)}"


def test_profile_dry_run_launches_simulation_with_srun(profile, tmp_path):
    """A dry run with the profile turns every simulation into `<mpi> -n <tasks> python -m mcsim run`."""
    targets = ["results/kernel/tables/kernel.csv"]
    res = _snakemake(["--profile", str(PROFILE), "--configfile", str(TINY_CONFIG), "--dry-run", *targets], tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    sim = profile["set-resources"][SIM_RULE]
    launch = f"{sim['mpi']} -n {sim['tasks']} python -m mcsim run"
    commands = [line for line in out.splitlines() if "python -m mcsim run" in line]
    assert commands, out
    assert all(launch in line for line in commands), commands
    resources = re.findall(rf"rule {SIM_RULE}:.*?resources: ([^\n]*)", out, flags=re.S)
    assert resources and all(f"tasks={sim['tasks']}" in r and "cpus_per_task=1" in r for r in resources), resources
