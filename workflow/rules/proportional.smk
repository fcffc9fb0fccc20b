# Kind `proportional` (issue 11, item 4.5): deep linear DNN at fixed alpha = P/n.
#
#   hmc_proportional       {mpi} -n {tasks} python -m mcsim posterior --spec SPEC --store STORE_chains --out FILE
#                          HMC chains of one (alpha, n) point, checkpointed in the chain store
#                          (resumable, independent of the number of ranks);
#   compare_proportional   table results/<exp>/tables/proportional.csv (+ .json) with
#                          workflow/scripts/compare_proportional.py (numerics:
#                          theory.proportional_comparison).
# The plot rule plot_proportional is generated in plot.smk (ALL_KINDS); the point specs
# (PROPORTIONAL_POINTS) are built in common.smk.


rule hmc_proportional:
    output:
        spec="results/{exp}/specs/{point}.json",
        sim="results/{exp}/sim/{point}.h5",
    params:
        spec=lambda w: canonical(PROPORTIONAL_POINTS[w.exp][w.point]),
        store=CHAINS_STORE,
    log:
        "results/logs/{exp}/hmc-{point}.log",
    wildcard_constraints:
        exp=exp_regex("proportional"),
    threads: SIM_RES["tasks"]
    priority: THEORY_PRIORITY - 1  # long HMC jobs: start early (see campaign_priority)
    resources:
        tasks=SIM_RES["tasks"],
        mpi=SIM_RES["mpi"],
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=SIM_RES["mem_mb_per_cpu"],
    run:
        write_chunk(output.spec, params.spec)
        shell(
            "{resources.mpi} -n {resources.tasks} python -m mcsim posterior --spec {output.spec:q}"
            " --store {params.store:q} --out {output.sim:q} --quiet > {log:q} 2>&1"
        )


rule compare_proportional:
    input:
        sim=_proportional_files("sim"),
        specs=_proportional_files("specs"),
    output:
        table=_table_output("proportional", "proportional"),
        meta="results/{exp}/tables/proportional.json",
    params:
        experiment=experiment_meta,
    log:
        "results/logs/{exp}/compare_proportional.log",
    wildcard_constraints:
        exp=exp_regex("proportional"),
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/compare_proportional.py"
