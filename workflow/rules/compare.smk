# Comparison rules: one table per experiment (CSV + JSON column/parameter description).
# The numerics live in theory.mmd / theory.resampling; the scripts only read, call, write.
# params hold experiment and comparison options only (never plotting options).


rule compare_kernel:
    input:
        sim=sim_files,
        theory=theory_files,
    output:
        table=report(
            "results/{exp}/tables/kernel.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "kernel"},
        ),
        meta="results/{exp}/tables/kernel.json",
    params:
        points=point_table,
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/compare_kernel.log",
    wildcard_constraints:
        exp=exp_regex("kernel"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_kernel.py"


rule compare_mmd:
    input:
        sim=sim_files,
        theory=theory_files,
    output:
        table=report(
            "results/{exp}/tables/mmd.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "mmd"},
        ),
        meta="results/{exp}/tables/mmd.json",
        summary=report(
            "results/{exp}/tables/mmd_summary.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "mmd_summary"},
        ),
        summary_meta="results/{exp}/tables/mmd_summary.json",
    params:
        points=point_table,
        experiment=experiment_meta,
        lengthscale=CONFIG["comparison"]["mmd_lengthscale"],
        repetitions=CONFIG["comparison"]["noise_floor_repetitions"],
        noise_seed=CONFIG["comparison"]["noise_floor_seed"],
    log:
        "results/logs/{exp}/compare_mmd.log",
    wildcard_constraints:
        exp=exp_regex("mmd"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_mmd.py"


rule compare_fluctuations:
    input:
        sim=sim_files,
        theory=theory_files,
    output:
        table=report(
            "results/{exp}/tables/fluctuations.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "fluctuations"},
        ),
        meta="results/{exp}/tables/fluctuations.json",
    params:
        points=point_table,
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/compare_fluctuations.log",
    wildcard_constraints:
        exp=exp_regex("fluctuations"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_fluctuations.py"


rule compare_input_propagation:
    input:
        sim=sim_files,
        theory=theory_files,
    output:
        table=report(
            "results/{exp}/tables/input_propagation.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "input_propagation"},
        ),
        meta="results/{exp}/tables/input_propagation.json",
    params:
        points=point_table,
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/compare_input_propagation.log",
    wildcard_constraints:
        exp=exp_regex("input_propagation"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_input_propagation.py"


rule compare_instability:
    input:
        sim=sim_files,
        theory=theory_files,
    output:
        table=report(
            "results/{exp}/tables/instability.csv",
            category="Tables",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "table": "instability"},
        ),
        meta="results/{exp}/tables/instability.json",
    params:
        points=point_table,
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/compare_instability.log",
    wildcard_constraints:
        exp=exp_regex("instability"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_instability.py"
