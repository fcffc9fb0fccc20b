"""Store of HMC posterior chains: one directory per posterior point, checkpoint segments per chain.

Layout (the prior store's conventions, :mod:`mcsim.store_layout`)::

    STORE/<posterior_key>/spec.json     identity of the posterior point (PosteriorPoint.identity_dict)
    STORE/<posterior_key>/.lock         run lock (mcsim.locking.PointLock)
    STORE/<posterior_key>/blocks/c{chain:06d}-i{start:09d}-{stop:09d}.h5
    STORE/<posterior_key>/corrupt/      quarantined segments

The *posterior key* (:func:`posterior_identity`) extends
:func:`theory.spec.point_key` of the network (prior, inputs, width, seed)
with the data hash, kappa, gamma0, the method, the HMC settings and the
observables.  It does not cover the number of chains or of draws: chain ``c``
is the same function of the key and ``c`` whatever the run asked for, so more
draws *extend* the stored chains (warm-up is not repeated) and more chains
add chains.

A *segment* file holds iterations ``[start, stop)`` of one chain
(:class:`mcsim.posterior_sampling.ChainSegment`): per-iteration acceptance
probability, divergence flag and gradient evaluations, the kept draws of the
observables, and the complete sampler state after iteration ``stop - 1``
(:func:`mcsim.hmc.state_to_arrays`).  It is written atomically
(:func:`mcsim.atomic_io._atomic_file`) with a SHA-256 over every array
(:func:`mcsim.checksums.checksum_arrays`) and a completeness marker.  A chain
is the contiguous run of valid segments from iteration 0
(:func:`load_chain`); a segment that fails any check (truncated, checksum,
wrong shapes, another point) is moved to ``corrupt/`` together with every
later segment of its chain, and those iterations are recomputed: they are
never read as zeros.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from theory.spec import point_key

from .atomic_io import TEMP_PREFIX, _atomic_file
from .checksums import checksum_arrays
from .hmc import state_from_arrays, state_to_arrays
from .posterior_sampling import ChainProblem, ChainSegment, PosteriorRun
from .store_layout import PathLike, _attr_py, _open_h5, blocks_dir, stream_version

SEGMENT_FORMAT = "mcsim-chain-segment-v1"
SEGMENT_NAME_RE = re.compile(r"^c(\d{6,})-i(\d{9,})-(\d{9,})\.h5$")
#: ``kind`` of a posterior point's identity (``spec.json``); prior points have none
POSTERIOR_KIND = "posterior-hmc"
#: default iterations between checkpoints (``--checkpoint-every``)
DEFAULT_CHECKPOINT_EVERY = 100


class SegmentError(ValueError):
    """A checkpoint segment is missing, partial, corrupt or belongs to something else."""


def posterior_identity(run: PosteriorRun) -> dict:
    """What identifies a posterior point (JSON-serialisable); its SHA-256 is the posterior key.

    Everything a stored chain depends on: the network point key
    (:func:`theory.spec.point_key` with method ``"direct"``, which covers the
    prior, the inputs, the width and the seed), the data hash, kappa, gamma0,
    the method, the HMC settings and the observables (sorted).  Not the
    number of chains or draws.
    """
    if run.method != "hmc":
        raise ValueError(f"method: the chain store holds HMC chains, not method={run.method!r}")
    return {"kind": POSTERIOR_KIND, "network_point_key": point_key(run.prior, run.seq, run.width, "direct", run.seed),
            "data_hash": run.dhash, "kappa": repr(run.kappa), "gamma0": repr(run.gamma0), "method": run.method,
            "hmc": run.settings.to_dict(), "observables": sorted(run.obs)}


class PosteriorPoint:
    """A posterior point as the store sees it (duck-types :class:`theory.PointSpec` for :mod:`mcsim.store_layout`).

    Parameters
    ----------
    run : PosteriorRun
        A validated HMC request (:func:`mcsim.posterior_sampling.prepare_posterior`).
    """

    def __init__(self, run: PosteriorRun):
        self.run = run
        self._identity = posterior_identity(run)
        self._key = hashlib.sha256(json.dumps(self._identity, sort_keys=True, separators=(",", ":")).encode()
                                   ).hexdigest()

    def point_key(self) -> str:
        """Hex SHA-256 of :meth:`identity` (the directory name)."""
        return self._key

    def identity(self) -> dict:
        return dict(self._identity)

    def identity_dict(self) -> dict:
        """Contents of ``spec.json`` (without the code identity :func:`mcsim.store_layout.identity_dict` adds)."""
        r = self.run
        return {"kind": POSTERIOR_KIND, "prior": r.prior_doc(), "width": r.width, "seed": r.seed, "data_hash": r.dhash,
                "kappa": repr(r.kappa), "gamma0": repr(r.gamma0), "method": r.method, "hmc": r.settings.to_dict(),
                "observables": sorted(r.obs), "train": r.train.tolist(), "patterns": int(r.seq.shape[0])}


def segment_name(chain: int, start: int, stop: int) -> str:
    """File name of the segment of ``chain`` holding iterations ``[start, stop)``."""
    return f"c{chain:06d}-i{start:09d}-{stop:09d}.h5"


def _segment_arrays(seg: ChainSegment) -> dict:
    arrays = {"accept": np.asarray(seg.accept, dtype=np.float64), "divergent": np.asarray(seg.divergent, dtype=bool),
              "evals": np.asarray(seg.evals, dtype=np.int64)}
    arrays.update({f"draws/{o}": np.asarray(v, dtype=np.float64) for o, v in seg.draws.items()})
    arrays.update({f"state/{k}": v for k, v in state_to_arrays(seg.state).items()})
    return arrays


def write_segment(pdir: PathLike, key: str, chain: int, seg: ChainSegment) -> Path:
    """Atomically write one checkpoint segment (see the module docstring); returns its path."""
    arrays = _segment_arrays(seg)
    final = blocks_dir(pdir) / segment_name(chain, seg.start, seg.stop)
    with _atomic_file(final) as tmp:
        with _open_h5(tmp, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
            f.attrs.update({"mcsim_chain_format": SEGMENT_FORMAT, "posterior_key": key, "chain": int(chain),
                            "start": int(seg.start), "stop": int(seg.stop), "sha256": checksum_arrays(arrays),
                            "sampler_stream_version": stream_version(), "complete": True})
    return final


def read_segment(path: PathLike, key: str, problem: ChainProblem) -> ChainSegment:
    """Read and fully verify one segment.

    Raises
    ------
    SegmentError
        Naming what is wrong (never returns partial or zero-filled data).
    """
    start, stop, arrays = _read_verified(path, key)
    n, k = stop - start, problem.kept(start, stop).size
    for name in ("accept", "divergent", "evals"):
        if name not in arrays or arrays[name].shape != (n,):
            raise SegmentError(f"dataset {name!r} missing or not of length {n}")
    draws = {}
    for o in problem.obs:
        a = arrays.get(f"draws/{o}")
        if a is None or a.shape != (k,) + problem.draw_shape(o):
            raise SegmentError(f"draws of {o!r} missing or of shape {None if a is None else a.shape}, expected "
                               f"{(k,) + problem.draw_shape(o)}")
        draws[o] = a
    try:
        state = state_from_arrays({k[6:]: v for k, v in arrays.items() if k.startswith("state/")})
    except ValueError as exc:
        raise SegmentError(str(exc)) from None
    if state.iteration != stop or state.position.size != problem.net.dim:
        raise SegmentError(f"sampler state is at iteration {state.iteration} of dimension {state.position.size}, "
                           f"expected {stop} and {problem.net.dim}")
    return ChainSegment(start, stop, arrays["accept"], arrays["divergent"], arrays["evals"], draws, state)


def _read_verified(path: PathLike, key: str) -> tuple:
    """``(start, stop, arrays)`` of a segment whose name, attributes and checksum are right (else SegmentError)."""
    path = Path(path)
    m = SEGMENT_NAME_RE.match(path.name)
    if not m:
        raise SegmentError("file name is not c{chain}-i{start}-{stop}.h5")
    chain, start, stop = (int(g) for g in m.groups())
    try:
        with _open_h5(path, "r") as f:
            attrs = {k: _attr_py(v) for k, v in f.attrs.items()}
            arrays = {}
            f.visititems(lambda k, v: arrays.__setitem__(k, v[()]) if hasattr(v, "shape") else None)
    except Exception as exc:  # truncated / unreadable HDF5
        raise SegmentError(f"truncated or unreadable HDF5 file ({type(exc).__name__}: {exc})") from None
    if attrs.get("mcsim_chain_format") != SEGMENT_FORMAT or not attrs.get("complete", False):
        raise SegmentError("not a complete chain segment (format attribute or completeness marker missing)")
    if attrs.get("posterior_key") != key:
        raise SegmentError(f"belongs to posterior point {str(attrs.get('posterior_key'))[:12]}")
    if (attrs.get("chain"), attrs.get("start"), attrs.get("stop")) != (chain, start, stop) or stop <= start:
        raise SegmentError("chain/iteration range in the attributes does not match the file name")
    if attrs.get("sampler_stream_version") != stream_version():
        raise SegmentError(f"drawn by sampler stream version {attrs.get('sampler_stream_version')}, this mcsim "
                           f"draws version {stream_version()}")
    if checksum_arrays(arrays) != attrs.get("sha256"):
        raise SegmentError("checksum mismatch (corrupt data)")
    return start, stop, arrays


def chain_files(pdir: PathLike, chain: int) -> list:
    """``(start, stop, path)`` of every segment file of ``chain`` (unverified), sorted."""
    out = []
    d = blocks_dir(pdir)
    if not d.is_dir():
        return out
    for p in d.iterdir():
        m = SEGMENT_NAME_RE.match(p.name)
        if m and not p.name.startswith(TEMP_PREFIX) and int(m.group(1)) == chain:
            out.append((int(m.group(2)), int(m.group(3)), p))
    return sorted(out)


def load_chain(pdir: PathLike, key: str, problem: ChainProblem, chain: int, until: Optional[int] = None,
               quarantine: Optional[Callable[[Path, str], None]] = None, last_only: bool = False) -> list:
    """The valid contiguous segments of ``chain`` from iteration 0 (verified), up to the first covering ``until``.

    Parameters
    ----------
    pdir : path
    key : str
        Posterior key.
    problem : ChainProblem
    chain : int
    until : int, optional
        Stop reading once the segments reach this iteration (default: all).
    quarantine : callable, optional
        ``quarantine(path, problem)`` for each bad segment and each segment
        after a bad one or a gap (they are unusable: the chain state does not
        continue).  Default: raise :class:`SegmentError` instead.
    last_only : bool
        Verify every segment but keep only the last one (resuming needs only
        its state; memory stays at one segment).

    Returns
    -------
    list of ChainSegment
    """
    segs, cursor, broken = [], 0, None
    for start, stop, path in chain_files(pdir, chain):
        if broken is None and until is not None and cursor >= until:
            break
        why, taints = broken, True
        if why is None:
            if start != cursor:
                why = (f"starts at iteration {start}, but the chain's valid segments end at {cursor}"
                       if start > cursor else f"overlaps the chain's valid segments (which end at {cursor})")
                taints = start > cursor
            else:
                try:
                    seg = read_segment(path, key, problem)
                except SegmentError as exc:
                    why = str(exc)
                else:
                    if last_only:
                        segs.clear()
                    segs.append(seg)
                    cursor = stop
                    continue
        if quarantine is None:
            raise SegmentError(f"store: chain segment {path}: {why}")
        quarantine(path, why)
        if taints:
            broken = broken or f"follows the bad segment {path.name}"
    return segs


def describe_posterior_dir(pdir: PathLike, ident: dict) -> str:
    """Multi-line summary of a posterior point directory (``python -m mcsim info``; checksums always verified).

    Per chain: the iterations covered by its contiguous valid segments from 0,
    and every segment that is bad or unusable after a bad one or a gap.
    """
    pdir = Path(pdir)
    key = ident.get("point_key", pdir.name)
    hmc = ident.get("hmc") or {}
    lines = [f"posterior point directory: {pdir}", f"  posterior_key: {key}",
             f"  prior: {json.dumps(ident.get('prior'), sort_keys=True)}",
             f"  width: {ident.get('width')}  seed: {ident.get('seed')}  data hash: {str(ident.get('data_hash'))[:12]}"
             f"  kappa: {ident.get('kappa')}  gamma0: {ident.get('gamma0')}",
             f"  hmc: {json.dumps(hmc, sort_keys=True)}", f"  observables: {ident.get('observables')}"]
    chains = sorted({int(m.group(1)) for p in (blocks_dir(pdir).iterdir() if blocks_dir(pdir).is_dir() else ())
                     if (m := SEGMENT_NAME_RE.match(p.name))})
    lines.append(f"  chains stored: {len(chains)}")
    W, thin = int(hmc.get("warmup", 0)), int(hmc.get("thin", 1))
    for c in chains:
        cursor, bad = 0, []
        for start, stop, path in chain_files(pdir, c):
            if bad or start != cursor:
                bad.append(f"{path.name}: " + ("after a bad segment or a gap" if bad or start > cursor else "overlap"))
                continue
            try:
                _read_verified(path, key)
            except SegmentError as exc:
                bad.append(f"{path.name}: {exc}")
                continue
            cursor = stop
        lines.append(f"  chain {c}: iterations [0, {cursor}) valid, {max(0, cursor - W) // thin} kept draws")
        lines.extend(f"    BAD segment {b}" for b in bad)
    corrupt = pdir / "corrupt"
    if corrupt.is_dir():
        lines.append(f"  quarantined files in corrupt/: {len(list(corrupt.iterdir()))}")
    return "\n".join(lines)
