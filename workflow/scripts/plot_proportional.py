"""Deep linear DNN, proportional limit: layer-kernel alignment with the target against alpha = P/n.

Snakemake script (rule plot_proportional).  One panel per layer l = 1..L:
r_l = u^T Caux^(l,l) u / u^T Cbar^(l,l) u against alpha; HMC +- SE (symbols,
one colour per width), theory.posterior_kernels (solid), the MAP kernels
(dashed), the NNGP (dotted, 1); theories at the largest width's data sets.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import column, finish_figure, new_figure, select, start_plot, unique  # noqa: E402

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
cfg = exp["proportional"]
layers = unique(rows, "layer")
widths = unique(rows, "width")
L = max(layers)
fig, axes = new_figure(1, len(layers), width=4.0, height=3.4)
axes = np.atleast_1d(axes).ravel()
colors = ["C0", "C1", "C2", "C3", "C4"]
for ax, l in zip(axes, layers):
    for i, n in enumerate(widths):
        sel = sorted(select(rows, layer=l, width=n), key=lambda r: r["alpha"])
        x = column(sel, "alpha")
        c = colors[i % len(colors)]
        ax.errorbar(x, column(sel, "hmc"), yerr=column(sel, "hmc_se"), fmt="o", color=c, ms=4, capsize=2,
                    label=f"HMC, n = {n}")
        ax.plot(x, column(sel, "posterior"), "-", color=c, lw=1.2, label=f"posterior_kernels, n = {n}")
        ax.plot(x, column(sel, "map"), "--", color=c, lw=1.0, label=f"MAP kernels, n = {n}")
    ax.axhline(1.0, ls=":", color="k", lw=1.0, label="NNGP")
    name = "readout" if l == L else "hidden"
    ax.set_xlabel(r"$\alpha = P/n$")
    ax.set_ylabel(rf"$u^\top C^{{({l},{l})}} u \,/\, u^\top \bar C^{{({l},{l})}} u$ ({name})")
    ax.set_title(f"layer l = {l}", fontsize=9)
axes[0].legend(fontsize=6)
finish_figure(fig, smk, log, f"{exp.get('title') or exp['name']}: DNN, linear, sigma^2 = 0, A = {cfg['depth']}, "
              f"g^2 = {cfg['g2']}, kappa = {cfg['kappa']}, gamma0 = {cfg['gamma0']}")
