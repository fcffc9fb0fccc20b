"""Finite-width Monte Carlo sampling of DNNs and weight-shared RNNs.

Public API
----------
sample(prior, X, width, realizations, seed=0, method="auto",
       observables=("y", "caux_diag", "chat_diag"), start=0, point_key=None) -> dict
sample_point(spec, start, stop) -> dict
resolve_method(prior, X, width, method="auto") -> "direct" | "projected"
weight_averaged_overlaps(prior, X_draws, width, realizations, seed=0,
       method="auto", observable="caux", n_in=None, input_seed=0) -> dict
register_activation(name, fn)
posterior(prior, X, y, train, width, draws, kappa, gamma0=1.0, method="importance"|"hmc",
       chains=4, seed=0, observables=...) -> PosteriorResult     (mcsim.posterior_sampling)
importance_weight(samples, y, train, kappa, gamma0=1.0) -> PosteriorResult   prior samples drawn elsewhere
read_point(path) -> (arrays, attrs)      finalised point file, every checksum verified
point_key(prior, X, width, resolved_method, seed) -> str   (theory.spec.point_key)
OBSERVABLES, METHODS, DEFAULT_OBSERVABLES, DEFAULT_METHOD, SAMPLER_STREAM_VERSION

``mcsim.sample`` and ``python -m mcsim run`` derive the random streams of a
point from the same key (:func:`theory.spec.point_key`), so they give
bit-identical numbers.  See :mod:`mcsim.sampler` for the observables,
:mod:`mcsim._rng` for the random-stream scheme and the stream version, and
:mod:`mcsim.store` for the store; ``python -m mcsim bench`` runs
:func:`mcsim.bench.main`.
"""

__version__ = "0.1.0"

from theory.spec import DEFAULT_METHOD, point_key  # noqa: E402

from ._rng import SAMPLER_STREAM_VERSION  # noqa: E402
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
from .store import read_point  # noqa: E402
from .posterior_sampling import PosteriorResult, importance_weight, posterior, read_posterior  # noqa: E402

__all__ = [
    "sample",
    "sample_point",
    "resolve_method",
    "register_activation",
    "weight_averaged_overlaps",
    "read_point",
    "posterior",
    "importance_weight",
    "read_posterior",
    "PosteriorResult",
    "point_key",
    "OBSERVABLES",
    "METHODS",
    "DEFAULT_OBSERVABLES",
    "DEFAULT_METHOD",
    "SAMPLER_STREAM_VERSION",
]
