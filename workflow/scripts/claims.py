"""The paper's claims on this run: reads the comparison tables, calls theory.claims, writes results/claims.csv.

Snakemake script (rule claims).  Criteria and the significance level are
declared in theory.claims.CLAIMS / ALPHA; this script only reads, calls, writes.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from _common import package_versions, read_table, setup_logging, write_table  # noqa: E402
from theory.claims import ALPHA, CLAIM_COLUMNS, claim_rows, evaluate_claims  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
experiments = json.loads(smk.params.experiments)  # [[name, kind], ...] aligned with smk.input.tables

tables, kinds_read = {}, {}  # kinds_read: experiment -> table kinds read (a posterior experiment has two)
for (name, kind), path in zip(experiments, smk.input.tables):
    tables.setdefault(kind, []).append((name, read_table(path)))
    kinds_read.setdefault(name, []).append(kind)
results = evaluate_claims(tables)
rows = claim_rows(results)
for r in rows:
    log.info("claim %s: %s (value %s, se %s) %s", r["id"], r["result"], r["value"], r["se"], r["reason"])

write_table(smk.output.table, smk.output.meta, rows, CLAIM_COLUMNS,
            "The paper's quantitative claims evaluated on this run (theory.claims; issue 9)",
            {"kind": "claims", "statistics": smk.params.statistics, "experiments": kinds_read},
            {"versions": package_versions(), "alpha": ALPHA})
