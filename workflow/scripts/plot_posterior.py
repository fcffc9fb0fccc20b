"""Feature learning, 1/n scaling: n Delta vs n (importance-weighted prior MC) against the first-order theory line.

Snakemake script (rule plot_posterior).  One column per observable (readout
kernel, hidden kernel, test predictor), one row per activation; DNN and RNN
(and bias modes) in each panel.  Symbols: MC n Delta +- SE; lines: theory
(width independent), its RQMC band where non-zero.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, select,
    set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
task = exp["task"]
OBS = {
    "readout": r"$n\,\Delta[u^\top C_{\mathrm{aux}}^{(A+1,A+1)} u]$ (readout kernel)",
    "hidden": rf"$n\,\Delta[u^\top \hat{{C}}^{{({task['hidden_layer']},{task['hidden_layer']})}} u]$ (hidden, "
              rf"$a={task['hidden_layer']}$)",
    "predictor": r"$n\,\Delta[v^\top m_T]$ (test predictor)",
}
acts = unique(rows, "activation")
widths = unique(rows, "width")
fig, axes = new_figure(len(acts), len(OBS), width=4.0, height=3.2)
axes = np.atleast_2d(axes)
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]
biases = unique(rows, "bias")
for i, act in enumerate(acts):
    for j, obs in enumerate(OBS):
        ax = axes[i, j]
        k = 0
        for arch in archs:
            for bias in biases:
                for depth in unique(rows, "depth"):
                    sel = sorted(select(rows, activation=act, observable=obs, arch=arch, bias=bias, depth=depth),
                                 key=lambda r: r["width"])
                    if not sel:
                        continue
                    color = ARCH_COLORS[arch]
                    tag = arch.upper() + (f" {bias}" if len(biases) > 1 else "") + \
                        (f" A={depth}" if len(unique(rows, "depth")) > 1 else "")
                    n = np.asarray(column(sel, "width"), float) * (1.0 + 0.03 * (k - 0.5))  # small x offset
                    ax.errorbar(n, column(sel, "n_shift"), yerr=column(sel, "n_shift_se"), fmt=ARCH_MARKERS[arch],
                                mfc=color if bias == biases[0] else "white", color=color, ms=4, capsize=2,
                                label=f"{tag} MC (ESS >= {min(column(sel, 'ess')):.0f})")
                    th, th_se = sel[0]["theory"], sel[0]["theory_se"]
                    ax.axhline(th, ls=BIAS_STYLES.get(bias, "-"), color=color, lw=1.2, label=f"{tag} theory")
                    if th_se > 0:
                        ax.axhspan(th - th_se, th + th_se, color=color, alpha=0.15, lw=0)
                    k += 1
        ax.set_xscale("log")
        set_log_ticks(ax, widths)
        ax.set_xlabel("width $n$ (units)")
        ax.set_ylabel(OBS[obs], fontsize=8)
        ax.set_title(rf"$\phi$ = {act}", fontsize=9)
        if i == 0 and j == 0:
            ax.legend(fontsize=6, loc="best")
title = (f"{experiment_title(exp)}; linear teacher, P_D={task['train']}, "
         f"kappa={task['kappa']}, gamma_0={task['gamma0']}")
finish_figure(fig, smk, log, title)
