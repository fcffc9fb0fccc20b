"""Point specifications and point identity.

A *point spec* is the unit of work shared by the theory CLI (``python -m theory
predict``), the simulator (``python -m mcsim run``, :func:`mcsim.sample_point`)
and the workflow. It is a JSON object with the keys

``prior``         :meth:`theory.Prior.to_dict` output (required).
``inputs``        :func:`theory.make_inputs` spec (required).
``width``         reference width n (integer >= 1, required).
``realizations``  number of weight realizations R (integer >= 2, default 100).
``seed``          root seed (integer, ``0 <= seed < 2**63``, default 0).
``method``        ``"direct"``, ``"projected"`` or ``"auto"`` (default :data:`DEFAULT_METHOD`).
``observables``   non-empty list of distinct names from :data:`OBSERVABLES`
                  (default :data:`DEFAULT_OBSERVABLES`).
``block_size``    realizations per work block (integer >= 1, default 16).
``label``         free-text description (string, optional).

Validation is strict (no coercion: ``2.0`` is not an integer, ``true`` is not
a number); every error is one ``ValueError`` line starting with the key.
The defaults of ``method`` and ``observables`` are the same as those of
:func:`mcsim.sample`, which imports them from here.

Point identity
--------------
:func:`point_key` is the *only* definition of a point's identity. It is used
by :func:`mcsim.sample` (random streams), :meth:`PointSpec.point_key` (the mcsim
store) and so by ``python -m mcsim run``; the same point therefore draws the
same random numbers through the Python API and the CLI. The key is the
SHA-256 of a canonical JSON document holding

- the prior in resolved form (per-layer ``g2``, ``sigma2`` and ``nu`` arrays,
  arch, depth, bias, n_out) with the activation's *identity*
  (:attr:`theory.activations.Activation.identity`: the name for built-ins,
  name plus code hash for custom functions);
- the inputs as actual values: shape and SHA-256 of the little-endian float64
  bytes of the (P, A+1, n_in) sequence array (so a (P, n_in) array and the
  equivalent sequence with zero later steps are the same point);
- the width, the *resolved* method (``"direct"`` or ``"projected"``: ``auto``
  is resolved first, so ``auto`` and the method it picks are the same point),
  and the seed.

``realizations``, ``block_size``, ``observables`` and ``label`` are not part of
the identity: realization r depends only on the key and r.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np

from .inputs import SEED_LIMIT, make_inputs, strict_int
from .prior import Prior, check_inputs

METHODS = ("direct", "projected", "auto")
RESOLVED_METHODS = ("direct", "projected")
DEFAULT_METHOD = "auto"
OBSERVABLES = ("y", "caux", "chat", "caux_diag", "chat_diag", "caux_readout", "chat_readout", "y_steps")
"""Every observable name mcsim can sample (see :mod:`mcsim.sampler`)."""
DEFAULT_OBSERVABLES = ("y", "caux_diag", "chat_diag")
POINT_KEY_SCHEME = "mcsim-point-key-v2"
SPEC_KEYS = {"prior", "inputs", "width", "realizations", "seed", "method", "observables", "block_size", "label"}
SPEC_DEFAULTS: dict[str, Any] = {
    "realizations": 100,
    "seed": 0,
    "method": DEFAULT_METHOD,
    "observables": list(DEFAULT_OBSERVABLES),
    "block_size": 16,
    "label": "",
}
_PRIOR_KEYS = ("arch", "depth", "activation", "g2", "sigma2", "g2_in", "bias", "g2_out", "sigma2_out", "nu", "n_out")


# --------------------------------------------------------------------------- validation helpers


def check_seed(value: Any, name: str = "seed") -> int:
    """Validate a root seed: an integer with ``0 <= seed < 2**63`` (no coercion)."""
    return strict_int(name, value, 0, SEED_LIMIT)


def check_method(value: Any, name: str = "method") -> str:
    """Validate a method name (``"direct"``, ``"projected"`` or ``"auto"``)."""
    if not isinstance(value, str) or value not in METHODS:
        raise ValueError(f"{name}: unknown method {value!r}; allowed: {', '.join(METHODS)}")
    return value


def check_observables(observables: Any, prior: Prior | None = None, width: int | None = None,
                      name: str = "observables") -> tuple:
    """Validate observable names, once, for the spec and for :func:`mcsim.sample`.

    Parameters
    ----------
    observables : str or sequence of str
        Names from :data:`OBSERVABLES`; ``"overflow"`` is allowed and ignored
        (it is always returned).  Duplicates are removed (first occurrence kept).
    prior : Prior, optional
        With ``width``: reject the cross-layer ``chat``/``caux`` for a DNN with
        unequal layer widths (``nu``).
    width : int, optional
    name : str
        Key named in error messages.

    Returns
    -------
    tuple of str
        The names in order, without duplicates and without ``"overflow"``.

    Raises
    ------
    ValueError
        ``"observables: ..."`` for an empty list, a non-string or unknown name,
        or cross-layer observables with unequal widths.
    """
    if isinstance(observables, str):
        observables = (observables,)
    try:
        obs = tuple(observables)
    except TypeError:
        raise ValueError(f"{name}: must be a list of names, got {observables!r}") from None
    for o in obs:
        if not isinstance(o, str) or (o not in OBSERVABLES and o != "overflow"):
            raise ValueError(f"{name}: unknown observable {o!r}; allowed: {', '.join(OBSERVABLES)}")
    obs = tuple(dict.fromkeys(o for o in obs if o != "overflow"))
    if not obs:
        raise ValueError(f"{name}: must name at least one observable; allowed: {', '.join(OBSERVABLES)}")
    if prior is not None and "y_steps" in obs and np.any(prior.g2_layers[1:prior.depth + 1] <= 0):
        raise ValueError(f"{name}: y_steps (the readout after every layer/step) needs g2 > 0 at every "
                         f"hidden layer, got g2={prior.g2!r}")
    if prior is not None and width is not None and not prior.shared:
        full = [o for o in obs if o in ("chat", "caux")]
        widths = [int(w) for w in prior.widths(width)]
        if full and len(set(widths)) > 1:
            raise ValueError(
                f"{name}: {', '.join(full)} (cross-layer blocks) need equal layer widths, but nu gives widths "
                f"{widths}; request " + ", ".join(o + "_diag" for o in full) + " instead"
            )
    return obs


# --------------------------------------------------------------------------- identity


def prior_identity(prior: Prior) -> dict:
    """Canonical, JSON-able description of everything in ``prior`` that affects sampling.

    Uses the resolved per-layer arrays (so ``g2=1.2`` and ``g2=[1.2, 1.2]`` are
    the same prior) and the activation identity (custom functions: name plus
    code hash), so it works for priors with callable activations too.
    """
    return {
        "arch": prior.arch,
        "depth": int(prior.depth),
        "activation": prior.act.identity,
        "bias": prior.bias,
        "g2_layers": [float(v) for v in prior.g2_layers],
        "sigma2_layers": [float(v) for v in prior.sigma2_layers],
        "nu_layers": [float(v) for v in prior.nu_layers],
        "n_out": int(prior.n_out),
    }


def inputs_identity(seq: np.ndarray) -> dict:
    """Shape and SHA-256 of the little-endian float64 bytes of a (P, A+1, n_in) input sequence array."""
    a = np.ascontiguousarray(seq, dtype="<f8")
    return {"shape": [int(s) for s in a.shape], "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def point_identity(prior: Prior, X, width: int, method: str, seed: int) -> dict:
    """The canonical identity document hashed by :func:`point_key` (see the module docstring).

    Parameters
    ----------
    prior : Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
    width : int
    method : {"direct", "projected"}
        The *resolved* method (``"auto"`` is an error: resolve it first with
        :func:`mcsim.resolve_method`).
    seed : int

    Returns
    -------
    dict
    """
    if method not in RESOLVED_METHODS:
        raise ValueError(f"method: the point key needs a resolved method ({' or '.join(RESOLVED_METHODS)}), "
                         f"got {method!r}")
    seq = check_inputs(prior, X)
    return {
        "scheme": POINT_KEY_SCHEME,
        "prior": prior_identity(prior),
        "inputs": inputs_identity(seq),
        "width": strict_int("width", width, 1),
        "method": method,
        "seed": check_seed(seed),
    }


def point_key(prior: Prior, X, width: int, method: str, seed: int) -> str:
    """Hex SHA-256 identity of one point: the single key scheme of the project.

    See the module docstring and :func:`point_identity` for what it covers.
    """
    doc = point_identity(prior, X, width, method, seed)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- PointSpec


@dataclass(frozen=True)
class PointSpec:
    """A validated point spec (build it with :func:`parse_point_spec`).

    Attributes
    ----------
    prior : Prior
    X : ndarray of float64, shape (P, n_in) or (P, A+1, n_in)
    width, realizations, seed, block_size : int
    method : str
        As requested (may be ``"auto"``); see :meth:`resolved_method`.
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

    @functools.cached_property
    def _resolved(self) -> str:
        if self.method != "auto":
            return self.method
        from mcsim.sampler import resolve_method  # the cost model lives with the samplers

        return resolve_method(self.prior, self.X, self.width, "auto")

    def resolved_method(self) -> str:
        """``"direct"`` or ``"projected"``: ``method`` with ``"auto"`` resolved by :func:`mcsim.resolve_method`."""
        return self._resolved

    @functools.cached_property
    def _key(self) -> str:
        return point_key(self.prior, self.X, self.width, self.resolved_method(), self.seed)

    def point_key(self) -> str:
        """:func:`point_key` of this spec (the same key :func:`mcsim.sample` derives for the same point)."""
        return self._key

    def identity(self) -> dict:
        """:func:`point_identity` of this spec."""
        return point_identity(self.prior, self.X, self.width, self.resolved_method(), self.seed)


