"""Fig. 4: RNN Chat^(a,a) vs a and Chat^(ref, ref+lag) vs lag for several widths, with theory.

Snakemake script (rule plot_instability).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    column, experiment_title, finish_figure, new_figure, select, set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
ref = exp["analysis"]["reference_step"]
fig, axes = new_figure(1, 3, width=4.4, height=3.6)
ax_d, ax_l, ax_r = axes[0]
markers = "osD^v<>"
combos = sorted({(r["arch"], r["bias"]) for r in rows})
widths = unique(rows, "width")
colors = [f"C{k}" for k in range(len(widths))]
for arch, bias in combos:
    tag = f"{arch.upper()}" + (f" {bias}" if len(combos) > 1 else "")
    last_ratio, last_err = [], []
    for k, width in enumerate(widths):
        for ax, quantity, xkey in ((ax_d, "diag", "a"), (ax_l, "lag", "lag")):
            sel = select(rows, arch=arch, bias=bias, width=width, quantity=quantity)
            sel.sort(key=lambda r: r[xkey])
            x, mean, err = column(sel, xkey), column(sel, "mc_mean"), column(sel, "mc_sem")
            dropped = sel[0]["overflowed"]
            label = f"{tag} n={width}, R={sel[0]['realizations']}" + (f" ({dropped} overflowed)" if dropped else "")
            ax.plot(x, mean, markers[k % len(markers)], color=colors[k], ms=3.5, label=label)
            ax.fill_between(x, np.maximum(mean - err, 0.5 * mean), mean + err, color=colors[k], alpha=0.2)
        diag = sorted(select(rows, arch=arch, bias=bias, width=width, quantity="diag"), key=lambda r: r["a"])
        last = diag[-1]
        last_ratio.append(last["mc_mean"] / last["theory"])
        last_err.append(last["mc_sem"] / last["theory"])
    for ax, quantity, xkey in ((ax_d, "diag", "a"), (ax_l, "lag", "lag")):
        sel = select(rows, arch=arch, bias=bias, width=widths[0], quantity=quantity)
        sel.sort(key=lambda r: r[xkey])
        ax.plot(column(sel, xkey), column(sel, "theory"), "-", color="gray", lw=1.5, label=f"{tag} mean-field theory",
                zorder=1)
    a_last = diag[-1]["a"]
    ratio, err = np.array(last_ratio), np.array(last_err)
    ax_r.errorbar(widths, ratio, yerr=err, fmt="o-", color="k", ms=4, capsize=2,
                  label=rf"{tag}: $\hat C^{{({a_last},{a_last})}}$ / C (mean $\pm$ SEM)")
    for w, r_, e in zip(widths, ratio, err):
        ax_r.annotate(f"{r_:.3g}", (w, r_), textcoords="offset points", xytext=(4, 4), fontsize=7)
    log.info("%s: MC/theory at a = %d: %s", tag, a_last, ", ".join(f"n={w}: {r_:.3g} +- {e:.2g}"
                                                                  for w, r_, e in zip(widths, ratio, err)))
ax_r.axhline(1.0, color="gray", lw=1.0, label="mean-field theory")
ax_d.set_xlabel("time step a")
ax_d.set_ylabel(r"$\hat C^{(a,a)}$ (mean $\pm$ SEM)")
ax_d.set_title("(a) equal-time variance", fontsize=10)
ax_l.set_xlabel(r"lag $\Delta a$")
ax_l.set_ylabel(rf"$\hat C^{{({ref},{ref}+\Delta a)}}$ (mean $\pm$ SEM)")
ax_l.set_title(f"(b) time-lagged covariance from step {ref}", fontsize=10)
for ax in (ax_d, ax_l):
    ax.set_yscale("log")
ax_d.legend(fontsize=6.5, loc="upper right")
ax_l.legend(fontsize=6.5, loc="center right")
set_log_ticks(ax_r, widths)
ax_r.set_yscale("log")
ax_r.set_xlabel("width n")
ax_r.set_ylabel("MC / mean-field theory at the last step")
ax_r.set_title("(c) finite-size deviation vs width", fontsize=10)
ax_r.legend(fontsize=6.5, loc="upper right")
finish_figure(fig, smk, log, experiment_title(exp))
