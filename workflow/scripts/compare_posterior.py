"""Feature learning: posterior shift n Delta from importance-weighted prior samples vs first-order theory.

Snakemake script (rule compare_posterior).  For each point: the prior
realizations of the campaign (caux_readout, chat_diag on all patterns) are
importance-weighted with the task's likelihood; the shifts of the scalar
observables of theory.adaptation_comparison (readout kernel, hidden kernel,
test predictor along the target direction) and of the kernel-target alignment
of every layer are compared with theory.adaptation (computed once per point
at width 1: n Delta is width independent).  Tables: posterior.csv (1/n
scaling) and posterior_layers.csv (adaptation per layer).  Numerics in
theory.adaptation_comparison; this script only reads, calls, writes.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (THEORY_SE_DESCRIPTION, iter_posterior_points, package_versions, point_columns, point_row,  # noqa: E402
                     start_posterior_compare, theory_cache_key, write_table, z_score)
from theory.adaptation import adaptation  # noqa: E402
from theory.adaptation_comparison import (alignment_shifts, measured_shifts, predicted_alignment_shifts,  # noqa: E402
                                          predicted_scaled_shifts)

smk = snakemake  # noqa: F821
log, experiment, task, train = start_posterior_compare(smk)

common = {
    "ess": "importance-sampling effective sample size",
    "train": "training patterns P_D",
    "kappa": "observation noise kappa",
    "gamma0": "output scale gamma_0",
}
columns = {
    **point_columns(),
    "observable": "readout: u^T Caux^(A+1,A+1)_DD u; hidden: u^T Chat^(h,h)_DD u; predictor: v^T m_T "
                  "(u, v: unit target directions on training / test patterns)",
    "hidden_layer": "h of the hidden observable",
    "n_shift": "n Delta: n (importance-weighted mean - prior mean) over the realizations (MC)",
    "n_shift_se": "delta-method standard error of n_shift",
    "theory": "n Delta of the first-order adaptation theory (theory.adaptation; width independent)",
    "theory_se": THEORY_SE_DESCRIPTION,
    "z": "(n_shift - theory) / sqrt(n_shift_se^2 + theory_se^2) (includes the O(1/n) correction)",
    "expansion": "sqrt(Var_prior[sum G dK]) at this width (first order needs << 1)",
    **common,
}
layer_columns = {
    **point_columns(),
    "a": "layer / time step a (A+1: readout kernel Caux^(A+1,A+1); else Chat^(a,a))",
    "prior_mf": "CKA(Kbar^(a)_DD, y_D y_D^T) of the mean-field kernel",
    "prior_mc": "CKA of the MC prior-mean kernel",
    "n_shift": "n Delta[CKA^(a)] (MC, first order along dCKA/dK at Kbar)",
    "n_shift_se": "delta-method standard error of n_shift",
    "theory": "n Delta[CKA^(a)] of the first-order adaptation theory",
    "theory_se": THEORY_SE_DESCRIPTION,
    "z": "(n_shift - theory) / sqrt(n_shift_se^2 + theory_se^2)",
    **common,
}
rows, layer_rows = [], []
adapt_cache = {}
for point, params, data, mean_field, spec, targets in iter_posterior_points(smk, task, [task["kind"]]):
    y = targets[task["kind"]]
    shifts, diag = measured_shifts(data, y, train, task["kappa"], task["gamma0"], task["hidden_layer"],
                                   task["min_ess"])
    key = theory_cache_key(params)
    if key not in adapt_cache:  # n Delta is width independent: one theory evaluation per curve
        adapt_cache[key] = adaptation(spec.prior, spec.X, y, train, task["kappa"], 1.0, gamma0=task["gamma0"],
                                      seed=task["theory_seed"])
    adapt = adapt_cache[key]
    pred, expansion = predicted_scaled_shifts(adapt, y, task["hidden_layer"])
    n = params["width"]
    base = point_row(point, params, diag["realizations"], diag["overflowed"])
    extra = {"ess": diag["ess"], "train": task["train"], "kappa": task["kappa"], "gamma0": task["gamma0"]}
    for obs, (shift, se) in shifts.items():
        th, th_se = pred[obs]
        rows.append({**base, "observable": obs, "hidden_layer": task["hidden_layer"], "n_shift": n * shift,
                     "n_shift_se": n * se, "theory": th, "theory_se": th_se,
                     "z": z_score(n * shift, th, float(np.hypot(n * se, th_se))),
                     "expansion": expansion / np.sqrt(n), **extra})
    used = {k: np.asarray(data[k])[diag["used"]] for k in ("caux_readout", "chat_diag")}
    layers = alignment_shifts(used, mean_field["kernel"], y, train, task["kappa"], task["gamma0"],
                              diag["log_weights"])
    predicted = predicted_alignment_shifts(adapt, [r["gradient"] for r in layers], train)
    for r, (th, th_se) in zip(layers, predicted):
        layer_rows.append({**base, "a": r["a"], "prior_mf": r["prior_mf"], "prior_mc": r["prior_mc"],
                           "n_shift": n * r["shift"], "n_shift_se": n * r["shift_se"], "theory": th,
                           "theory_se": th_se, "z": z_score(n * r["shift"], th, float(np.hypot(n * r["shift_se"],
                                                                                                 th_se))), **extra})
    log.info("%s: %d realizations, ESS %.0f", point, diag["realizations"], diag["ess"])

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Posterior shift n Delta (importance-weighted prior MC) vs first-order adaptation theory "
            "(theory-notes Sec. 9.2-9.3; issue 11)", experiment, {"versions": package_versions()})
write_table(smk.output.layers, smk.output.layers_meta, layer_rows, layer_columns,
            "Kernel-target alignment per layer: prior (mean field, MC) and n Delta[CKA] (MC vs first-order "
            "theory; issue 11)", experiment, {"versions": package_versions()})
