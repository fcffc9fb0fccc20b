"""The generated per-kind rules and the claims rule (fast: dry runs and a seconds-long theory-only run)."""

import re

from test_workflow_helpers import dry_run_jobs, family_counts, load_tiny_config, run_snakemake, write_config

KINDS = ("kernel", "mmd", "fluctuations", "input_propagation", "instability")

# The jobs of `snakemake -n` on the tiny config per rule family: one campaign and one
# theory job per simulation experiment (its 2-8 points fit in one chunk), then one
# comparison and plot per experiment, the claims (issue 8: 24 jobs, were 84).
TINY_JOBS = {
    "campaign": 5, "theory": 5, "phase_diagram": 1,
    **{f"compare_{k}": 1 for k in KINDS}, **{f"plot_{k}": 1 for k in KINDS}, "plot_phase_diagram": 1,
    "claims": 1, "all": 1,
}


def _dry_run(tmp_path, config, *extra):
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "cfg.yaml", config), *extra], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def test_tiny_dry_run_job_list(tmp_path):
    out = _dry_run(tmp_path, load_tiny_config())
    assert family_counts(out) == TINY_JOBS
    # the job list agrees with the job stats table
    assert len(dry_run_jobs(out)) == sum(TINY_JOBS.values())


def test_campaign_jobs_declare_every_point_and_their_chunk(tmp_path):
    """Each campaign/theory job declares its chunk file and every point file of its chunk as outputs,
    and the points of an experiment are covered exactly once."""
    config = load_tiny_config()
    config["resources"]["simulation"]["max_points_per_job"] = 3
    out = _dry_run(tmp_path, config)
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    seen = {"campaign": [], "theory": []}
    for block in blocks:
        m = re.match(r"rule (campaign|theory)_(\w+)_([0-9a-f]{8}):", block)
        if not m:
            continue
        family, exp, cid = m.groups()
        outputs = block.split("output: ")[1].split("\n")[0].split(", ")
        assert outputs[0] == f"results/{exp}/chunks/{'sim' if family == 'campaign' else 'theory'}-{cid}.json"
        points = [o.removesuffix(" (update)") for o in outputs[1:]]
        assert all(o.endswith(" (update)") for o in outputs[1:]), outputs
        assert all(p.startswith(f"results/{exp}/{'sim' if family == 'campaign' else 'theory'}/") for p in points)
        assert f"log: results/logs/{exp}/{family}-{cid}.log" in block
        if family == "campaign":
            assert len(points) <= 3
        seen[family] += points
    mmd = config["experiments"]["mmd"]
    n_mmd = len(mmd["grid"]["arch"]) * len(mmd["grid"]["width"]) * mmd["input_sets"]
    assert len([p for p in seen["campaign"] if p.startswith("results/mmd/")]) == n_mmd
    assert len(seen["campaign"]) == len(set(seen["campaign"])) == len(seen["theory"]) == len(set(seen["theory"]))
    assert sum(p.startswith("results/mmd/") for p in seen["campaign"]) == n_mmd


def test_generated_rules_have_their_own_outputs_and_logs(tmp_path):
    """Each compare_<kind>/plot_<kind> job writes its kind's table/figure and logs to its own file."""
    out = _dry_run(tmp_path, load_tiny_config(), "--printshellcmds")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    seen = set()
    for block in blocks:
        m = re.match(r"(?:local)?rule ((compare|plot)_(\w+)):", block)
        if not m:
            continue
        rule, step, kind = m.groups()
        exp = re.search(r"wildcards: exp=(\w+)", block).group(1)
        assert f"log: results/logs/{exp}/{rule}.log" in block, block
        if step == "compare":
            assert f"results/{exp}/tables/{kind}.csv" in block.split("output:")[1], block
        else:
            assert f"results/figures/{exp}.png" in block, block
        seen.add(rule)
    assert seen == {f"compare_{k}" for k in KINDS} | {f"plot_{k}" for k in KINDS + ("phase_diagram",)}


def test_phase_diagram_does_not_depend_on_statistics(tmp_path):
    """A theory-only run, then statistics=paper: nothing to do (the plot's params omit `statistics`)."""
    config = load_tiny_config()
    config["experiments"] = {"phase": config["experiments"]["phase"]}
    path = write_config(tmp_path / "phase.yaml", config)
    proc = run_snakemake(["--cores", "1", "--configfile", path], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert not (tmp_path / "results" / "claims.csv").exists()  # no simulation experiment: no claims
    config["statistics"] = "paper"
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "paper.yaml", config)], cwd=tmp_path)
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]


def test_claims_rule_reads_every_table(tmp_path):
    out = _dry_run(tmp_path, load_tiny_config())
    block = next(b for b in re.split(r"\n(?=(?:local)?rule \w+:)", out) if b.startswith("rule claims:"))
    inputs = block.split("input:")[1].split("\n")[0]
    for path in ("kernel/tables/kernel.csv", "mmd/tables/mmd_summary.csv", "fluct/tables/fluctuations.csv",
                 "inputs/tables/input_propagation.csv", "instab/tables/instability.csv"):
        assert f"results/{path}" in inputs, inputs
    assert "output: results/claims.csv, results/claims.json" in block


def _nested_mmd_config(nested=True):
    config = load_tiny_config()
    exp = dict(config["experiments"]["mmd"], grid=dict(config["experiments"]["mmd"]["grid"], width=[8], depth=[1, 3]),
               analysis={"nested_depths": nested})
    config["experiments"] = {"mmd": exp}
    return config


def test_nested_depths_simulate_only_the_deepest_grid_depth(tmp_path):
    """analysis.nested_depths (default for kind mmd): one simulation per (arch, ..., input set) at the deepest depth."""
    out = _dry_run(tmp_path, _nested_mmd_config())
    sims = set(re.findall(r"results/mmd/sim/(\S+?)\.h5", out))
    assert sims and all("_A-3_" in p for p in sims) and len(sims) == 2 * 2  # arch x input sets
    (tmp_path / "flat").mkdir()
    flat = set(re.findall(r"results/mmd/sim/(\S+?)\.h5", _dry_run(tmp_path / "flat", _nested_mmd_config(False))))
    assert len(flat) == 2 * 2 * 2 and any("_A-1_" in p for p in flat)
