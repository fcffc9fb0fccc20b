"""Grouping of points into campaign jobs and the derived SLURM runtime (workflow/lib/jobsizing.py).

Fast: pure functions on synthetic point sets shaped like the paper's Fig. 2
sweeps, plus dry runs of the real config (job counts of both statistics).
"""

import importlib.util
import collections
import itertools
import math
import random
import re

import pytest
import yaml

from test_workflow_helpers import REPO, family_counts, job_stats, load_tiny_config, run_snakemake, write_config

_spec = importlib.util.spec_from_file_location("jobsizing", REPO / "workflow" / "lib" / "jobsizing.py")
jobsizing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobsizing)


def _sweep(widths, input_sets=40):
    """Points of a Fig. 2a-like sweep: (name, walk key, cost ~ width)."""
    items = []
    for arch, bias, width, k in itertools.product(("dnn", "rnn"), ("uncorrelated", "static"), widths, range(input_sets)):
        name = f"arch-{arch}_bias-{bias}_n-{width}_in-{k}"
        items.append((name, (arch, bias, width, k), (5.0 if arch == "rnn" else 1.0) * width / 100))
    return items


def test_chunks_cover_every_point_once_within_the_limits():
    items = _sweep([10, 20, 50, 100, 200, 500, 1000])
    cost = {name: c for name, _, c in items}
    target, limit = 300.0, 50
    chunks = jobsizing.chunk(items, target, limit)
    names = [n for c in chunks for n in c]
    assert sorted(names) == sorted(cost) and len(names) == len(set(names))
    for c in chunks:
        assert len(c) <= limit
        # a chunk exceeds the hard limit only by its last point
        assert sum(cost[n] for n in c[:-1]) < jobsizing.HARD_LIMIT * target
    # chunks average about the target (anchors at rate cost/target + 1/limit per point)
    mean = sum(cost.values()) / len(chunks)
    assert 0.4 * target < mean < 1.2 * target, mean


def test_chunking_is_deterministic():
    items = _sweep([10, 50, 200])
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    assert jobsizing.chunk(items, 100.0, 40) == jobsizing.chunk(shuffled, 100.0, 40)
    ids = [jobsizing.chunk_id(c) for c in jobsizing.chunk(items, 100.0, 40)]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert jobsizing.chunk_id(["b", "a"]) == jobsizing.chunk_id(["a", "b"])


@pytest.mark.parametrize("new_width", [30, 150, 2000])
def test_adding_a_grid_value_keeps_most_chunks(new_width):
    """Content-defined boundaries: a new width changes only the chunks around the inserted
    points; most chunks keep exactly their membership (and id)."""
    widths = [10, 20, 50, 100, 200, 500, 1000]
    before = jobsizing.chunk(_sweep(widths), 300.0, 60)
    after = jobsizing.chunk(_sweep(sorted(widths + [new_width])), 300.0, 60)
    old = {frozenset(c) for c in before}
    kept = sum(frozenset(c) in old for c in after)
    new_points = {n for n, _, _ in _sweep([new_width])}
    # chunks holding already-finished points whose membership changed: they rerun (cheaply:
    # their finished points are skipped).  The new points are inserted as 4 runs, one per
    # (arch, bias); each run disturbs about the chunk it lands in.
    disturbed = [c for c in after if frozenset(c) not in old and set(c) - new_points]
    assert kept >= 0.75 * len(before), (kept, len(before), len(after))
    assert len(disturbed) <= 3 * 4, (len(disturbed), len(after))


def test_point_limit_alone():
    items = [(f"p{i:03d}", i, 0.0) for i in range(100)]
    chunks = jobsizing.chunk(items, math.inf, 10)
    assert all(len(c) <= 10 for c in chunks) and sum(map(len, chunks)) == 100
    assert 3 <= len(chunks) <= 40


