"""Config validation and dry runs of the workflow (fast: no job is executed)."""

import copy

import pytest
import yaml

from test_workflow_helpers import REPO, family_counts, load_tiny_config, run_snakemake, write_config


def _job_counts(output):
    return family_counts(output)


def _campaign_points(output):
    """Point names of the campaign jobs of a dry run (their sim outputs)."""
    import re

    return {m for m in re.findall(r"results/\w+/sim/([^,\s]+)\.h5 \(update\)", output)}


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
        for rule in ("campaign", "theory", "compare_kernel", "compare_mmd",
                     "compare_fluctuations", "compare_input_propagation", "compare_instability", "plot_kernel",
                     "plot_mmd", "plot_fluctuations", "plot_input_propagation", "plot_instability",
                     "phase_diagram", "plot_phase_diagram", "claims", "all"):
            assert counts.get(rule, 0) >= 1, (rule, counts)
        assert counts["campaign"] >= 1 and counts["theory"] >= 1


def test_paper_statistics_dry_run(tmp_path):
    """`--config statistics=paper` merges the paper overrides: more points, same rules."""
    reduced = run_snakemake(["-n", "--configfile", REPO / "config.yaml"], cwd=tmp_path, timeout=300)
    paper = run_snakemake(["-n", "--configfile", REPO / "config.yaml", "--config", "statistics=paper"],
                          cwd=tmp_path, timeout=300)
    assert reduced.returncode == 0 and paper.returncode == 0, paper.stdout[-4000:]
    n_reduced = len(_campaign_points(reduced.stdout))
    n_paper = len(_campaign_points(paper.stdout))
    assert n_paper > n_reduced
    assert not (tmp_path / "results").exists()


def test_lint_only_deployment_warnings():
    """`snakemake --lint` reports nothing but the conda/container recommendation."""
    proc = run_snakemake(["--lint"], cwd=REPO, timeout=300)
    lints = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("* ")]
    assert lints, proc.stdout[-3000:]  # the recommendation is expected for shell/script rules
    assert all(line.startswith("* Specify a conda environment or container") for line in lints), lints


def test_paper_overrides_are_validated(tmp_path):
    """A bad value inside a `paper:` block is rejected when statistics=paper."""
    config = load_tiny_config()
    config["experiments"]["mmd"]["paper"] = {"realizations": 1}
    path = write_config(tmp_path / "cfg.yaml", config)
    assert run_snakemake(["-n", "--configfile", path], cwd=tmp_path).returncode == 0
    proc = run_snakemake(["-n", "--configfile", path, "--config", "statistics=paper"], cwd=tmp_path)
    _assert_one_line_error(proc, "experiments.mmd.realizations", "1 is less than the minimum of 2", "paper:")


def test_point_names_are_stable_and_readable(tmp_path):
    """Adding a width only adds points; names carry the parameters."""
    config = load_tiny_config()
    only = {"mmd": copy.deepcopy(config["experiments"]["mmd"])}
    config["experiments"] = only
    first = run_snakemake(["-n", "--configfile", write_config(tmp_path / "a.yaml", config)], cwd=tmp_path)
    config["experiments"]["mmd"]["grid"]["width"] = [8, 16, 32]
    second = run_snakemake(["-n", "--configfile", write_config(tmp_path / "b.yaml", config)], cwd=tmp_path)
    points = [_campaign_points(p.stdout) for p in (first, second)]
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


# --------------------------------------------------------------------------- issue 7: no late or silent config errors


def _error_lines(proc):
    """Non-empty output lines of a failed run (stdout and stderr are merged by run_snakemake)."""
    return [line for line in proc.stdout.splitlines() if line.strip()]


def _assert_one_line_error(proc, key, *texts):
    """Bad input: exit code 2, one line that names the key, no traceback, nothing planned."""
    lines = _error_lines(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-3000:])
    assert len(lines) == 1, proc.stdout[-3000:]
    assert lines[0].startswith(f"Error in config: {key}: "), lines[0]
    for text in texts:
        assert text in lines[0], (text, lines[0])


