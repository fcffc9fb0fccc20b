"""Fig. 4: RNN Chat^(a,a) vs a and Chat^(ref, ref+lag) vs lag for several widths, with theory.

Snakemake script (rule plot_instability).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import column, experiment_title, finish_figure, new_figure, select, start_plot, unique  # noqa: E402

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
ref = exp["analysis"]["reference_step"]
fig, axes = new_figure(1, 2)
ax_d, ax_l = axes[0]
markers = "osD^v<>"
combos = sorted({(r["arch"], r["bias"]) for r in rows})
for arch, bias in combos:
    tag = f"{arch.upper()}" + (f" {bias}" if len(combos) > 1 else "")
    for k, width in enumerate(unique(rows, "width")):
        for ax, quantity, xkey in ((ax_d, "diag", "a"), (ax_l, "lag", "lag")):
            sel = select(rows, arch=arch, bias=bias, width=width, quantity=quantity)
            sel.sort(key=lambda r: r[xkey])
            x, mean, err = column(sel, xkey), column(sel, "mc_mean"), column(sel, "mc_sem")
            dropped = sel[0]["overflowed"]
            label = f"{tag} n={width}" + (f" ({dropped} overflowed)" if dropped else "")
            ax.plot(x, mean, markers[k % len(markers)], ms=3.5, label=label)
            ax.fill_between(x, np.maximum(mean - err, 0.5 * mean), mean + err, alpha=0.2)  # log axis: clip lower band
    for ax, quantity, xkey in ((ax_d, "diag", "a"), (ax_l, "lag", "lag")):
        sel = select(rows, arch=arch, bias=bias, width=unique(rows, "width")[0], quantity=quantity)
        sel.sort(key=lambda r: r[xkey])
        ax.plot(column(sel, xkey), column(sel, "theory"), "-", color="gray", lw=1.5, label=f"{tag} mean-field theory")
ax_d.set_xlabel("time step a")
ax_d.set_ylabel(r"$\hat C^{(a,a)}$ (mean $\pm$ SEM)")
ax_d.set_title("(a) equal-time variance")
ax_l.set_xlabel(r"lag $\Delta a$")
ax_l.set_ylabel(rf"$\hat C^{{({ref},{ref}+\Delta a)}}$ (mean $\pm$ SEM)")
ax_l.set_title(f"(b) time-lagged covariance from step {ref}")
for ax in (ax_d, ax_l):
    ax.set_yscale("log")
    ax.legend(fontsize=7)
finish_figure(fig, smk, log, experiment_title(exp))
