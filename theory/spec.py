"""Point specifications: one parameter point of an experiment as plain JSON.

A *point spec* is the unit of work shared by the theory CLI (``python -m theory
predict``), the simulator CLI (``python -m mcsim run``) and the workflow. It is
a JSON object with the keys

``prior``         :meth:`theory.Prior.to_dict` output (required).
``inputs``        :func:`theory.make_inputs` spec (required).
``width``         reference width n (int >= 1, required).
``realizations``  number of weight realizations R (int >= 2, default 100).
``seed``          root seed (int >= 0, default 0).
``method``        ``"direct"``, ``"projected"`` or ``"auto"`` (default ``"auto"``).
``observables``   list of observable names (default ``["y", "caux_diag", "chat_diag"]``).
``block_size``    realizations per work block (int >= 1, default 16).
``label``         free-text description (optional).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .inputs import make_inputs
from .prior import Prior, check_inputs

METHODS = ("direct", "projected", "auto")
SPEC_KEYS = {"prior", "inputs", "width", "realizations", "seed", "method", "observables", "block_size", "label"}
SPEC_DEFAULTS: dict[str, Any] = {
    "realizations": 100,
    "seed": 0,
    "method": "auto",
    "observables": ["y", "caux_diag", "chat_diag"],
    "block_size": 16,
    "label": "",
}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PointSpec:
    """A validated point spec.

    Attributes
    ----------
    prior : Prior
    X : ndarray of float64, shape (P, n_in) or (P, A+1, n_in)
    width, realizations, seed, block_size : int
    method : str
    observables : tuple of str
    raw : dict
        The canonical JSON dict (defaults filled in).
    """

    prior: Prior
    X: np.ndarray
    width: int
    realizations: int
    seed: int
    method: str
    observables: tuple
    block_size: int
    raw: dict

    def canonical_json(self) -> str:
        """Canonical (sorted-key, compact) JSON of the full spec."""
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"))

    def point_key(self) -> str:
        """Hex SHA-256 of everything that determines the *distribution* of one realization.

        ``realizations`` and ``block_size`` are excluded, so extending a run
        keeps the key (and so realization r keeps its random stream).
        ``observables`` are excluded too: they select what is stored.
        """
        ident = {k: self.raw[k] for k in ("prior", "inputs", "width", "method", "seed")}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_point_spec(spec: Union[dict, str, Path]) -> PointSpec:
    """Validate a point spec (dict or path to a JSON file).

    Raises
    ------
    ValueError
        Naming the offending key, for unknown or missing keys and bad values.
    """
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        try:
            spec = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"spec: file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"spec: {path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError("spec: must be a JSON object")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"spec: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    for key in ("prior", "inputs", "width"):
        if key not in spec:
            raise ValueError(f"spec: missing required key {key!r}")
    raw = {**SPEC_DEFAULTS, **spec}
    prior = Prior.from_dict(raw["prior"])
    raw["prior"] = prior.to_dict()
    X = make_inputs(raw["inputs"], depth=prior.depth)
    check_inputs(prior, X)
    width = _positive_int("width", raw["width"])
    prior.widths(width)
    realizations = _positive_int("realizations", raw["realizations"], minimum=2)
    seed = _positive_int("seed", raw["seed"], minimum=0)
    block_size = _positive_int("block_size", raw["block_size"])
    if raw["method"] not in METHODS:
        raise ValueError(f"method: unknown method {raw['method']!r}; allowed: {', '.join(METHODS)}")
    obs = raw["observables"]
    if isinstance(obs, str) or not all(isinstance(o, str) for o in obs) or len(obs) == 0:
        raise ValueError(f"observables: must be a non-empty list of names, got {obs!r}")
    raw["observables"] = list(obs)
    return PointSpec(prior, X, width, realizations, seed, raw["method"], tuple(obs), block_size, raw)
