"""Fig. 3c,d: spread over input draws of the weight-averaged overlaps vs linear response.

Snakemake script (rule compare_input_propagation).  Points that differ only
in the input set form one group.  For each layer a and input set s the
weight-averaged Caux^(a,a) (pattern 0) is the mean over realizations; its
standard deviation over input sets is compared with (i) the spread of the
mean-field kernel C^(a,a)(x_s) and (ii) the linear-response prediction
input_propagation[a] * std_s C^(0,0)(x_s) (Eq. 42).  The finite-R weight noise
of the averages, sqrt(mean_s Var_r / R), is reported and subtracted in
mc_std_corrected.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    INPUT_SET_GROUP_KEYS, input_set_group_columns, package_versions, point_name, read_h5, read_sim, setup_logging,
    valid_realizations, write_table,
)
from theory.comparison import input_spread, weight_average  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
points = json.loads(smk.params.points)
experiment = json.loads(smk.params.experiment)
group_keys = INPUT_SET_GROUP_KEYS


groups = {}
for sim_path, theory_path in zip(smk.input.sim, smk.input.theory):
    point = point_name(sim_path, theory_path)
    groups.setdefault(tuple(points[point][k] for k in group_keys), []).append((point, sim_path, theory_path))

columns = {
    **input_set_group_columns(),
    "input_sets": "number of input draws",
    "realizations": "weight realizations used per input set (the fewest over the sets; all equal unless some overflowed)",
    "a": "layer / time step a (A+1 = readout)",
    "mc_std": "std over input draws of the weight-averaged Caux^(a,a)",
    "mc_std_se": "jackknife (over input draws) standard error of mc_std",
    "weight_noise": "finite-R noise of the weight averages, sqrt(mean_s Var_r[Caux^(a,a)] / R)",
    "mc_std_corrected": "sqrt(max(mc_std^2 - weight_noise^2, 0))",
    "mft_std": "std over input draws of the mean-field C^(a,a)(x_s)",
    "linear_response": "input_propagation[a] (averaged over draws) * std_s C^(0,0)(x_s) (Eq. 42)",
}
rows = []
for key, members in groups.items():
    means, sems, kernels, props, counts = [], [], [], [], []
    for point, sim_path, theory_path in members:
        data, _ = read_sim(sim_path)
        theory, _ = read_h5(theory_path)
        ok = valid_realizations(data)
        caux = np.asarray(data["caux_diag"])[ok][:, :, 0, 0]  # (R, A+2)
        mean, err = weight_average(caux)
        means.append(mean)
        sems.append(err)
        kernels.append(np.diagonal(np.asarray(theory["kernel"])[:, :, 0, 0]))
        props.append(np.asarray(theory["input_propagation"])[0])
        counts.append(caux.shape[0])
    spread = input_spread(means, sems, kernels, props)  # each (A+2,)
    for a in range(len(spread["mc_std"])):
        rows.append({**dict(zip(group_keys, key)), "input_sets": len(members), "realizations": int(min(counts)),
                     "a": a, **{name: values[a] for name, values in spread.items()}})
    log.info("%s: %d input sets", key, len(members))

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Propagation of input fluctuations through layers / time (theory-notes Sec. 6; paper Fig. 3c,d)",
            experiment, {"versions": package_versions()})
