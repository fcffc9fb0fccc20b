"""Feature learning: 1/n scaling of the adaptation and adaptation per layer, MC vs first-order theory.

Snakemake script (rule plot_posterior).  Rows 1..k (one per activation), one
column per observable (readout kernel, hidden kernel, test predictor): n Delta
vs n, DNN and RNN (and bias modes) in each panel; symbols: MC +- SE; lines:
theory (width independent), its RQMC band where non-zero.  Last row:
kernel-target alignment CKA of C^(a) vs layer a (prior: mean field lines, MC
symbols), and n Delta[CKA^(a)] vs a at the largest width, one panel per
activation (MC symbols vs theory lines).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, select,
    set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
_, layer_rows, _ = start_plot(smk, "layers")
task = exp["task"]
OBS = {
    "readout": r"$n\,\Delta[u^\top C_{\mathrm{aux}}^{(A+1,A+1)} u]$ (readout kernel)",
    "hidden": rf"$n\,\Delta[u^\top \hat{{C}}^{{({task['hidden_layer']},{task['hidden_layer']})}} u]$ (hidden, "
              rf"$a={task['hidden_layer']}$)",
    "predictor": r"$n\,\Delta[v^\top m_T]$ (test predictor)",
}
acts = unique(rows, "activation")
widths = unique(rows, "width")
ncols = max(len(OBS), 1 + len(acts))
fig, axes = new_figure(len(acts) + 1, ncols, width=4.0, height=3.2)
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
for ax in axes[: len(acts), len(OBS):].ravel():
    ax.set_visible(False)
for ax in axes[len(acts), 1 + len(acts):]:
    ax.set_visible(False)

# last row: adaptation per layer
n_max = max(widths)
ax_p = axes[len(acts), 0]
for arch in archs:
    color = ARCH_COLORS[arch]
    for i, act in enumerate(acts):
        for bias in biases:
            sel = sorted(select(layer_rows, activation=act, arch=arch, bias=bias, width=n_max), key=lambda r: r["a"])
            if not sel:
                continue
            a = np.asarray(column(sel, "a"), float)
            style = ["-", ":", "-.", "--"][i % 4]
            ax_p.plot(a, column(sel, "prior_mf"), style, color=color, lw=1.2, label=f"{arch.upper()} {act} mean field")
            ax_p.plot(a + (0.08 if arch == "dnn" else -0.08), column(sel, "prior_mc"), ARCH_MARKERS[arch],
                      color=color, ms=4, mfc="white", label=f"{arch.upper()} {act} MC prior (n={n_max})")
            ax = axes[len(acts), 1 + i]
            ax.errorbar(a + (0.08 if arch == "dnn" else -0.08), column(sel, "n_shift"), yerr=column(sel, "n_shift_se"),
                        fmt=ARCH_MARKERS[arch], color=color, ms=4, capsize=2, label=f"{arch.upper()} MC (n={n_max})")
            ax.plot(a, column(sel, "theory"), BIAS_STYLES.get(bias, "-"), color=color, lw=1.2,
                    label=f"{arch.upper()} theory")
            ax.set_title(rf"$\phi$ = {act}: adaptation per layer", fontsize=9)
            ax.set_xlabel("layer / time step $a$ ($A+1$: readout)")
            ax.set_ylabel(r"$n\,\Delta[\mathrm{CKA}(C^{(a)}_{DD}, y y^\top)]$", fontsize=8)
            ax.legend(fontsize=6, loc="best")
for ax in axes[len(acts), : 1 + len(acts)]:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax_p.set_title("alignment of the prior kernels", fontsize=9)
ax_p.set_xlabel("layer / time step $a$ ($A+1$: readout)")
ax_p.set_ylabel(r"$\mathrm{CKA}(C^{(a)}_{DD}, y y^\top)$ (prior)", fontsize=8)
ax_p.legend(fontsize=5, loc="best")
title = (f"{experiment_title(exp)}; linear teacher, P_D={task['train']}, "
         f"kappa={task['kappa']}, gamma_0={task['gamma0']}")
finish_figure(fig, smk, log, title)
