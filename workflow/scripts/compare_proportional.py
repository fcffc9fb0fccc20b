"""Deep linear DNN at fixed alpha = P/n: HMC posterior layer kernels vs proportional-limit theories.

Snakemake script (rule compare_proportional).  For each (alpha, n) point: the
HMC draws of caux_diag (mcsim posterior file) and the point's posterior spec
(data set, prior, kappa, gamma0) go to theory.proportional_comparison.compare_layers,
which returns per layer the projection of Caux^(l,l) on the unit target
direction in units of its NNGP value, HMC mean +- SE (sd / sqrt(ESS)), and the
theories (posterior_kernels, map_kernels, NNGP).  This script only reads, calls, writes.
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from _common import package_versions, setup_logging, write_table, z_score  # noqa: E402
from mcsim import read_posterior  # noqa: E402
from mcsim.posterior_cli import load_posterior_spec  # noqa: E402
from theory.proportional_comparison import compare_layers  # noqa: E402

smk = snakemake  # noqa: F821
log = setup_logging(smk)
experiment = json.loads(smk.params.experiment)

columns = {
    "point": "point name (results/<exp>/sim/<point>.h5)",
    "alpha": "alpha = P / n (training patterns per unit)",
    "width": "layer width n (units; also the input dimension n_in)",
    "patterns": "training patterns P",
    "depth": "hidden layers A (L = A+1 kernels l = 1..L; l = L is the readout kernel)",
    "layer": "layer l of Caux^(l,l)",
    "hmc": "HMC posterior mean of r_l = u^T Caux^(l,l) u / u^T Cbar^(l,l) u (u = unit target direction; NNGP = 1)",
    "hmc_se": "its Monte Carlo SE, sd / sqrt(ESS) of the chains",
    "rhat": "split R-hat of r_l",
    "ess": "bulk effective sample size of r_l",
    "posterior": "theory.posterior_kernels (exact recursion at the Li-Sompolinsky saddle, error O(1/n))",
    "map": "theory.map_kernels (forward-backward MAP kernels of the slides)",
    "nngp": "NNGP (infinite width): 1",
    "z": "(hmc - posterior) / hmc_se",
    "z_map": "(hmc - map) / hmc_se",
    "kappa": "observation noise kappa",
    "gamma0": "output scale gamma_0",
}
rows = []
for sim, spec_path in zip(smk.input.sim, smk.input.specs):
    kw = load_posterior_spec(spec_path)
    res = read_posterior(sim)
    prior, X, y, n = kw["prior"], kw["X"], kw["y"], kw["width"]
    gamma0 = kw.get("gamma0", 1.0)
    point = spec_path.rsplit("/", 1)[-1].removesuffix(".json")
    P = X.shape[0]
    for r in compare_layers(prior, X, y, kw["kappa"], n, gamma0, res.draws["caux_diag"]):
        rows.append({"point": point, "alpha": P / n, "width": n, "patterns": P, "depth": prior.depth,
                     "layer": r["layer"], "hmc": r["hmc"], "hmc_se": r["hmc_se"], "rhat": r["rhat"], "ess": r["ess"],
                     "posterior": r["posterior"], "map": r["map"], "nngp": r["nngp"],
                     "z": z_score(r["hmc"], r["posterior"], r["hmc_se"]), "z_map": z_score(r["hmc"], r["map"], r["hmc_se"]),
                     "kappa": kw["kappa"], "gamma0": gamma0})
    log.info("%s: max R-hat %.3f, divergences %s", point, res.diagnostics["max_rhat"], res.diagnostics["divergences"])

write_table(smk.output.table, smk.output.meta, rows, columns,
            "Deep linear DNN, proportional limit: HMC layer kernels projected on the target vs theory "
            "(issue 11, item 4.5)", experiment, {"versions": package_versions()})
