"""Feature learning, cross-time representations: posterior shift of Chat^(a,b), a != b, vs the output scale gamma_0.

Snakemake script (rule compare_posterior_crosstime).  For each point the prior
realizations of the campaign (caux_readout, chat on all patterns) are
importance-weighted at every gamma_0 of task.gamma0s (only the weights depend
on gamma_0); the shift of u^T Chat^(a,b)_DD u for every hidden pair a < b is
compared with the first-order theory (theory.adaptation at width 1, once per
(curve, gamma_0): n Delta is width independent).  RNN: cross-time; DNN:
cross-layer.  Numerics in theory.adaptation_comparison; this script only reads,
calls, writes.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (THEORY_SE_DESCRIPTION, iter_posterior_points, package_versions, point_columns, point_row,  # noqa: E402
                     start_posterior_compare, theory_cache_key, write_table, z_score)
from theory.adaptation import adaptation  # noqa: E402
from theory.adaptation_comparison import cross_pairs, measured_cross_shifts, predicted_cross_shifts  # noqa: E402

smk = snakemake  # noqa: F821
log, experiment, task, train = start_posterior_compare(smk)

columns = {
    **point_columns(),
    "a": "first layer / time step of the pair (a < b)",
    "b": "second layer / time step of the pair",
    "gamma0": "output scale gamma_0 (K = Caux^(A+1,A+1) / gamma_0): the learning-signal axis",
    "ess": "importance-sampling effective sample size at this gamma_0",
    "valid": "1 if ess >= task.min_ess (else the shift is nan)",
    "prior_mf": "mean-field u^T Chat^(a,b)_DD u (u: unit target direction on the training patterns)",
    "prior_mc": "MC prior mean of u^T Chat^(a,b)_DD u",
    "n_shift": "n Delta[u^T Chat^(a,b)_DD u]: n (importance-weighted mean - prior mean) (MC)",
    "n_shift_se": "delta-method standard error of n_shift",
    "theory": "n Delta of the first-order adaptation theory (theory.adaptation; width independent)",
    "theory_se": THEORY_SE_DESCRIPTION,
    "z": "(n_shift - theory) / sqrt(n_shift_se^2 + theory_se^2) (includes the O(1/n) correction)",
    "expansion": "sqrt(Var_prior[sum G dK]) at this width and gamma_0 (first order needs << 1)",
    "train": "training patterns P_D",
    "kappa": "observation noise kappa",
}
rows = []
adapt_cache = {}
for point, params, data, mean_field, spec, targets in iter_posterior_points(smk, task, [task["kind"]]):
    y = targets[task["kind"]]
    pairs = cross_pairs(params["depth"])
    n = params["width"]
    kbar = np.asarray(mean_field["kernel"], float)
    u = y[train] / np.linalg.norm(y[train])
    D = np.ix_(train, train)
    for res in measured_cross_shifts(data, y, train, task["kappa"], task["gamma0s"], pairs, task["min_ess"]):
        g0 = res["gamma0"]
        key = theory_cache_key(params, g0)
        if key not in adapt_cache:  # n Delta is width independent: one theory evaluation per (curve, gamma_0)
            adapt_cache[key] = adaptation(spec.prior, spec.X, y, train, task["kappa"], 1.0, gamma0=g0,
                                          seed=task["theory_seed"])
        adapt = adapt_cache[key]
        pred = predicted_cross_shifts(adapt, y, pairs)
        base = point_row(point, params, res["realizations"], res["overflowed"])
        for (a, b), (shift, se) in res["shifts"].items():
            th, th_se = pred[(a, b)]
            rows.append({**base, "a": a, "b": b, "gamma0": g0, "ess": res["ess"], "valid": int(res["valid"]),
                         "prior_mf": float(u @ kbar[a, b][D] @ u) if kbar.ndim == 4 else float("nan"),
                         "prior_mc": res["prior"][(a, b)], "n_shift": n * shift, "n_shift_se": n * se,
                         "theory": th, "theory_se": th_se,
                         "z": z_score(n * shift, th, float(np.hypot(n * se, th_se))),
                         "expansion": adapt.expansion_parameter / np.sqrt(n), "train": task["train"],
                         "kappa": task["kappa"]})
        log.info("%s gamma0=%g: %d realizations, ESS %.0f", point, g0, res["realizations"], res["ess"])

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Posterior shift n Delta of the cross-time (RNN) / cross-layer (DNN) kernels u^T Chat^(a,b)_DD u vs the "
            "output scale gamma_0: importance-weighted prior MC vs first-order adaptation theory (issue 11, 4.3)",
            experiment, {"versions": package_versions()})
