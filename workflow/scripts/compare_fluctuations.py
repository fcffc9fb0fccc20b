"""Fig. 3a,b: Var Caux^(a,a) over realizations (jackknife SE) vs the NLO theory; output kurtosis.

Snakemake script (rule compare_fluctuations).  Pattern 0 and output unit 0
are used; the theory treats each pattern as a single input at a = 0.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import iter_compared_points, package_versions, point_columns, setup_logging, write_table, z_score  # noqa: E402
from theory.resampling import excess_kurtosis_with_se, jackknife, unbiased_variance, variance_with_se  # noqa: E402
from theory.stability import fixed_point  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)

DETERMINISTIC = "deterministic"


def conditional_kurtosis(caux):
    """3 Var[Caux] / E[Caux]^2 along axis 0: the excess kurtosis of y given that y | hidden ~ N(0, Caux)."""
    return 3.0 * unbiased_variance(caux) / np.mean(caux, axis=0) ** 2


columns = {
    **point_columns(),
    "c00": "mean-field input covariance C^(0,0) of the pattern (deterministic)",
    "c_star": "fixed point C* of the diagonal recursion C -> sigma^2 + g^2 <phi^2>_C (relu: sigma^2 / (1 - g^2/2))",
    "quantity": ("var_caux: Var[Caux^(a,a)] over realizations; excess_kurtosis: of the scalar output y (a = A+1); "
                 "excess_kurtosis_conditional: 3 Var[Caux^(A+1,A+1)] / E[Caux^(A+1,A+1)]^2, the same kurtosis "
                 "computed from the readout covariance (exact, since y is Gaussian given the hidden units)"),
    "a": "layer / time step a (A+1 = readout)",
    "mc": ("Monte Carlo estimate (unbiased variance, or plug-in excess kurtosis); "
           f"'{DETERMINISTIC}' for a = 0, where Caux^(0,0) does not depend on the weights"),
    "mc_se": "jackknife standard error of mc (0 where mc is deterministic)",
    "theory": "NLO prediction: nlo_variance[a] (Eq. 44), or fourth cumulant / K^2 for the kurtosis",
    "z": f"(mc - theory) / mc_se ('{DETERMINISTIC}' where mc is)",
}
rows = []
for point, data, theory, ok, base in iter_compared_points(smk, points):
    depth, params = points[point]["depth"], points[point]
    kernel = np.asarray(theory["kernel"])
    base = {**base, "c00": float(kernel[0, 0, 0, 0]),
            "c_star": fixed_point(params["activation"], params["g2"], params["sigma2"])}
    caux = np.asarray(data["caux_diag"])[ok][:, :, 0, 0]  # (R, A+2)
    var, var_se = variance_with_se(caux)
    nlo = np.asarray(theory["nlo_variance"])[0]  # (A+2,)
    for a in range(depth + 2):
        if a == 0:  # Caux^(0,0) = g_0^2 |x|^2 / n_in + sigma^2: no weight dependence, round-off variance only
            if not var[0] <= 1e-20 * max(float(np.max(caux[:, 0] ** 2)), 1.0):
                raise ValueError(f"{point}: Var Caux^(0,0) = {var[0]:.3g} over realizations, expected 0 (fixed input)")
            rows.append({**base, "quantity": "var_caux", "a": 0, "mc": DETERMINISTIC, "mc_se": 0.0,
                         "theory": nlo[0], "z": DETERMINISTIC})
            continue
        z = z_score(var[a], nlo[a], var_se[a])
        rows.append({**base, "quantity": "var_caux", "a": a, "mc": var[a], "mc_se": var_se[a], "theory": nlo[a], "z": z})
    y = np.asarray(data["y"])[ok][:, 0, 0]  # (R,)
    kurt, kurt_se = excess_kurtosis_with_se(y)
    K = float(kernel[depth + 1, depth + 1, 0, 0])
    predicted = float(np.asarray(theory["fourth_cumulant"])[0]) / K**2
    rows.append({**base, "quantity": "excess_kurtosis", "a": depth + 1, "mc": float(kurt), "mc_se": float(kurt_se),
                 "theory": predicted, "z": z_score(kurt, predicted, kurt_se)})
    ckurt = float(conditional_kurtosis(caux[:, depth + 1]))
    _, ckurt_se = jackknife(caux[:, depth + 1], conditional_kurtosis)
    rows.append({**base, "quantity": "excess_kurtosis_conditional", "a": depth + 1, "mc": ckurt,
                 "mc_se": float(ckurt_se), "theory": predicted, "z": z_score(ckurt, predicted, ckurt_se)})
    log.info("%s: Var Caux readout %.3g +- %.3g (theory %.3g)", point, var[-1], var_se[-1], nlo[-1])

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Finite-width fluctuations of Caux and output excess kurtosis vs NLO theory (theory-notes Sec. 6; paper Fig. 3a,b)",
            experiment, {"versions": package_versions()})
