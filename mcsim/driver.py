"""MPI driver: sample the missing realization blocks of a point over all ranks.

Scheduling
----------
Rank 0 validates the spec (once), takes the point's lock, plans (scans the
store, see :func:`mcsim.store.plan_blocks`), checks that the largest block
fits in memory (:func:`check_block_memory`) and broadcasts the list of
blocks ``(start, stop, observables)``.  With more than one rank every rank
then *warms up* (draws and discards one realization, which loads or compiles
the Numba kernels; the other ranks do this while rank 0 plans) and all ranks
meet at a barrier, so that no rank starts sampling while another is still
compiling.  Nothing is sampled to validate the spec: a spec that
:func:`theory.parse_point_spec` accepts can be sampled.

Blocks are then handed out in two phases:

1. *First round (static):* rank ``r`` samples block ``r`` of the plan
   (``r < min(ranks, blocks)``), without any message, so every rank is busy
   from the start.
2. *Dynamic rest:* the remaining blocks sit in a queue on rank 0.  A rank
   asks rank 0 for its next block only when it finished the previous one
   (point-to-point request/grant messages), so ranks with cheap blocks, or
   faster ranks, simply take more blocks.  On rank 0 a dispatcher thread
   answers requests (polled with ``Iprobe`` and short sleeps so it does not
   burn a core), and rank 0's own sampling loop serves every pending remote
   request *before* it takes its next block itself, so a waiting rank never
   loses a block to rank 0.

The Numba kernels are compiled with ``nogil=True``, so the dispatcher
thread answers a request within ~``mcsim.scheduler.DISPATCH_POLL_SECONDS`` even while rank
0's main thread is inside a kernel; while rank 0 runs NumPy/Python code
between kernels (which holds the GIL), a request waits until the
interpreter switches threads (at most a few milliseconds).

Nothing here is launcher specific: it works under ``mpiexec``,
``srun --mpi=pmi2`` or as a plain single process (mpi4py singleton, no
warm-up, no messages).

Each rank writes the shards of its blocks itself (atomic temp + rename);
after every rank is done rank 0 merges them into the final file.

Failures
--------
An exception while a rank samples a block is handled *cooperatively*: the
rank prints ``mcsim: rank R failed`` with its traceback and reports the
failure to rank 0 (with its request for the next block; rank 0 records its
own failures directly).  From then on rank 0 hands out no more blocks, the
other ranks finish the block they are sampling (its shard is kept, so a
rerun resumes from there) and stop, and rank 0 prints one error line naming
every failed rank and its exception.  No final file is written, and every
rank exits with code 1 through a normal ``MPI_Finalize``, so the launcher
forwards all output (an ``MPI_Abort`` may kill a rank before its stderr is
forwarded).  The error therefore appears after at most one block's sampling
time of each other rank.

Any other exception (during planning on a non-root rank, in rank 0's
dispatcher thread, an interrupt) prints the same ``mcsim: rank R failed``
message, waits ``mcsim.mpi_util.ABORT_GRACE_SECONDS`` for the launcher to forward it and
calls ``MPI.COMM_WORLD.Abort(1)`` (only when running with more than one
rank; a single process just returns exit code 1), so the launcher exits
non-zero promptly instead of hanging.  A rank that dies outright (signal,
out of memory) is detected by the launcher, which stops the job.

Test hooks
----------
Faults are injected through a :class:`mcsim.fault_hooks.FaultHooks` object
passed to :func:`run` (``python -m mcsim run --test-hooks JSON``, a hidden
option for the test-suite), never through environment variables: a failing
rank (while sampling, or during setup for the ``MPI_Abort`` fallback) and a
delay after each block.

Modules
-------
This module orchestrates a run (validate, lock, plan, warm up, sample,
finalise); the parts live in :mod:`mcsim.scheduler` (block hand-out over
ranks), :mod:`mcsim.worker` (sampling one block), :mod:`mcsim.progress`
(progress and failure messages), :mod:`mcsim.mpi_util` (non-spinning MPI
waits, abort) and :mod:`mcsim.fault_hooks` (test faults).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Optional

from . import store as _store
from .fault_hooks import NO_HOOKS, FaultHooks
from .mpi_util import _barrier, _bcast_object, _fail, _wait_buffer
from .progress import Progress, _log, _log_failure
from .scheduler import sample_on_root, sample_on_worker
from .shards import _fmt_ranges
from .worker import BlockWorker

EXIT_OK = 0
EXIT_FAILURE = 1  # runtime failure: a failed rank, missing/corrupt/stale data
EXIT_USAGE = 2  # bad input: invalid spec or arguments (argparse uses 2 too)


class UserError(Exception):
    """A problem with the user's input: one line ``error: <key>: <what>``, exit code 2."""


