"""Figs. 1/5: Chat^(a,a) vs a and Chat^(a,b) vs a for fixed b; MC (mean +- SEM) vs theory.

Snakemake script (rule plot_kernel).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, column, experiment_title, finish_figure, new_figure, select,
    start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
DRAW = {  # the DNN must stay visible where it coincides with the RNN
    "rnn": {"mfc": "white", "ms": 5, "dx": 0.15, "z": 3, "line": "-"},
    "dnn": {"mfc": None, "ms": 3, "dx": -0.15, "z": 4, "line": "--"},
}
cross_steps = [b for b in exp["analysis"]["cross_steps"] if select(rows, quantity="cross", b=b)]
biases = [b for b in exp["grid"]["bias"] if select(rows, bias=b)]  # config order
fig, axes = new_figure(len(biases), 1 + len(cross_steps))
for i, bias in enumerate(biases):
    panels = [("diag", None)] + [("cross", b) for b in cross_steps]
    for j, (quantity, b) in enumerate(panels):
        ax = axes[i, j]
        for arch in ("rnn", "dnn"):  # RNN first (hollow, larger), DNN on top (filled, smaller), offset in a
            style = DRAW[arch]
            for width in unique(rows, "width"):
                sel = select(rows, bias=bias, arch=arch, width=width, quantity=quantity)
                if b is not None:
                    sel = select(sel, b=b)
                if not sel:
                    continue
                sel.sort(key=lambda r: r["a"])
                a = column(sel, "a")
                ax.plot(a, column(sel, "theory"), style["line"], color=ARCH_COLORS[arch], lw=1.2,
                        label=f"{arch.upper()} theory", zorder=style["z"] - 1)
                ax.errorbar(a + style["dx"], column(sel, "mc_mean"), yerr=column(sel, "mc_sem"),
                            fmt=ARCH_MARKERS[arch], color=ARCH_COLORS[arch], mfc=style["mfc"], ms=style["ms"],
                            capsize=1.5, label=f"{arch.upper()} MC (n={width}, mean $\\pm$ SEM)", zorder=style["z"])
        ax.set_xlabel("layer (DNN) / time step (RNN) a")
        if quantity == "diag":
            ax.set_ylabel(r"$\hat C^{(a,a)}$")
            ax.set_title(f"{bias} bias: diagonal")
        else:
            ax.set_ylabel(rf"$\hat C^{{(a,{b})}}$")
            ax.set_title(f"{bias} bias: cross-covariance, b = {b}")
handles, labels = axes[0, 0].get_legend_handles_labels()  # one legend below the panels: none covers data
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=8, frameon=False)
finish_figure(fig, smk, log, experiment_title(exp))
