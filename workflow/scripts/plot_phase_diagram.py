"""Phase diagram of depth scales over (g^2, sigma^2) from `python -m theory phase-diagram`.

Snakemake script (rule plot_phase_diagram).  Shows the depth scale tau
(log colour scale) and the chi1 = 1 line (order-to-chaos transition) when the
file provides them.  tau diverges at the transition (single grid points reach
~1e12), so its colour scale is capped at ``TAU_COLOR_CAP``: larger values get
the top colour and the colour bar has an arrow ("extend=max").
"""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from _common import finish_figure, new_figure, read_h5, setup_logging  # noqa: E402

TAU_COLOR_CAP = 100.0  # depth scales above this (near chi_1 = 1) all get the top colour

smk = snakemake  # noqa: F821
log = setup_logging(smk)
data, attrs = read_h5(smk.input.diagram)
exp = json.loads(smk.params.experiment)
log.info("datasets: %s; attrs: %s", sorted(data), sorted(attrs))
g2 = np.asarray(data["g2"], dtype=float)
sigma2 = np.asarray(data["sigma2"], dtype=float)
if g2.ndim == 2:  # meshgrid: find the axis along which g2 varies
    g2_along_0 = np.ptp(g2[:, 0]) > 0 if g2.shape[0] > 1 else False
    g2 = g2[:, 0] if g2_along_0 else g2[0, :]
    sigma2 = sigma2[0, :] if g2_along_0 else sigma2[:, 0]


def as_grid(values):
    """Orient a 2-D field as (sigma2, g2) for pcolormesh."""
    values = np.asarray(values, dtype=float)
    if values.shape == (g2.size, sigma2.size):
        return values.T
    if values.shape == (sigma2.size, g2.size):
        return values
    raise ValueError(f"phase diagram field has shape {values.shape}, expected ({g2.size}, {sigma2.size})")


panels = [k for k in ("tau", "q_star", "chi1") if k in data]
fig, axes = new_figure(1, len(panels))
for ax, key in zip(axes[0], panels):
    field = as_grid(data[key])
    finite = field[np.isfinite(field) & (field > 0)]
    norm, extend, label = None, "neither", {"tau": "depth scale tau", "q_star": "fixed point q*", "chi1": "chi_1"}[key]
    if key == "tau" and finite.size:
        vmax = min(finite.max(), TAU_COLOR_CAP)
        if finite.max() > vmax:
            extend, label = "max", f"depth scale tau (capped at {TAU_COLOR_CAP:g})"
            log.info("tau: colour scale capped at %g (max finite tau %.3g)", vmax, finite.max())
        norm = LogNorm(vmin=min(finite.min(), vmax), vmax=vmax)
    mesh = ax.pcolormesh(g2, sigma2, np.ma.masked_invalid(field), shading="auto", norm=norm, cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=label, extend=extend)
    if "chi1" in data:
        ax.contour(g2, sigma2, as_grid(data["chi1"]), levels=[1.0], colors="w", linewidths=1.5)
    ax.set_xlabel(r"$g^2$")
    ax.set_ylabel(r"$\sigma^2$")
    ax.set_title({"tau": "depth scale (white: chi_1 = 1)", "q_star": "fixed point q*", "chi1": "chi_1"}[key])
activation = exp["phase_diagram"]["activation"]
title = exp.get("title") or f"{exp['name']}: phase diagram"
if activation not in title:
    title += f", phi = {activation}"
finish_figure(fig, smk, log, title)
