"""Fig. 3a,b: Var Caux^(A+1,A+1) vs n (log-log, 1/n theory), Var Caux^(a,a) vs a per input; output kurtosis vs n.

Snakemake script (rule plot_fluctuations).  Layout (2 x 2):
(a) readout variance vs width, every input; (c) output excess kurtosis vs width,
estimated from y directly and from the readout covariance; (b) variance vs
step a at the largest width, one panel per input, labelled by C(0,0) vs the
fixed point C* (below C*: rise and plateau; above: overshoot).
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    ARCH_COLORS, ARCH_MARKERS, BIAS_STYLES, column, experiment_title, finish_figure, new_figure, select,
    set_log_ticks, start_plot, unique,
)

smk = snakemake  # noqa: F821
log, rows, exp = start_plot(smk)
widths = unique(rows, "width")
n_max = max(widths)
inputs = unique(rows, "input_set")
c00 = {s: select(rows, input_set=s)[0]["c00"] for s in inputs}
c_star = rows[0]["c_star"]
inputs.sort(key=lambda s: c00[s])  # below C* first
n_b = len(inputs)
fig, axes = new_figure(2, max(2, n_b), width=5.0, height=4.3)
ax_n, ax_k = axes[0, 0], axes[0, 1]
for ax in axes[0, 2:]:
    ax.set_visible(False)
archs = [a for a in ("rnn", "dnn") if select(rows, arch=a)]  # paper order: RNN blue, DNN orange


def regime(s):
    rel = "<" if c00[s] < c_star else (">" if c00[s] > c_star else "=")
    return rf"$C^{{(0,0)}}={c00[s]:.3g} {rel} C^*={c_star:.3g}$"


def short(s):
    return f"C(0,0)={c00[s]:.3g}"


for arch in archs:
    color, marker = ARCH_COLORS[arch], ARCH_MARKERS[arch]
    for bias in unique(rows, "bias"):
        for depth in unique(rows, "depth"):
            tag = f"{arch.upper()}" + (f" {bias}" if len(unique(rows, "bias")) > 1 else "") + \
                (f" A={depth}" if len(unique(rows, "depth")) > 1 else "")
            for k, s in enumerate(inputs):
                fill = color if c00[s] <= c_star else "white"
                shift = 1.0 + 0.04 * (k - (n_b - 1) / 2)  # small multiplicative x offset per input (log axis)
                common = dict(arch=arch, bias=bias, depth=depth, input_set=s)
                # (a) readout variance vs width
                readout = select(rows, quantity="var_caux", a=depth + 1, **common)
                readout.sort(key=lambda r: r["width"])
                if readout:
                    n = column(readout, "width")
                    ax_n.errorbar(n * shift, column(readout, "mc"), yerr=column(readout, "mc_se"), fmt=marker,
                                  color=color, mfc=fill, ms=5, capsize=2, label=f"{tag} MC, {short(s)}")
                    n_line = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
                    ref = readout[-1]  # the NLO variance is exactly proportional to 1/n
                    ax_n.plot(n_line, ref["theory"] * ref["width"] / n_line, "-" if k == 0 else ":", color=color,
                              lw=1.2, label=f"{tag} NLO ~ 1/n, {short(s)}")
                # (b) variance vs step at the largest width, one panel per input
                ax_b = axes[1, k]
                layers = select(rows, width=n_max, quantity="var_caux", **common)
                layers.sort(key=lambda r: r["a"])
                if layers:
                    a = column(layers, "a")
                    ax_b.plot(a, column(layers, "theory"), BIAS_STYLES[bias], color=color, lw=1.2,
                              label=f"{tag} NLO (Eq. 44)")
                    mc_rows = [r for r in layers if r["mc"] != "deterministic"]
                    det = [r for r in layers if r["mc"] == "deterministic"]
                    ax_b.errorbar(column(mc_rows, "a"), column(mc_rows, "mc"), yerr=column(mc_rows, "mc_se"),
                                  fmt=marker, color=color, mfc=fill, ms=4, capsize=2, label=f"{tag} MC")
                    if det:
                        ax_b.plot(column(det, "a"), np.zeros(len(det)), marker, color=color, mfc=fill, ms=4)
            # (c) kurtosis: direct from y (hollow, faint) and from the readout covariance (filled)
            for k, s in enumerate(inputs):
                common = dict(arch=arch, bias=bias, depth=depth, input_set=s)
                shift = 1.0 + 0.05 * (k - (n_b - 1) / 2) + (0.02 if arch == "dnn" else -0.02)
                direct = sorted(select(rows, quantity="excess_kurtosis", **common), key=lambda r: r["width"])
                cond = sorted(select(rows, quantity="excess_kurtosis_conditional", **common), key=lambda r: r["width"])
                if not direct:
                    continue
                first = k == 0
                ax_k.errorbar(column(direct, "width") * shift, column(direct, "mc"), yerr=column(direct, "mc_se"),
                              fmt=marker, color=color, mfc="white", ms=4, capsize=1.5, alpha=0.35, lw=0.7,
                              label=f"{tag} MC from y (each input)" if first else None)
                ax_k.errorbar(column(cond, "width") * shift, column(cond, "mc"), yerr=column(cond, "mc_se"),
                              fmt=marker, color=color, ms=4, capsize=2,
                              label=rf"{tag} MC $3\,$Var$C_{{\rm aux}}/\langle C_{{\rm aux}}\rangle^2$ (each input)"
                              if first else None)
                ax_k.plot(column(direct, "width"), column(direct, "theory"), "-" if first else ":", color=color, lw=1.2,
                          label=f"{tag} NLO, {short(s)}")

ax_n.set_yscale("log")
set_log_ticks(ax_n, widths)
ax_n.set_xlabel("width n")
ax_n.set_ylabel(r"Var $C_{\rm aux}^{(A+1,A+1)}$")
ax_n.set_title(rf"(a) readout fluctuations vs width ($C^*={c_star:.3g}$)", fontsize=10)
ax_n.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
set_log_ticks(ax_k, widths)
ax_k.set_yscale("symlog", linthresh=0.003)  # log above 0.003 (all NLO values), linear through 0
ax_k.axhline(0.0, color="gray", lw=0.6)
ax_k.set_xlabel("width n")
ax_k.set_ylabel("output excess kurtosis")
ax_k.set_title(r"(a') output excess kurtosis vs width (NLO: $3\,$Var$C_{\rm aux}/K^2$)", fontsize=10)
ax_k.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
for k, s in enumerate(inputs):
    ax_b = axes[1, k]
    ax_b.set_xlim(left=-0.5)
    ax_b.set_ylim(bottom=0.0)
    ax_b.set_xlabel("layer / readout step a (A+1 = readout)")
    ax_b.set_ylabel(r"Var $C_{\rm aux}^{(a,a)}$")
    kind = "rise and plateau" if c00[s] <= c_star else "overshoot"
    ax_b.set_title(f"(b) vs step, n = {n_max}: {regime(s)} ({kind})", fontsize=9)
    ax_b.legend(fontsize=7, loc="lower right" if c00[s] <= c_star else "upper right")
finish_figure(fig, smk, log, experiment_title(exp))
