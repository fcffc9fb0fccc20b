# Plot rules, generated: one rule plot_<kind> per kind (ALL_KINDS), drawing
# results/figures/<exp>.<fmt> in every configured format with
# workflow/scripts/plot_<kind>.py; the report shows REPORT_FORMAT with the caption
# workflow/report/<kind>.rst.  Plotting options live only here, so changing them
# reruns plots only.


_report = report  # a line starting with `report(` would be parsed as the report: directive


def _figure_outputs(kind):
    return [
        (
            _report(
                f"results/figures/{{exp}}.{ext}",
                caption=f"../report/{kind}.rst",
                category="Figures",
                labels={"experiment": "{exp}", "kind": kind},
            )
            if ext == REPORT_FORMAT
            else f"results/figures/{{exp}}.{ext}"
        )
        for ext in FORMATS
    ]


def _plot_inputs(kind):
    """Inputs of plot_<kind>: its comparison table(s), or the phase diagram file."""
    if kind == "phase_diagram":
        return {"diagram": "results/{exp}/phase_diagram.h5"}
    inputs = {"table": f"results/{{exp}}/tables/{kind}.csv", "meta": f"results/{{exp}}/tables/{kind}.json"}
    for extra in COMPARE_EXTRA_TABLES.get(kind, []):
        inputs[extra.removeprefix(f"{kind}_")] = f"results/{{exp}}/tables/{extra}.csv"
    return inputs


for _kind in ALL_KINDS:

    rule:
        name:
            f"plot_{_kind}"
        input:
            **_plot_inputs(_kind),
        output:
            figures=_figure_outputs(_kind),
        params:
            kind=_kind,
            formats=FORMATS,
            dpi=CONFIG["plots"]["dpi"],
            # the phase diagram is theory only: its params must not depend on `statistics`
            experiment=phase_diagram_meta if _kind == "phase_diagram" else experiment_meta,
        log:
            f"results/logs/{{exp}}/plot_{_kind}.log",
        wildcard_constraints:
            exp=exp_regex(_kind),
        resources:
            runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
            mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
        script:
            # formatted when the job runs: a loop variable here would take its last value
            "../scripts/plot_{params.kind}.py"
