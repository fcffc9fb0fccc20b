# Shared helpers: experiment expansion into named parameter points, point
# specs, target lists.  Pure bookkeeping (no numerics); included first by the
# root Snakefile after the config has been validated.

import copy
import itertools
import json
import os
import re

from snakemake.utils import validate

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")

# Observables requested from `mcsim run` per experiment kind.
OBSERVABLES = {
    "kernel": ["y", "chat"],
    "mmd": ["y"],
    "fluctuations": ["y", "caux_diag"],
    "input_propagation": ["caux_diag"],
    "instability": ["chat"],
}
SIM_KINDS = tuple(OBSERVABLES)
ALL_KINDS = SIM_KINDS + ("phase_diagram",)


def _deep_merge(base, override):
    """Return base with override merged in (dicts recursively, everything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_statistics(cfg):
    """Apply each experiment's `paper:` overrides when statistics == 'paper' and re-validate."""
    if cfg["statistics"] != "paper":
        return cfg
    merged = copy.deepcopy(cfg)
    for name, exp in cfg["experiments"].items():
        overrides = exp.get("paper", {})
        merged["experiments"][name] = _deep_merge({k: v for k, v in exp.items() if k != "paper"}, overrides)
        merged["experiments"][name]["paper"] = {}
    validate(merged, SCHEMA)
    return merged


def _fmt(value):
    """Stable short text of a number for point names (1.6 -> '1.6', 0.0 -> '0')."""
    return f"{float(value):g}"


def check_activation(key, activation):
    """Resolve an import-path activation now, so a typo fails before any job starts."""
    if ":" in activation:
        from theory.prior import activation_function

        try:
            activation_function(activation)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None


def check_experiment(name, exp):
    """Cross-field checks the JSON schema cannot express; raise ValueError naming the key."""
    for act in exp["grid"]["activation"]:
        check_activation(f"experiments.{name}.grid.activation", act)
    if exp["kind"] == "instability":
        need = exp["analysis"]["reference_step"] + exp["analysis"]["max_lag"]
        bad = [A for A in exp["grid"]["depth"] if A < need]
        if bad:
            raise ValueError(
                f"experiments.{name}.grid.depth: instability needs depth >= reference_step + max_lag = {need}, got {bad}"
            )
    if exp["kind"] == "kernel":
        bad = [b for b in exp["analysis"]["cross_steps"] if b > min(exp["grid"]["depth"]) + 1]
        if bad:
            raise ValueError(
                f"experiments.{name}.analysis.cross_steps: steps {bad} exceed depth + 1 = {min(exp['grid']['depth']) + 1}"
            )
    if exp["kind"] == "input_propagation" and exp["input_sets"] < 2:
        raise ValueError(f"experiments.{name}.input_sets: input_propagation needs >= 2 input sets, got {exp['input_sets']}")


def experiment_points(name, exp):
    """Expand one simulation experiment into its parameter points.

    Returns
    -------
    dict
        point name -> {"params": {...axis values...}, "spec": sim point spec dict,
        "theory_spec": theory point spec dict}.  Point names are built from the
        axis values only (never from realizations or list positions), so adding a
        grid value only adds points and raising realizations keeps names.
    """
    grid, prior_cfg, inputs_cfg = exp["grid"], exp["prior"], exp["inputs"]
    points = {}
    axes = itertools.product(
        grid["arch"], grid["bias"], grid["activation"], grid["width"], grid["depth"], grid["g2"], range(exp["input_sets"])
    )
    for arch, bias, act, width, depth, g2, input_set in axes:
        point = (
            f"arch-{arch}_bias-{bias}_act-{act.replace(':', '.')}_n-{width}_A-{depth}"
            f"_g2-{_fmt(g2)}_s2-{_fmt(prior_cfg['sigma2'])}_in-{input_set}"
        )
        prior = {
            "arch": arch,
            "depth": int(depth),
            "activation": act,
            "g2": float(g2),
            "sigma2": float(prior_cfg["sigma2"]),
            "g2_in": float(prior_cfg.get("g2_in", g2)),
            "bias": bias,
            "n_out": int(prior_cfg["n_out"]),
        }
        for key in ("g2_out", "sigma2_out"):
            if key in prior_cfg:
                prior[key] = float(prior_cfg[key])
        inputs = {
            "kind": "gaussian",
            "count": int(inputs_cfg["count"]),
            "dim": int(inputs_cfg["dim"]),
            "mean": float(inputs_cfg["mean"]),
            "std": float(inputs_cfg["std"]),
            "seed": int(inputs_cfg["seed"]) + input_set,
        }
        theory_spec = {"prior": prior, "inputs": inputs, "width": int(width), "seed": int(exp["seed"]), "method": exp["method"]}
        spec = dict(
            theory_spec,
            realizations=int(exp["realizations"]),
            block_size=int(exp["block_size"]),
            observables=OBSERVABLES[exp["kind"]],
            label=f"{name}/{point}",
        )
        params = {
            "arch": arch,
            "bias": bias,
            "activation": act,
            "width": int(width),
            "depth": int(depth),
            "g2": float(g2),
            "sigma2": float(prior_cfg["sigma2"]),
            "g2_in": prior["g2_in"],
            "input_set": input_set,
            "input_seed": inputs["seed"],
            "realizations": int(exp["realizations"]),
        }
        points[point] = {"params": params, "spec": spec, "theory_spec": theory_spec}
    return points


