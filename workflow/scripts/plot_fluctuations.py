"""Fig. 3a,b: Var Caux^(A+1,A+1) vs n (log-log, 1/n theory), Var Caux^(a,a) vs a; output kurtosis vs n.

Snakemake script (rule plot_fluctuations).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, plot_mc_and_theory,
    select, set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
fig, axes = new_figure(1, 3)
ax_n, ax_a, ax_k = axes[0]
widths = unique(rows, "width")
n_max = max(widths)
for arch in unique(rows, "arch"):
    for bias in unique(rows, "bias"):
        for depth in unique(rows, "depth"):
            color, marker, style = ARCH_COLORS[arch], ARCH_MARKERS[arch], BIAS_STYLES[bias]
            label = f"{arch.upper()} {bias}" + (f" A={depth}" if len(unique(rows, "depth")) > 1 else "")
            readout = select(rows, arch=arch, bias=bias, depth=depth, quantity="var_caux", a=depth + 1)
            readout.sort(key=lambda r: r["width"])
            if readout:
                n = column(readout, "width")
                ax_n.errorbar(n, column(readout, "mc"), yerr=column(readout, "mc_se"), fmt=marker, color=color,
                              ms=4, capsize=2, label=f"{label} MC")
                # the NLO variance is exactly proportional to 1/n: draw theory(n0) * n0 / n
                n_line = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
                ref = readout[-1]
                ax_n.plot(n_line, ref["theory"] * ref["width"] / n_line, style, color=color, lw=1.2,
                          label=f"{label} theory ~ 1/n")
            layers = select(rows, arch=arch, bias=bias, depth=depth, width=n_max, quantity="var_caux")
            layers = [r for r in layers if r["a"] >= 1]
            layers.sort(key=lambda r: r["a"])
            if layers:
                plot_mc_and_theory(ax_a, column(layers, "a"), layers, marker=marker, color=color, label=f"{label} MC",
                                   theory_label=f"{label} theory", theory_style=style)
            kurt = select(rows, arch=arch, bias=bias, depth=depth, quantity="excess_kurtosis")
            kurt.sort(key=lambda r: r["width"])
            if kurt:
                plot_mc_and_theory(ax_k, column(kurt, "width"), kurt, marker=marker, color=color, label=f"{label} MC",
                                   theory_label=f"{label} NLO", theory_style=style)
ax_n.set_yscale("log")
set_log_ticks(ax_n, widths)
ax_n.set_xlabel("width n")
ax_n.set_ylabel(r"Var $C_{\rm aux}^{(A+1,A+1)}$")
ax_n.set_title("(a) readout fluctuations vs width")
ax_a.set_xlabel("layer / readout step a")
ax_a.set_ylabel(r"Var $C_{\rm aux}^{(a,a)}$")
ax_a.set_title(f"(b) fluctuations vs step, n = {n_max}")
set_log_ticks(ax_k, widths)
ax_k.axhline(0.0, color="gray", lw=0.6)
ax_k.set_xlabel("width n")
ax_k.set_ylabel("output excess kurtosis")
ax_k.set_title(r"output non-Gaussianity: $\kappa_4 / K^2$")
for ax in axes[0]:
    ax.legend(fontsize=7)
finish_figure(fig, smk, log, experiment_title(exp))
