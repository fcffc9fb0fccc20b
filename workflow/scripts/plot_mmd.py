"""Fig. 2: MMD^2 vs width or depth for DNN/RNN and both bias modes, with the noise floor.

Snakemake script (rule plot_mmd).  The x axis is the swept grid axis (width,
else depth).  Symbols: mean over input sets +- SEM over input sets; small
faint symbols: each input set's value, so the spread behind the SEM is shown.
With several g^2 values the first (config order) is the main panel and the
others are insets (paper Fig. 2a,c: g^2 = 1.6, inset 1.2).  Other axes with
several values become separate curves.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, read_table, select,
    set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk, "summary")
per_set = read_table(smk.input.table)
xkey = "width" if len(unique(rows, "width")) > 1 or len(unique(rows, "depth")) == 1 else "depth"
g2_values = [float(g) for g in exp["grid"]["g2"] if select(rows, g2=float(g))]  # config order: first = main panel
other = [k for k in ("width", "depth", "activation") if k != xkey and len(unique(rows, k)) > 1]
biases = [b for b in exp["grid"]["bias"] if select(rows, bias=b)]  # config order
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]
sets = int(max(r["input_sets"] for r in rows))
fig, axes = new_figure(1, len(biases), width=4.8, height=4.4)


def draw(ax, bias, g2, small=False):
    for arch in archs:
        combos = sorted({tuple(r[k] for k in other) for r in select(rows, bias=bias, arch=arch, g2=g2)})
        for combo in combos:
            cond = dict(bias=bias, arch=arch, g2=g2, **dict(zip(other, combo)))
            sel = sorted(select(rows, **cond), key=lambda r: r[xkey])
            x = column(sel, xkey)
            shift = 1.03 if arch == "dnn" else 1 / 1.03  # small offset so the two architectures do not hide each other
            extra = ", ".join(f"{k}={v}" for k, v in zip(other, combo))
            color = ARCH_COLORS[arch]
            floor, floor_std = column(sel, "noise_floor_mean"), column(sel, "noise_floor_std")
            ax.fill_between(x, floor - 2 * floor_std, floor + 2 * floor_std, color=color, alpha=0.15, lw=0,
                            label=None if small else f"{arch.upper()} noise floor (exact, 0 $\\pm$ 2 std)")
            singles = select(per_set, **cond)
            ax.plot(column(singles, xkey) * shift, column(singles, "mmd2"), ARCH_MARKERS[arch], color=color,
                    ms=2.5 if small else 3, alpha=0.35, mew=0,
                    label=None if small else f"{arch.upper()} single input set")
            ax.errorbar(x * shift, column(sel, "mmd2_mean"), yerr=np.nan_to_num(column(sel, "mmd2_sem")),
                        fmt=ARCH_MARKERS[arch] + BIAS_STYLES[bias], color=color, ms=3 if small else 4.5, capsize=2,
                        lw=1.0 if small else 1.4,
                        label=None if small else f"{arch.upper()} {extra} mean $\\pm$ SEM ({sets} input sets)".replace("  ", " "))
    ax.axhline(0.0, color="gray", lw=0.6)
    set_log_ticks(ax, unique(rows, xkey))


for j, bias in enumerate(biases):
    ax = axes[0, j]
    draw(ax, bias, g2_values[0])
    ax.set_xlabel("width n" if xkey == "width" else "depth A")
    ax.set_ylabel(r"MMD$^2$ (outputs vs $\mathcal{N}(0,K)$)")
    ax.set_title(f"{'(a)' if j == 0 else '(c)'} {bias} bias, " + rf"$g^2={g2_values[0]:g}$, l = {rows[0]['lengthscale']}"
                 if xkey == "width" else
                 f"{'(b)' if j == 0 else '(d)'} {bias} bias, " + rf"$g^2={g2_values[0]:g}$, l = {rows[0]['lengthscale']}",
                 fontsize=10)
    for k, g2 in enumerate(g2_values[1:]):
        inset = ax.inset_axes([0.52, 0.52 - 0.45 * k, 0.45, 0.43])
        draw(inset, bias, g2, small=True)
        inset.set_title(rf"inset: $g^2={g2:g}$", fontsize=7, pad=2)
        inset.tick_params(labelsize=6)
        inset.yaxis.get_offset_text().set_fontsize(6)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
finish_figure(fig, smk, log, experiment_title(exp))
