"""HDF5 sample store: per-block shard files, finalisation and reading.

Store layout
------------
A store is a directory (``--store STORE``) holding one sub-directory per
parameter point, named by :func:`theory.spec.point_key` (the key that
:func:`mcsim.sample` uses too)::

    STORE/<point_key>/spec.json                               point identity
    STORE/<point_key>/blocks/r{start:09d}-{stop:09d}.{obs}.h5    one shard per block
    STORE/<point_key>/blocks/.tmp-*                           in-flight temp files (ignored)
    STORE/<point_key>/.lock                                   run lock (flock)
    STORE/<point_key>/corrupt/                                bad shards moved aside by ``run``

``spec.json`` holds :func:`theory.spec.point_identity` (prior with activation
identity, input values hash, width, resolved method, seed), the raw ``prior``,
``inputs`` and ``method`` of the spec that created it, the ``point_key``, the
store format and the ``sampler_stream_version``
(:data:`mcsim._rng.SAMPLER_STREAM_VERSION`) of the code that drew its
realizations.  ``realizations``, ``block_size`` and ``observables`` are not
part of the point identity: realization ``r`` depends only on
``(point_key, r)``, so shards of any tiling, written by any number of ranks,
can be reused.

A shard holds realizations ``[start, stop)`` of the observables ``{obs}``
(sorted names joined by ``+``, e.g. ``caux_diag+chat_diag+y``) plus
``overflow``, each with the realization as leading axis, and the attributes
``mcsim_block_format``, ``point_key``, ``sampler_stream_version``, ``start``,
``stop``, ``observables`` (JSON list), ``sha256`` (checksum of names, dtypes,
shapes and raw bytes of all datasets), ``complete`` (marker, written last)
and provenance.  Shards are written to a temp file and published by
``os.replace``; a shard's name determines its contents, so two writers of the
same name write identical data.

Observables share realizations
------------------------------
Specs of one point that differ only in ``observables`` share the point
directory and its realizations: each requested observable is tiled over
``[0, R)`` from every valid shard that holds it, and a run samples, for each
realization range, only the observables still missing there.  Nothing is
overwritten: shards with different observable sets have different names.

Reuse rules
-----------
- A shard is *usable* if it is valid (opens, marker set, ``point_key``,
  stream version, range and observables match its name, leading axes match,
  checksum matches).
- A point directory or shard drawn by another ``sampler_stream_version`` is
  refused (:class:`StaleStoreError`, never mixed in): delete the point
  directory or use a new store.  Point directories of stores written before
  the version was recorded are refused in the same way.
- Per observable, a deterministic greedy tiling covers ``[0, R)`` (at each
  position the shard reaching furthest, ties broken by the larger start,
  then by file name).  Shards extending beyond ``R`` are sliced.
- Concurrency: a run holds an exclusive ``flock`` on ``<point>/.lock`` while
  it plans, samples and finalises; a second run of the same point (with the
  same or other observables) waits for it, then reuses its shards.

Final point files
-----------------
:func:`finalise` writes one self-describing file per point.  Every dataset
carries a ``sha256`` attribute (:func:`dataset_checksum`, computed from the
verified shard data while copying), and the root attribute ``datasets``
lists them; :func:`read_point` and ``python -m mcsim info --verify`` verify
every checksum and fail naming the dataset and the file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _rng

BLOCK_FORMAT = "mcsim-block-v2"
POINT_FORMAT = "mcsim-point-v2"
STORE_FORMAT = 2
BLOCK_NAME_RE = re.compile(r"^r(\d{9,})-(\d{9,})\.([a-z_]+(?:\+[a-z_]+)*)\.h5$")
TEMP_PREFIX = ".tmp-"
READ_CHUNK_BYTES = 64 << 20
#: Age in seconds after which a temp file of an unknown (other-host) process is removed.
STALE_TEMP_SECONDS = 24 * 3600

PathLike = Union[str, os.PathLike]


class StoreError(RuntimeError):
    """A store, shard or final point file is missing, incomplete or corrupt."""


class StaleStoreError(StoreError):
    """Stored realizations were drawn by another sampler stream version (or an older store format)."""


def stream_version() -> int:
    """The current :data:`mcsim._rng.SAMPLER_STREAM_VERSION` (read at call time)."""
    return int(_rng.SAMPLER_STREAM_VERSION)


# --------------------------------------------------------------------------- paths


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


def _temp_path(directory: Path, final_name: str) -> Path:
    host = socket.gethostname().split(".")[0].replace("-", "_")
    return directory / f"{TEMP_PREFIX}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final_name}"


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` and atomically rename it to ``final`` (then fsync the directory)."""
    _fsync_path(tmp)
    os.replace(tmp, final)
    _fsync_path(final.parent)