def load_spec(spec_path, realizations: Optional[int] = None, block_size: Optional[int] = None):
    """Read and validate a point spec file once, with command-line overrides applied before validation.

    Raises
    ------
    UserError
        ``"<key>: <what>"`` for anything :func:`theory.parse_point_spec` rejects,
        and ``"prior.activation: ..."`` for a custom activation Numba cannot compile.
    """
    import theory
    from theory.spec import _read_spec_file

    try:
        raw = _read_spec_file(Path(spec_path))
        if isinstance(raw, dict):
            if realizations is not None:
                raw["realizations"] = realizations
            if block_size is not None:
                raw["block_size"] = block_size
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


def _prepare(spec_path, store_root, out, block_size, realizations):
    """Rank-0 setup: validate inputs and prepare the point dir. Raises UserError / StoreError."""
    spec = load_spec(spec_path, realizations, block_size)
    check_out_path(out)
    root = Path(store_root)
    if root.exists() and not root.is_dir():
        raise UserError(f"store: {root} exists and is not a directory")
    pdir = _store.prepare_point_dir(store_root, spec)
    return spec, pdir


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


def _ranks_per_node(comm) -> int:
    try:
        from mpi4py import MPI

        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return int(local.Get_size())
        finally:
            local.Free()
    except Exception:  # pragma: no cover - MPI without shared-memory split
        return 1


def _warm_up(spec, block) -> None:
    """Sample (and discard) one realization of ``block``: loads or compiles the Numba kernels.

    Only used under MPI with more than one rank, so that every rank is
    compiled before the first round starts (see the module docstring); not
    used to validate anything.  Warnings (e.g. overflow) are suppressed.
    """
    import warnings

    from mcsim import sampler

    start, _, obs = block
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.draw(sampler.prepare_spec(spec, obs), start, 1)


