"""Text summaries for ``python -m mcsim info``: final point files, point directories and store roots.

:func:`describe_path` dispatches to :func:`describe_final_file` (a finalised
point file) or :func:`describe_point_dir` (realizations present and missing,
observables, bad shards, temp files of one point directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic_io import TEMP_PREFIX
from .finalise import _open_point_file, read_block_timings, verify_point
from .shards import _fmt_ranges, _intervals, choose_tiling, scan_blocks, tile_observables
from .store_layout import PathLike, StoreError, _open_h5, blocks_dir, stream_version


def describe_point_dir(pdir: PathLike, spec=None, verify: bool = False) -> str:
    """Multi-line summary of a point directory (for ``python -m mcsim info``)."""
    pdir = Path(pdir)
    lines = [f"point directory: {pdir}"]
    ident = {}
    try:
        ident = json.loads((pdir / "spec.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        lines.append(f"  spec.json: unreadable ({exc})")
    if ident.get("kind") == "posterior-hmc":  # a chain store point (mcsim.posterior_store)
        from .posterior_store import describe_posterior_dir

        return describe_posterior_dir(pdir, ident)
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
    timings = read_block_timings(path)
    sampled = [t["seconds"] for t in timings if t["seconds"] is not None]
    walls = [t["wall"] for t in timings if t["wall"] is not None]
    if sampled:
        lines.append(f"  block timings: {len(sampled)}/{len(timings)} blocks timed, sampling {sum(sampled):.3g} s"
                     + (f"; {len(walls)} sampled by the run that wrote this file, unit wall {sum(walls):.3g} s"
                        if walls else ""))
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
