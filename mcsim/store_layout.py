"""Store layout: formats, names and paths, errors, and the point directory's ``spec.json``.

Holds what every other store module shares: the format constants, the
exceptions :class:`StoreError` and :class:`StaleStoreError`, shard file names
(:func:`block_name`), the paths ``STORE/<point_key>`` (:func:`point_dir`) and
``STORE/<point_key>/blocks`` (:func:`blocks_dir`), HDF5 opening without file
locking, and creating or checking a point directory and its ``spec.json``
(:func:`prepare_point_dir`, :func:`check_point_dir`).  See :mod:`mcsim.store`
for the layout as a whole.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np

from . import _rng
from .atomic_io import STALE_TEMP_SECONDS, _clean_temps, _publish, _temp_path

if TYPE_CHECKING:  # pragma: no cover
    from .shards import ShardInfo


BLOCK_FORMAT = "mcsim-block-v2"
POINT_FORMAT = "mcsim-point-v2"
STORE_FORMAT = 2
BLOCK_NAME_RE = re.compile(r"^r(\d{9,})-(\d{9,})\.([a-z_]+(?:\+[a-z_]+)*)\.h5$")
PathLike = Union[str, os.PathLike]


class StoreError(RuntimeError):
    """A store, shard or final point file is missing, incomplete or corrupt."""


class StaleStoreError(StoreError):
    """Stored realizations were drawn by another sampler stream version (or an older store format)."""


def stream_version() -> int:
    """The current :data:`mcsim._rng.SAMPLER_STREAM_VERSION` (read at call time)."""
    return int(_rng.SAMPLER_STREAM_VERSION)


def _unique(observables: Iterable[str]) -> list:
    """Observable names in order, without duplicates and without ``"overflow"``."""
    return list(dict.fromkeys(o for o in observables if o != "overflow"))


def obs_tag(observables: Iterable[str]) -> str:
    """File-name tag of an observable set: sorted names joined by ``+``."""
    return "+".join(sorted(_unique(observables)))


def block_name(start: int, stop: int, observables: Iterable[str]) -> str:
    """File name of the shard holding realizations ``[start, stop)`` of ``observables``."""
    return f"r{start:09d}-{stop:09d}.{obs_tag(observables)}.h5"


def point_dir(store: PathLike, point_key: str) -> Path:
    """Directory of one point inside the store root ``store``."""
    return Path(store) / point_key


def blocks_dir(pdir: PathLike) -> Path:
    """Directory holding the shards of a point directory."""
    return Path(pdir) / "blocks"


def _h5py():
    import h5py

    return h5py


def _open_h5(path: PathLike, mode: str):
    """Open an HDF5 file without HDF5 file locking (our files are immutable once published)."""
    h5py = _h5py()
    try:
        return h5py.File(path, mode, locking=False)
    except TypeError:  # pragma: no cover - very old h5py
        return h5py.File(path, mode)


def _attr_py(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.dtype.kind in ("O", "S"):
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    return v


def identity_dict(spec) -> dict:
    """Contents of ``spec.json``: the point identity of a :class:`theory.PointSpec` and the code identity.

    Any other point kind (e.g. :class:`mcsim.posterior_store.PosteriorPoint`)
    describes itself with an ``identity_dict()`` method; the code identity is added.
    """
    if hasattr(spec, "identity_dict"):
        return dict(spec.identity_dict(), point_key=spec.point_key(), identity=spec.identity(),
                    mcsim_store_format=STORE_FORMAT, sampler_stream_version=stream_version())
    return {
        "point_key": spec.point_key(),
        "identity": spec.identity(),
        "prior": spec.raw["prior"],
        "inputs": spec.raw["inputs"],
        "width": spec.width,
        "seed": spec.seed,
        "method_resolved": spec.resolved_method(),
        "mcsim_store_format": STORE_FORMAT,
        "sampler_stream_version": stream_version(),
    }


def _stale_message(pdir: Path, found, what: str = "") -> str:
    found_txt = "an older mcsim that did not record it" if found is None else f"sampler stream version {found}"
    return (f"store: point directory {pdir} {what}holds realizations drawn by {found_txt}, but this mcsim draws "
            f"version {stream_version()}; they cannot be mixed: delete {pdir} (or use a new --store) and rerun")


def stale_shards_message(pdir: PathLike, stale: Sequence["ShardInfo"]) -> str:
    """One-line refusal for shards drawn by another sampler stream version."""
    return (f"store: point directory {pdir} holds {len(stale)} shard(s) ({stale[0].path.name}: {stale[0].problem}) "
            f"that cannot be mixed with realizations of this mcsim: delete {pdir} (or use a new --store) and rerun")


def check_point_dir(pdir: PathLike, spec=None) -> dict:
    """Read ``spec.json`` of a point directory and check it against this code (and ``spec``).

    Returns
    -------
    dict
        The parsed ``spec.json``.

    Raises
    ------
    StaleStoreError
        If its realizations were drawn by another sampler stream version or store format.
    StoreError
        If it is unreadable or describes another point than ``spec``.
    """
    pdir = Path(pdir)
    spec_path = pdir / "spec.json"
    try:
        existing = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"store: cannot read {spec_path}: {exc}") from None
    if not isinstance(existing, dict):
        raise StoreError(f"store: {spec_path} is not a JSON object")
    if existing.get("mcsim_store_format") != STORE_FORMAT or existing.get("sampler_stream_version") != stream_version():
        raise StaleStoreError(_stale_message(pdir, existing.get("sampler_stream_version")))
    if spec is not None and (existing.get("point_key") != spec.point_key()
                             or existing.get("identity") != spec.identity()):
        raise StoreError(f"store: {spec_path} describes a different point than the spec (key "
                         f"{str(existing.get('point_key'))[:12]} vs {spec.point_key()[:12]}); the store directory "
                         "is inconsistent: delete it and rerun")
    return existing


def prepare_point_dir(store: PathLike, spec) -> Path:
    """Create ``STORE/<point_key>/blocks`` and write or check ``spec.json``.

    Parameters
    ----------
    store : path
        Store root (created if missing).
    spec : theory.PointSpec

    Returns
    -------
    Path
        The point directory.

    Raises
    ------
    StaleStoreError
        If the point directory was written by another sampler stream version
        (see :func:`check_point_dir`).
    StoreError
        If ``store`` exists but is not a directory, or an existing
        ``spec.json`` describes a different point.
    """
    root = Path(store)
    if root.exists() and not root.is_dir():
        raise StoreError(f"store: {root} exists and is not a directory")
    pdir = point_dir(root, spec.point_key())
    try:
        blocks_dir(pdir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"store: cannot create {blocks_dir(pdir)}: {exc.strerror or exc}") from None
    spec_path = pdir / "spec.json"
    if spec_path.exists():
        check_point_dir(pdir, spec)
    else:
        tmp = _temp_path(pdir, "spec.json")
        tmp.write_text(json.dumps(identity_dict(spec), sort_keys=True, indent=1) + "\n")
        _publish(tmp, spec_path)
    return pdir


def clean_temp_files(pdir: PathLike, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove temp files left by killed runs.

    A temp file is removed if its writer (host and pid encoded in the name)
    ran on this host and is no longer alive, or if it is older than
    ``max_age`` seconds.  Temp files of live writers are left alone.

    Returns
    -------
    list of Path
        The removed files.
    """
    return _clean_temps((Path(pdir), blocks_dir(pdir)), max_age)
