"""Deterministic construction of network inputs from a small JSON-able spec.

Theory and simulation must see exactly the same inputs; both build them here.

Spec keys
---------
``kind``     ``"gaussian"`` (default) or ``"explicit"``.
``count``    number of patterns P (integer >= 1; default 1).
``dim``      input dimension n_in (integer >= 1; required for ``"gaussian"``).
``mean``     mean of each component (finite number; default 0.0).
``std``      standard deviation of each component (finite number >= 0; default 1.0).
``seed``     seed of the input draw (integer, ``0 <= seed < 2**63``; default 0).
``sequence`` if true, draw a full sequence x^(0..A) per pattern (bool; default false).
``values``   for ``kind="explicit"`` only: nested list of finite numbers of
             shape (P, n_in) or (P, A+1, n_in).  ``count`` and ``dim`` may be
             given too, and must then equal P and n_in; the Gaussian keys
             (``mean``, ``std``, ``seed``, ``sequence``) are an error.

Validation is strict, so that the recorded spec can never contradict the data:
integers must be JSON integers (``2.7``, ``2.0``, ``true`` and ``"3"`` are all
rejected), numbers must be finite JSON numbers (not bools or strings), and
every error is a ``ValueError`` whose message starts with the offending key
(``inputs.count: ...``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INPUT_KINDS = ("gaussian", "explicit")
INPUT_KEYS = ("kind", "count", "dim", "mean", "std", "seed", "sequence", "values")
SEED_LIMIT = 2**63
"""Seeds (input seeds and the point seed) satisfy ``0 <= seed < SEED_LIMIT`` (they fit int64 attributes)."""


def strict_int(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """Validate an integer parameter without coercion.

    Parameters
    ----------
    name : str
        Key named in the error message (e.g. ``"inputs.count"``).
    value : object
        Must be a Python or NumPy integer; ``bool``, floats (also integral
        ones such as ``3.0``) and strings are rejected.
    minimum : int
        Smallest allowed value.
    maximum : int, optional
        Values must be ``< maximum``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``"<name>: must be an integer ..."``.
    """
    bounds = f">= {minimum}" + (f" and < {maximum}" if maximum is not None else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an integer {bounds}, got {value!r} ({type(value).__name__})")
    v = int(value)
    if v < minimum or (maximum is not None and v >= maximum):
        raise ValueError(f"{name}: must be an integer {bounds}, got {v}")
    return v


def strict_float(name: str, value: Any, minimum: float | None = None) -> float:
    """Validate a finite real number (int or float, not bool or string); return it as float.

    Raises
    ------
    ValueError
        ``"<name>: must be a finite number ..."``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: must be a finite number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum:g}, got {v!r}")
    return v


def _explicit_values(values: Any) -> np.ndarray:
    try:
        raw = np.asarray(values)
    except ValueError:  # ragged nesting
        raw = None
    if raw is None or raw.dtype == object:
        raise ValueError("inputs.values: must be a rectangular nested list of numbers of shape (P, n_in) "
                         "or (P, A+1, n_in)")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"inputs.values: must contain only numbers, got elements of type {raw.dtype}")
    X = raw.astype(float)
    if X.ndim not in (2, 3):
        raise ValueError(f"inputs.values: must have shape (P, n_in) or (P, A+1, n_in), got {X.shape}")
    if X.shape[0] < 1 or X.shape[-1] < 1:
        raise ValueError(f"inputs.values: needs at least one pattern and one input dimension, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("inputs.values: must be finite numbers")
    return X


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
        One line starting with the offending key (``inputs.<key>: ...``): an
        unknown kind or key, a non-integer or out-of-range ``count``, ``dim``
        or ``seed``, a non-finite ``mean``/``std``, a negative ``std``, a
        non-bool ``sequence``, a sequence request without ``depth``, or
        explicit ``values`` that are not numbers or disagree with
        ``count``/``dim``.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"inputs: must be an object with keys {list(INPUT_KEYS)}, got {type(spec).__name__}")
    unknown = set(spec) - set(INPUT_KEYS)
    if unknown:
        raise ValueError(f"inputs: unknown keys {sorted(unknown)}; allowed: {sorted(INPUT_KEYS)}")
    kind = spec.get("kind", "gaussian")
    if not isinstance(kind, str) or kind not in INPUT_KINDS:
        raise ValueError(f"inputs.kind: unknown kind {kind!r}; allowed: {', '.join(INPUT_KINDS)}")
    if kind == "explicit":
        if "values" not in spec:
            raise ValueError("inputs.values: required for kind='explicit'")
        for key in ("mean", "std", "seed", "sequence"):
            if key in spec:
                raise ValueError(f"inputs.{key}: not used with kind='explicit' (the values are given); remove it")
        X = _explicit_values(spec["values"])
        if "count" in spec and strict_int("inputs.count", spec["count"], 1) != X.shape[0]:
            raise ValueError(f"inputs.count: is {spec['count']} but inputs.values has {X.shape[0]} patterns")
        if "dim" in spec and strict_int("inputs.dim", spec["dim"], 1) != X.shape[-1]:
            raise ValueError(f"inputs.dim: is {spec['dim']} but inputs.values has input dimension {X.shape[-1]}")
        return X
    if "values" in spec:
        raise ValueError("inputs.values: only allowed with kind='explicit'")
    count = strict_int("inputs.count", spec.get("count", 1), 1)
    if "dim" not in spec:
        raise ValueError("inputs.dim: required for kind='gaussian'")
    dim = strict_int("inputs.dim", spec["dim"], 1)
    mean = strict_float("inputs.mean", spec.get("mean", 0.0))
    std = strict_float("inputs.std", spec.get("std", 1.0), minimum=0.0)
    seed = strict_int("inputs.seed", spec.get("seed", 0), 0, SEED_LIMIT)
    sequence = spec.get("sequence", False)
    if not isinstance(sequence, (bool, np.bool_)):
        raise ValueError(f"inputs.sequence: must be true or false, got {sequence!r}")
    rng = np.random.Generator(np.random.Philox(key=np.uint64(seed) + np.uint64(0x1A2B3C4D)))
    if sequence:
        if depth is None:
            raise ValueError("inputs.sequence: a sequence input needs the network depth")
        return mean + std * rng.standard_normal((count, int(depth) + 1, dim))
    return mean + std * rng.standard_normal((count, dim))
