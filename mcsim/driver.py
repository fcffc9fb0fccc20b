"""Entry points of ``mcsim run`` and ``mcsim finalize``, and the validation of their inputs.

:func:`run` is the campaign with one point: it validates the spec file (with
the command-line overrides) and calls :func:`mcsim.campaign.run_campaign`,
which orchestrates every run (validate, lock, plan, warm up, sample,
finalise; see :mod:`mcsim.campaign` for the scheduling and the failure
model).  This module also holds what both commands check before any store
work: :func:`parse_spec` / :func:`load_spec` (a spec is validated once, in
the process that reads it), :func:`check_out_path` and
:func:`check_block_memory` (the memory estimate of the largest block),
:class:`UserError` and the exit codes.

Failures outside sampling
-------------------------
Any exception outside the cooperative sampling loop (during planning on a
non-root rank, in rank 0's dispatcher thread, an interrupt) prints
``mcsim: rank R failed`` with its traceback, waits
``mcsim.mpi_util.ABORT_GRACE_SECONDS`` for the launcher to forward it and
calls ``MPI.COMM_WORLD.Abort(1)`` (only with more than one rank; a single
process just returns exit code 1), so the launcher exits non-zero promptly
instead of hanging.  A rank that dies outright (signal, out of memory) is
detected by the launcher, which stops the job.  A failure *while sampling*
a block fails only that block's point (see :mod:`mcsim.campaign`).

Nothing here is launcher specific: runs work under ``mpiexec``,
``srun --mpi=pmi2`` or as a plain single process (mpi4py singleton).

Modules
-------
The MPI run is split by capability: :mod:`mcsim.campaign` (orchestration
of one job over many points), :mod:`mcsim.scheduler` (work-unit hand-out
over ranks, and its replay :func:`mcsim.scheduler.simulate_schedule`),
:mod:`mcsim.worker` (sampling one block), :mod:`mcsim.progress` (progress
and failure messages), :mod:`mcsim.mpi_util` (non-spinning MPI waits,
abort), :mod:`mcsim.fault_hooks` (test faults, passed as an object) and
:mod:`mcsim.cost` (the cost model the dispatcher orders units by).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import store as _store
from .fault_hooks import FaultHooks
from .progress import _log

EXIT_OK = 0
EXIT_FAILURE = 1  # runtime failure: a failed rank, missing/corrupt/stale data
EXIT_USAGE = 2  # bad input: invalid spec or arguments (argparse uses 2 too)


class UserError(Exception):
    """A problem with the user's input: one line ``error: <key>: <what>``, exit code 2."""


def parse_spec(raw):
    """Validate a point-spec dict (or path) once: :func:`theory.parse_point_spec` plus the activation's compilation.

    Raises
    ------
    UserError
        ``"<key>: <what>"`` for anything :func:`theory.parse_point_spec` rejects,
        and ``"prior.activation: ..."`` for a custom activation Numba cannot compile.
    """
    import theory

    try:
        spec = theory.parse_point_spec(raw)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    act = spec.prior.act
    if not act.builtin:
        # a custom activation must compile for the samplers: bad input, found before any store work
        from ._kernelsets import jit_scalar

        try:
            jit_scalar(act.scalar)
        except ValueError as exc:
            raise UserError(f"prior.{exc}") from None
    return spec


def load_spec(spec_path, realizations: Optional[int] = None, block_size: Optional[int] = None):
    """Read and validate a point spec file once, with command-line overrides applied before validation.

    Raises
    ------
    UserError
        As :func:`parse_spec`, and ``"spec: ..."`` for an unreadable file.
    """
    from theory.spec import _read_spec_file

    try:
        raw = _read_spec_file(Path(spec_path))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if isinstance(raw, dict):
        if realizations is not None:
            raw["realizations"] = realizations
        if block_size is not None:
            raw["block_size"] = block_size
    return parse_spec(raw)


