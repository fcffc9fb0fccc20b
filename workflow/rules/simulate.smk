# Per-point rules: point spec JSON -> MPI Monte Carlo run / theory prediction.
#
# The spec rules carry the spec text as `params`, so Snakemake's params rerun
# trigger rewrites a spec exactly when its content changes (e.g. more
# realizations) and only the jobs downstream of that point rerun.  The theory
# spec omits realizations/block size/observables: raising realizations never
# recomputes theory.


rule point_spec:
    output:
        "results/{exp}/points/{point}.json",
    params:
        spec=point_spec_text,
    log:
        "results/logs/{exp}/point_spec/{point}.log",
    shell:
        "printf '%s' {params.spec:q} > {output} 2> {log}"


rule theory_spec:
    output:
        "results/{exp}/theory_specs/{point}.json",
    params:
        spec=theory_spec_text,
    log:
        "results/logs/{exp}/theory_spec/{point}.log",
    shell:
        "printf '%s' {params.spec:q} > {output} 2> {log}"


rule simulate_point:
    input:
        spec="results/{exp}/points/{point}.json",
    output:
        "results/{exp}/sim/{point}.h5",
    params:
        store=STORE,
    log:
        "results/logs/{exp}/sim/{point}.log",
    benchmark:
        "results/benchmarks/{exp}/sim/{point}.tsv"
    threads: RES["simulation"]["tasks"]
    resources:
        tasks=RES["simulation"]["tasks"],
        mpi=RES["simulation"]["mpi"],
        runtime=lambda wc, attempt: RES["simulation"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["simulation"]["mem_mb_per_cpu"],
    shell:
        "{resources.mpi} -n {resources.tasks} python -m mcsim run"
        " --spec {input.spec} --store {params.store} --out {output} > {log} 2>&1"


rule theory_point:
    input:
        spec="results/{exp}/theory_specs/{point}.json",
    output:
        "results/{exp}/theory/{point}.h5",
    log:
        "results/logs/{exp}/theory/{point}.log",
    resources:
        runtime=lambda wc, attempt: RES["theory"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["theory"]["mem_mb_per_cpu"],
    shell:
        "python -m theory predict --spec {input.spec} --out {output} > {log} 2>&1"


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
