"""Deterministic construction of network inputs from a small JSON-able spec.

Theory and simulation must see exactly the same inputs; both build them here.

Spec keys (all optional except ``dim``)
---------------------------------------
``kind``     ``"gaussian"`` (default) or ``"explicit"``.
``count``    number of patterns P (default 1).
``dim``      input dimension n_in.
``mean``     mean of each component (default 0.0).
``std``      standard deviation of each component (default 1.0).
``seed``     integer seed of the input draw (default 0).
``sequence`` if true, draw a full sequence x^(0..A) per pattern (default false).
``values``   for ``kind="explicit"``: nested list of shape (P, n_in) or (P, A+1, n_in).
"""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT_KINDS = ("gaussian", "explicit")


def make_inputs(spec: dict[str, Any], depth: int | None = None) -> np.ndarray:
    """Build the input array described by ``spec``.

    Parameters
    ----------
    spec : dict
        Input description (see module docstring).
    depth : int, optional
        Depth ``A``; required when ``spec["sequence"]`` is true.

    Returns
    -------
    ndarray of float64, shape (P, n_in) or (P, A+1, n_in)

    Raises
    ------
    ValueError
        For an unknown kind or key, non-positive count/dim, negative std, or a
        sequence request without ``depth``.
    """
    allowed = {"kind", "count", "dim", "mean", "std", "seed", "sequence", "values"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"inputs: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    kind = spec.get("kind", "gaussian")
    if kind not in INPUT_KINDS:
        raise ValueError(f"inputs.kind: unknown kind {kind!r}; allowed: {', '.join(INPUT_KINDS)}")
    if kind == "explicit":
        if "values" not in spec:
            raise ValueError("inputs.values: required for kind='explicit'")
        X = np.asarray(spec["values"], dtype=float)
        if X.ndim not in (2, 3):
            raise ValueError(f"inputs.values: must have shape (P, n_in) or (P, A+1, n_in), got {X.shape}")
        return X
    count = int(spec.get("count", 1))
    if count < 1:
        raise ValueError(f"inputs.count: must be >= 1, got {count}")
    if "dim" not in spec:
        raise ValueError("inputs.dim: required for kind='gaussian'")
    dim = int(spec["dim"])
    if dim < 1:
        raise ValueError(f"inputs.dim: must be >= 1, got {dim}")
    mean = float(spec.get("mean", 0.0))
    std = float(spec.get("std", 1.0))
    if std < 0:
        raise ValueError(f"inputs.std: must be non-negative, got {std}")
    seed = int(spec.get("seed", 0))
    rng = np.random.Generator(np.random.Philox(key=np.uint64(seed) + np.uint64(0x1A2B3C4D)))
    if spec.get("sequence", False):
        if depth is None:
            raise ValueError("inputs.sequence: a sequence input needs the network depth")
        return mean + std * rng.standard_normal((count, int(depth) + 1, dim))
    return mean + std * rng.standard_normal((count, dim))
