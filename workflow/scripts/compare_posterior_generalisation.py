"""Feature learning, generalisation: test error of the posterior-mean predictor vs n, MC vs NNGP vs adapted theory.

Snakemake script (rule compare_posterior_generalisation).  For each point and
each task of task.kinds (targets on the same patterns, so one campaign serves
every task): the posterior-mean predictor E_post[m] from importance-weighted
prior realizations, its test error; the NNGP test error (theory.gp_predict
with the mean-field readout kernel); the first-order adapted-kernel theory of
n (err_post - err_GP) (theory.adaptation at width 1, once per curve).
Numerics in theory.adaptation_comparison; this script only reads, calls, writes.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (THEORY_SE_DESCRIPTION, iter_posterior_points, package_versions, point_columns, point_row,  # noqa: E402
                     start_posterior_compare, theory_cache_key, write_table, z_score)
from theory.adaptation import adaptation  # noqa: E402
from theory.adaptation_comparison import gp_test_error, posterior_test_error, predicted_error_shift  # noqa: E402

smk = snakemake  # noqa: F821
log, experiment, task, train = start_posterior_compare(smk)
gamma0, kappa = task["gamma0"], task["kappa"]

columns = {
    **point_columns(),
    "task": "linear_teacher (y = x.w / sqrt(n_in)) or xor (y = sign(x_0) sign(x_1))",
    "ess": "importance-sampling effective sample size",
    "error_post": "test error mean_t (E_post[m]_t - y_t)^2 of the posterior-mean predictor (MC)",
    "error_post_se": "delta-method standard error of error_post",
    "error_prior_mc": "test error of the prior-mean predictor E_prior[m] of the same realizations (MC)",
    "error_gp": "test error of the NNGP prediction (theory.gp_predict, mean-field kernel; width independent)",
    "error_theory": "error_gp + theory / n: first-order adapted-kernel theory of the posterior test error",
    "n_diff": "n (error_post - error_gp) (MC)",
    "n_diff_se": "standard error of n_diff",
    "theory": "n (error_post - error_gp) of the first-order theory (width independent; complete for linear phi)",
    "theory_se": THEORY_SE_DESCRIPTION,
    "z": "(n_diff - theory) / sqrt(n_diff_se^2 + theory_se^2) (includes the O(1/n) correction)",
    "expansion": "sqrt(Var_prior[sum G dK]) at this width (first order needs << 1)",
    "train": "training patterns P_D (the others are test patterns)",
    "kappa": "observation noise kappa",
    "gamma0": "output scale gamma_0",
}
rows = []
adapt_cache = {}
for point, params, data, mean_field, spec, targets in iter_posterior_points(smk, task, task["kinds"]):
    n = params["width"]
    A1 = params["depth"] + 1
    for kind, y in targets.items():
        key = theory_cache_key(params, kind)
        if key not in adapt_cache:  # width independent: one theory evaluation per (curve, task)
            adapt_cache[key] = adaptation(spec.prior, spec.X, y, train, kappa, 1.0, gamma0=gamma0,
                                          seed=task["theory_seed"])
        adapt = adapt_cache[key]
        th, th_se = predicted_error_shift(adapt, y)
        err_gp = gp_test_error(np.asarray(mean_field["kernel"])[A1, A1], y, train, kappa, gamma0)
        res = posterior_test_error(data, y, train, kappa, gamma0)
        if not res["ess"] >= task["min_ess"]:
            raise ValueError(f"{point} ({kind}): importance-sampling ESS {res['ess']:.1f} < task.min_ess = "
                             f"{task['min_ess']:g}: the weights are dominated by a few realizations (increase the "
                             f"width or kappa, or decrease train)")
        diff = n * (res["error"] - err_gp)
        rows.append({**point_row(point, params, res["realizations"], res["overflowed"]), "task": kind,
                     "ess": res["ess"], "error_post": res["error"], "error_post_se": res["error_se"],
                     "error_prior_mc": res["error_prior_mc"], "error_gp": err_gp, "error_theory": err_gp + th / n,
                     "n_diff": diff, "n_diff_se": n * res["error_se"], "theory": th, "theory_se": th_se,
                     "z": z_score(diff, th, float(np.hypot(n * res["error_se"], th_se))),
                     "expansion": adapt.expansion_parameter / np.sqrt(n), "train": task["train"], "kappa": kappa,
                     "gamma0": gamma0})
        log.info("%s %s: ESS %.0f, err_post %.4g, err_GP %.4g", point, kind, res["ess"], res["error"], err_gp)

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Test error of the posterior-mean predictor vs width: importance-weighted prior MC vs the NNGP "
            "(theory.gp_predict) vs the first-order adapted-kernel theory (issue 11, 4.4)",
            experiment, {"versions": package_versions()})
