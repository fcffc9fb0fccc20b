"""Deep linear DNN, proportional limit: layer-kernel alignment with the target against alpha = P/n.

Snakemake script (rule plot_proportional).  One panel per layer l = 1..L:
r_l = u^T Caux^(l,l) u / u^T Cbar^(l,l) u against alpha.  Every (alpha, n)
point has its own data set (P = alpha n patterns drawn for it), so nothing is
joined by lines: HMC mean +- SE (filled circles, one colour per width) and the
theories evaluated on that point's data set, theory.posterior_kernels (diamonds)
and the MAP kernels (crosses), at the same abscissa (widths slightly offset in
alpha so that they do not hide each other); the NNGP value 1 (dotted line).
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
alphas = unique(rows, "alpha")
L = max(layers)
fig, axes = new_figure(1, len(layers), width=4.2, height=3.6)
axes = np.atleast_1d(axes).ravel()
colors = ["C0", "C1", "C2", "C3", "C4"]
step = 0.02 * (max(alphas) - min(alphas) if len(alphas) > 1 else max(alphas))  # x offset between widths
for ax, l in zip(axes, layers):
    for i, n in enumerate(widths):
        sel = sorted(select(rows, layer=l, width=n), key=lambda r: r["alpha"])
        x = column(sel, "alpha") + step * (i - (len(widths) - 1) / 2)
        c = colors[i % len(colors)]
        ax.errorbar(x, column(sel, "hmc"), yerr=column(sel, "hmc_se"), fmt="o", ls="none", color=c, ms=4,
                    capsize=2, label=f"HMC mean $\\pm$ SE, n = {n}")
        ax.plot(x, column(sel, "posterior"), "D", ls="none", color=c, mfc="none", ms=7, mew=1.2,
                label=f"posterior_kernels, n = {n}")
        ax.plot(x, column(sel, "map"), "x", ls="none", color=c, ms=6, mew=1.2, label=f"MAP kernels, n = {n}")
    ax.axhline(1.0, ls=":", color="k", lw=1.0, label="NNGP (n = $\\infty$)")
    ax.set_xticks(alphas)
    ax.set_xticklabels([f"{a:g}" for a in alphas])
    ax.margins(x=0.12)
    ax.set_xlabel(r"$\alpha = P/n$ (training patterns per unit)")
    ax.set_ylabel(rf"$r_{{{l}}} = u^\top C^{{({l},{l})}} u \,/\, u^\top \bar C^{{({l},{l})}} u$ (NNGP = 1)",
                  fontsize=8)
    ax.set_title(f"layer l = {l} ({'readout' if l == L else 'hidden'} kernel)", fontsize=9)
axes[0].legend(fontsize=6)
finish_figure(fig, smk, log, f"{exp.get('title') or exp['name']}: DNN, linear, sigma^2 = 0, A = {cfg['depth']}, "
              f"g^2 = {cfg['g2']}, kappa = {cfg['kappa']}, gamma_0 = {cfg['gamma0']}; "
              f"each (alpha, n): its own data set")
