"""Fig. 2: MMD^2 vs width or depth for DNN/RNN and both bias modes, with the noise floor.

Snakemake script (rule plot_mmd).  The x axis is the swept grid axis (width,
else depth); other axes with several values become separate curves.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, select,
    set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk, "summary")
xkey = "width" if len(unique(rows, "width")) > 1 or len(unique(rows, "depth")) == 1 else "depth"
other = [k for k in ("width", "depth", "g2", "activation") if k != xkey and len(unique(rows, k)) > 1]
biases = [b for b in exp["grid"]["bias"] if select(rows, bias=b)]  # config order
fig, axes = new_figure(1, len(biases))
for j, bias in enumerate(biases):
    ax = axes[0, j]
    for arch in unique(rows, "arch"):
        combos = sorted({tuple(r[k] for k in other) for r in select(rows, bias=bias, arch=arch)})
        for combo in combos:
            sel = select(rows, bias=bias, arch=arch, **dict(zip(other, combo)))
            sel.sort(key=lambda r: r[xkey])
            x = column(sel, xkey)
            extra = ", ".join(f"{k}={v}" for k, v in zip(other, combo))
            yerr = np.nan_to_num(column(sel, "mmd2_sem"))
            ax.errorbar(x, column(sel, "mmd2_mean"), yerr=yerr, fmt=ARCH_MARKERS[arch] + BIAS_STYLES[bias],
                        color=ARCH_COLORS[arch], ms=4, capsize=2, label=f"{arch.upper()} {extra}".strip())
            floor, floor_std = column(sel, "noise_floor_mean"), column(sel, "noise_floor_std")
            ax.fill_between(x, floor - 2 * floor_std, floor + 2 * floor_std, color=ARCH_COLORS[arch], alpha=0.15,
                            label=f"{arch.upper()} noise floor (mean +- 2 std)")
    ax.axhline(0.0, color="gray", lw=0.6)
    set_log_ticks(ax, unique(rows, xkey))
    ax.set_xlabel("width n" if xkey == "width" else "depth A")
    ax.set_ylabel(r"MMD$^2$ (outputs vs $\mathcal{N}(0,K)$)")
    ax.set_title(f"{bias} bias, l = {rows[0]['lengthscale']}")
    ax.legend(fontsize=7)
finish_figure(fig, smk, log, experiment_title(exp))
