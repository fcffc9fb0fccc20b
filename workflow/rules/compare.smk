# Comparison rules, generated: one rule compare_<kind> per simulation kind (SIM_KINDS),
# each writing one table per experiment (CSV + JSON column/parameter description)
# with workflow/scripts/compare_<kind>.py.  The numerics live in theory.comparison,
# theory.mmd and theory.resampling; the scripts only read, call, write.
# params hold experiment and comparison options only (never plotting options).


def _table_output(kind, table):
    return report(
        f"results/{{exp}}/tables/{table}.csv",
        category="Tables",
        subcategory="{exp}",
        labels={"experiment": "{exp}", "table": table},
    )


# Extra tables and comparison options per kind (all kinds write <kind>.csv/.json).
COMPARE_EXTRA_TABLES = {"mmd": ["mmd_summary"], "posterior": ["posterior_layers"]}
COMPARE_PARAMS = {
    "mmd": {
        "lengthscale": CONFIG["comparison"]["mmd_lengthscale"],
    },
}


def _compare_outputs(kind):
    outputs = {"table": _table_output(kind, kind), "meta": f"results/{{exp}}/tables/{kind}.json"}
    for extra in COMPARE_EXTRA_TABLES.get(kind, []):
        short = extra.removeprefix(f"{kind}_")
        outputs[short] = _table_output(kind, extra)
        outputs[f"{short}_meta"] = f"results/{{exp}}/tables/{extra}.json"
    return outputs


for _kind in SIM_KINDS:

    rule:
        name:
            f"compare_{_kind}"
        input:
            sim=sim_files,
            theory=theory_files,
        output:
            **_compare_outputs(_kind),
        params:
            kind=_kind,
            points=point_table,
            experiment=experiment_meta,
            **COMPARE_PARAMS.get(_kind, {}),
        log:
            f"results/logs/{{exp}}/compare_{_kind}.log",
        wildcard_constraints:
            exp=exp_regex(_kind),
        resources:
            runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
            mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
        script:
            # formatted when the job runs: a loop variable here would take its last value
            "../scripts/compare_{params.kind}.py"
