"""Fig. 4: RNN near the instability: Chat^(a,a) vs a and Chat^(ref, ref+lag) vs lag, MC vs theory.

Snakemake script (rule compare_instability).  Pattern 0; overflowed
realizations are dropped and counted.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import iter_compared_points, package_versions, point_columns, setup_logging, write_table, z_score  # noqa: E402
from theory.resampling import sem  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)
ref = experiment["analysis"]["reference_step"]
max_lag = experiment["analysis"]["max_lag"]

columns = {
    **point_columns(),
    "quantity": "diag: Chat^(a,a) vs a; lag: Chat^(ref, ref+lag) vs lag",
    "a": "first step (a for diag, ref for lag)",
    "lag": "time lag (0 for diag)",
    "mc_mean": "mean over realizations of Chat",
    "mc_sem": "standard error of mc_mean",
    "mc_std": "std over realizations (spread of individual networks)",
    "theory": "mean-field kernel C",
    "z": "(mc_mean - theory) / mc_sem",
}
rows = []
for point, data, theory, ok, base in iter_compared_points(smk, points):
    chat = np.asarray(data["chat"])[ok][:, :, :, 0, 0]  # (R, A+2, A+2)
    kernel = np.asarray(theory["kernel"])[:, :, 0, 0]
    mean, err, std = chat.mean(axis=0), sem(chat), chat.std(axis=0, ddof=1)
    depth = points[point]["depth"]
    entries = [("diag", a, 0, a, a) for a in range(depth + 1)]
    entries += [("lag", ref, lag, ref, ref + lag) for lag in range(max_lag + 1)]
    for quantity, a, lag, i, j in entries:
        z = z_score(mean[i, j], kernel[i, j], err[i, j])
        rows.append({**base, "quantity": quantity, "a": a, "lag": lag, "mc_mean": mean[i, j], "mc_sem": err[i, j],
                     "mc_std": std[i, j], "theory": kernel[i, j], "z": z})
    log.info("%s: %d realizations (%d overflowed)", point, ok.sum(), (~ok).sum())

write_table(smk.output.table, smk.output.meta, rows, columns,
            "RNN finite-size effects near g^2 = 2 (paper Fig. 4)", experiment, {"versions": package_versions()})
