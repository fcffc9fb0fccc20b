"""Feature learning: test error of the posterior-mean predictor vs n (MC, NNGP, first-order theory).

Snakemake script (rule plot_posterior_generalisation).  Row 1, one panel per
task: test error against the width n (log axis): MC posterior-mean predictor
+- SE (symbols), the NNGP prediction (dashed, width independent) and the
first-order adapted-kernel theory err_GP + theory / n (solid), RNN and DNN
(one curve per activation).  Row 2: n (err_post - err_GP) against n, MC +- SE
vs the theory line.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (ARCH_COLORS, ARCH_MARKERS, column, experiment_title, finish_figure, new_figure,  # noqa: E402
                     select, set_log_ticks, start_plot, unique)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
task = exp["task"]
tasks = [t for t in task["kinds"] if select(rows, task=t)]
widths = unique(rows, "width")
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]
acts = unique(rows, "activation")
curves = sorted({(r["bias"], r["depth"]) for r in rows})
STYLES = ["-", "-.", ":", "--"]
fig, axes = new_figure(2, len(tasks), width=4.6, height=3.4)
for j, t in enumerate(tasks):
    top, bottom = axes[0, j], axes[1, j]
    k = 0
    for arch in archs:
        color = ARCH_COLORS[arch]
        for i, act in enumerate(acts):
            for bias, depth in curves:
                sel = sorted(select(rows, task=t, arch=arch, activation=act, bias=bias, depth=depth),
                             key=lambda r: r["width"])
                if not sel:
                    continue
                tag = f"{arch.upper()} {act}" + (f" {bias} A={depth}" if len(curves) > 1 else "")
                n = column(sel, "width")
                x = n * (1.0 + 0.03 * (k - 1))
                mfc = color if i == 0 else "white"
                top.errorbar(x, column(sel, "error_post"), yerr=column(sel, "error_post_se"), fmt=ARCH_MARKERS[arch],
                             color=color, mfc=mfc, ms=4, capsize=2, label=f"{tag} posterior MC")
                dense = np.geomspace(n[0], n[-1], 50)
                top.plot(dense, sel[0]["error_gp"] + sel[0]["theory"] / dense, STYLES[i % 4], color=color, lw=1.2,
                         label=f"{tag} adapted-kernel theory")
                top.axhline(sel[0]["error_gp"], ls="--", color=color, lw=0.8, alpha=0.7, label=f"{tag} NNGP")
                bottom.errorbar(x, column(sel, "n_diff"), yerr=column(sel, "n_diff_se"), fmt=ARCH_MARKERS[arch],
                                color=color, mfc=mfc, ms=4, capsize=2, label=f"{tag} MC (ESS >= "
                                f"{min(column(sel, 'ess')):.0f})")
                bottom.axhline(sel[0]["theory"], ls=STYLES[i % 4], color=color, lw=1.2, label=f"{tag} theory")
                k += 1
    for ax in (top, bottom):
        set_log_ticks(ax, widths)
        ax.set_xlabel("width $n$ (units)")
    bottom.axhline(0.0, color="grey", lw=0.6)
    top.set_ylabel(r"test error $\mathrm{mean}_t(E[m]_t - y_t)^2$", fontsize=8)
    bottom.set_ylabel(r"$n\,(\mathrm{err}_{\mathrm{post}} - \mathrm{err}_{\mathrm{GP}})$", fontsize=8)
    label = {"linear_teacher": "linear teacher", "xor": r"XOR-like: $y = \mathrm{sign}(x_0)\,\mathrm{sign}(x_1)$"}[t]
    top.set_title(f"{label}: test error", fontsize=9)
    bottom.set_title(f"{label}: 1/n shift from the NNGP", fontsize=9)
    top.legend(fontsize=5.5, loc="best")
    bottom.legend(fontsize=5.5, loc="best")
title = (f"{experiment_title(exp)}; P_D={task['train']} of {exp['inputs']['count']} patterns, "
         f"kappa={task['kappa']}, gamma_0={task['gamma0']}")
finish_figure(fig, smk, log, title)
