# Shared helpers: experiment expansion into named parameter points, point
# specs, target lists.  Pure bookkeeping (no numerics); included by the root
# Snakefile after config.smk has validated the config into CONFIG.

import importlib.util
import itertools
import json
import math
import os
import re

# Observables requested from `mcsim run` per experiment kind.
OBSERVABLES = {
    "kernel": ["y", "chat"],
    "mmd": ["y"],
    "fluctuations": ["y", "caux_diag"],
    "input_propagation": ["caux_diag"],
    "instability": ["chat"],
    "posterior": ["caux_readout", "chat_diag"],
    "posterior_crosstime": ["caux_readout", "chat"],
    "posterior_generalisation": ["caux_readout"],
}
SIM_KINDS = tuple(OBSERVABLES)
ALL_KINDS = SIM_KINDS + ("phase_diagram", "proportional")


def _fmt(value):
    """Lossless short text of a number for point names.

    ``%g`` when it reads back as the same float (1.6 -> '1.6', 0.0 -> '0',
    2.0 -> '2', as before), else the shortest round-trip text (``repr``:
    1.600001 -> '1.600001', not '1.6').  Every text reads back as its number,
    so distinct grid values always give distinct point names.
    """
    value = float(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def nested_depths(exp):
    """True if the experiment reads every grid depth out of one simulation at the deepest (kind mmd).

    ``analysis.nested_depths`` (default true) with more than one grid depth: a
    depth-a network is the first a+1 layers of the deepest one plus a readout,
    so the readouts after each depth (observable ``y_steps``) are exact samples
    at every depth, at the cost of the deepest simulation; depths then share
    realizations (their MMD^2 errors are correlated).
    """
    return exp["kind"] == "mmd" and exp["analysis"]["nested_depths"] and len(set(exp["grid"]["depth"])) > 1


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
    nested = nested_depths(exp)
    # nested readouts: one simulation at the deepest grid depth serves every depth (y_steps)
    sim_depths = [max(grid["depth"])] if nested else grid["depth"]
    observables = ["y_steps"] if nested else OBSERVABLES[exp["kind"]]
    axes = itertools.product(
        grid["arch"], grid["bias"], grid["activation"], grid["width"], sim_depths, grid["g2"], range(exp["input_sets"])
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
            observables=observables,
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
        if exp["kind"] == "mmd":  # depths read out from this simulation (nested readouts: every grid depth)
            params["depths"] = sorted(int(a) for a in grid["depth"]) if nested else [int(depth)]
        if nested:
            params["prior"] = prior  # theory.readout_kernels of the deepest network in the comparison
        points[point] = {"params": params, "spec": spec, "theory_spec": theory_spec}
    return points


EXPERIMENTS = {name: exp for name, exp in CONFIG["experiments"].items() if exp["enabled"]}
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


def sim_files(wildcards):
    return [sim_path(wildcards.exp, p) for p in POINTS[wildcards.exp]]


def theory_files(wildcards):
    return [theory_path(wildcards.exp, p) for p in POINTS[wildcards.exp]]


def point_table(wildcards):
    """Canonical JSON: point name -> axis values, for the comparison scripts."""
    return json.dumps({p: d["params"] for p, d in POINTS[wildcards.exp].items()}, sort_keys=True)


def experiment_meta(wildcards):
    """Canonical JSON of the experiment parameters recorded in tables (no plotting options).

    Canonical (sorted keys) so that reordering keys in config.yaml does not
    trigger Snakemake's params rerun trigger.
    """
    exp = EXPERIMENTS[wildcards.exp]
    keep = ("kind", "title", "prior", "inputs", "input_sets", "grid", "realizations", "seed", "method", "analysis",
            "phase_diagram", "task", "proportional")
    meta = {"name": wildcards.exp, "statistics": CONFIG["statistics"], **{k: exp[k] for k in keep if k in exp}}
    return json.dumps(meta, sort_keys=True)


def phase_diagram_meta(wildcards):
    """Canonical JSON of a theory-only phase-diagram experiment.

    Unlike :func:`experiment_meta` it omits ``statistics``: the diagram does not
    depend on it, so switching statistics must not replan its plot.
    """
    exp = EXPERIMENTS[wildcards.exp]
    meta = {"name": wildcards.exp, **{k: exp[k] for k in ("kind", "title", "phase_diagram") if k in exp}}
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
    if any(exp["kind"] in SIM_KINDS + ("proportional",) for exp in EXPERIMENTS.values()):
        targets.append("results/claims.csv")
    return targets


def claim_tables():
    """[(experiment, table kind, table path)] read by the claims rule.

    The table kind is the experiment kind (theory.claims.Claim.kind), except: the MMD
    *summary* table for kind mmd, and a posterior experiment's per-layer alignment table
    (posterior_layers.csv) as the second kind ``posterior_alignment`` (claim 9b).
    """
    out = []
    for name, exp in EXPERIMENTS.items():
        kind = exp["kind"]
        if kind == "mmd":
            out.append((name, kind, f"results/{name}/tables/mmd_summary.csv"))
        elif kind in SIM_KINDS or kind == "proportional":
            out.append((name, kind, table_path(name)))
        if kind == "posterior":
            out.append((name, "posterior_alignment", f"results/{name}/tables/posterior_layers.csv"))
    return out


CLAIMS_CSV = "results/claims.csv"


def print_claims(path=CLAIMS_CSV):
    """Print results/claims.csv compactly: one line per claim (and the reason of a failure)."""
    import csv
    import os

    if not os.path.exists(path):
        return
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    print(f"\nClaims of the paper on this run ({path}; statistics = {CONFIG['statistics']}):")
    for r in rows:
        value = "" if r["value"] == "nan" else f"{float(r['value']):.3g}"
        if value and r["se"] not in ("nan", "0.0", "0"):
            value += f" +- {float(r['se']):.2g}"
        print(f"  [{r['result'].upper():^13}] {r['id']:>2}  {r['claim']}" + (f": {value}" if value else ""))
        if r["result"] != "pass" and r["reason"]:
            print(f"  {'':15}     why: {r['reason']}")
    passed = sum(r["result"] == "pass" for r in rows)
    print(f"  {passed} of {len(rows)} claims pass.\n")


# --------------------------------------------------------------------------- job sizing
# Points are grouped into chunks per experiment (workflow/lib/jobsizing.py: content-defined,
# deterministic, stable when grid values are added); one campaign job samples a chunk
# (`mcsim campaign`), one theory job predicts a chunk (`theory predict-many`).


def _load_jobsizing():
    path = os.path.join(workflow.basedir, "workflow", "lib", "jobsizing.py")
    spec = importlib.util.spec_from_file_location("workflow_jobsizing", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


JOBSIZING = _load_jobsizing()
SIM_RES = RES["simulation"]
PROGRESS_INTERVAL = SIM_RES["progress_interval"]
# Lines of a campaign job's stderr shown on the terminal (all of them go to its log):
# the progress lines ("mcsim campaign: points 3/40, blocks ..., ETA ...") and failures.
TERMINAL_LINES = "^mcsim campaign: points |error|failed:"


def _walk_key(params):
    """Walk order of an experiment's points: its grid axes, numerically (new grid values insert runs)."""
    return (params["arch"], params["bias"], params["activation"], params["width"], params["depth"], params["g2"],
            params["input_set"])


def sim_path(exp, point):
    return f"results/{exp}/sim/{point}.h5"


def theory_path(exp, point):
    return f"results/{exp}/theory/{point}.h5"


def chunk_text(exp, names, spec_key, path):
    """Canonical chunk JSON {"points": [{"name", "spec", "out"}, ...]} read by mcsim campaign / theory predict-many."""
    return canonical({"points": [{"name": p, "spec": POINTS[exp][p][spec_key], "out": path(exp, p)} for p in names]})


def _chunks(exp, kind):
    """Chunks of one experiment: [{"id", "points", "seconds", "text"}] for kind "sim" or "theory"."""
    from mcsim.cost import estimate_seconds

    points = POINTS[exp]
    if kind == "sim":
        costs = {p: estimate_seconds(d["spec"]) for p, d in points.items()}
        target, limit, spec_key, path = SIM_RES["job_minutes"] * 60.0 * CAMPAIGN_TASKS, SIM_RES["max_points_per_job"], "spec", sim_path
    else:  # theory jobs: sized by point count only, so that realizations never regroup them
        costs = dict.fromkeys(points, 0.0)
        target, limit, spec_key, path = math.inf, RES["theory"]["max_points_per_job"], "theory_spec", theory_path
    items = [(p, _walk_key(d["params"]), costs[p]) for p, d in points.items()]
    return [
        {"id": JOBSIZING.chunk_id(names), "points": names, "seconds": sum(costs[p] for p in names),
         "text": chunk_text(exp, names, spec_key, path)}
        for names in JOBSIZING.chunk(items, target, limit)
    ]


def _campaign_tasks():
    """MPI ranks of a campaign job: a profile's `set-resources: campaign: tasks:` (an integer), else resources.simulation.tasks.

    Chunks are sized and runtimes derived for the ranks the jobs really get.
    """
    overrides = workflow.resource_settings._parsed_overwrite_resources.get("campaign", {})
    tasks = overrides["tasks"] if "tasks" in overrides else None
    if tasks is not None and not tasks.is_evaluable():
        return int(tasks.value)
    return SIM_RES["tasks"]


CAMPAIGN_TASKS = _campaign_tasks()
SIM_CHUNKS = {exp: _chunks(exp, "sim") for exp in POINTS}
THEORY_CHUNKS = {exp: _chunks(exp, "theory") for exp in POINTS}


THEORY_PRIORITY = 10**9
"""Snakemake priority of the theory jobs: first (they are short, except a few slow kernels that are best started early)."""


def campaign_priority(seconds):
    """Snakemake priority of a campaign job predicted to take ``seconds``: its cost in whole seconds, in [1, THEORY_PRIORITY).

    Higher runs first: after the theory jobs, ready campaign jobs start most
    expensive first (longest processing time first, as the campaign dispatcher
    orders its units), so the last jobs are short and the cores do not idle
    behind one long job at the end; comparisons and plots (priority 0) follow.
    """
    return min(max(1, int(round(seconds))), THEORY_PRIORITY - 1)


def campaign_runtime(seconds):
    """runtime resource (minutes, x attempt) of a campaign job predicted to take `seconds` single-core."""
    if "runtime" in SIM_RES:
        minutes = SIM_RES["runtime"]
    else:
        minutes = JOBSIZING.runtime_minutes(seconds, CAMPAIGN_TASKS, SIM_RES["runtime_safety"], SIM_RES["runtime_margin"])
    return lambda wildcards, attempt: minutes * attempt


def write_chunk(path, text):
    """Write a chunk file atomically (the job's declared output)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def family_resources(family, rule_names):
    """Let `--set-resources FAMILY:...` (a profile's set-resources.FAMILY) apply to every generated rule of a family.

    The campaign rules are generated per chunk (names campaign_<exp>_<id>, unknown
    to a profile); a profile sets their resources once under `campaign`.  Must run
    before the rules are defined (Snakemake applies set-resources by rule name when
    a rule is defined, and passes the same mapping to cluster jobs).
    """
    overrides = workflow.resource_settings._parsed_overwrite_resources
    if family in overrides:
        for name in rule_names:
            overrides.setdefault(name, overrides[family])


wildcard_constraints:
    exp="[A-Za-z][A-Za-z0-9_]*",
    point="[^/]+",


# --------------------------------------------------------------------------- kind proportional
# One HMC posterior point (python -m mcsim posterior) per (alpha, n); rules in proportional.smk.

CHAINS_STORE = os.path.normpath(STORE) + "_chains"
"""Chain store of the HMC posterior points (mcsim.posterior_store), beside the sample store."""


def proportional_points(exp):
    """Point name -> posterior spec (dict) of one proportional experiment."""
    cfg = EXPERIMENTS[exp]["proportional"]
    g2 = float(cfg["g2"])
    prior = {"arch": "dnn", "depth": int(cfg["depth"]), "activation": "linear", "g2": g2, "sigma2": 0.0,
             "g2_in": g2, "n_out": 1}
    points = {}
    for n in cfg["width"]:
        for alpha in cfg["alpha"]:
            P = int(round(alpha * n))
            points[f"alpha-{_fmt(alpha)}_n-{n}"] = {
                "prior": prior,
                "data": {"kind": "linear_teacher", "count": P, "dim": int(n), "train": P,
                         "seed": int(cfg["task_seed"])},
                "width": int(n), "draws": int(cfg["draws"]), "kappa": float(cfg["kappa"]),
                "gamma0": float(cfg["gamma0"]), "method": "hmc", "chains": int(cfg["chains"]),
                "seed": int(cfg["seed"]), "hmc": {"warmup": int(cfg["warmup"])}, "observables": ["caux_diag"],
            }
    return points


PROPORTIONAL_POINTS = {exp: proportional_points(exp) for exp in experiments_of("proportional")}


def _proportional_files(kind):
    def files(wildcards):
        return [f"results/{wildcards.exp}/{kind}/{p}.{'h5' if kind == 'sim' else 'json'}"
                for p in PROPORTIONAL_POINTS[wildcards.exp]]

    return files