def check_block_memory(spec, todo, ranks_per_node: int = 1) -> None:
    """Refuse a plan whose largest block cannot fit in memory (estimate, before any allocation).

    Raises
    ------
    UserError
        ``"block_size: ..."`` (or ``"width: ..."`` if one realization cannot
        fit) giving the estimate, the available memory and what to do.
    """
    from mcsim import _memory, sampler

    if not todo:
        return
    obs = tuple(dict.fromkeys(o for blk in todo for o in blk[2]))
    prep = sampler.prepare_spec(spec, obs)
    longest = max(b - a for a, b, _ in todo)
    avail, source = _memory.available_bytes()
    if avail is None:
        return
    k = max(int(ranks_per_node), 1)
    need = prep.block_bytes(longest) * k
    if need <= avail:
        return
    one = prep.block_bytes(1)
    per_node = f" per rank x {k} ranks on this node" if k > 1 else ""
    if one * k > avail:
        raise UserError(
            f"width: one realization of this point needs about {_memory.fmt_bytes(one)}{per_node} "
            f"({prep.resolved} sampler, width {spec.width}), but only {_memory.fmt_bytes(avail)} is available "
            f"({source}); use a smaller width" + (", method 'projected'" if prep.resolved == "direct" else "")
            + (" or fewer ranks per node" if k > 1 else ""))
    fit = max(1, int(avail // (one * k)))
    raise UserError(
        f"block_size: a block of {longest} realizations needs about {_memory.fmt_bytes(prep.block_bytes(longest))}"
        f"{per_node}, but only {_memory.fmt_bytes(avail)} is available ({source}); use --block-size {fit} or "
        f"smaller (one realization needs about {_memory.fmt_bytes(one)})")


def check_out_path(out) -> Path:
    """Raise :class:`UserError` unless ``out`` can be created (its directory exists)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"out: {out} is a directory")
    if not out.parent.is_dir():
        raise UserError(f"out: directory does not exist: {out.parent if str(out.parent) else '.'}")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"out: directory is not writable: {out.parent}")
    return out


def run(spec_path, store_root, out, block_size: Optional[int] = None, realizations: Optional[int] = None,
        progress: bool = True, progress_interval: float = 30.0, hooks: Optional[FaultHooks] = None) -> int:
    """Collective entry point of ``python -m mcsim run`` (every rank calls it): the campaign with one point.

    Parameters
    ----------
    spec_path : path
        Point spec JSON file.
    store_root : path
        Store root directory (created if missing).
    out : path
        Final point file; its directory must exist.
    block_size, realizations : int, optional
        Override the spec values.
    progress : bool
        Show the progress display on rank 0 (stderr).
    progress_interval : float
        Seconds between progress lines when stderr is not a TTY.
    hooks : FaultHooks, optional
        Test faults to inject (test-suite only; default none).

    Returns
    -------
    int
        Exit code (0 success, 1 runtime failure, 2 bad input); the same on every rank.
    """
    from .campaign import CampaignPoint, run_campaign

    def loader():
        spec = load_spec(spec_path, realizations, block_size)
        return [CampaignPoint(Path(spec_path).stem, spec, check_out_path(out))]

    return run_campaign(loader, store_root, single=True, progress=progress, progress_interval=progress_interval,
                        hooks=hooks)


def finalize(spec_path, store_root, out, realizations: Optional[int] = None) -> int:
    """``python -m mcsim finalize``: merge existing shards into ``out`` (single process).

    Returns
    -------
    int
        0 on success; raises :class:`UserError` (bad input) or
        :class:`mcsim.store.StoreError` (missing, corrupt or stale shards).
    """
    spec = load_spec(spec_path, realizations)
    check_out_path(out)
    if not Path(store_root).is_dir():
        raise UserError(f"store: no such directory: {store_root}")
    pdir = _store.point_dir(store_root, spec.point_key())
    if not pdir.is_dir():
        raise _store.StoreError(f"finalize: point {spec.point_key()[:12]} has no directory in store {store_root} "
                                f"(expected {pdir}); run 'python -m mcsim run' first")
    lock = _store.PointLock(pdir)
    lock.wait(on_wait=lambda holder: _log(f"mcsim finalize: note: waiting for another run of this point ({holder})"))
    try:
        _store.finalise(spec, pdir, out)
    finally:
        lock.release()
    _log(f"mcsim finalize: wrote {out} ({spec.realizations} realizations)")
    return 0
