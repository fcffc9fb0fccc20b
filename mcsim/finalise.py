"""Final point files: merging shards into one self-describing file, and reading it back verified.

:func:`finalise` copies the shards that tile ``[0, R)`` into one HDF5 file
with a ``sha256`` attribute per dataset and the root attributes of
:func:`point_attrs`; :func:`read_point` and :func:`verify_point` check the
format, the completeness marker and every checksum, and fail naming the
dataset and the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .atomic_io import STALE_TEMP_SECONDS, _atomic_file, _clean_temps, _utc_now
from .checksums import _checksum_header, _dataset_checksum_h5, checksum_arrays, dataset_checksum
from .shards import ShardInfo, _fmt_ranges, _intervals, read_block_arrays, scan_blocks, tile_observables
from .store_layout import (POINT_FORMAT, PathLike, StaleStoreError, StoreError, _attr_py, _h5py, _open_h5, _unique,
                           check_point_dir, stale_shards_message, stream_version)


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
    "y_steps": ("readout of the depth-a network y^(a)[r, a, alpha, i], a = 0..A (the first a+1 layers/steps of "
                "realization r plus an independent readout; depths share realizations, so they are correlated)"),
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
    checksummed datasets), ``overflow_count``, ``n_shards``,
    ``block_timings`` (see :func:`read_block_timings`) and finally
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
    timings: list = []
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
                timings.append(_shard_timing(s, attrs))
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
            attrs["block_timings"] = json.dumps(timings, separators=(",", ":"))
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["complete"] = True
    return out


def _shard_timing(s: ShardInfo, attrs: Mapping[str, Any]) -> list:
    """``[start, stop, sample_seconds, mpi_rank]`` of a shard (None where the shard did not record it)."""
    secs, rank = attrs.get("sample_seconds"), attrs.get("mpi_rank")
    return [int(s.start), int(s.stop), None if secs is None else float(secs), None if rank is None else int(rank)]


def read_block_timings(path: PathLike) -> list:
    """Measured block costs recorded in a final point file (root attribute ``block_timings``).

    Parameters
    ----------
    path : path
        Final point file.

    Returns
    -------
    list of dict
        One entry per shard the file was assembled from, in realization
        order: ``start``, ``stop`` (int), ``seconds`` (float, wall seconds the
        sampling of the block took, None for shards written before timings
        were recorded), ``rank`` (the MPI rank that wrote it, or None) and
        ``wall`` (wall seconds of the whole work unit, sampling plus writing
        the shard, when the block was sampled by the run that wrote this
        file; else None).  Replay them with
        :func:`mcsim.scheduler.simulate_schedule`.
    """
    path = Path(path)
    f, attrs = _open_point_file(path)
    f.close()
    try:
        rows = json.loads(attrs.get("block_timings", "[]"))
        walls = {(a, b): t for a, b, t, _ in json.loads(attrs.get("unit_wall_seconds", "[]"))}
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{path}: malformed block_timings or unit_wall_seconds attribute ({exc})") from None
    return [{"start": a, "stop": b, "seconds": t, "rank": r, "wall": walls.get((a, b))} for a, b, t, r in rows]


def final_file_matches(path: PathLike, spec) -> bool:
    """Whether ``path`` is a complete final point file of exactly ``spec`` (attributes only: O(1), no data read).

    True when the file opens, has this format and its completeness marker,
    and its point key, realization count, observables and sampler stream
    version equal those of ``spec``.  Used by campaigns to skip finished
    points; readers still verify every checksum (:func:`read_point`).
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        f, attrs = _open_point_file(path)
    except StoreError:
        return False
    f.close()
    try:
        return (attrs.get("point_key") == spec.point_key()
                and int(attrs.get("realizations", -1)) == spec.realizations
                and json.loads(attrs.get("observables", "null")) == _unique(spec.observables)
                and int(attrs.get("sampler_stream_version", -1)) == stream_version())
    except (TypeError, ValueError):
        return False


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


def _root_listing(path: Path, attrs: Mapping[str, Any]) -> tuple[list, list, int]:
    """The ``datasets`` and ``observables`` lists and the realization count of a point file's root attributes."""
    try:
        return json.loads(attrs["datasets"]), json.loads(attrs["observables"]), int(attrs["realizations"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: malformed root attributes ({type(exc).__name__}: {exc})") from None


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
        names, observables, R = _root_listing(path, attrs)
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
        names, observables, R = _root_listing(path, attrs)
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
