"""End-to-end test of the SLURM profile against a real SLURM cluster.

Runs one tiny experiment of tests/data/tiny-config.yaml with
``snakemake --profile slurm`` in a temporary working directory and checks that

* the workflow's outputs exist and hold the requested data, and
* every non-local job was submitted with sbatch (job ids announced by the
  executor, known to slurmctld as COMPLETED jobs of this run, per-job SLURM
  logs written by the in-job ``slurm-jobstep`` executor), and the simulations
  were started as ``srun --mpi=... -n <tasks>`` MPI steps inside their
  allocation.

In CI a one-node cluster is started by .ci/slurm-up.sh.  Without a reachable
cluster the test is skipped, except when CI=true, where it fails: CI must
really exercise SLURM.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm"
TINY_CONFIG = REPO / "tests" / "data" / "tiny-config.yaml"
EXPERIMENT = "kernel"  # the tiny-config experiment run through SLURM
SIM_RULE = "campaign"  # the profile's set-resources family of the campaign_<exp>_<chunk> rules
# rule families of that experiment that must run as SLURM jobs
SLURM_RULES = {SIM_RULE, "theory", "compare_kernel", "plot_kernel"}
SNAKEMAKE_TIMEOUT = 300  # s; the whole test must stay below 6 minutes in CI

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(420)]

IN_CI = os.environ.get("CI", "").lower() == "true"
USABLE_STATES = ("idle", "mixed", "allocated", "completing")


def _run(cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _no_cluster(reason):
    """Skip outside CI, fail in CI (CI=true must really test SLURM)."""
    msg = f"no usable SLURM cluster: {reason}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: the SLURM test must run; see .ci/slurm-up.sh)")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def cluster():
    """Largest usable node of the default partition: dict(cpus=int, mem_mb=int)."""
    for exe in ("sinfo", "sbatch", "squeue", "scontrol", "srun"):
        if shutil.which(exe) is None:
            _no_cluster(f"'{exe}' is not on PATH")
    try:
        res = _run(["sinfo", "--noheader", "--Node", "--format=%c|%m|%T|%P"])
    except subprocess.TimeoutExpired:
        _no_cluster("'sinfo' timed out")
    if res.returncode != 0:
        _no_cluster(f"'sinfo' failed: {res.stderr.strip()}")
    nodes = []
    for line in res.stdout.splitlines():
        cpus, mem, state, partition = line.split("|")
        if partition.endswith("*") and state.rstrip("*~#!%$@^-").lower() in USABLE_STATES:
            nodes.append({"cpus": int(cpus), "mem_mb": int(mem)})
    if not nodes:
        _no_cluster(f"no idle/mixed node in the default partition:\n{res.stdout}")
    return max(nodes, key=lambda n: (n["cpus"], n["mem_mb"]))


def _accounting_available():
    """True if sacct works (slurmdbd accounting); False on accounting_storage/none."""
    if shutil.which("sacct") is None:
        return False
    try:
        return _run(["sacct", "--noheader", "-X", "--starttime", "now"]).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _profile_for_node(node, dest):
    """Copy of the repository profile, with the simulation's MPI job made to fit one node.

    Only ``set-resources.campaign.tasks`` (at most the node's CPUs, at
    least 2: the plugin's minimum for MPI jobs) and, if needed, its
    ``mem_mb_per_cpu`` are lowered -- what a site would edit.  Every other key
    is used unchanged.
    """
    with open(PROFILE / "config.yaml") as fh:
        profile = yaml.safe_load(fh)
    sim = profile["set-resources"][SIM_RULE]
    if node["cpus"] < 2:
        _no_cluster(f"the largest node has {node['cpus']} CPU; an MPI job needs 2")
    sim["tasks"] = min(int(sim["tasks"]), node["cpus"])
    sim["mem_mb_per_cpu"] = min(int(sim["mem_mb_per_cpu"]), node["mem_mb"] // (2 * sim["tasks"]))
    dest.mkdir()
    with open(dest / "config.yaml", "w") as fh:
        yaml.safe_dump(profile, fh, sort_keys=False)
    return profile


def test_tiny_experiment_runs_through_sbatch(cluster, tmp_path):
    assert TINY_CONFIG.is_file(), TINY_CONFIG
    profile_dir = tmp_path / "profile"
    profile = _profile_for_node(cluster, profile_dir)
    sim = profile["set-resources"][SIM_RULE]
    workdir = tmp_path / "work"
    workdir.mkdir()

    targets = [f"results/{EXPERIMENT}/tables/kernel.csv", f"results/figures/{EXPERIMENT}.png"]
    cmd = [
        sys.executable, "-m", "snakemake",
        "--profile", str(profile_dir),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(TINY_CONFIG),
        # the first status check after a submission (default 40 s) dominates a
        # tiny run; squeue still sees finished jobs for MinJobAge >= 3 s
        "--slurm-init-seconds-before-status-checks", "2",
        *targets,
    ]
    if not _accounting_available():
        cmd += ["--slurm-no-account", "--slurm-status-command", "squeue"]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    # jobs run with the submitting environment (sbatch --export=ALL): `python`
    # in the rules' shell commands must be this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")

    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=SNAKEMAKE_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        _run(["scancel", "--name", _run_uuid(out) or "none"])
        pytest.fail(f"snakemake --profile slurm did not finish in {SNAKEMAKE_TIMEOUT} s:\n{out[-6000:]}")
    elapsed = time.monotonic() - t0
    log = res.stdout + res.stderr
    print(f"snakemake --profile slurm: {elapsed:.1f} s")
    assert res.returncode == 0, _failure_report(log, workdir)

    # ---- outputs exist with content
    for target in targets:
        path = workdir / target
        assert path.is_file() and path.stat().st_size > 0, target
    table = (workdir / targets[0]).read_text().splitlines()
    assert len(table) >= 2, table  # header + rows
    sims = sorted((workdir / "results" / EXPERIMENT / "sim").glob("*.h5"))
    theories = sorted((workdir / "results" / EXPERIMENT / "theory").glob("*.h5"))
    with open(TINY_CONFIG) as fh:
        tiny = yaml.safe_load(fh)["experiments"][EXPERIMENT]
    n_points = len(tiny["grid"]["arch"])  # the tiny kernel experiment varies only arch
    assert len(sims) == len(theories) == n_points, (sims, theories)
    from mcsim.store import read_point

    for path in sims:
        data, attrs = read_point(path)
        assert int(attrs["realizations"]) == tiny["realizations"]
        assert data["y"].shape[0] == tiny["realizations"]
        assert np.all(np.isfinite(data["y"]))
        # all srun-started ranks joined one MPI world (PMI wired): with a
        # launcher/MPI mismatch every rank is a singleton of size 1
        assert int(attrs["mpi_ranks"]) == sim["tasks"], (path.name, attrs["mpi_ranks"])

    # ---- every SLURM job went through sbatch and completed
    run_uuid = _run_uuid(log)
    assert run_uuid, log[-4000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?\s*$", log, flags=re.M)
    logs = {jobid: Path(path) for jobid, path in submitted}
    rules_by_log = {jobid: _rule_of(path) for jobid, path in logs.items()}
    families = {jobid: re.sub(r"^(campaign|theory)_\w+_[0-9a-f]{8}$", r"\1", r) for jobid, r in rules_by_log.items()}
    assert set(families.values()) == SLURM_RULES, rules_by_log
    # one campaign job samples all points of the experiment (one chunk) with `tasks` ranks
    assert sum(r == SIM_RULE for r in families.values()) == 1, rules_by_log
    sim_cfg = yaml.safe_load(TINY_CONFIG.read_text())["resources"]["simulation"]
    margin = sim_cfg.get("runtime_margin", 5)
    for jobid, path in logs.items():
        # the per-job log is written by SLURM and filled by the in-job executor
        assert path.is_file(), path
        text = path.read_text()
        assert "--executor slurm-jobstep" in text, text[-3000:]
        info = _scontrol_job(jobid)
        if info is None:  # purged from slurmctld (MinJobAge passed); the log above is the proof
            assert not IN_CI, f"job {jobid} unknown to slurmctld right after the run"
            continue
        assert info["JobName"] == run_uuid, info
        assert info["JobState"] == "COMPLETED", info
        assert info["BatchFlag"] == "1", info  # a batch job, i.e. submitted with sbatch
        if families[jobid] == SIM_RULE:
            assert info["NumTasks"] == str(sim["tasks"]), info
            # the runtime derived from the cost model: tiny points need the margin (+ 1 rounded-up minute)
            assert info["TimeLimit"] in (f"00:{margin:02d}:00", f"00:{margin + 1:02d}:00"), info
            job_log = workdir / "results" / "logs" / EXPERIMENT / f"campaign-{rules_by_log[jobid][-8:]}.log"
            assert f"{n_points} point(s): {n_points} written" in job_log.read_text(), job_log.read_text()[-3000:]


def _run_uuid(log):
    m = re.search(r"SLURM run ID: (\S+)", log)
    return m.group(1) if m else None


def _rule_of(logfile):
    """Rule name from the plugin's log path .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<jobid>.log."""
    for part in Path(logfile).parts:
        if part.startswith("rule_"):
            return part[len("rule_"):]
    return None


def _scontrol_job(jobid):
    """`scontrol show job` as a dict, or None if slurmctld no longer knows the job."""
    res = _run(["scontrol", "--oneliner", "show", "job", jobid])
    if res.returncode != 0:
        return None
    return dict(re.findall(r"(\S+?)=(\S*)", res.stdout))


def _failure_report(log, workdir):
    parts = [log[-8000:]]
    for path in sorted(workdir.glob(".snakemake/slurm_logs/**/*.log"))[-4:]:
        parts.append(f"---- {path}\n{path.read_text()[-3000:]}")
    for path in sorted(workdir.glob("results/logs/**/*.log"))[-4:]:
        parts.append(f"---- {path}\n{path.read_text()[-2000:]}")
    return "\n".join(parts)
