# The paper's quantitative claims, evaluated on the comparison tables of this run
# (theory.claims: criteria and significance level declared there, one place).
# Writes results/claims.csv (+ .json column description), shown in the report;
# the onsuccess handler prints one line per claim at the end of the run.


def claim_tables():
    """[(experiment, kind, table path)] read by the claims rule (the MMD *summary* table for kind mmd)."""
    out = []
    for name, exp in EXPERIMENTS.items():
        kind = exp["kind"]
        if kind == "mmd":
            out.append((name, kind, f"results/{name}/tables/mmd_summary.csv"))
        elif kind in SIM_KINDS:
            out.append((name, kind, table_path(name)))
    return out


CLAIMS_CSV = "results/claims.csv"


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


onsuccess:
    print_claims()
