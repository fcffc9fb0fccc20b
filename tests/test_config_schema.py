"""Config validation and dry runs of the workflow (fast: no job is executed)."""

import copy

import pytest
import yaml

from test_workflow_helpers import REPO, dry_run_jobs, load_tiny_config, run_snakemake, write_config


def _job_counts(output):
    counts = {}
    for rule, _ in dry_run_jobs(output):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def test_default_config_dry_run_creates_no_results():
    """`snakemake -n` on the repository's config.yaml plans every rule and writes no results."""
    results = REPO / "results"
    before = sorted(p for p in results.rglob("*")) if results.exists() else None
    proc = run_snakemake(["-n"], cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    after = sorted(p for p in results.rglob("*")) if results.exists() else None
    assert after == before
    if before is None:  # a fresh checkout: every rule must be planned
        counts = _job_counts(proc.stdout)
        for rule in ("point_spec", "theory_spec", "simulate_point", "theory_point", "compare_kernel", "compare_mmd",
                     "compare_fluctuations", "compare_input_propagation", "compare_instability", "plot_kernel",
                     "plot_mmd", "plot_fluctuations", "plot_input_propagation", "plot_instability",
                     "phase_diagram", "plot_phase_diagram", "all"):
            assert counts.get(rule, 0) >= 1, (rule, counts)
        assert counts["simulate_point"] == counts["theory_point"] == counts["point_spec"]


def test_paper_statistics_dry_run(tmp_path):
    """`--config statistics=paper` merges the paper overrides: more points, same rules."""
    reduced = run_snakemake(["-n", "--configfile", REPO / "config.yaml"], cwd=tmp_path, timeout=300)
    paper = run_snakemake(["-n", "--configfile", REPO / "config.yaml", "--config", "statistics=paper"],
                          cwd=tmp_path, timeout=300)
    assert reduced.returncode == 0 and paper.returncode == 0, paper.stdout[-4000:]
    n_reduced = _job_counts(reduced.stdout)["simulate_point"]
    n_paper = _job_counts(paper.stdout)["simulate_point"]
    assert n_paper > n_reduced
    assert not (tmp_path / "results").exists()


def test_lint_only_deployment_warnings():
    """`snakemake --lint` reports nothing but the conda/container recommendation."""
    proc = run_snakemake(["--lint"], cwd=REPO, timeout=300)
    lints = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("* ")]
    assert lints, proc.stdout[-3000:]  # the recommendation is expected for shell/script rules
    assert all(line.startswith("* Specify a conda environment or container") for line in lints), lints


def _bad(modify):
    config = load_tiny_config()
    modify(config["experiments"])
    return config


BAD_CONFIGS = {
    "unknown activation": (
        lambda e: e["kernel"]["grid"].__setitem__("activation", ["softplus"]),
        ["['activation']", "'softplus' does not match", "relu|erf|linear|tanh|", ":"],
    ),
    "negative variance": (
        lambda e: e["mmd"]["prior"].__setitem__("sigma2", -0.2),
        ["['sigma2']", "-0.2 is less than the minimum of 0"],
    ),
    "empty grid": (
        lambda e: e["fluct"]["grid"].__setitem__("width", []),
        ["['width']", "should be non-empty"],
    ),
    "realizations < 2": (
        lambda e: e["instab"].__setitem__("realizations", 1),
        ["['realizations']", "1 is less than the minimum of 2"],
    ),
    "negative g2 in grid": (
        lambda e: e["kernel"]["grid"].__setitem__("g2", [-1.0]),
        ["['g2']", "less than the minimum of 0"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_schema_rejects_bad_config_naming_the_key(case, tmp_path):
    modify, expected = BAD_CONFIGS[case]
    config_path = write_config(tmp_path / "bad.yaml", _bad(modify))
    proc = run_snakemake(["-n", "--configfile", config_path], cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "Error validating config file" in proc.stdout, proc.stdout[-3000:]
    for text in expected:
        assert text in proc.stdout, (text, proc.stdout[-3000:])
    assert "Building DAG" not in proc.stdout  # rejected before any job is planned
    assert not (tmp_path / "results").exists()


def test_cross_field_check_names_the_key(tmp_path):
    """instability needs depth >= reference_step + max_lag (checked after the schema)."""
    config = load_tiny_config()
    config["experiments"]["instab"]["analysis"]["max_lag"] = 20
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "bad.yaml", config)], cwd=tmp_path)
    assert proc.returncode != 0
    assert "experiments.instab.grid.depth" in proc.stdout, proc.stdout[-3000:]


def test_paper_overrides_are_validated(tmp_path):
    """A bad value inside a `paper:` block is rejected when statistics=paper."""
    config = load_tiny_config()
    config["experiments"]["mmd"]["paper"] = {"realizations": 1}
    path = write_config(tmp_path / "cfg.yaml", config)
    assert run_snakemake(["-n", "--configfile", path], cwd=tmp_path).returncode == 0
    proc = run_snakemake(["-n", "--configfile", path, "--config", "statistics=paper"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "['realizations']" in proc.stdout and "less than the minimum of 2" in proc.stdout, proc.stdout[-3000:]


def test_point_names_are_stable_and_readable(tmp_path):
    """Adding a width only adds points; names carry the parameters."""
    config = load_tiny_config()
    only = {"mmd": copy.deepcopy(config["experiments"]["mmd"])}
    config["experiments"] = only
    first = run_snakemake(["-n", "--configfile", write_config(tmp_path / "a.yaml", config)], cwd=tmp_path)
    config["experiments"]["mmd"]["grid"]["width"] = [8, 16, 32]
    second = run_snakemake(["-n", "--configfile", write_config(tmp_path / "b.yaml", config)], cwd=tmp_path)
    points = [{w["point"] for r, w in dry_run_jobs(p.stdout) if r == "simulate_point"} for p in (first, second)]
    assert points[0] < points[1]
    assert "arch-dnn_bias-uncorrelated_act-relu_n-8_A-3_g2-1.6_s2-0.2_in-0" in points[0]
    assert {p for p in points[1] - points[0]} == {
        f"arch-{arch}_bias-uncorrelated_act-relu_n-16_A-3_g2-1.6_s2-0.2_in-{k}" for arch in ("dnn", "rnn") for k in (0, 1)
    }


def test_every_schema_option_is_documented():
    """Every property of the config schema carries a description (the schema is the reference)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{path}.{name}")
                walk(sub, f"{path}.{name}")
            for key in ("$defs", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    for name, sub in (node[key].items() if key == "$defs" else [("*", node[key])]):
                        walk(sub, f"{path}.{name}")

    walk(schema, "config")
    assert not missing, missing


def test_tiny_config_is_valid_and_complete():
    """The tiny config (also used by the SLURM test) has one experiment of every kind."""
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = load_tiny_config()
    jsonschema.Draft202012Validator(schema).validate(config)
    kinds = {e["kind"] for e in config["experiments"].values()}
    assert kinds == {"kernel", "mmd", "fluctuations", "input_propagation", "instability", "phase_diagram"}