def _is_number(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def _check_prior_numbers(prior: dict) -> None:
    """Reject strings and bools where the prior needs numbers (Prior itself would coerce ``"1.2"``)."""
    for key in ("g2", "sigma2", "g2_in", "g2_out", "sigma2_out", "nu"):
        if key not in prior or (prior[key] is None and key in ("g2_out", "sigma2_out")):
            continue
        v = prior[key]
        ok = _is_number(v) or (isinstance(v, list) and len(v) > 0 and all(_is_number(t) for t in v))
        if not ok:
            raise ValueError(f"prior.{key}: must be a number or a non-empty list of numbers, got {v!r}")


def _read_spec_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"spec: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"spec: cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"spec: {path} is not valid JSON: {exc}") from None


def parse_point_spec(spec: Union[dict, str, Path]) -> PointSpec:
    """Validate a point spec (dict or path to a JSON file), strictly and completely.

    Everything the samplers would reject is rejected here (observable names,
    cross-layer observables with unequal widths, seeds out of range), so a
    spec that parses can be sampled.

    Raises
    ------
    ValueError
        One line starting with the offending key (``width: ...``,
        ``prior.g2: ...``, ``inputs.count: ...``, ``spec: ...`` for
        unknown or missing keys).
    """
    if isinstance(spec, (str, Path)):
        spec = _read_spec_file(Path(spec))
    if not isinstance(spec, dict):
        raise ValueError(f"spec: must be a JSON object, got {type(spec).__name__}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"spec: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    for key in ("prior", "inputs", "width"):
        if key not in spec:
            raise ValueError(f"spec: missing required key {key!r}")
    raw = {**SPEC_DEFAULTS, **spec}
    if not isinstance(raw["prior"], dict):
        raise ValueError(f"prior: must be an object with keys {list(_PRIOR_KEYS)}, got {type(raw['prior']).__name__}")
    _check_prior_numbers(raw["prior"])
    try:
        prior = Prior.from_dict(raw["prior"])
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if msg.startswith("prior") else f"prior.{msg}") from None
    except TypeError as exc:  # e.g. a non-numeric value where a number is required
        raise ValueError(f"prior: {exc}") from None
    raw["prior"] = prior.to_dict()
    X = make_inputs(raw["inputs"], depth=prior.depth)
    try:
        check_inputs(prior, X)
    except ValueError as exc:
        raise ValueError(f"inputs: {exc}") from None
    width = strict_int("width", raw["width"], 1)
    prior.widths(width)
    realizations = strict_int("realizations", raw["realizations"], 2)
    seed = check_seed(raw["seed"])
    block_size = strict_int("block_size", raw["block_size"], 1)
    method = check_method(raw["method"])
    obs_raw = raw["observables"]
    if not isinstance(obs_raw, (list, tuple)):
        raise ValueError(f"observables: must be a list of names, got {obs_raw!r}")
    obs = check_observables(obs_raw, prior, width)
    raw["observables"] = list(obs)
    if not isinstance(raw["label"], str):
        raise ValueError(f"label: must be a string, got {raw['label']!r}")
    return PointSpec(prior, X, width, realizations, seed, method, obs, block_size, raw)