def test_nearly_equal_grid_values_stay_distinct_points(tmp_path):
    """g2 = 1.6 and 1.600001 are two points, and the point named g2-1.6 holds exactly 1.6
    (%g names merged them into one point holding 1.600001)."""
    config = load_tiny_config()
    exp = copy.deepcopy(config["experiments"]["mmd"])
    exp["grid"].update(arch=["dnn"], width=[8], g2=[1.6, 1.600001])
    exp["input_sets"] = 1
    config["experiments"] = {"mmd": exp}
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "near.yaml", config)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    points = _campaign_points(proc.stdout)
    assert points == {f"arch-dnn_bias-uncorrelated_act-relu_n-8_A-3_g2-{g}_s2-0.2_in-0" for g in ("1.6", "1.600001")}
    # run the theory job (it writes the chunk file) and check each spec holds the value its name says
    import glob
    import json
    import re

    theory_rule = re.search(r"rule (theory_mmd_[0-9a-f]{8}):", proc.stdout).group(1)
    run_snakemake(["--cores", "1", "--configfile", "near.yaml", "--until", theory_rule], cwd=tmp_path, check=True)
    (chunk,) = glob.glob(str(tmp_path / "results" / "mmd" / "chunks" / "theory-*.json"))
    specs = {p["name"]: p["spec"] for p in json.loads(open(chunk).read())["points"]}
    assert set(specs) == points
    for p, spec in specs.items():
        assert repr(spec["prior"]["g2"]) == p.split("_g2-")[1].split("_")[0], (p, spec["prior"]["g2"])


NON_FINITE = {
    "prior.sigma2": (lambda c: c["experiments"]["mmd"]["prior"].__setitem__("sigma2", float("nan")),
                     "experiments.mmd.prior.sigma2"),
    "prior.g2_in": (lambda c: c["experiments"]["mmd"]["prior"].__setitem__("g2_in", float("inf")),
                    "experiments.mmd.prior.g2_in"),
    "grid.g2": (lambda c: c["experiments"]["kernel"]["grid"].__setitem__("g2", [1.6, float("inf")]),
                "experiments.kernel.grid.g2[1]"),
    "inputs.mean": (lambda c: c["experiments"]["kernel"]["inputs"].__setitem__("mean", float("nan")),
                    "experiments.kernel.inputs.mean"),
    "inputs.std": (lambda c: c["experiments"]["fluct"]["inputs"].__setitem__("std", float("inf")),
                   "experiments.fluct.inputs.std"),
    "mmd_lengthscale": (lambda c: c["comparison"].__setitem__("mmd_lengthscale", float("nan")),
                        "comparison.mmd_lengthscale"),
    "phase_diagram.g2": (lambda c: c["experiments"]["phase"]["phase_diagram"]["g2"].__setitem__(1, float("inf")),
                         "experiments.phase.phase_diagram.g2[1]"),
    "phase_diagram.sigma2": (lambda c: c["experiments"]["phase"]["phase_diagram"]["sigma2"].__setitem__(0, float("nan")),
                             "experiments.phase.phase_diagram.sigma2[0]"),
    "paper block": (lambda c: c["experiments"]["mmd"].__setitem__("paper", {"grid": {"g2": [float("nan")]}}),
                    "experiments.mmd.paper.grid.g2[0]"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_rejected_before_planning(case, tmp_path):
    """.nan / .inf anywhere in the config stop the run before any job, naming the key
    (they passed the schema and the dry run and failed only at job time)."""
    modify, key = NON_FINITE[case]
    config = load_tiny_config()
    modify(config)
    path = write_config(tmp_path / "bad.yaml", config)
    assert (".nan" in path.read_text()) or (".inf" in path.read_text())
    proc = run_snakemake(["-n", "--configfile", path], cwd=tmp_path)
    _assert_one_line_error(proc, key, "not a finite number")
    assert not (tmp_path / "results").exists()


def _set(path, value):
    def modify(config):
        node = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return modify


ONE_LINE_ERRORS = {
    "count is a string": (_set(["experiments", "mmd", "inputs", "count"], "three"),
                          "experiments.mmd.inputs.count", ["'three' is not of type 'integer'"]),
    "negative seed": (_set(["experiments", "mmd", "seed"], -1), "experiments.mmd.seed", ["-1 is less than the minimum of 0"]),
    "seed 2**63": (_set(["experiments", "mmd", "seed"], 2**63), "experiments.mmd.seed",
                   [f"{2**63} is greater than the maximum of {2**63 - 1}"]),
    "input seed 2**63": (_set(["experiments", "kernel", "inputs", "seed"], 2**63), "experiments.kernel.inputs.seed",
                         ["greater than the maximum"]),
    "input seed + input sets overflows": (_set(["experiments", "mmd", "inputs", "seed"], 2**63 - 1),
                                          "experiments.mmd.inputs.seed", ["input_sets", str(2**63 - 1)]),
    "retired noise floor repetitions": (_set(["comparison", "noise_floor_repetitions"], 5),
                                        "comparison.noise_floor_repetitions", ["retired", "mmd2_null_moments"]),
    "retired noise floor seed": (_set(["comparison", "noise_floor_seed"], 2022), "comparison.noise_floor_seed",
                                 ["retired", "delete this key"]),
    "negative variance": (_set(["experiments", "mmd", "prior", "sigma2"], -0.2), "experiments.mmd.prior.sigma2",
                          ["-0.2 is less than the minimum of 0"]),
    "unknown activation": (_set(["experiments", "kernel", "grid", "activation"], ["softplus"]),
                           "experiments.kernel.grid.activation[0]", ["'softplus' does not match", "relu|erf|linear|tanh|"]),
    "unimportable activation": (_set(["experiments", "kernel", "grid", "activation"], ["os:no_such_function"]),
                                "experiments.kernel.grid.activation", ["no_such_function"]),
    "activation numba cannot compile": (_set(["experiments", "kernel", "grid", "activation"], ["scipy.special:expit"]),
                                        "experiments.kernel.grid.activation", ["numba-jittable", "numba.njit failed"]),
    "empty grid": (_set(["experiments", "fluct", "grid", "width"], []), "experiments.fluct.grid.width",
                   ["should be non-empty"]),
    "realizations < 2": (_set(["experiments", "instab", "realizations"], 1), "experiments.instab.realizations",
                         ["1 is less than the minimum of 2"]),
    "negative g2 in grid": (_set(["experiments", "kernel", "grid", "g2"], [-1.0]), "experiments.kernel.grid.g2[0]",
                            ["less than the minimum of 0"]),
    "unknown key": (_set(["experiments", "mmd", "widths"], [8]), "experiments.mmd",
                    ["'widths' was unexpected"]),
    "missing key": (lambda c: c["experiments"]["mmd"]["inputs"].pop("dim"), "experiments.mmd.inputs",
                    ["'dim' is a required property"]),
    "job_minutes 0": (_set(["resources", "simulation", "job_minutes"], 0), "resources.simulation.job_minutes",
                      ["0 is less than or equal to the minimum of 0"]),
    "max_points_per_job 0": (_set(["resources", "simulation", "max_points_per_job"], 0),
                             "resources.simulation.max_points_per_job", ["0 is less than the minimum of 1"]),
    "max_points_per_job float": (_set(["resources", "simulation", "max_points_per_job"], 2.5),
                                 "resources.simulation.max_points_per_job", ["2.5 is not of type 'integer'"]),
    "runtime_safety < 1": (_set(["resources", "simulation", "runtime_safety"], 0.5),
                           "resources.simulation.runtime_safety", ["0.5 is less than the minimum of 1"]),
    "negative runtime_margin": (_set(["resources", "simulation", "runtime_margin"], -1),
                                "resources.simulation.runtime_margin", ["-1 is less than the minimum of 0"]),
    "unknown grouping option": (_set(["resources", "simulation", "points_per_job"], 5), "resources.simulation",
                                ["'points_per_job' was unexpected"]),
    "theory max_points_per_job 0": (_set(["resources", "theory", "max_points_per_job"], 0),
                                    "resources.theory.max_points_per_job", ["0 is less than the minimum of 1"]),
    "cross-field check": (_set(["experiments", "instab", "analysis", "max_lag"], 20), "experiments.instab.grid.depth",
                          ["reference_step + max_lag = 25"]),
}


@pytest.mark.parametrize("case", sorted(ONE_LINE_ERRORS))
def test_bad_config_is_one_line_naming_the_key(case, tmp_path):
    modify, key, texts = ONE_LINE_ERRORS[case]
    config = load_tiny_config()
    modify(config)
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "bad.yaml", config)], cwd=tmp_path)
    _assert_one_line_error(proc, key, *texts)
    assert not (tmp_path / "results").exists()


