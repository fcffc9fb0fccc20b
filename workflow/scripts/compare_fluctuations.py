"""Fig. 3a,b: Var Caux^(a,a) over realizations (jackknife SE) vs the NLO theory; output kurtosis.

Snakemake script (rule compare_fluctuations).  Pattern 0 and output unit 0
are used; the theory treats each pattern as a single input at a = 0.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import iter_compared_points, package_versions, point_columns, setup_logging, write_table, z_score  # noqa: E402
from theory.resampling import excess_kurtosis_with_se, variance_with_se  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)

columns = {
    **point_columns(),
    "quantity": "var_caux: Var[Caux^(a,a)] over realizations; excess_kurtosis: of the scalar output y (a = A+1)",
    "a": "layer / time step a (A+1 = readout)",
    "mc": "Monte Carlo estimate (unbiased variance, or plug-in excess kurtosis)",
    "mc_se": "jackknife standard error of mc",
    "theory": "NLO prediction: nlo_variance[a] (Eq. 44), or fourth cumulant / K^2 for the kurtosis",
    "z": "(mc - theory) / mc_se",
}
rows = []
for point, data, theory, ok, base in iter_compared_points(smk, points):
    depth = points[point]["depth"]
    caux = np.asarray(data["caux_diag"])[ok][:, :, 0, 0]  # (R, A+2)
    var, var_se = variance_with_se(caux)
    nlo = np.asarray(theory["nlo_variance"])[0]  # (A+2,)
    for a in range(depth + 2):
        z = z_score(var[a], nlo[a], var_se[a])
        rows.append({**base, "quantity": "var_caux", "a": a, "mc": var[a], "mc_se": var_se[a], "theory": nlo[a], "z": z})
    y = np.asarray(data["y"])[ok][:, 0, 0]  # (R,)
    kurt, kurt_se = excess_kurtosis_with_se(y)
    K = float(np.asarray(theory["kernel"])[depth + 1, depth + 1, 0, 0])
    predicted = float(np.asarray(theory["fourth_cumulant"])[0]) / K**2
    rows.append({**base, "quantity": "excess_kurtosis", "a": depth + 1, "mc": float(kurt), "mc_se": float(kurt_se),
                 "theory": predicted, "z": z_score(kurt, predicted, kurt_se)})
    log.info("%s: Var Caux readout %.3g +- %.3g (theory %.3g)", point, var[-1], var_se[-1], nlo[-1])

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Finite-width fluctuations of Caux and output excess kurtosis vs NLO theory (theory-notes Sec. 6; paper Fig. 3a,b)",
            experiment, {"versions": package_versions()})