def _prewarm(spec_path, block_size, realizations):
    """Best-effort parse and warm-up on a non-root rank while rank 0 plans (before the broadcast).

    Returns
    -------
    theory.PointSpec or None
        The parsed spec (reused after the broadcast if it equals rank 0's),
        or None if anything failed (rank 0 reports bad input).
    """
    try:
        spec = load_spec(spec_path, realizations, block_size)
        _warm_up(spec, (0, 1, spec.observables))
        return spec
    except Exception:
        return None


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
    """Collective entry point of ``python -m mcsim run`` (every rank calls it).

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
        Exit code (0 success, 1 error); the same on every rank.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return _run(comm, spec_path, store_root, out, block_size, realizations, progress, progress_interval,
                    NO_HOOKS if hooks is None else hooks)
    except BaseException:  # any rank, any phase: report and abort instead of leaving other ranks hanging
        _fail(comm, comm.Get_rank(), traceback.format_exc())
        return 1


def _run(comm, spec_path, store_root, out, block_size, realizations, progress, progress_interval,
         hooks: FaultHooks) -> int:
    import theory

    rank, size = comm.Get_rank(), comm.Get_size()
    t_start = time.monotonic()
    ranks_per_node = _ranks_per_node(comm) if size > 1 else 1  # collective

    # ---- rank 0 validates and plans; everybody learns the outcome by bcast (no hang on errors)
    payload = None
    lock = None
    if rank == 0:
        try:
            spec, pdir = _prepare(spec_path, store_root, out, block_size, realizations)
            lock = _store.PointLock(pdir)
            lock.wait(on_wait=lambda holder: _log(
                f"mcsim run: note: another run of this point holds its lock ({holder}); waiting for it to finish, "
                "then its realizations are reused"))
            removed = _store.clean_temp_files(pdir)
            if removed:
                _log(f"mcsim run: removed {len(removed)} temp file(s) left by killed runs")
            plan = _store.plan_blocks(pdir, spec, verify=True)
            if plan.stale:
                raise _store.StaleStoreError(_store.stale_shards_message(pdir, plan.stale))
            for s in plan.bad:
                dest = _quarantine(pdir, s.path)
                _log(f"mcsim run: warning: bad shard {s.path.name} {s.range_str}: {s.problem}; "
                     f"moved to {dest} and its range is resampled")
            todo = plan.to_sample
            partial = sorted({blk[2] for blk in todo if tuple(blk[2]) != tuple(spec.observables)})
            for obs in partial:
                ranges = [blk for blk in todo if blk[2] == obs]
                _log(f"mcsim run: note: realizations {_fmt_ranges(ranges)} are stored without "
                     f"{list(obs)}; sampling only those")
            check_block_memory(spec, todo, ranks_per_node)
            _log(f"mcsim run: point {spec.point_key()[:12]} (R={spec.realizations}, block_size={spec.block_size}, "
                 f"ranks={size}): {len(plan.reused)} shard(s) reused covering {plan.covered} realizations; "
                 f"{len(todo)} block(s) to sample" + (f": {_fmt_ranges(todo)}" if todo else ""))
            payload = ("ok", spec.raw, str(pdir), todo)
        except UserError as exc:
            payload = ("user", str(exc))
        except _store.StoreError as exc:
            payload = ("store", str(exc))
        except Exception:
            payload = ("bug", traceback.format_exc())
    pre = None
    if rank != 0:  # overlaps with rank 0's planning
        pre = _prewarm(spec_path, block_size, realizations)
    if size > 1:
        payload = _bcast_object(comm, payload)
    if payload[0] != "ok":
        if rank == 0:
            if payload[0] == "bug":
                _log_failure(0, payload[1])
            else:
                _log(f"error: {payload[1]}")
        if lock is not None:
            lock.release()
        return EXIT_USAGE if payload[0] == "user" else EXIT_FAILURE

    _, raw, pdir, todo = payload
    if rank != 0:
        if pre is not None and pre.raw == raw:
            spec = pre  # validated once in this process
        else:
            spec = theory.parse_point_spec(raw)
        if spec.point_key() != Path(pdir).name:
            raise RuntimeError(f"rank {rank}: spec round trip changed the point key ({spec.point_key()[:12]} "
                               f"!= {Path(pdir).name[:12]})")
    try:
        if hooks.fails(rank, "setup"):
            raise hooks.failure(rank)
        if size > 1 and todo:
            if rank == 0 or spec is not pre:
                _warm_up(spec, todo[0])
            _barrier(comm)  # every rank is compiled and ready: start the first round together
        return _sample_and_finalise(comm, spec, Path(pdir), todo, out, progress, progress_interval, t_start, hooks)
    finally:
        if lock is not None:
            lock.release()


def _sample_and_finalise(comm, spec, pdir: Path, todo, out, progress, progress_interval, t_start,
                         hooks: FaultHooks) -> int:
    import numpy as np

    rank, size = comm.Get_rank(), comm.Get_size()
    worker = BlockWorker(spec, pdir, rank, hooks)

    # ---- first round static, then dynamic (exceptions propagate to run(), which aborts all ranks)
    if rank == 0:
        prog = Progress(len(todo), sum(blk[1] - blk[0] for blk in todo), enabled=progress, interval=progress_interval)
        disp = sample_on_root(comm, todo, worker, prog)
    else:
        sample_on_worker(comm, todo, worker)

    # ---- rank 0 finalises; the status reaches every rank
    status = np.zeros(1, dtype=np.int64)
    if rank == 0 and disp.failures:
        failed = ", ".join(f"rank {r} ({msg})" for r, msg in sorted(disp.failures.items()))
        _log(f"error: sampling: failed on {failed}; no final file written. "
             f"{disp.blocks_done} block(s) finished in this run are kept in the store {pdir}; "
             "rerun the same command to resume")
        status[0] = 1
    elif rank == 0:
        try:
            t_fin = time.monotonic()
            _store.finalise(spec, pdir, out, extra_attrs={"mpi_ranks": np.int64(size)})
            _log(f"mcsim run: wrote {out} ({spec.realizations} realizations; sampled {len(todo)} block(s); "
                 f"total {time.monotonic() - t_start:.1f} s, finalize {time.monotonic() - t_fin:.1f} s)")
        except _store.StoreError as exc:
            _log(f"error: {exc}")
            status[0] = 1
        except Exception:
            _log(f"mcsim: rank 0 failed while finalizing:\n{traceback.format_exc().rstrip()}")
            status[0] = 1
    if size > 1:
        _wait_buffer(comm.Ibcast(status, root=0))
    return int(status[0])


def _quarantine(pdir, path: Path) -> Path:
    """Move a bad shard out of ``blocks/`` into ``<point>/corrupt/`` (kept for inspection)."""
    dest_dir = Path(pdir) / "corrupt"
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # a concurrent run moved or replaced it already
        pass
    return dest


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