# ----------------------------------------------------------------------------
# chunk files: many named points in one job
# ----------------------------------------------------------------------------
CHUNK_KEYS = ("name", "spec", "out")
"""Keys of every entry of a chunk file's ``points`` list."""


@dataclass
class ChunkPoint:
    """One entry of a chunk file: a named, validated point spec and its output file.

    Attributes
    ----------
    name : str
    spec : PointSpec
    out : Path
    """

    name: str
    spec: Any
    out: Path


def _validate_entry(spec: dict, out: str) -> PointSpec:
    """Default entry check of :func:`parse_chunk`: the spec parses and its activation compiles."""
    parsed = parse_point_spec(spec)
    parsed.prior.act.validated()
    return parsed


def parse_chunk(raw: Any, source: str = "chunk", validate=None) -> list:
    """Validate a decoded chunk ``{"points": [{"name", "spec", "out"}, ...]}`` (the one chunk parser).

    Used by ``python -m theory predict-many`` and ``python -m mcsim campaign``.

    Parameters
    ----------
    raw : object
        The decoded JSON document.
    source : str
        Names the chunk (its path) in messages.
    validate : callable, optional
        ``validate(spec_dict, out) -> PointSpec`` raising ``ValueError``
        ``"<key>: <what>"``; default: :func:`parse_point_spec` plus the
        activation's check.

    Returns
    -------
    list of ChunkPoint
        In chunk order.

    Raises
    ------
    ValueError
        ``specs: <source>: ...`` for a bad layout, duplicate names or outputs;
        ``<name>: <key>: <what>`` for an invalid spec or output of the point ``name``.
    """
    validate = validate or _validate_entry
    if not isinstance(raw, dict) or set(raw) != {"points"}:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"specs: {source}: expected an object with the single key 'points', got {got}")
    entries = raw["points"]
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"specs: {source}: 'points' must be a non-empty list of objects")
    points, names, outs = [], {}, {}
    for i, e in enumerate(entries):
        where = f"points[{i}]"
        if not isinstance(e, dict):
            raise ValueError(f"specs: {source}: {where} must be an object with keys {list(CHUNK_KEYS)}")
        missing = [k for k in CHUNK_KEYS if k not in e]
        unknown = sorted(set(e) - set(CHUNK_KEYS))
        if missing or unknown:
            raise ValueError(f"specs: {source}: {where}: " + "; ".join(
                ([f"missing keys {missing}"] if missing else []) + ([f"unknown keys {unknown}"] if unknown else [])))
        name, spec, out = e["name"], e["spec"], e["out"]
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "\r\n"):
            raise ValueError(f"specs: {source}: {where}: name must be a non-empty one-line string, got {name!r}")
        if name in names:
            raise ValueError(f"specs: {source}: duplicate point name {name!r} (points[{names[name]}] and {where}); "
                             "names must be unique")
        names[name] = i
        if not isinstance(out, str) or not out:
            raise ValueError(f"{name}: out: must be a non-empty path string, got {out!r}")
        resolved = os.path.abspath(out)
        if resolved in outs:
            raise ValueError(f"specs: {source}: duplicate out {out!r} (points {outs[resolved]!r} and {name!r}); "
                             "outputs must be unique")
        outs[resolved] = name
        if not isinstance(spec, dict):
            raise ValueError(f"{name}: spec: must be a point-spec object, got {type(spec).__name__}")
        try:
            parsed = validate(dict(spec), out)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        points.append(ChunkPoint(name, parsed, Path(out)))
    return points


def read_chunk(path: Union[str, Path], validate=None) -> list:
    """Read and validate a chunk file (:func:`parse_chunk`).

    Raises
    ------
    ValueError
        ``specs: ...`` for a missing or unreadable file or bad JSON, else as :func:`parse_chunk`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"specs: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"specs: cannot read {path}: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"specs: {path} is not valid JSON: {exc}") from None
    return parse_chunk(raw, str(path), validate)