def test_bad_arguments():
    with pytest.raises(ValueError, match="target"):
        jobsizing.chunk([("a", 0, 1.0)], 0.0, 3)
    with pytest.raises(ValueError, match="max_items"):
        jobsizing.chunk([("a", 0, 1.0)], 1.0, 0)
    with pytest.raises(ValueError, match="unique"):
        jobsizing.chunk([("a", 0, 1.0), ("a", 1, 1.0)], 1.0, 3)
    with pytest.raises(ValueError, match="a: cost"):
        jobsizing.chunk([("a", 0, float("nan"))], 1.0, 3)


def test_runtime_minutes():
    # 2 h of single-core work on 4 ranks, safety 3, margin 5 min: 3 * 30 + 5 = 95 min
    assert jobsizing.runtime_minutes(7200.0, 4, 3.0, 5.0) == 95
    assert jobsizing.runtime_minutes(7201.0, 4, 3.0, 5.0) == 96  # rounded up
    assert jobsizing.runtime_minutes(0.0, 2, 3.0, 0.0) == 1  # never below a minute
    assert jobsizing.runtime_minutes(600.0, 1, 1.0, 2.5) == 13


# --------------------------------------------------------------------------- the real configs


def test_paper_profile_plans_at_most_100_jobs(tmp_path):
    """Issue 8: `snakemake -n --config statistics=paper` plans at most 100 jobs in all
    (were 9,930 with one job per point); the default run plans few too."""
    counts = {}
    for statistics in ("reduced", "paper"):
        proc = run_snakemake(["-n", "--quiet", "rules", "--configfile", REPO / "config.yaml",
                              "--config", f"statistics={statistics}"], cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:]
        counts[statistics] = family_counts(proc.stdout)
        total = int(re.search(r"^total\s+(\d+)$", proc.stdout, flags=re.M).group(1))
        assert total == sum(job_stats(proc.stdout).values())
        counts[statistics]["total"] = total
    print(counts)
    assert counts["paper"]["total"] <= 100, counts["paper"]
    # The job count follows the experiments, not their points: one comparison and one plot job
    # per experiment, at most one theory job and at most two simulation jobs (campaign chunks
    # plus HMC chains) per experiment in the default run.
    experiments = [e for e in yaml.safe_load((REPO / "config.yaml").read_text())["experiments"].values()
                   if e.get("enabled", True)]
    kinds = collections.Counter(e["kind"] for e in experiments)
    for statistics, count in counts.items():
        for kind, n in kinds.items():
            compare = "phase_diagram" if kind == "phase_diagram" else f"compare_{kind}"
            assert count.get(compare) == n and count.get(f"plot_{kind}") == n, (statistics, kind, count)
        assert count["theory"] <= len(experiments), (statistics, count)
        assert count["claims"] == count["all"] == 1, (statistics, count)
    reduced = counts["reduced"]
    assert reduced["campaign"] + reduced.get("hmc_proportional", 0) <= 2 * len(experiments), reduced
    assert counts["paper"]["campaign"] > reduced["campaign"]
    assert not (tmp_path / "results").exists()


def test_derived_runtime_reaches_the_jobs(tmp_path):
    """Without resources.simulation.runtime each campaign job asks for the runtime derived from its
    chunk's predicted cost; with it, every job asks for that value."""
    config = load_tiny_config()
    sim = config["resources"]["simulation"]
    sim.pop("runtime", None)
    sim.update(runtime_safety=2.0, runtime_margin=7)
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "a.yaml", config)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    runtimes = re.findall(r"rule campaign_\w+:.*?resources: [^\n]*runtime=(\d+)", proc.stdout, flags=re.S)
    # the tiny points take well under a minute: the margin (plus one rounded-up minute) is the runtime
    assert runtimes and all(int(r) in (7, 8) for r in runtimes), runtimes
    sim["runtime"] = 42
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "b.yaml", config)], cwd=tmp_path)
    runtimes = re.findall(r"rule campaign_\w+:.*?resources: [^\n]*runtime=(\d+)", proc.stdout, flags=re.S)
    assert runtimes and set(runtimes) == {"42"}, runtimes
