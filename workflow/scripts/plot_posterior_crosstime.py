"""Feature learning: posterior shift of the cross-time (RNN) / cross-layer (DNN) kernels vs gamma_0.

Snakemake script (rule plot_posterior_crosstime).  One panel per hidden pair
(a, b), a < b: n Delta[u^T Chat^(a,b)_DD u] against the output scale gamma_0
(log axis), MC +- SE at every width (filled: largest width) and the first-order
theory line (width independent, RQMC band where non-zero), RNN and DNN;
stars: the Richardson extrapolation of the two largest widths (claim 10).  Last
panel: the importance-sampling ESS against gamma_0 (dotted: task.min_ess).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (ARCH_COLORS, ARCH_MARKERS, column, experiment_title, finish_figure, new_figure,  # noqa: E402
                     select, set_log_ticks, start_plot, unique)
from theory.adaptation_comparison import richardson  # noqa: E402

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
task = exp["task"]
pairs = sorted({(r["a"], r["b"]) for r in rows})
widths = unique(rows, "width")
gammas = unique(rows, "gamma0")
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]
curves = sorted({(r["bias"], r["activation"], r["depth"]) for r in rows})
fig, axes = new_figure(1, len(pairs) + 1, width=3.8, height=3.3)
axes = axes[0]
for j, (a, b) in enumerate(pairs):
    ax = axes[j]
    for arch in archs:
        color = ARCH_COLORS[arch]
        for bias, act, depth in curves:
            tag = arch.upper() + (f" {bias} {act} A={depth}" if len(curves) > 1 else "")
            for k, n in enumerate(widths):
                sel = sorted(select(rows, arch=arch, a=a, b=b, width=n, bias=bias, activation=act, depth=depth),
                             key=lambda r: r["gamma0"])
                sel = [r for r in sel if r["valid"] == 1]
                if not sel:
                    continue
                x = column(sel, "gamma0") * (1.0 + 0.04 * (k - (len(widths) - 1) / 2))
                largest = n == widths[-1]
                ax.errorbar(x, column(sel, "n_shift"), yerr=column(sel, "n_shift_se"), fmt=ARCH_MARKERS[arch],
                            color=color, mfc=color if largest else "white", ms=4, capsize=2,
                            label=f"{tag} MC n={n}")
            if len(widths) > 1:  # Richardson extrapolation n -> infinity of the two largest widths
                pts = [(r1["gamma0"], *richardson(widths[-2], r1["n_shift"], r1["n_shift_se"], widths[-1],
                                                  r2["n_shift"], r2["n_shift_se"]))
                       for r1 in select(rows, arch=arch, a=a, b=b, width=widths[-2], bias=bias, activation=act,
                                        depth=depth)
                       for r2 in select(rows, arch=arch, a=a, b=b, width=widths[-1], bias=bias, activation=act,
                                        depth=depth, gamma0=r1["gamma0"]) if r1["valid"] == 1 and r2["valid"] == 1]
                if pts:
                    gx, ex, ese = np.array(sorted(pts)).T
                    ax.errorbar(gx * 1.1, ex, yerr=ese, fmt="*", color=color, ms=6, capsize=2, alpha=0.6,
                                label=f"{tag} MC extrapolated (n={widths[-2]}, {widths[-1]})")
            sel = sorted(select(rows, arch=arch, a=a, b=b, width=widths[-1], bias=bias, activation=act,
                                depth=depth), key=lambda r: r["gamma0"])
            g, th, th_se = column(sel, "gamma0"), column(sel, "theory"), column(sel, "theory_se")
            ax.plot(g, th, "-", color=color, lw=1.2, label=f"{tag} first-order theory")
            if np.any(th_se > 0):
                ax.fill_between(g, th - th_se, th + th_se, color=color, alpha=0.15, lw=0)
    ax.axhline(0.0, color="grey", lw=0.6)
    set_log_ticks(ax, gammas)
    ax.set_xlabel(r"output scale $\gamma_0$ (dimensionless; $K = C_{\mathrm{aux}}^{(A+1,A+1)}/\gamma_0$)",
                  fontsize=8)
    ax.set_ylabel(rf"$n\,\Delta[u^\top \hat C^{{({a},{b})}}_{{DD}} u]$", fontsize=9)
    ax.set_title(f"pair (a, b) = ({a}, {b}): RNN cross-time, DNN cross-layer", fontsize=8)
    if j == 0:
        ax.legend(fontsize=6, loc="best")
ax = axes[-1]
for arch in archs:
    for k, n in enumerate(widths):
        sel = sorted(select(rows, arch=arch, a=pairs[0][0], b=pairs[0][1], width=n), key=lambda r: r["gamma0"])
        ax.plot(column(sel, "gamma0"), column(sel, "ess"), ARCH_MARKERS[arch] + "-", color=ARCH_COLORS[arch],
                mfc=ARCH_COLORS[arch] if n == widths[-1] else "white", ms=4, lw=0.8, label=f"{arch.upper()} n={n}")
ax.axhline(task["min_ess"], ls=":", color="grey", label=f"min_ess = {task['min_ess']:g}")
ax.set_yscale("log")
set_log_ticks(ax, gammas)
ax.set_xlabel(r"output scale $\gamma_0$", fontsize=8)
ax.set_ylabel("effective sample size (realizations)", fontsize=8)
ax.set_title("importance-sampling ESS", fontsize=8)
ax.legend(fontsize=6, loc="best")
title = (f"{experiment_title(exp)}; {task['kind']}, P_D={task['train']}, kappa={task['kappa']}; "
         f"u: unit target direction")
finish_figure(fig, smk, log, title)