CONFIG = apply_statistics(config)
EXPERIMENTS = {name: exp for name, exp in CONFIG["experiments"].items() if exp["enabled"]}
for _name, _exp in EXPERIMENTS.items():
    if _exp["kind"] != "phase_diagram":
        check_experiment(_name, _exp)
    else:
        check_activation(f"experiments.{_name}.phase_diagram.activation", _exp["phase_diagram"]["activation"])
POINTS = {name: experiment_points(name, exp) for name, exp in EXPERIMENTS.items() if exp["kind"] in SIM_KINDS}
STORE = CONFIG["store"]
RES = CONFIG["resources"]
FORMATS = CONFIG["plots"]["formats"]
REPORT_FORMAT = "png" if "png" in FORMATS else FORMATS[0]


def experiments_of(kind):
    """Names of the enabled experiments of one kind."""
    return [name for name, exp in EXPERIMENTS.items() if exp["kind"] == kind]


def exp_regex(kind):
    """Wildcard constraint matching exactly the experiments of one kind (never matches if none)."""
    names = experiments_of(kind)
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def canonical(obj):
    """Canonical JSON text (sorted keys) of a spec; identical content -> identical text."""
    return json.dumps(obj, sort_keys=True, indent=1) + "\n"


def point_spec_text(wildcards):
    return canonical(POINTS[wildcards.exp][wildcards.point]["spec"])


def theory_spec_text(wildcards):
    return canonical(POINTS[wildcards.exp][wildcards.point]["theory_spec"])


def sim_files(wildcards):
    return [f"results/{wildcards.exp}/sim/{p}.h5" for p in POINTS[wildcards.exp]]


def theory_files(wildcards):
    return [f"results/{wildcards.exp}/theory/{p}.h5" for p in POINTS[wildcards.exp]]


def point_table(wildcards):
    """Canonical JSON: point name -> axis values, for the comparison scripts."""
    return json.dumps({p: d["params"] for p, d in POINTS[wildcards.exp].items()}, sort_keys=True)


def experiment_meta(wildcards):
    """Canonical JSON of the experiment parameters recorded in tables (no plotting options).

    Canonical (sorted keys) so that reordering keys in config.yaml does not
    trigger Snakemake's params rerun trigger.
    """
    exp = EXPERIMENTS[wildcards.exp]
    keep = ("kind", "title", "prior", "inputs", "input_sets", "grid", "realizations", "seed", "method", "analysis", "phase_diagram")
    meta = {"name": wildcards.exp, "statistics": CONFIG["statistics"], **{k: exp[k] for k in keep if k in exp}}
    return json.dumps(meta, sort_keys=True)


def table_path(exp):
    return f"results/{exp}/tables/{EXPERIMENTS[exp]['kind']}.csv"


def figure_paths(exp):
    return [f"results/figures/{exp}.{ext}" for ext in FORMATS]


def all_targets():
    targets = []
    for name, exp in EXPERIMENTS.items():
        if exp["kind"] != "phase_diagram":
            targets.append(table_path(name))
        targets.extend(figure_paths(name))
    return targets


wildcard_constraints:
    exp="[A-Za-z][A-Za-z0-9_]*",
    point="[^/]+",
