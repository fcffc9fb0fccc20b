# Plot rules: figures in every configured format; the report shows REPORT_FORMAT.
# Plotting options live only here, so changing them reruns plots only.


rule plot_kernel:
    input:
        table="results/{exp}/tables/kernel.csv",
        meta="results/{exp}/tables/kernel.json",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/kernel.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "kernel"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_kernel.log",
    wildcard_constraints:
        exp=exp_regex("kernel"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_kernel.py"


rule plot_mmd:
    input:
        table="results/{exp}/tables/mmd.csv",
        meta="results/{exp}/tables/mmd.json",
        summary="results/{exp}/tables/mmd_summary.csv",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/mmd.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "mmd"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_mmd.log",
    wildcard_constraints:
        exp=exp_regex("mmd"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_mmd.py"


rule plot_fluctuations:
    input:
        table="results/{exp}/tables/fluctuations.csv",
        meta="results/{exp}/tables/fluctuations.json",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/fluctuations.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "fluctuations"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_fluctuations.log",
    wildcard_constraints:
        exp=exp_regex("fluctuations"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_fluctuations.py"


rule plot_input_propagation:
    input:
        table="results/{exp}/tables/input_propagation.csv",
        meta="results/{exp}/tables/input_propagation.json",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/input_propagation.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "input_propagation"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_input_propagation.log",
    wildcard_constraints:
        exp=exp_regex("input_propagation"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_input_propagation.py"


rule plot_instability:
    input:
        table="results/{exp}/tables/instability.csv",
        meta="results/{exp}/tables/instability.json",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/instability.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "instability"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_instability.log",
    wildcard_constraints:
        exp=exp_regex("instability"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_instability.py"


rule plot_phase_diagram:
    input:
        diagram="results/{exp}/phase_diagram.h5",
    output:
        figures=[
            (
                report(
                    f"results/figures/{{exp}}.{ext}",
                    caption="../report/phase_diagram.rst",
                    category="Figures",
                    labels={"experiment": "{exp}", "kind": "phase_diagram"},
                )
                if ext == REPORT_FORMAT
                else f"results/figures/{{exp}}.{ext}"
            )
            for ext in FORMATS
        ],
    params:
        formats=FORMATS,
        dpi=CONFIG["plots"]["dpi"],
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/plot_phase_diagram.log",
    wildcard_constraints:
        exp=exp_regex("phase_diagram"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/plot_phase_diagram.py"
