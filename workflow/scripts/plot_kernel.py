"""Figs. 1/5: Chat^(a,a) vs a and Chat^(a,b) vs a for fixed b; MC (mean +- SEM) vs theory.

Snakemake script (rule plot_kernel).
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, column, new_figure, prior_title, read_table, save_figure, select, setup_logging, unique,
)

smk = snakemake  # noqa: F821
log = setup_logging(smk)
rows = read_table(smk.input.table)
exp = json.loads(smk.params.experiment)
cross_steps = [b for b in exp["analysis"]["cross_steps"] if select(rows, quantity="cross", b=b)]
biases = [b for b in exp["grid"]["bias"] if select(rows, bias=b)]  # config order
fig, axes = new_figure(len(biases), 1 + len(cross_steps))
for i, bias in enumerate(biases):
    panels = [("diag", None)] + [("cross", b) for b in cross_steps]
    for j, (quantity, b) in enumerate(panels):
        ax = axes[i, j]
        for arch in unique(rows, "arch"):
            for width in unique(rows, "width"):
                sel = select(rows, bias=bias, arch=arch, width=width, quantity=quantity)
                if b is not None:
                    sel = select(sel, b=b)
                if not sel:
                    continue
                sel.sort(key=lambda r: r["a"])
                a = column(sel, "a")
                label = f"{arch.upper()} MC (n={width})"
                ax.errorbar(a, column(sel, "mc_mean"), yerr=column(sel, "mc_sem"), fmt=ARCH_MARKERS[arch], ms=3,
                            color=ARCH_COLORS[arch], label=label, capsize=1.5, alpha=0.85)
                ax.plot(a, column(sel, "theory"), "-", color=ARCH_COLORS[arch], lw=1.2, label=f"{arch.upper()} theory")
        ax.set_xlabel("layer / time step a")
        if quantity == "diag":
            ax.set_ylabel(r"$\hat C^{(a,a)}$")
            ax.set_title(f"{bias} bias: diagonal")
        else:
            ax.set_ylabel(rf"$\hat C^{{(a,{b})}}$")
            ax.set_title(f"{bias} bias: cross-covariance, b = {b}")
        ax.legend(fontsize=7)
fig.suptitle(f"{exp.get('title') or exp['name']}: {prior_title(exp)}", fontsize=10)
fig.tight_layout()
save_figure(fig, smk.output.figures, smk.params.dpi)
log.info("wrote %s", list(smk.output.figures))
