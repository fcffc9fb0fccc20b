# The paper's quantitative claims, evaluated on the comparison tables of this run
# (theory.claims: criteria and significance level declared there, one place).
# Writes results/claims.csv (+ .json column description), shown in the report;
# the onsuccess handler prints one line per claim at the end of the run.
# Helpers (claim_tables, print_claims) are in common.smk.


rule claims:
    input:
        tables=[path for _, _, path in claim_tables()],
    output:
        table=report(
            CLAIMS_CSV,
            caption="../report/claims.rst",
            category="Claims",
            labels={"table": "claims"},
        ),
        meta="results/claims.json",
    params:
        experiments=json.dumps([[name, kind] for name, kind, _ in claim_tables()]),
        statistics=CONFIG["statistics"],
    log:
        "results/logs/claims.log",
    resources:
        runtime=lambda wc, attempt: RES["analysis"]["runtime"] * attempt,
        mem_mb_per_cpu=RES["analysis"]["mem_mb_per_cpu"],
    script:
        "../scripts/claims.py"


onsuccess:
    print_claims()
