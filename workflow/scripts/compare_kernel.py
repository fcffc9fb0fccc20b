"""Figs. 1/5: empirical Chat^(a,a) and Chat^(a,b) (mean +- SEM over realizations) vs the theory kernel.

Snakemake script (rule compare_kernel).  Pattern alpha = beta = 0 is used.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (provided by Snakemake)

import numpy as np  # noqa: E402

from _common import iter_compared_points, package_versions, point_columns, setup_logging, write_table, z_score  # noqa: E402
from theory.resampling import sem  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)
cross_steps = experiment["analysis"]["cross_steps"]

columns = {
    **point_columns(),
    "quantity": "diag: Chat^(a,a); cross: Chat^(a,b) for fixed b",
    "a": "layer / time step a (A+1 = readout)",
    "b": "second layer / time step b",
    "mc_mean": "mean over realizations of Chat^(a,b) = (1/n) sum_i h_i^(a) h_i^(b)",
    "mc_sem": "standard error of mc_mean",
    "theory": "mean-field kernel C^(a,b) (theory predict)",
    "z": "(mc_mean - theory) / mc_sem",
}
rows = []
for point, data, theory, ok, base in iter_compared_points(smk, points):
    chat = np.asarray(data["chat"])[ok][:, :, :, 0, 0]  # (R, A+2, A+2)
    kernel = np.asarray(theory["kernel"])[:, :, 0, 0]  # (A+2, A+2)
    mean, err = chat.mean(axis=0), sem(chat)
    depth = points[point]["depth"]
    pairs = [("diag", a, a) for a in range(depth + 2)]
    pairs += [("cross", a, b) for b in cross_steps if b <= depth for a in range(depth + 1)]
    for quantity, a, b in pairs:
        z = z_score(mean[a, b], kernel[a, b], err[a, b])
        rows.append({**base, "quantity": quantity, "a": a, "b": b, "mc_mean": mean[a, b], "mc_sem": err[a, b],
                     "theory": kernel[a, b], "z": z})
    log.info("%s: %d realizations (%d overflowed)", point, ok.sum(), (~ok).sum())

write_table(
    smk.output.table, smk.output.meta, rows, columns,
    "Empirical covariances Chat vs mean-field kernel C (theory-notes Sec. 3, 5; paper Figs. 1, 5)",
    experiment, {"versions": package_versions()},
)