@contextlib.contextmanager
def _atomic_file(final: Path) -> Iterator[Path]:
    """Write a file atomically: yield a fresh temporary path next to ``final``.

    When the ``with`` body completes, the temporary file is published as
    ``final`` (:func:`_publish`: fsync, atomic rename); if the body or the
    publication raises (including ``KeyboardInterrupt``), the temporary file is
    removed and the exception propagates, so ``final`` is never partial.

    Parameters
    ----------
    final : Path
        Destination path; its directory must exist.

    Yields
    ------
    Path
        Temporary path in ``final.parent`` (see :func:`_temp_path`) to write to.
    """
    tmp = _temp_path(final.parent, final.name)
    try:
        yield tmp
        _publish(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


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


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- checksums


def checksum_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and raw C-order bytes of ``arrays``.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        Datasets of one shard; iterated in sorted name order.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _checksum_header(h, name: str, dtype: np.dtype, shape: Sequence[int]) -> None:
    h.update(f"{name}\0{np.dtype(dtype).str}\0{tuple(int(x) for x in shape)}\0".encode())


def dataset_checksum(name: str, array: np.ndarray) -> str:
    """SHA-256 of one dataset: name, dtype, shape and raw C-order bytes (``checksum_arrays({name: array})``)."""
    return checksum_arrays({name: array})


def _dataset_checksum_h5(ds, name: str) -> str:
    """:func:`dataset_checksum` of an HDF5 dataset, read in chunks along axis 0."""
    h = hashlib.sha256()
    _checksum_header(h, name, ds.dtype, ds.shape)
    if ds.ndim == 0:
        h.update(np.ascontiguousarray(ds[()]).reshape(-1).view(np.uint8).data)
        return h.hexdigest()
    row = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, READ_CHUNK_BYTES // row)
    for i in range(0, ds.shape[0], step):
        h.update(np.ascontiguousarray(ds[i:i + step]).reshape(-1).view(np.uint8).data)
    return h.hexdigest()


# --------------------------------------------------------------------------- spec.json


def identity_dict(spec) -> dict:
    """Contents of ``spec.json``: the point identity of a :class:`theory.PointSpec` and the code identity."""
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


# --------------------------------------------------------------------------- locking


class PointLock:
    """Exclusive ``flock`` on ``<point_dir>/.lock``, held by a run while it plans, samples and finalises.

    :meth:`acquire` tries once and returns ``None`` on success, or a
    description of the current holder; :meth:`wait` blocks until the lock is
    free.  The lock is released automatically when the process dies.  On a
    file system without ``flock`` support there is no locking (shard and
    final-file writes stay atomic).
    """

    def __init__(self, pdir: PathLike):
        self.path = Path(pdir) / ".lock"
        self._fd: Optional[int] = None

    def acquire(self) -> Optional[str]:
        """Try to take the lock once; ``None`` on success, else who holds it."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                try:
                    holder = os.pread(fd, 400, 0).decode(errors="replace").strip() or "unknown process"
                finally:
                    os.close(fd)
                return holder
            os.close(fd)  # locking unsupported on this file system: no detection
            return None
        info = f"host={socket.gethostname()} pid={os.getpid()} since={_utc_now()}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd
        return None

    def wait(self, on_wait=None, poll: float = 0.2) -> None:
        """Block until the lock is taken; call ``on_wait(holder)`` once if another process holds it."""
        import time

        holder = self.acquire()
        if holder is None:
            return
        if on_wait is not None:
            on_wait(holder)
        while self.acquire() is not None:
            time.sleep(poll)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


# --------------------------------------------------------------------------- temp files


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


def _clean_temps(directories, max_age: float, suffix: str = "") -> list[Path]:
    import time

    host = socket.gethostname().split(".")[0].replace("-", "_")
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for p in directory.iterdir():
            if not p.name.startswith(TEMP_PREFIX) or not p.name.endswith(suffix):
                continue
            parts = p.name[len(TEMP_PREFIX):].split("-")
            stale = False
            try:
                stale = time.time() - p.stat().st_mtime > max_age
            except OSError:
                continue
            if not stale and len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
                stale = not _pid_alive(int(parts[1]))
            if stale:
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- shards


def write_block(pdir: PathLike, point_key: str, start: int, stop: int, arrays: Mapping[str, np.ndarray],
                observables: Sequence[str], extra_attrs: Optional[Mapping[str, Any]] = None) -> Path:
    """Atomically write one shard holding realizations ``[start, stop)``.

    Parameters
    ----------
    pdir : path
        Point directory (see :func:`prepare_point_dir`).
    point_key : str
    start, stop : int
        Realization range, ``0 <= start < stop``.
    arrays : mapping of str to ndarray
        Output of :func:`mcsim.sample_point`: every name in ``observables``
        plus ``"overflow"``; leading axis of length ``stop - start``.
    observables : sequence of str
        The observable names (without ``"overflow"``).
    extra_attrs : mapping, optional
        Additional provenance attributes.

    Returns
    -------
    Path
        The published shard path.

    Raises
    ------
    ValueError
        If a required array is missing or has the wrong leading length.
    """
    n = stop - start
    observables = _unique(observables)
    names = observables + ["overflow"]
    for name in names:
        if name not in arrays:
            raise ValueError(f"arrays: sampler output lacks {name!r} (got {sorted(arrays)})")
        if np.ndim(arrays[name]) < 1 or np.shape(arrays[name])[0] != n:
            raise ValueError(
                f"arrays: {name!r} has shape {np.shape(arrays[name])}, expected leading axis {n} "
                f"for realizations [{start}, {stop})"
            )
    data = {name: np.ascontiguousarray(arrays[name]) for name in names}
    directory = blocks_dir(pdir)
    final = directory / block_name(start, stop, observables)
    with _atomic_file(final) as tmp:
        with _open_h5(tmp, "w") as f:
            for name, a in data.items():
                f.create_dataset(name, data=a)
            attrs = f.attrs
            attrs["mcsim_block_format"] = BLOCK_FORMAT
            attrs["point_key"] = point_key
            attrs["sampler_stream_version"] = np.int64(stream_version())
            attrs["start"] = np.int64(start)
            attrs["stop"] = np.int64(stop)
            attrs["observables"] = json.dumps(list(observables))
            attrs["sha256"] = checksum_arrays(data)
            attrs["created_utc"] = _utc_now()
            attrs["host"] = socket.gethostname()
            attrs["pid"] = np.int64(os.getpid())
            for k, v in (extra_attrs or {}).items():
                attrs[k] = v
            attrs["complete"] = True
    return final


@dataclass
class ShardInfo:
    """Result of inspecting one shard file.

    Attributes
    ----------
    path : Path
    start, stop : int
        Realization range from the file name.
    ok : bool
        Whether the shard passed the checks.
    problem : str
        Why it failed (empty if ``ok``).
    observables : tuple of str
        Observable datasets present (without ``overflow``).
    shapes : dict of str to tuple
        Dataset shapes (including the leading realization axis).
    dtypes : dict of str to str
    verified : bool
        Whether the checksum was verified (``ok`` then includes it).
    stale : bool
        Drawn by another sampler stream version (never reused; the run is refused).
    """

    path: Path
    start: int
    stop: int
    ok: bool = False
    problem: str = ""
    observables: tuple = ()
    shapes: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    verified: bool = False
    stale: bool = False

    @property
    def range_str(self) -> str:
        return f"[{self.start}, {self.stop})"


def read_block_arrays(path: PathLike) -> tuple[dict, dict]:
    """Read all datasets and attrs of a shard (no validation)."""
    with _open_h5(path, "r") as f:
        arrays = {name: f[name][()] for name in f.keys()}
        attrs = {k: _attr_py(v) for k, v in f.attrs.items()}
    return arrays, attrs


def inspect_block(path: PathLike, point_key: str, verify: bool = True) -> ShardInfo:
    """Check one shard file; never raises for a bad shard (see ``ShardInfo.problem``).

    Parameters
    ----------
    path : path
        Shard file named ``r{start:09d}-{stop:09d}.h5``.
    point_key : str
        Expected point key.
    verify : bool
        Also read all data and verify the SHA-256 checksum.
    """
    path = Path(path)
    m = BLOCK_NAME_RE.match(path.name)
    if not m:
        return ShardInfo(path, -1, -1, problem="file name is not r{start}-{stop}.{observables}.h5")
    start, stop = int(m.group(1)), int(m.group(2))
    name_obs = sorted(m.group(3).split("+"))
    info = ShardInfo(path, start, stop)
    if stop <= start:
        info.problem = "empty or inverted range in file name"
        return info
    try:
        with _open_h5(path, "r") as f:
            attrs = f.attrs
            if attrs.get("mcsim_block_format") != BLOCK_FORMAT:
                info.problem = "not an mcsim block file (mcsim_block_format attribute missing)"
                return info
            if not bool(attrs.get("complete", False)):
                info.problem = "completeness marker missing"
                return info
            if attrs.get("point_key") != point_key:
                info.problem = f"belongs to point {attrs.get('point_key')!r}"
                return info
            version = attrs.get("sampler_stream_version")
            if version is None or int(version) != stream_version():
                info.stale = True
                info.problem = (f"drawn by sampler stream version {None if version is None else int(version)}, "
                                f"this mcsim draws version {stream_version()}")
                return info
            if int(attrs.get("start", -1)) != start or int(attrs.get("stop", -1)) != stop:
                info.problem = f"attrs range [{attrs.get('start')}, {attrs.get('stop')}) does not match file name"
                return info
            names = sorted(f.keys())
            if "overflow" not in names:
                info.problem = "overflow dataset missing"
                return info
            for name in names:
                ds = f[name]
                if ds.ndim < 1 or ds.shape[0] != stop - start:
                    info.problem = f"dataset {name!r} has shape {ds.shape}, expected leading axis {stop - start}"
                    return info
                info.shapes[name] = tuple(ds.shape)
                info.dtypes[name] = ds.dtype.str
            declared = json.loads(attrs.get("observables", "[]"))
            info.observables = tuple(n for n in names if n != "overflow")
            if sorted(declared) != sorted(info.observables) or name_obs != sorted(info.observables):
                info.problem = (f"declared observables {declared} / file name {name_obs} differ from datasets "
                                f"{list(info.observables)}")
                return info
            if verify:
                data = {name: f[name][()] for name in names}
                if checksum_arrays(data) != attrs.get("sha256"):
                    info.problem = "checksum mismatch (corrupt data)"
                    return info
                info.verified = True
    except Exception as exc:  # truncated / unreadable HDF5 raise OSError and friends
        info.problem = f"truncated or unreadable HDF5 file ({type(exc).__name__}: {exc})"
        return info
    info.ok = True
    return info


def scan_blocks(pdir: PathLike, point_key: str, verify: bool = True) -> list[ShardInfo]:
    """Inspect every shard of a point directory (temp files are ignored).

    Returns
    -------
    list of ShardInfo
        Sorted by (start, stop, name); includes bad shards (``ok=False``).
    """
    directory = blocks_dir(pdir)
    if not directory.is_dir():
        return []
    infos = []
    for p in directory.iterdir():
        if p.name.startswith(TEMP_PREFIX) or not p.name.endswith(".h5"):
            continue
        infos.append(inspect_block(p, point_key, verify=verify))
    infos.sort(key=lambda s: (s.start, s.stop, s.path.name))
    return infos


def choose_tiling(shards: Sequence[ShardInfo], realizations: int) -> tuple[list[tuple[ShardInfo, int, int]], list[tuple[int, int]]]:
    """Deterministically cover ``[0, realizations)`` with shards.

    Greedy: at position ``p`` take the shard with ``start <= p < stop`` that
    reaches furthest (ties: larger start, then file name) and use its rows
    ``[p, min(stop, R))``.  Positions no shard covers are gaps.

    Returns
    -------
    pieces : list of (ShardInfo, lo, hi)
        Global realization ranges ``[lo, hi)`` taken from each shard, in order.
    gaps : list of (int, int)
        Uncovered ranges ``[lo, hi)``.
    """
    pieces, gaps = [], []
    cands = sorted((s for s in shards if s.start < realizations), key=lambda s: (s.start, s.stop, s.path.name))
    key = lambda s: (s.stop, s.start, s.path.name)  # noqa: E731
    p, i, best = 0, 0, None
    while p < realizations:
        # running maximum over shards starting at or before p; since p only grows and
        # the maximum reaches furthest, a stale maximum means every seen shard is stale
        while i < len(cands) and cands[i].start <= p:
            if best is None or key(cands[i]) > key(best):
                best = cands[i]
            i += 1
        if best is None or best.stop <= p:
            best = None
            nxt = min(cands[i].start if i < len(cands) else realizations, realizations)
            gaps.append((p, nxt))
            p = nxt
            continue
        hi = min(best.stop, realizations)
        pieces.append((best, p, hi))
        p, best = hi, None
    return pieces, gaps


def split_range(lo: int, hi: int, block_size: int) -> list[tuple[int, int]]:
    """Split ``[lo, hi)`` into blocks whose inner boundaries are multiples of ``block_size``."""
    out = []
    p = lo
    while p < hi:
        nxt = min(hi, (p // block_size + 1) * block_size)
        out.append((p, nxt))
        p = nxt
    return out


def tile_observables(infos: Iterable[ShardInfo], observables: Sequence[str], realizations: int):
    """Per observable, the deterministic tiling of ``[0, realizations)`` by usable shards holding it.

    Returns
    -------
    pieces : dict of str to list of (ShardInfo, lo, hi)
    gaps : dict of str to list of (int, int)
    """
    good = [s for s in infos if s.ok]
    pieces, gaps = {}, {}
    for o in _unique(observables):
        pieces[o], gaps[o] = choose_tiling([s for s in good if o in s.observables], realizations)
    return pieces, gaps


def missing_segments(gaps: Mapping[str, Sequence[tuple[int, int]]], observables: Sequence[str],
                     realizations: int) -> list[tuple[int, int, tuple]]:
    """Realization ranges with the observables missing there, merged where the set is equal.

    Returns
    -------
    list of (int, int, tuple of str)
        ``(lo, hi, observables)`` in order; observables in the order of ``observables``.
    """
    obs = _unique(observables)
    cuts = sorted({0, realizations, *(x for o in obs for g in gaps[o] for x in g)})
    segs: list[tuple[int, int, tuple]] = []
    for a, b in zip(cuts, cuts[1:]):
        miss = tuple(o for o in obs if any(lo <= a and b <= hi for lo, hi in gaps[o]))
        if not miss:
            continue
        if segs and segs[-1][1] == a and segs[-1][2] == miss:
            segs[-1] = (segs[-1][0], b, miss)
        else:
            segs.append((a, b, miss))
    return segs


@dataclass
class Plan:
    """What a run has to sample for one point.

    Attributes
    ----------
    to_sample : list of (int, int, tuple of str)
        Blocks ``(start, stop, observables)`` to sample, in order: each block
        draws only the observables still missing for its range.
    reused : list of ShardInfo
        Valid shards used by the tiling of some requested observable.
    bad : list of ShardInfo
        Corrupt / foreign shard files found (moved aside by ``run``).
    stale : list of ShardInfo
        Shards drawn by another sampler stream version (``run`` refuses them).
    covered : int
        Realizations in ``[0, R)`` already present for every requested observable.
    """

    to_sample: list
    reused: list
    bad: list
    stale: list
    covered: int


def plan_blocks(pdir: PathLike, spec, realizations: Optional[int] = None,
                block_size: Optional[int] = None, verify: bool = True) -> Plan:
    """Find the realization blocks and observables still missing for ``spec`` in a point directory.

    Parameters
    ----------
    pdir : path
        Point directory.
    spec : theory.PointSpec
    realizations, block_size : int, optional
        Override ``spec.realizations`` / ``spec.block_size``.
    verify : bool
        Verify checksums of existing shards (a corrupt shard is resampled).

    Returns
    -------
    Plan
    """
    R = spec.realizations if realizations is None else int(realizations)
    bs = spec.block_size if block_size is None else int(block_size)
    infos = scan_blocks(pdir, spec.point_key(), verify=verify)
    pieces, gaps = tile_observables(infos, spec.observables, R)
    segs = missing_segments(gaps, spec.observables, R)
    todo = [(a, b, obs) for lo, hi, obs in segs for a, b in split_range(lo, hi, bs)]
    reused, seen = [], set()
    for o in _unique(spec.observables):
        for s, _, _ in pieces[o]:
            if s.path not in seen:
                seen.add(s.path)
                reused.append(s)
    reused.sort(key=lambda s: (s.start, s.stop, s.path.name))
    missing = sum(hi - lo for lo, hi in _intervals((lo, hi) for lo, hi, _ in segs))
    bad = [s for s in infos if not s.ok and not s.stale]
    stale = [s for s in infos if s.stale]
    return Plan(todo, reused, bad, stale, R - missing)


def _fmt_ranges(ranges: Sequence[tuple], limit: int = 20) -> str:
    txt = ", ".join(f"[{r[0]}, {r[1]})" for r in ranges[:limit])
    if len(ranges) > limit:
        txt += f", ... ({len(ranges) - limit} more)"
    return txt


# --------------------------------------------------------------------------- final file

_DESCRIPTIONS = {
    "y": "network outputs y[r, alpha, i]: realization r, pattern alpha (P), readout unit i (n_out)",
    "caux": ("auxiliary covariance Caux^(a,b)_{alpha beta} (theory-notes Sec. 5, Eq. 26) "
             "[r, a, b, alpha, beta]: realization, layer/step a and b in 0..A+1 (A+1 = readout), patterns"),
    "chat": ("empirical covariance Chat^(a,b)_{alpha beta} = (1/n) h^(a)_alpha . h^(b)_beta "
             "[r, a, b, alpha, beta]: realization, layer/step a and b in 0..A+1 (A+1 = readout: (1/n_out) y.y), patterns"),
    "caux_diag": ("equal-layer auxiliary covariance Caux^(a,a)_{alpha beta} [r, a, alpha, beta]: "
                  "realization, layer/step a in 0..A+1 (A+1 = readout), patterns"),
    "chat_diag": ("equal-layer empirical covariance Chat^(a,a)_{alpha beta} [r, a, alpha, beta]: "
                  "realization, layer/step a in 0..A+1 (A+1 = readout), patterns"),
    "caux_readout": "readout auxiliary covariance Caux^(A+1,A+1)_{alpha beta} [r, alpha, beta]",
    "chat_readout": "readout empirical covariance (1/n_out) y_alpha . y_beta [r, alpha, beta]",
    "overflow": "True where realization r produced inf/nan (unstable regime) [r]",
    "inputs": ("network inputs X (theory.make_inputs of inputs_spec_json): [alpha, i] single inputs given at "
               "a = 0, or [alpha, a, i] sequences x^(a)"),
}


def describe_dataset(name: str, shape: Sequence[int]) -> str:
    """Human-readable description of a final-file dataset, including its shape."""
    base = _DESCRIPTIONS.get(name, f"observable {name!r} from mcsim.sample_point; leading axis = realization r")
    return f"{base}; shape {tuple(int(s) for s in shape)}"


def _package_versions() -> dict:
    import platform

    versions = {"python": platform.python_version()}
    for mod in ("theory", "mcsim", "numpy", "numba", "h5py", "mpi4py"):
        try:
            versions[mod] = str(__import__(mod).__version__)
        except Exception:  # pragma: no cover - optional
            versions[mod] = "unavailable"
    try:
        versions["hdf5"] = _h5py().version.hdf5_version
    except Exception:  # pragma: no cover
        pass
    return versions


def point_attrs(spec, realizations: int, extra: Optional[Mapping[str, Any]] = None) -> dict:
    """Root attributes of a final point file (see :func:`finalise`)."""
    attrs: dict[str, Any] = {
        "mcsim_format": POINT_FORMAT,
        "point_key": spec.point_key(),
        "spec_json": spec.canonical_json(),
        "identity_json": json.dumps(spec.identity(), sort_keys=True, separators=(",", ":")),
        "sampler_stream_version": np.int64(stream_version()),
        "label": str(spec.raw.get("label", "")),
    }
    for k, v in spec.prior.to_dict().items():
        attrs[k] = np.asarray(v, dtype=float) if isinstance(v, list) else v
    attrs["g2_layers"] = np.asarray(spec.prior.g2_layers, dtype=float)
    attrs["sigma2_layers"] = np.asarray(spec.prior.sigma2_layers, dtype=float)
    attrs["nu_layers"] = np.asarray(spec.prior.nu_layers, dtype=float)
    attrs["width"] = np.int64(spec.width)
    attrs["widths"] = np.asarray(spec.prior.widths(spec.width), dtype=np.int64)
    attrs["realizations"] = np.int64(realizations)
    attrs["seed"] = np.int64(spec.seed)
    attrs["block_size"] = np.int64(spec.block_size)
    attrs["method"] = spec.method
    attrs["method_requested"] = spec.method
    attrs["method_resolved"] = spec.resolved_method()
    attrs["activation_identity"] = spec.prior.act.identity
    attrs["observables"] = json.dumps(_unique(spec.observables))
    attrs["inputs_spec_json"] = json.dumps(spec.raw["inputs"], sort_keys=True, separators=(",", ":"))
    if isinstance(spec.raw["inputs"], dict) and "seed" in spec.raw["inputs"]:
        attrs["inputs_seed"] = np.int64(spec.raw["inputs"]["seed"])
    attrs["n_patterns"] = np.int64(spec.X.shape[0])
    attrs["n_in"] = np.int64(spec.X.shape[-1])
    for k, v in _package_versions().items():
        attrs[f"version_{k}"] = v
    attrs["created_utc"] = _utc_now()
    for k, v in (extra or {}).items():
        attrs[k] = v
    return attrs


def finalise(spec, pdir: PathLike, out: PathLike, realizations: Optional[int] = None,
             extra_attrs: Optional[Mapping[str, Any]] = None) -> Path:
    """Merge the shards of a point into one self-describing HDF5 file with per-dataset checksums.

    The output holds, at the root, one dataset per requested observable
    (shape ``(R, ...)``, named as in :func:`mcsim.sample`), ``/overflow``
    ``(R,)`` bool and ``/inputs`` (X).  Every dataset has a ``description``
    and a ``sha256`` attribute (:func:`dataset_checksum`, computed from the
    shard data after the shard's own checksum was verified); the root has
    the attributes of :func:`point_attrs` plus ``datasets`` (JSON list of the
    checksummed datasets), ``overflow_count``, ``n_shards`` and finally
    ``complete = True``.  Each observable is tiled from the shards holding it
    (:func:`tile_observables`).  Data are copied (no virtual datasets) into a
    temp file renamed at the end, so ``out`` is never partial and never
    contains fill values.

    Parameters
    ----------
    spec : theory.PointSpec
    pdir : path
        Point directory.
    out : path
        Output file; its directory must exist.
    realizations : int, optional
        Override ``spec.realizations``.
    extra_attrs : mapping, optional
        Extra root attributes (e.g. MPI rank count).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    StaleStoreError
        If the point directory or a shard was drawn by another sampler stream version.
    StoreError
        Naming every missing realization range and every corrupt/truncated
        shard, if ``[0, R)`` cannot be assembled from valid shards.
    """
    R = spec.realizations if realizations is None else int(realizations)
    out = Path(out)
    if not out.parent.is_dir():
        raise StoreError(f"out: directory does not exist: {out.parent}")
    if out.is_dir():
        raise StoreError(f"out: {out} is a directory")
    check_point_dir(pdir, spec)
    key = spec.point_key()
    obs = _unique(spec.observables)
    infos = scan_blocks(pdir, key, verify=False)
    stale = [s for s in infos if s.stale]
    if stale:
        raise StaleStoreError(stale_shards_message(pdir, stale))
    pieces, gaps = tile_observables(infos, obs, R)
    if any(gaps[o] for o in obs):
        raise StoreError(_missing_message(pdir, key, R, gaps, infos, obs))
    # consistent trailing shapes / dtypes across the chosen shards, per observable
    for o in obs:
        ref = pieces[o][0][0]
        for s, _, _ in pieces[o][1:]:
            for name in (o, "overflow"):
                if s.shapes[name][1:] != ref.shapes[name][1:] or s.dtypes[name] != ref.dtypes[name]:
                    raise StoreError(
                        f"store: shard {s.path.name} has {name!r} of shape {s.shapes[name]} / dtype "
                        f"{s.dtypes[name]}, inconsistent with {ref.path.name} ({ref.shapes[name]} / {ref.dtypes[name]})"
                    )
    # every shard used, in start order, with the pieces it contributes
    by_shard: dict[Path, tuple[ShardInfo, list]] = {}
    for o in obs:
        for s, lo, hi in pieces[o]:
            by_shard.setdefault(s.path, (s, []))[1].append((o, lo, hi))
    order = sorted(by_shard.values(), key=lambda t: (t[0].start, t[0].stop, t[0].path.name))
    _clean_temps([out.parent], STALE_TEMP_SECONDS, suffix="-" + out.name)  # left by killed finalisations
    corrupt: list[tuple[ShardInfo, str]] = []
    overflow = np.zeros(R, dtype=bool)
    overflow_set = np.zeros(R, dtype=bool)
    hashes, next_lo = {}, {o: 0 for o in obs}
    with _atomic_file(out) as tmp:
        with _open_h5(tmp, "w") as f:
            dsets = {}
            for o in obs:
                ref = pieces[o][0][0]
                shape, dt = (R, *ref.shapes[o][1:]), np.dtype(ref.dtypes[o])
                dsets[o] = f.create_dataset(o, shape=shape, dtype=dt)
                dsets[o].attrs["description"] = describe_dataset(o, shape)
                hashes[o] = hashlib.sha256()
                _checksum_header(hashes[o], o, dt, shape)
            for s, contrib in order:
                if corrupt:  # keep scanning only to report every bad shard
                    bad = _verify_only(s)
                    if bad:
                        corrupt.append((s, bad))
                    continue
                try:
                    arrays, attrs = read_block_arrays(s.path)
                except Exception as exc:
                    corrupt.append((s, f"truncated or unreadable HDF5 file ({type(exc).__name__}: {exc})"))
                    continue
                if checksum_arrays(arrays) != attrs.get("sha256"):
                    corrupt.append((s, "checksum mismatch (corrupt data)"))
                    continue
                for o, lo, hi in contrib:
                    if lo != next_lo[o]:  # pragma: no cover - guaranteed by the greedy tiling
                        raise RuntimeError(f"finalise: pieces of {o!r} out of order at {lo} (expected {next_lo[o]})")
                    a, b = lo - s.start, hi - s.start
                    piece = np.ascontiguousarray(arrays[o][a:b])
                    dsets[o][lo:hi] = piece
                    hashes[o].update(piece.reshape(-1).view(np.uint8).data)
                    next_lo[o] = hi
                    ov = np.asarray(arrays["overflow"][a:b], dtype=bool)
                    seen = overflow_set[lo:hi]
                    if np.any(overflow[lo:hi][seen] != ov[seen]):
                        raise StoreError(f"store: shard {s.path.name} disagrees with other shards on 'overflow' in "
                                         f"[{lo}, {hi}); the point directory {pdir} is inconsistent: delete it and rerun")
                    overflow[lo:hi] = ov
                    overflow_set[lo:hi] = True
            if corrupt:
                raise StoreError(_corrupt_message(pdir, key, R, corrupt))
            checksums = {o: h.hexdigest() for o, h in hashes.items()}
            ds = f.create_dataset("overflow", data=overflow)
            ds.attrs["description"] = describe_dataset("overflow", overflow.shape)
            checksums["overflow"] = dataset_checksum("overflow", overflow)
            X = np.ascontiguousarray(spec.X, dtype=float)
            inp = f.create_dataset("inputs", data=X)
            inp.attrs["description"] = describe_dataset("inputs", X.shape)
            checksums["inputs"] = dataset_checksum("inputs", X)
            for name, digest in checksums.items():
                f[name].attrs["sha256"] = digest
            attrs = point_attrs(spec, R, extra_attrs)
            attrs["datasets"] = json.dumps(sorted(checksums))
            attrs["overflow_count"] = np.int64(int(overflow.sum()))
            attrs["n_shards"] = np.int64(len(order))
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["complete"] = True
    return out


def _verify_only(s: ShardInfo) -> str:
    try:
        arrays, attrs = read_block_arrays(s.path)
    except Exception as exc:
        return f"truncated or unreadable HDF5 file ({type(exc).__name__}: {exc})"
    if checksum_arrays(arrays) != attrs.get("sha256"):
        return "checksum mismatch (corrupt data)"
    return ""


def _missing_message(pdir, key, R, gaps, infos, observables) -> str:
    allgaps = _intervals(g for o in observables for g in gaps[o])
    per_obs = "; ".join(f"{o}: {_fmt_ranges(gaps[o])}" for o in observables if gaps[o])
    msg = [f"finalize: point {key[:12]} in {pdir}: cannot assemble realizations [0, {R}): "
           f"missing realization ranges {_fmt_ranges(allgaps)} ({per_obs})"]
    bad = [s for s in infos if not s.ok and s.start < R and any(s.start < hi and lo < s.stop for lo, hi in allgaps)]
    if bad:
        msg.append("corrupt/truncated shards: " + "; ".join(f"{s.path.name} {s.range_str}: {s.problem}" for s in bad))
    msg.append("rerun 'python -m mcsim run' with the same spec to sample them")
    return "; ".join(msg)


def _corrupt_message(pdir, key, R, corrupt) -> str:
    items = "; ".join(f"{s.path.name} realizations {s.range_str}: {why}" for s, why in corrupt)
    return (f"finalize: point {key[:12]} in {pdir}: corrupt/truncated shards: {items}; "
            "rerun 'python -m mcsim run' with the same spec to resample them")


# --------------------------------------------------------------------------- reading


def _attr_py(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.dtype.kind in ("O", "S"):
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    return v


def _open_point_file(path: Path):
    """Open a final point file and check its format and completeness; return (file, attrs)."""
    if not path.is_file():
        raise StoreError(f"{path}: no such point file")
    try:
        f = _open_h5(path, "r")
    except Exception as exc:
        raise StoreError(f"{path}: unreadable HDF5 file ({type(exc).__name__}: {exc})") from None
    try:
        attrs = {k: _attr_py(v) for k, v in f.attrs.items()}
    except Exception as exc:
        f.close()
        raise StoreError(f"{path}: unreadable HDF5 attributes ({type(exc).__name__}: {exc})") from None
    fmt = attrs.get("mcsim_format")
    if fmt != POINT_FORMAT:
        f.close()
        if isinstance(fmt, str) and fmt.startswith("mcsim-point-"):
            raise StoreError(f"{path}: point file format {fmt!r} has no checksums (this mcsim reads {POINT_FORMAT!r}); "
                             "rerun 'python -m mcsim run' or 'finalize' to rewrite it")
        raise StoreError(f"{path}: not a finalised mcsim point file (mcsim_format attribute missing)")
    if attrs.get("complete") is not True:
        f.close()
        raise StoreError(f"{path}: incomplete point file (completeness marker missing)")
    return f, attrs


def _check_dataset(f, path: Path, name: str, R: Optional[int]) -> None:
    """Raise StoreError unless dataset ``name`` exists, has R realizations and matches its sha256 attribute."""
    if name not in f:
        raise StoreError(f"{path}: dataset {name!r} missing")
    ds = f[name]
    if R is not None and ds.shape[:1] != (R,):
        raise StoreError(f"{path}: dataset {name!r} has shape {ds.shape}, expected {R} realizations")
    want = ds.attrs.get("sha256")
    if want is None:
        raise StoreError(f"{path}: dataset {name!r} has no sha256 checksum attribute")
    try:
        got = _dataset_checksum_h5(ds, name)
    except Exception as exc:
        raise StoreError(f"{path}: dataset {name!r} unreadable ({type(exc).__name__}: {exc})") from None
    if got != _attr_py(want):
        raise StoreError(f"{path}: dataset {name!r}: checksum mismatch (corrupt data); "
                         "rerun 'python -m mcsim finalize' (or run) to rewrite the file")


def verify_point(path: PathLike) -> dict:
    """Verify a final point file: format, completeness and the checksum of every dataset.

    Returns
    -------
    dict
        The root attributes (as :func:`read_point`).

    Raises
    ------
    StoreError
        Naming the file and the first bad dataset.
    """
    path = Path(path)
    f, attrs = _open_point_file(path)
    with f:
        try:
            names = json.loads(attrs["datasets"])
            observables = json.loads(attrs["observables"])
            R = int(attrs["realizations"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{path}: malformed root attributes ({type(exc).__name__}: {exc})") from None
        extra = sorted(set(f.keys()) - set(names))
        if extra:
            raise StoreError(f"{path}: unexpected datasets {extra} (not listed in the 'datasets' attribute)")
        for name in names:
            _check_dataset(f, path, name, R if name != "inputs" else None)
        for name in [*observables, "overflow", "inputs"]:
            if name not in names:
                raise StoreError(f"{path}: dataset {name!r} missing")
    attrs["observables"] = observables
    attrs["datasets"] = names
    return attrs


def read_point(path: PathLike) -> tuple[dict, dict]:
    """Read a finalised point file, verifying every dataset's checksum.

    This is the reader for simulation results (the workflow scripts should
    use it): a flipped byte anywhere in the data is an error, never a number.

    Parameters
    ----------
    path : path
        File written by :func:`finalise` (``python -m mcsim run/finalize``).

    Returns
    -------
    arrays : dict of str to ndarray
        Every root dataset: the observables (leading axis = realization,
        length R), ``"overflow"`` (R,) bool and ``"inputs"`` (X).
    attrs : dict
        Root attributes as Python / NumPy values (see :func:`point_attrs`);
        ``attrs["observables"]`` and ``attrs["datasets"]`` are decoded to lists.

    Raises
    ------
    StoreError
        If the file is missing, unreadable, not a complete finalised point
        file of this format, a dataset is missing or has the wrong number of
        realizations, or a checksum does not match (naming the dataset and file).
    """
    path = Path(path)
    f, attrs = _open_point_file(path)
    with f:
        try:
            names = json.loads(attrs["datasets"])
            observables = json.loads(attrs["observables"])
            R = int(attrs["realizations"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{path}: malformed root attributes ({type(exc).__name__}: {exc})") from None
        arrays = {}
        for name in sorted(set(names) | set(f.keys()) | {*observables, "overflow", "inputs"}):
            if name not in names:
                raise StoreError(f"{path}: dataset {name!r} has no checksum entry in the 'datasets' attribute")
            if name not in f:
                raise StoreError(f"{path}: dataset {name!r} missing")
            ds = f[name]
            if name != "inputs" and ds.shape[:1] != (R,):
                raise StoreError(f"{path}: dataset {name!r} has shape {ds.shape}, expected {R} realizations")
            try:
                a = ds[()]
            except Exception as exc:
                raise StoreError(f"{path}: dataset {name!r} unreadable ({type(exc).__name__}: {exc})") from None
            if dataset_checksum(name, a) != _attr_py(ds.attrs.get("sha256")):
                raise StoreError(f"{path}: dataset {name!r}: checksum mismatch (corrupt data); "
                                 "rerun 'python -m mcsim finalize' (or run) to rewrite the file")
            arrays[name] = a
    attrs["observables"] = observables
    attrs["datasets"] = names
    return arrays, attrs


# --------------------------------------------------------------------------- info


def _intervals(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def describe_point_dir(pdir: PathLike, spec=None, verify: bool = False) -> str:
    """Multi-line summary of a point directory (for ``python -m mcsim info``)."""
    pdir = Path(pdir)
    lines = [f"point directory: {pdir}"]
    ident = {}
    try:
        ident = json.loads((pdir / "spec.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        lines.append(f"  spec.json: unreadable ({exc})")
    key = ident.get("point_key", pdir.name)
    lines.append(f"  point_key: {key}")
    if ident:
        lines.append(f"  prior: {json.dumps(ident.get('prior'), sort_keys=True)}")
        lines.append(f"  inputs: {json.dumps(ident.get('inputs'), sort_keys=True)}")
        lines.append(f"  width: {ident.get('width')}  seed: {ident.get('seed')}  method: {ident.get('method_resolved')}")
        lines.append(f"  sampler stream version: {ident.get('sampler_stream_version')} "
                     f"(this mcsim: {stream_version()})")
    infos = scan_blocks(pdir, key, verify=verify)
    good = [s for s in infos if s.ok]
    bad = [s for s in infos if not s.ok]
    present = _intervals((s.start, s.stop) for s in good)
    n_present = sum(b - a for a, b in present)
    lines.append(f"  shards: {len(infos)} ({len(good)} valid, {len(bad)} bad)"
                 + ("" if verify else "; checksums not verified (use --verify)"))
    lines.append(f"  realizations present: {n_present} in {_fmt_ranges(present) or 'none'}")
    R = spec.realizations if spec is not None else (present[-1][1] if present else 0)
    if spec is not None:
        lines.append(f"  requested by spec: realizations [0, {R}), observables {list(spec.observables)}")
        _, gap_map = tile_observables(infos, spec.observables, R)
        gaps = _intervals(g for o in spec.observables for g in gap_map[o])
        for o in spec.observables:
            if gap_map[o]:
                lines.append(f"  missing {o}: {_fmt_ranges(gap_map[o])}")
    else:
        _, gaps = choose_tiling(good, R)
    pieces, _ = choose_tiling(good, R)
    lines.append(f"  missing in [0, {R}): {_fmt_ranges(gaps) or 'none'}")
    obs_sets = sorted({s.observables for s in good})
    for obs in obs_sets:
        shards = [s for s in good if s.observables == obs]
        n = sum(s.stop - s.start for s in shards)
        shapes = ", ".join(f"{k} (R, {', '.join(map(str, v[1:]))})".replace(", )", ")")
                           for k, v in sorted(shards[0].shapes.items()))
        lines.append(f"  observables {list(obs)}: {len(shards)} shards, {n} realizations; shapes {shapes}")
    if pieces:
        n_over = 0
        for s, lo, hi in pieces:
            try:
                with _open_h5(s.path, "r") as f:
                    n_over += int(np.count_nonzero(f["overflow"][lo - s.start:hi - s.start]))
            except Exception:
                pass
        lines.append(f"  overflow count (over {sum(hi - lo for _, lo, hi in pieces)} covered realizations): {n_over}")
    for s in bad:
        lines.append(f"  {'STALE' if s.stale else 'BAD'} shard {s.path.name} {s.range_str}: {s.problem}")
    temps = [p.name for d in (pdir, blocks_dir(pdir)) if d.is_dir() for p in d.iterdir()
             if p.name.startswith(TEMP_PREFIX)]
    if temps:
        lines.append(f"  temp files (in-flight or left by killed runs; ignored): {len(temps)}")
    return "\n".join(lines)


def describe_final_file(path: PathLike, verify: bool = False) -> str:
    """Multi-line summary of a finalised point file (for ``python -m mcsim info``).

    With ``verify`` every dataset checksum is verified first (:func:`verify_point`).

    Raises
    ------
    StoreError
        For a file that is not a complete point file of this format, or (with
        ``verify``) a checksum mismatch, naming the dataset and the file.
    """
    path = Path(path)
    lines = [f"point file: {path}"]
    if verify:
        verify_point(path)
    f, attrs = _open_point_file(path)
    try:
        with f:
            shapes = {name: (f[name].shape, f[name].dtype.str) for name in f.keys()}
            n_over = int(np.count_nonzero(f["overflow"][()])) if "overflow" in f else None
    except Exception as exc:
        raise StoreError(f"{path}: unreadable HDF5 file ({type(exc).__name__}: {exc})") from None
    lines.append(f"  complete: {attrs.get('complete') is True}")
    lines.append("  checksums: " + (f"verified ({len(shapes)} datasets)" if verify
                                    else "not verified (use --verify)"))
    lines.append(f"  sampler stream version: {attrs.get('sampler_stream_version')}"
                 f"  activation identity: {attrs.get('activation_identity')}")
    lines.append(f"  point_key: {attrs.get('point_key')}")
    prior_keys = ("arch", "depth", "activation", "g2", "sigma2", "g2_in", "bias", "g2_out", "sigma2_out", "nu", "n_out")
    lines.append("  prior: " + ", ".join(f"{k}={_short(attrs.get(k))}" for k in prior_keys if k in attrs))
    lines.append(f"  width: {attrs.get('width')}  seed: {attrs.get('seed')}  method: {attrs.get('method_requested')}"
                 f" -> {attrs.get('method_resolved')}")
    lines.append(f"  inputs: {attrs.get('inputs_spec_json')}")
    lines.append(f"  realizations: {attrs.get('realizations')} (all present), shards merged: {attrs.get('n_shards')}")
    for name, (shape, dt) in sorted(shapes.items()):
        lines.append(f"  /{name}: shape {tuple(shape)} dtype {dt}")
    lines.append(f"  overflow count: {n_over}")
    vers = ", ".join(f"{k[8:]}={v}" for k, v in sorted(attrs.items()) if k.startswith("version_"))
    lines.append(f"  versions: {vers}")
    lines.append(f"  created: {attrs.get('created_utc')}")
    return "\n".join(lines)


def _short(v):
    if isinstance(v, np.ndarray):
        return "[" + ", ".join(f"{x:g}" for x in v.tolist()) + "]"
    return v


def describe_path(path: PathLike, spec=None, verify: bool = False) -> str:
    """Summarise a final point file, a point directory or a store root."""
    path = Path(path)
    if path.is_file():
        return describe_final_file(path, verify=verify)
    if not path.is_dir():
        raise StoreError(f"{path}: no such file or directory")
    if spec is not None and (path / spec.point_key() / "spec.json").is_file():
        return describe_point_dir(path / spec.point_key(), spec=spec, verify=verify)
    if (path / "spec.json").is_file() or (path / "blocks").is_dir():
        if spec is not None and path.name != spec.point_key():
            raise StoreError(f"{path}: point directory does not belong to the given spec (key {spec.point_key()[:12]})")
        return describe_point_dir(path, spec=spec, verify=verify)
    points = sorted(p for p in path.iterdir() if (p / "spec.json").is_file())
    if spec is not None:
        return f"store {path}: point {spec.point_key()} not present (no {spec.point_key()}/spec.json)"
    if not points:
        return f"store {path}: no points"
    return "\n".join([f"store {path}: {len(points)} point(s)"] + [describe_point_dir(p, verify=verify) for p in points])
