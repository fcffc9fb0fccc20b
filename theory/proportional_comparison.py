"""Deep linear networks at fixed alpha = P/n: HMC posterior kernels vs the proportional-limit theories.

The numerics of the comparison in ``tests/test_proportional_hmc.py`` (and of a
future workflow experiment, issue 11 item 4.5).  Observable per layer
``l = 1..L = A+1``: the projection of the layer kernel ``Caux^(l,l)`` on the unit
target direction ``u = Y / |Y|`` of the training patterns, in units of its NNGP
value,

    r_l = u^T C_l u / u^T Cbar_l u        (1 for the NNGP; the alignment of C_l with Y Y^T)

It is linear in the kernel, so the posterior mean of ``r_l`` is ``r_l`` of the
posterior-mean kernel.  Theories (:data:`VARIANTS`): ``posterior``
(:func:`theory.proportional.posterior_kernels`), ``map``
(:func:`theory.proportional.map_kernels`, the slides' forward-backward solution,
not the posterior mean at finite alpha), ``nngp``.
"""

from __future__ import annotations

import numpy as np

from .adaptation_comparison import unit_direction
from .proportional import ConvergenceError, map_kernels, posterior_kernels

VARIANTS = ("posterior", "map", "nngp")
"""Theory columns of :func:`compare_layers`."""

MAP_DAMPINGS = (0.5, 0.2, 0.05)
"""Damping steps tried in turn by :func:`map_kernels_damped` (a strong learning signal needs a small one)."""


def map_kernels_damped(prior, X, y, kappa: float, width: int, gamma0: float = 1.0):
    """:func:`theory.proportional.map_kernels` with the first damping of :data:`MAP_DAMPINGS` that converges.

    Raises
    ------
    ConvergenceError
        None converged (the last error, naming the settings).
    """
    for i, damping in enumerate(MAP_DAMPINGS):
        try:
            return map_kernels(prior, X, y, kappa, width, gamma0, damping=damping)
        except ConvergenceError:
            if i == len(MAP_DAMPINGS) - 1:
                raise


def target_projections(C, y, nngp) -> np.ndarray:
    """``r_l = u^T C_l u / u^T Cbar_l u`` for ``l = 1..L`` (module docstring).

    Parameters
    ----------
    C : array_like of float64, shape (..., L+1, P, P)
        Layer kernels ``Caux^(l,l)``, ``l = 0..L`` (any leading axes, e.g. chains and draws).
    y : array_like of float64, shape (P,) or (P, 1)
        Targets of the (training) patterns.
    nngp : array_like of float64, shape (L+1, P, P)
        NNGP kernels (the normalisation).

    Returns
    -------
    ndarray of float64, shape (..., L)
    """
    C, nngp = np.asarray(C, dtype=float), np.asarray(nngp, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    if C.shape[-3:] != nngp.shape or nngp.shape[1:] != (y.size, y.size):
        raise ValueError(f"C: need shape (..., L+1, P, P) matching nngp {nngp.shape} and P = {y.size} targets, "
                         f"got {C.shape}")
    u = unit_direction(y, np.arange(y.size))
    return np.einsum("p,...lpq,q->...l", u, C[..., 1:, :, :], u) / np.einsum("p,lpq,q->l", u, nngp[1:], u)


def compare_layers(prior, X, y, kappa: float, width: int, gamma0: float, caux_diag_draws) -> list[dict]:
    """Per layer: HMC ``r_l`` (mean, SE from the chains' ESS, R-hat) and the theories of :data:`VARIANTS`.

    Parameters
    ----------
    prior : theory.Prior
        Deep linear DNN (as :func:`theory.proportional.map_kernels`).
    X : array_like of float64, shape (P, n_in)
        Training inputs (all patterns train).
    y : array_like of float64, shape (P,) or (P, 1)
    kappa, gamma0 : float
    width : int
    caux_diag_draws : array_like of float64, shape (chains, draws, L+1, P, P)
        HMC draws of ``caux_diag`` (``PosteriorResult.draws["caux_diag"]``).

    Returns
    -------
    list of dict
        Per layer ``l = 1..L``: ``layer``, ``hmc``, ``hmc_se`` (sd / sqrt(ESS)),
        ``rhat``, ``ess``, and one column per variant.
    """
    from mcsim import diagnostics

    pk = posterior_kernels(prior, X, y, kappa, width, gamma0)
    draws = target_projections(caux_diag_draws, y, pk.nngp)  # (chains, draws, L)
    theory = {
        "posterior": target_projections(pk.C, y, pk.nngp),
        "map": target_projections(map_kernels_damped(prior, X, y, kappa, width, gamma0).C, y, pk.nngp),
        "nngp": np.ones(draws.shape[-1]),
    }
    rows = []
    for l in range(draws.shape[-1]):
        s = diagnostics.summarise(draws[:, :, l])
        rows.append({"layer": l + 1, "hmc": float(s["mean"]), "hmc_se": float(s["mcse"]), "rhat": float(s["rhat"]),
                     "ess": float(s["ess_bulk"]), **{k: float(v[l]) for k, v in theory.items()}})
    return rows
