"""Shard files and tiling: writing, inspecting and planning the blocks of a point.

A shard ``STORE/<point_key>/blocks/r{start:09d}-{stop:09d}.{obs}.h5`` holds
realizations ``[start, stop)`` of some observables (:func:`write_block`).
:func:`inspect_block` / :func:`scan_blocks` check shards (never raising for a
bad one, see :class:`ShardInfo`); :func:`choose_tiling` and
:func:`tile_observables` cover ``[0, R)`` deterministically with valid
shards, and :func:`plan_blocks` turns the gaps into the blocks a run has to
sample (:class:`Plan`).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from .atomic_io import TEMP_PREFIX, _atomic_file, _utc_now
from .checksums import checksum_arrays
from .store_layout import (BLOCK_FORMAT, BLOCK_NAME_RE, PathLike, _attr_py, _open_h5, _unique, block_name,
                           blocks_dir, stream_version)


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


def _intervals(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]
