"""Fig. 3c,d: std over input draws of weight-averaged overlaps vs layer, MC vs linear response.

Snakemake script (rule plot_input_propagation).  One panel per architecture.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, select, start_plot,
    unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]  # paper order: (c) RNN, (d) DNN
fig, axes = new_figure(1, len(archs), width=4.6, height=4.6)
for j, arch in enumerate(archs):
    ax = axes[0, j]
    color, marker = ARCH_COLORS[arch], ARCH_MARKERS[arch]
    for bias in unique(rows, "bias"):
        for width in unique(rows, "width"):
            sel = select(rows, arch=arch, bias=bias, width=width)
            sel.sort(key=lambda r: r["a"])
            a = column(sel, "a")
            label = f"{bias}, n={width}"
            ax.errorbar(a, column(sel, "mc_std"), yerr=np.nan_to_num(column(sel, "mc_std_se")), fmt=marker,
                        color=color, ms=4, capsize=2, label=f"MC {label}")
            noise = column(sel, "weight_noise")
            noise[noise <= 1e-12 * max(noise.max(), 1e-300)] = np.nan  # a = 0 is deterministic: no weight noise
            ax.plot(a, noise, ":", color="gray", lw=1, label=f"finite-R weight noise ({label})")
            ax.plot(a, column(sel, "mc_std_corrected"), marker, mfc="none", color=color, ms=6,
                    label=f"MC, weight noise subtracted ({label})")
            ax.plot(a, column(sel, "linear_response"), BIAS_STYLES[bias], color=color, lw=1.2,
                    label=f"linear response Eq. 42 ({label})")
            ax.plot(a, column(sel, "mft_std"), "x", color="k", ms=4, label=f"MFT kernel spread ({label})")
    ax.set_yscale("log")
    ax.set_xlabel("time step a" if arch == "rnn" else "layer a")
    ax.set_ylabel(r"std over inputs of $\langle C_{\rm aux}^{(a,a)} \rangle_W$")
    sets = int(sel[0]["input_sets"])
    ax.set_title(f"({'cd'[j] if len(archs) == 2 else chr(99 + j)}) {arch.upper()}: input-fluctuation propagation "
                 f"({sets} input draws)", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1, frameon=False)
finish_figure(fig, smk, log, experiment_title(exp))
