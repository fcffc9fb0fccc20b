"""Static checks of the SLURM profile in slurm/ (no cluster needed).

The profile refers to rules by name (``campaign`` is the family of the
generated campaign_<exp>_<chunk> rules) and must turn every campaign job into
an srun-launched MPI job; these tests catch a renamed rule or a profile that no
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
SIM_RULE = "campaign"  # family of the generated campaign_<exp>_<chunk> rules
FAMILIES = {SIM_RULE}


def _snakemake(args, cwd, timeout=120):
    """Run the venv's snakemake with the repository Snakefile in directory cwd."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(cwd),
           "--workflow-profile", "none"]  # full output: the rule blocks of a dry run
    return subprocess.run(cmd + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def profile():
    with open(PROFILE / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_profile_uses_slurm_executor_with_retries(profile):
    assert profile["executor"] == "slurm"
    assert int(profile["jobs"]) >= 1
    assert int(profile["retries"]) >= 1
    # runtime grows with the attempt, so a retry after a time-out gets more time (the campaign
    # jobs' runtime is derived from the cost model in the workflow, also times the attempt)
    assert "attempt" in str(profile["default-resources"]["runtime"])
    assert "runtime" not in profile["set-resources"][SIM_RULE]


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
    unknown = set(profile["set-resources"]) - rules - FAMILIES
    assert any(rule.startswith(f"{SIM_RULE}_") for rule in rules), sorted(rules)
    assert not unknown, f"slurm/config.yaml set-resources names unknown rules {unknown}; rules: {sorted(rules)}"


def test_profile_dry_run_makes_campaign_jobs_srun_mpi_jobs(profile, tmp_path):
    """A dry run with the profile gives every campaign job the profile's launcher, ranks and one
    core per rank (its command is `{mpi} -n {tasks} python -m mcsim campaign ...`), and the
    runtime derived from the cost model."""
    targets = ["results/kernel/tables/kernel.csv", "results/mmd/tables/mmd.csv"]
    res = _snakemake(["--profile", str(PROFILE), "--configfile", str(TINY_CONFIG), "--dry-run", *targets], tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    sim = profile["set-resources"][SIM_RULE]
    resources = re.findall(rf"rule {SIM_RULE}_\w+:.*?resources: ([^\n]*)", out, flags=re.S)
    assert len(resources) == 2, out[-3000:]
    for r in resources:
        assert f"tasks={sim['tasks']}" in r and f"mpi={sim['mpi']}" in r and "cpus_per_task=1" in r, r
        # tiny chunks: the start-up margin plus one rounded-up minute
        margin = yaml.safe_load(TINY_CONFIG.read_text())["resources"]["simulation"].get("runtime_margin", 5)
        assert int(re.search(r"runtime=(\d+)", r).group(1)) in (margin, margin + 1), r
    theory = re.findall(r"rule theory_\w+:.*?resources: ([^\n]*)", out, flags=re.S)
    assert theory and all("tasks=" not in r and "mpi=" not in r for r in theory), theory
    text = (REPO / "workflow" / "rules" / "simulate.smk").read_text()
    assert "{resources.mpi} -n {resources.tasks} python -m mcsim campaign" in text