def test_activation_that_is_not_an_activation_is_rejected_up_front(tmp_path):
    """`os:getcwd` imports fine but is no activation: the up-front activation check must stop the run."""
    config = load_tiny_config()
    config["experiments"]["kernel"]["grid"]["activation"] = ["os:getcwd"]
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "bad.yaml", config)], cwd=tmp_path)
    _assert_one_line_error(proc, "experiments.kernel.grid.activation", "os:getcwd")


def test_python_tag_in_config_yaml_gets_a_correct_message(tmp_path):
    """snakemake reports any YAML error as 'not valid JSON or YAML ... tab indentation';
    for config.yaml the workflow reports the real problem and where it is."""
    text = (REPO / "tests" / "data" / "tiny-config.yaml").read_text()
    text = text.replace("store: results/store", "store: !!python/object/apply:os.getcwd []")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "!!python" in t)
    (tmp_path / "config.yaml").write_text(text)
    proc = run_snakemake(["-n"], cwd=tmp_path)
    _assert_one_line_error(proc, f"config.yaml, line {line}, column 8", "python/object/apply:os.getcwd",
                           "Python tags are not allowed")
    assert "tab indentation" not in proc.stdout


def test_schema_seed_limit_is_the_point_spec_limit():
    """One seed limit: the schema's maximum is what point specs accept (theory.inputs.SEED_LIMIT - 1),
    so a seed the config admits never fails later at job time."""
    from theory.inputs import SEED_LIMIT

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["seed"]["maximum"] == SEED_LIMIT - 1
