# Campaign rules, generated: one job per chunk of an experiment's points (SIM_CHUNKS,
# THEORY_CHUNKS in common.smk; grouping in workflow/lib/jobsizing.py).
#
#   campaign_<exp>_<id>  {mpi} -n {tasks} python -m mcsim campaign --specs CHUNK.json ...
#                        samples every point of the chunk under MPI and writes
#                        results/<exp>/sim/<point>.h5 for each;
#   theory_<exp>_<id>    python -m theory predict-many --specs CHUNK.json
#                        writes results/<exp>/theory/<point>.h5 for each.
#
# A job carries the canonical chunk text as `params` and writes it itself to its
# declared output results/<exp>/chunks/{sim,theory}-<id>.json, so Snakemake's params
# rerun trigger reruns exactly the chunks whose specs changed (e.g. more
# realizations; the theory chunk omits realizations/block size/observables, so
# raising realizations never recomputes theory).  The per-point files are
# update() outputs: Snakemake does not delete them before a rerun, and both
# commands skip points whose file is already final for the same spec (the
# sample store supplies the blocks of a point with more realizations).  A
# campaign job prints its progress lines on stderr: the terminal shows them, and
# its log (stdout and stderr) keeps them.


# `set-resources: campaign: ...` in a profile applies to every campaign_* rule
family_resources("campaign", [f"campaign_{exp}_{c['id']}" for exp, chunks in SIM_CHUNKS.items() for c in chunks])


for _exp, _chunks in SIM_CHUNKS.items():
    for _c in _chunks:

        rule:
            name:
                f"campaign_{_exp}_{_c['id']}"
            output:
                chunk=f"results/{_exp}/chunks/sim-{_c['id']}.json",
                points=[update(sim_path(_exp, p)) for p in _c["points"]],
            params:
                chunk=_c["text"],
                store=STORE,
            log:
                f"results/logs/{_exp}/campaign-{_c['id']}.log",
            benchmark:
                f"results/benchmarks/{_exp}/campaign-{_c['id']}.tsv"
            threads: SIM_RES["tasks"]
            # most expensive chunks first (longest-processing-time order): the last jobs
            # are the short ones, so the cores do not idle behind one long job at the end
            priority: campaign_priority(_c["seconds"])
            resources:
                tasks=SIM_RES["tasks"],
                mpi=SIM_RES["mpi"],
                runtime=campaign_runtime(_c["seconds"]),
                mem_mb_per_cpu=SIM_RES["mem_mb_per_cpu"],
            run:
                write_chunk(output.chunk, params.chunk)
                # everything in the log; on the terminal only the progress lines and
                # errors (TERMINAL_LINES), prefixed with the rule name
                shell(
                    "{resources.mpi} -n {resources.tasks} python -m mcsim campaign --specs {output.chunk:q}"
                    " --store {params.store:q} --progress-interval {PROGRESS_INTERVAL}"
                    " >> {log:q} 2> >(tee -a {log:q} | grep --line-buffered -E {TERMINAL_LINES:q}"
                    " | sed -u 's/^mcsim campaign:/[{rule}]/' >&2)"
                )


for _exp, _chunks in THEORY_CHUNKS.items():
    for _c in _chunks:

        rule:
            name:
                f"theory_{_exp}_{_c['id']}"
            output:
                chunk=f"results/{_exp}/chunks/theory-{_c['id']}.json",
                points=[update(theory_path(_exp, p)) for p in _c["points"]],
            params:
                chunk=_c["text"],
            log:
                f"results/logs/{_exp}/theory-{_c['id']}.log",
            priority: THEORY_PRIORITY
            resources:
                runtime=lambda wc, attempt: RES["theory"]["runtime"] * attempt,
                mem_mb_per_cpu=RES["theory"]["mem_mb_per_cpu"],
            run:
                write_chunk(output.chunk, params.chunk)
                shell("python -m theory predict-many --specs {output.chunk:q} > {log:q} 2>&1")


rule phase_diagram:
    output:
        "results/{exp}/phase_diagram.h5",
    params:
        activation=lambda w: EXPERIMENTS[w.exp]["phase_diagram"]["activation"],
        g2=lambda w: " ".join(str(v) for v in EXPERIMENTS[w.exp]["phase_diagram"]["g2"]),
        sigma2=lambda w: " ".join(str(v) for v in EXPERIMENTS[w.exp]["phase_diagram"]["sigma2"]),
    log:
        "results/logs/{exp}/phase_diagram.log",
    wildcard_constraints:
        exp=exp_regex("phase_diagram"),
    resources:
        runtime=lambda wc, attempt: RES["theory"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["theory"]["mem_mb_per_cpu"],
    shell:
        "python -m theory phase-diagram --activation {params.activation}"
        " --g2 {params.g2} --sigma2 {params.sigma2} --out {output} > {log} 2>&1"
