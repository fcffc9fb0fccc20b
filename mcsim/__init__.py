"""Finite-width Monte Carlo sampling of DNNs and weight-shared RNNs.

Public API
----------
sample(prior, X, width, realizations, seed=0, method="projected",
       observables=("y", "caux", "chat"), start=0, point_key=None) -> dict
sample_point(spec, start, stop) -> dict
resolve_method(prior, X, width, method="auto") -> "direct" | "projected"
weight_averaged_overlaps(prior, X_draws, width, realizations, seed=0,
       method="auto", observable="caux", n_in=None, input_seed=0) -> dict
register_activation(name, fn)
OBSERVABLES, METHODS

See :mod:`mcsim.sampler` for the observables and :mod:`mcsim._rng` for the
random-stream scheme; ``python -m mcsim bench`` runs :func:`mcsim.bench.main`.
"""

__version__ = "0.1.0"

from .sampler import (  # noqa: E402
    DEFAULT_OBSERVABLES,
    METHODS,
    OBSERVABLES,
    register_activation,
    resolve_method,
    sample,
    sample_point,
    weight_averaged_overlaps,
)

__all__ = [
    "sample",
    "sample_point",
    "resolve_method",
    "register_activation",
    "weight_averaged_overlaps",
    "OBSERVABLES",
    "METHODS",
    "DEFAULT_OBSERVABLES",
]
