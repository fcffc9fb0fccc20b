# Configuration checks: everything that can be wrong in a config is found here,
# before any job is planned, and reported as ONE line naming the key:
#
#   Error in config: <key>: <problem>
#
# with exit code 2 (bad input; 1 is kept for runtime failures).  Included
# first by the root Snakefile: check_config_syntax() runs before the
# `configfile:` directive, checked_config() right after it.

import copy
import json
import math
import os
import sys

import yaml
from snakemake.utils import validate

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")


def config_error(key, problem):
    """Stop with one line naming the config key, exit code 2 (bad input)."""
    print(f"Error in config: {key}: {problem}", file=sys.stderr, flush=True)
    sys.exit(2)


def key_path(parts):
    """Dotted key of a path into the config: ('experiments', 'mmd', 'grid', 'g2', 1) -> 'experiments.mmd.grid.g2[1]'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def _one_line(text):
    return " ".join(str(text).split())


def check_config_syntax(path):
    """Report a config file that does not parse with the real reason and position.

    Snakemake turns every YAML error into "not valid JSON or YAML ... tab
    indentation" (snakemake/common/configfile.py), also for, e.g., a Python tag
    such as ``!!python/object/apply:os.system``.  This parses the file the way
    Snakemake does (JSON, else YAML with PyYAML's FullLoader, as yte does)
    and names the line instead.  Files given with --configfile are parsed by
    Snakemake before the Snakefile runs, so only the default config.yaml can be
    checked here.
    """
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        json.loads(text)
        return
    except ValueError:
        pass
    try:
        yaml.load(text, Loader=yaml.FullLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        hint = " (Python tags are not allowed in a config file)" if "python/" in str(problem) else ""
        config_error(where, f"not valid YAML: {_one_line(problem)}{hint}")


def check_finite(node, parts=()):
    """Reject NaN and infinities anywhere in the config (YAML .nan, .inf, -.inf).

    JSON Schema's `number` accepts them and `minimum` does not catch NaN, so
    without this they pass the schema and the dry run and fail only at job time.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, (*parts, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_finite(value, (*parts, i))
    elif isinstance(node, float) and not math.isfinite(node):
        config_error(key_path(parts), f"{node!r} is not a finite number")


# Keys that were removed from the config: (path, why).  A config that still sets
# one stops with a one-line error naming it (exit 2), rather than the schema's
# generic "was unexpected".
RETIRED_KEYS = [
    (("comparison", "noise_floor_repetitions"),
     "retired: the MMD^2 noise floor is now exact (theory.mmd.mmd2_null_moments), delete this key"),
    (("comparison", "noise_floor_seed"),
     "retired: the MMD^2 noise floor is now exact (theory.mmd.mmd2_null_moments), delete this key"),
]


def check_retired(cfg):
    """Stop with one line naming a retired key that the config still sets."""
    for path, why in RETIRED_KEYS:
        node = cfg
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            config_error(key_path(path), why)


def check_schema(cfg, after=""):
    """Validate against the schema (filling in defaults); one line naming the key on failure."""
    import jsonschema

    try:
        validate(cfg, SCHEMA)
    except Exception as exc:  # snakemake wraps the jsonschema.ValidationError in a WorkflowError
        cause = next((a for a in exc.args if isinstance(a, jsonschema.ValidationError)), exc.__context__)
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        config_error(key_path(cause.absolute_path), _one_line(cause.message) + after)


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
    check_schema(merged, after=" (after merging the experiments' paper: blocks, statistics: paper)")
    return merged


def check_activation(key, activation):
    """Resolve an import-path activation now, so a typo or a non-activation fails before any job starts.

    theory resolves and validates it, and mcsim checks that Numba compiles it (one-line
    ValueError each); this only names the key.
    """
    if ":" in activation:
        from mcsim._kernelsets import jit_scalar
        from theory.activations import get_activation

        try:
            act = get_activation(activation).validated()  # the theory's vectorised function
            jit_scalar(act.scalar)  # the samplers' Numba-compiled scalar function
        except ValueError as exc:
            config_error(key, _one_line(exc))


with open(SCHEMA, encoding="utf-8") as _fh:
    SEED_MAX = yaml.safe_load(_fh)["$defs"]["seed"]["maximum"]
"""Largest seed (the schema's $defs.seed.maximum, 2**63 - 1, as theory.spec.check_seed accepts)."""


def check_experiment(name, exp):
    """Cross-field checks the JSON schema cannot express."""
    for act in exp["grid"]["activation"]:
        check_activation(f"experiments.{name}.grid.activation", act)
    if exp["inputs"]["seed"] + exp["input_sets"] - 1 > SEED_MAX:
        config_error(
            f"experiments.{name}.inputs.seed",
            f"input set k uses seed inputs.seed + k, so inputs.seed + input_sets - 1 must be <= {SEED_MAX}, "
            f"got {exp['inputs']['seed']} + {exp['input_sets']} - 1",
        )
    if exp["kind"] == "instability":
        need = exp["analysis"]["reference_step"] + exp["analysis"]["max_lag"]
        bad = [A for A in exp["grid"]["depth"] if A < need]
        if bad:
            config_error(
                f"experiments.{name}.grid.depth",
                f"instability needs depth >= reference_step + max_lag = {need}, got {bad}",
            )
    if exp["kind"] == "kernel":
        bad = [b for b in exp["analysis"]["cross_steps"] if b > min(exp["grid"]["depth"]) + 1]
        if bad:
            config_error(
                f"experiments.{name}.analysis.cross_steps",
                f"steps {bad} exceed depth + 1 = {min(exp['grid']['depth']) + 1}",
            )
    if exp["kind"] == "posterior":
        task = exp["task"]
        if task["train"] >= exp["inputs"]["count"]:
            config_error(
                f"experiments.{name}.task.train",
                f"posterior needs at least one test pattern: train = {task['train']} must be < inputs.count = "
                f"{exp['inputs']['count']}",
            )
        if task["hidden_layer"] > min(exp["grid"]["depth"]):
            config_error(
                f"experiments.{name}.task.hidden_layer",
                f"must be a hidden layer 1..A, got {task['hidden_layer']} > min depth {min(exp['grid']['depth'])}",
            )
        if len(exp["grid"]["width"]) < 2:
            config_error(f"experiments.{name}.grid.width",
                         "posterior needs >= 2 widths (n Delta is extrapolated in 1/n)")
    if exp["kind"] in ("posterior_crosstime", "posterior_generalisation"):
        task = exp["task"]
        if len(exp["grid"]["width"]) < 2:
            config_error(f"experiments.{name}.grid.width",
                         f"{exp['kind']} needs >= 2 widths (n Delta is extrapolated in 1/n)")
        if exp["kind"] == "posterior_crosstime":
            if task["train"] > exp["inputs"]["count"]:
                config_error(f"experiments.{name}.task.train",
                             f"must be <= inputs.count = {exp['inputs']['count']}, got {task['train']}")
            if min(exp["grid"]["depth"]) < 2:
                config_error(f"experiments.{name}.grid.depth",
                             f"posterior_crosstime needs depth >= 2 (a pair a < b of hidden layers / steps), "
                             f"got {min(exp['grid']['depth'])}")
        else:
            if task["train"] >= exp["inputs"]["count"]:
                config_error(f"experiments.{name}.task.train",
                             f"posterior_generalisation needs at least one test pattern: train = {task['train']} "
                             f"must be < inputs.count = {exp['inputs']['count']}")
            if "xor" in task["kinds"] and exp["inputs"]["dim"] < 2:
                config_error(f"experiments.{name}.task.kinds",
                             f"the xor task needs inputs.dim >= 2, got {exp['inputs']['dim']}")
    if exp["kind"] == "input_propagation" and exp["input_sets"] < 2:
        config_error(f"experiments.{name}.input_sets", f"input_propagation needs >= 2 input sets, got {exp['input_sets']}")


def check_proportional(name, prop):
    """Kind proportional: every alpha n is a whole number of patterns P >= 1."""
    for n in prop["width"]:
        for alpha in prop["alpha"]:
            P = alpha * n
            if abs(P - round(P)) > 1e-9 or round(P) < 1:
                config_error(f"experiments.{name}.proportional.alpha",
                             f"alpha n must be a whole number of patterns >= 1, got alpha = {alpha} at n = {n}")


def checked_config(cfg):
    """The validated config (defaults filled in, `statistics: paper` applied) or a one-line error."""
    check_finite(cfg)
    check_retired(cfg)
    check_schema(cfg)
    cfg = apply_statistics(cfg)
    for name, exp in cfg["experiments"].items():
        if not exp["enabled"]:
            continue
        if exp["kind"] == "phase_diagram":
            check_activation(f"experiments.{name}.phase_diagram.activation", exp["phase_diagram"]["activation"])
        elif exp["kind"] == "proportional":
            check_proportional(name, exp["proportional"])
        else:
            check_experiment(name, exp)
    return cfg
