"""Fig. 2: MMD^2 between the outputs (y_1..y_P over realizations) and N(0, K), with noise floor.

Snakemake script (rule compare_mmd).  Output unit 0 is used; overflowed
realizations are dropped.  With nested readouts (analysis.nested_depths) one
simulation at the deepest grid depth gives a row per grid depth (``y_steps``
against ``theory.readout_kernels``); a depth's row drops only the realizations
whose readout after that depth is not finite (``_common.step_readout_masks``,
as a separate depth-a simulation would), and the depth average over A >=
MMD_DEPTH_MIN of each simulation is written with its joint SE over the
realizations valid at all of those depths (claim 4b).  Each MMD^2 comes with its SE over realizations
(given the input set).  The noise floor is the exact mean (0) and std of the
MMD^2 estimator on the same number of exact samples of N(0, K)
(theory.mmd.mmd2_null_moments, closed form).
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    INPUT_SET_GROUP_KEYS, input_set_group_columns, iter_compared_points, package_versions, point_columns, setup_logging,
    step_readout_masks, write_table,
)
from theory.comparison import pool_input_sets  # noqa: E402
from theory import Prior, readout_kernels  # noqa: E402
from theory.claims import MMD_DEPTH_MIN  # noqa: E402
from theory.mmd import mmd2_gaussian_sum_with_se, mmd2_gaussian_with_se, mmd2_null_moments  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)
lengthscale = float(smk.params.lengthscale)

columns = {
    **point_columns(),
    "depth": "depth A of the network read out (hidden layers / time steps a = 0..A)",
    "depths_shared": ("True: this depth is read out of one simulation at the deepest grid depth (analysis.nested_depths; "
                      "observable y_steps), which serves every depth: depths share realizations, so their MMD^2 "
                      "errors are correlated"),
    "patterns": "number of inputs P (joint output dimension)",
    "mmd2": "unbiased MMD^2 between empirical outputs and N(0,K), RBF length scale l",
    "mmd2_se": "SE of mmd2 over weight realizations given this input set (U-statistic variance, "
               "theory.mmd.mmd2_gaussian_with_se)",
    "noise_floor_mean": "exact mean of the MMD^2 estimator on exact N(0,K) samples of the same size (0: unbiased)",
    "noise_floor_std": "exact std of that null MMD^2 estimator, sqrt(2 E[h^2] / (R (R-1))) in closed form "
                       "(theory.mmd.mmd2_null_moments)",
    "lengthscale": "RBF kernel length scale l",
    "mmd2_deep": (f"mean of mmd2 over the depths A >= {MMD_DEPTH_MIN} read out of this simulation (same value on each "
                  "of its rows; empty unless depths are shared)"),
    "mmd2_deep_se": ("SE of mmd2_deep over weight realizations given this input set, joint over the shared depths "
                     "(Hoeffding SE of the depth-summed U-statistic, theory.mmd.mmd2_gaussian_sum_with_se); "
                     "larger than the quadrature of the per-depth SEs when the depths are positively correlated"),
    "deep_depths": f"number of depths A >= {MMD_DEPTH_MIN} averaged in mmd2_deep",
}
rows = []
for point, data, theory, ok, base in iter_compared_points(smk, points):
    depths = points[point]["depths"]
    if "y_steps" in data:  # nested readouts: every grid depth from this one simulation (shared realizations)
        Y = np.asarray(data["y_steps"])[:, :, :, 0]  # (R, A+1, P)
        masks = step_readout_masks(Y, depths)  # per depth: not the deepest simulation's overflow flag
        K_all = readout_kernels(Prior(**points[point]["prior"]), theory["inputs"], theory["kernel"])  # (A+1, P, P)
        terms = [(a, Y[:, a], K_all[a], f"{point}/A-{a}", masks[a]) for a in depths]
    else:
        depth = points[point]["depth"]
        terms = [(depth, np.asarray(data["y"])[:, :, 0], np.asarray(theory["kernel"])[depth + 1, depth + 1], point, ok)]
    sim_rows = []
    for a, y, K, name, used in terms:
        value, value_se = mmd2_gaussian_with_se(y[used], K, lengthscale)
        floor_mean, floor_std = mmd2_null_moments(K, int(used.sum()), lengthscale)
        sim_rows.append({**base, "realizations": int(used.sum()), "overflowed": int((~used).sum()), "depth": a,
                         "depths_shared": len(terms) > 1, "patterns": y.shape[1], "mmd2": value,
                         "mmd2_se": value_se, "noise_floor_mean": floor_mean, "noise_floor_std": floor_std,
                         "lengthscale": lengthscale})
        log.info("%s: MMD2 = %.3g +- %.3g (floor %.3g +- %.3g)", name, value, value_se, floor_mean, floor_std)
    deep = [t for t in terms if t[0] >= MMD_DEPTH_MIN]
    # the joint SE needs the same realizations at every averaged depth: those valid at all of them
    joint = np.logical_and.reduce([t[4] for t in deep]) if deep else ok
    total, total_se = (mmd2_gaussian_sum_with_se([t[1][joint] for t in deep], [t[2] for t in deep], lengthscale)
                       if deep and len(terms) > 1 else (np.nan, np.nan))
    for r in sim_rows:  # depth average of this simulation with its joint SE (shared realizations)
        r.update(mmd2_deep=total / max(len(deep), 1), mmd2_deep_se=total_se / max(len(deep), 1), deep_depths=len(deep))
    rows.extend(sim_rows)

# average over input sets
group_keys = INPUT_SET_GROUP_KEYS
groups = {}
for row in rows:
    groups.setdefault(tuple(row[k] for k in group_keys), []).append(row)
summary_columns = {
    **input_set_group_columns(),
    "input_sets": "number of input sets averaged",
    "realizations": "weight realizations used per input set (the fewest over the sets; all equal unless some overflowed)",
    "mmd2_mean": "MMD^2 averaged over input sets",
    "mmd2_sem": "standard error of mmd2_mean over input sets (nan for one set)",
    "mmd2_se_within": "SE of mmd2_mean given these input sets: sqrt(sum of mmd2_se^2) / input_sets",
    "noise_floor_mean": "exact null mean of the set-averaged MMD^2 (0)",
    "noise_floor_std": "exact null std of the set-averaged MMD^2: sqrt(mean(noise_floor_std^2) / input_sets)",
    "lengthscale": "RBF kernel length scale l",
    "depths_shared": "True: the depths of this (arch, bias, activation, width, g2) share realizations (see mmd.json)",
    "mmd2_deep_mean": (f"mmd2_deep (mean over the shared depths A >= {MMD_DEPTH_MIN} of one simulation) averaged over "
                       "input sets; same value on each depth row of the group; empty unless depths are shared"),
    "mmd2_deep_se_within": ("SE of mmd2_deep_mean given these input sets: sqrt(sum of mmd2_deep_se^2) / input_sets, "
                            "joint over the shared depths (their correlation included)"),
}
summary = []
for key, members in groups.items():
    pooled = pool_input_sets(*([m[k] for m in members] for k in ("mmd2", "noise_floor_mean", "noise_floor_std",
                                                                   "mmd2_se")))
    summary.append({
        **dict(zip(group_keys, key)),
        **pooled,
        "realizations": int(min(m["realizations"] for m in members)),
        "lengthscale": lengthscale,
        "depths_shared": all(m["depths_shared"] for m in members),
    })
    deep = pool_input_sets([m["mmd2_deep"] for m in members], np.zeros(len(members)), np.zeros(len(members)),
                           [m["mmd2_deep_se"] for m in members])
    summary[-1].update(mmd2_deep_mean=deep["mmd2_mean"], mmd2_deep_se_within=deep["mmd2_se_within"])

extra = {"versions": package_versions(), "comparison": {"lengthscale": lengthscale, "noise_floor": "exact (theory.mmd.mmd2_null_moments)"}}
write_table(smk.output.table, smk.output.meta, rows, columns,
            "MMD^2 of network outputs vs the Gaussian process N(0,K) per input set (theory-notes Sec. 7; paper Fig. 2)",
            experiment, extra)
write_table(smk.output.summary, smk.output.summary_meta, summary, summary_columns,
            "MMD^2 averaged over input sets", experiment, extra)
