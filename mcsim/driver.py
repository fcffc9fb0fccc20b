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
thread answers a request within ~``DISPATCH_POLL_SECONDS`` even while rank
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
message, waits ``ABORT_GRACE_SECONDS`` for the launcher to forward it and
calls ``MPI.COMM_WORLD.Abort(1)`` (only when running with more than one
rank; a single process just returns exit code 1), so the launcher exits
non-zero promptly instead of hanging.  A rank that dies outright (signal,
out of memory) is detected by the launcher, which stops the job.

Test hooks (environment variables; for the test-suite only)
-----------------------------------------------------------
``MCSIM_TEST_FAIL_RANK=k`` or ``k:setup``
    Rank ``k`` raises ``RuntimeError`` when it starts sampling its first block
    (cooperative stop), or with ``:setup`` after the plan was broadcast,
    before the start barrier (the ``MPI_Abort`` fallback).
``MCSIM_TEST_BLOCK_DELAY=SECONDS`` or ``RANK:SECONDS[,RANK:SECONDS...]``
    Sleep this long after writing each block, on every rank or on the given
    ranks (to kill a run mid-way, or to make one rank slow).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Optional, TextIO

from . import store as _store

TAG_REQUEST = 4101
TAG_ASSIGN = 4102
POLL_SECONDS = 0.02  # longest sleep between polls of a rank waiting for a message (bcast, grant)
DISPATCH_POLL_SECONDS = 0.005  # rank 0's dispatcher thread: sleep between Iprobe polls
ABORT_GRACE_SECONDS = 1.0  # before MPI Abort: time for the launcher to forward the failure message

ENV_FAIL_RANK = "MCSIM_TEST_FAIL_RANK"
ENV_BLOCK_DELAY = "MCSIM_TEST_BLOCK_DELAY"


EXIT_OK = 0
EXIT_FAILURE = 1  # runtime failure: a failed rank, missing/corrupt/stale data
EXIT_USAGE = 2  # bad input: invalid spec or arguments (argparse uses 2 too)


class UserError(Exception):
    """A problem with the user's input: one line ``error: <key>: <what>``, exit code 2."""


def _log(msg: str, stream: Optional[TextIO] = None) -> None:
    stream = stream or sys.stderr
    stream.write(msg + "\n")
    stream.flush()


def _fmt_list(values) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _fmt_seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}"


# --------------------------------------------------------------------------- progress


class Progress:
    """Plain-text progress display on one stream (rank 0's stderr).

    On a TTY the line is redrawn in place at most every 0.5 s; otherwise a
    full line is printed every ``interval`` seconds.  A final line is always
    printed by :meth:`close` (unless disabled).

    Parameters
    ----------
    total_blocks, total_realizations : int
        Work of this run (reused shards excluded).
    enabled : bool
    interval : float
        Seconds between lines when the stream is not a TTY.
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(self, total_blocks: int, total_realizations: int, enabled: bool = True,
                 interval: float = 30.0, stream: Optional[TextIO] = None):
        self.total_blocks = total_blocks
        self.total_realizations = total_realizations
        self.enabled = enabled and total_blocks > 0
        self.stream = stream or sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = 0.5 if self.tty else max(float(interval), 0.1)
        self.t0 = time.monotonic()
        self._last = self.t0
        self._width = 0
        self._lock = threading.Lock()

    def line(self, blocks: int, realizations: int) -> str:
        elapsed = time.monotonic() - self.t0
        rate = realizations / elapsed if elapsed > 0 else 0.0
        remaining = self.total_realizations - realizations
        eta = remaining / rate if rate > 0 else float("inf")
        pct = 100.0 * realizations / self.total_realizations if self.total_realizations else 100.0
        return (f"mcsim: blocks {blocks}/{self.total_blocks}, realizations {realizations}/"
                f"{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, elapsed "
                f"{_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta) if remaining > 0 else '0:00:00'}")

    def update(self, blocks: int, realizations: int, force: bool = False) -> None:
        """Redraw / print the line if due (thread-safe)."""
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return
            self._last = now
            text = self.line(blocks, realizations)
            if self.tty:
                pad = max(self._width - len(text), 0)
                self._width = len(text)
                self.stream.write("\r" + text + " " * pad)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def close(self, blocks: int, realizations: int) -> None:
        if not self.enabled:
            return
        self.update(blocks, realizations, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- scheduling


def first_round_block(blocks, rank: int):
    """Block that ``rank`` samples first without asking (static first round), or None.

    Parameters
    ----------
    blocks : list of (int, int)
        The plan (same list on every rank).
    rank : int

    Returns
    -------
    (int, int) or None
        ``blocks[rank]`` if it exists.
    """
    return tuple(blocks[rank]) if rank < len(blocks) else None


class Dispatcher:
    """Dynamic block queue on rank 0, shared by its main thread and the remote ranks.

    The first ``min(ranks, len(blocks))`` blocks are the static first round
    (see :func:`first_round_block`) and are not queued.

    Parameters
    ----------
    blocks : list of (int, int)
        Realization blocks of the plan, in order.
    comm : mpi4py communicator
    progress : Progress

    Attributes
    ----------
    blocks_per_rank : list of int, length comm size
        Blocks given to each rank (first round included).
    busy_seconds, wait_seconds : list of float, length comm size
        Seconds each rank spent sampling / waiting for grants (remote ranks
        report theirs with their last request; entry 0 of ``wait_seconds`` is 0).
    failures : dict of int to str
        Rank -> one-line summary of the exception that stopped its sampling.
        Once it is non-empty no more blocks are handed out.
    """

    def __init__(self, blocks, comm, progress: Progress):
        size = comm.Get_size()
        n_first = min(size, len(blocks))
        self.queue = deque(tuple(b) for b in blocks[n_first:])
        self.comm = comm
        self.progress = progress
        self.lock = threading.Lock()  # queue and counters
        self.mpi_lock = threading.Lock()  # serialises rank 0's MPI calls between its two threads
        self.blocks_done = 0
        self.realizations_done = 0
        self.active_workers = size - 1
        self.main_done = threading.Event()
        self.blocks_per_rank = [1] * n_first + [0] * (size - n_first)
        self.wait_seconds = [0.0] * size
        self.busy_seconds = [0.0] * size
        self.failures = {}

    def fail(self, rank: int, summary: str) -> None:
        """Record that ``rank`` failed: stop handing out blocks and say so once on stderr."""
        with self.lock:
            first = not self.failures
            self.failures[rank] = summary
        if first:
            _log(f"mcsim run: rank {rank} failed ({summary}); no more blocks are handed out, "
                 "the other ranks finish the block they are sampling")

    def next_block(self, rank: int = 0):
        """Pop the next queued block for ``rank`` (None when the queue is empty or a rank failed)."""
        with self.lock:
            if not self.queue or self.failures:
                return None
            self.blocks_per_rank[rank] += 1
            return self.queue.popleft()

    def report(self, n_realizations: int) -> None:
        """Count one finished block of ``n_realizations`` and update the progress display."""
        with self.lock:
            self.blocks_done += 1
            self.realizations_done += n_realizations
            b, r = self.blocks_done, self.realizations_done
        self.progress.update(b, r)

    def serve_pending(self) -> int:
        """Answer every request that has arrived; return how many were answered.

        Called by the dispatcher thread and by rank 0's sampling loop before
        it takes a block itself (so waiting ranks have priority).
        """
        from mpi4py import MPI

        served = 0
        with self.mpi_lock:
            status = MPI.Status()
            while self.active_workers > 0 and self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REQUEST,
                                                               status=status):
                src = status.Get_source()
                finished, waited, busy, failure = self.comm.recv(source=src, tag=TAG_REQUEST)
                if finished:
                    self.report(finished)
                if failure is not None:
                    self.fail(src, failure)
                blk = self.next_block(src)
                self.comm.send(blk, dest=src, tag=TAG_ASSIGN)
                if blk is None:
                    self.wait_seconds[src] = waited
                    self.busy_seconds[src] = busy
                    self.active_workers -= 1
                served += 1
        return served

    def serve(self) -> None:
        """Thread body: answer requests until every remote rank got its stop signal."""
        try:
            while self.active_workers > 0 or not self.main_done.is_set():
                if self.serve_pending():
                    continue
                with self.lock:
                    b, r = self.blocks_done, self.realizations_done
                self.progress.update(b, r)
                time.sleep(DISPATCH_POLL_SECONDS)
        except BaseException:
            _fail(self.comm, 0, traceback.format_exc())


def _log_failure(rank: int, tb: str) -> None:
    """Print ``mcsim: rank R failed:`` and the traceback ``tb`` (the one format of every rank failure)."""
    _log(f"mcsim: rank {rank} failed:\n{tb.rstrip()}")


def _fail(comm, rank: int, tb: str) -> None:
    """Report an unexpected exception and abort every rank (fallback for failures outside sampling)."""
    _log_failure(rank, tb)
    if comm is not None and comm.Get_size() > 1:
        _log(f"mcsim: rank {rank}: aborting all ranks (MPI Abort)")
        time.sleep(ABORT_GRACE_SECONDS)  # let the launcher forward this rank's stderr before the kill
        comm.Abort(1)


def _sampling_failure(rank: int) -> str:
    """Print the current exception's traceback as rank ``rank``'s failure; return its one-line summary."""
    exc_type, exc, _ = sys.exc_info()
    _log_failure(rank, traceback.format_exc())
    return f"{exc_type.__name__}: {exc}"


def _wait(req, max_delay: float = 0.005):
    """Wait for a non-blocking request without spinning a core; return its message.

    Sleeps between tests grow from 0.1 ms to ``max_delay`` (default 5 ms:
    used for block grants, which normally arrive within milliseconds).
    """
    delay = 0.0001
    while True:
        flag, msg = req.test()
        if flag:
            return msg
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _wait_buffer(req, max_delay: float = 0.05) -> None:
    """Wait for a non-blocking buffer operation, sleeping up to ``max_delay`` s between tests."""
    delay = 0.0005
    while not req.Test():
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _barrier(comm) -> None:
    """Barrier that does not busy-wait (ranks leave after at most ``POLL_SECONDS`` of skew)."""
    _wait_buffer(comm.Ibarrier(), max_delay=POLL_SECONDS)


def _bcast_object(comm, obj, root: int = 0):
    """Broadcast a picklable object with non-blocking collectives polled with sleeps.

    Unlike ``comm.bcast`` this does not busy-wait (MPICH spins in blocking
    calls), so waiting ranks leave the CPU to rank 0 while it plans.
    """
    import pickle

    import numpy as np

    data = pickle.dumps(obj) if comm.Get_rank() == root else b""
    size = np.array([len(data)], dtype=np.int64)
    _wait_buffer(comm.Ibcast(size, root=root))
    buf = np.frombuffer(data, dtype=np.uint8).copy() if comm.Get_rank() == root else np.empty(int(size[0]), np.uint8)
    _wait_buffer(comm.Ibcast(buf, root=root))
    return obj if comm.Get_rank() == root else pickle.loads(buf.tobytes())


def _test_fail_phase(rank: int) -> Optional[str]:
    """Test hook ``MCSIM_TEST_FAIL_RANK``: ``"sampling"`` or ``"setup"`` if it selects ``rank``, else None."""
    text = os.environ.get(ENV_FAIL_RANK, "").strip()
    if not text:
        return None
    r, _, phase = text.partition(":")
    if int(r) != rank:
        return None
    return phase or "sampling"


def _parse_delay(text: str, rank: int) -> float:
    """Test hook value: ``"SECONDS"`` (every rank) or ``"RANK:SECONDS[,RANK:SECONDS...]"``."""
    text = text.strip()
    if not text:
        return 0.0
    if ":" not in text:
        return float(text)
    for item in text.split(","):
        r, _, sec = item.partition(":")
        if int(r) == rank:
            return float(sec)
    return 0.0


class BlockWorker:
    """Samples one block ``(start, stop, observables)`` and writes its shard.

    The point is prepared once per observable set (:func:`mcsim.sampler.prepare_spec`);
    the spec was validated once when it was parsed.
    """

    def __init__(self, spec, pdir: Path, rank: int):
        self.spec = spec
        self.pdir = Path(pdir)
        self.rank = rank
        self.fail = _test_fail_phase(rank) == "sampling"
        self.delay = _parse_delay(os.environ.get(ENV_BLOCK_DELAY, ""), rank)
        self._prepared = {}

    def check_test_hook(self) -> None:
        """Raise if the ``MCSIM_TEST_FAIL_RANK`` test hook selects this rank."""
        if self.fail:
            raise RuntimeError(f"test hook {ENV_FAIL_RANK}={self.rank}: rank {self.rank} fails on purpose")

    def prepared(self, observables):
        from mcsim import sampler

        obs = tuple(observables)
        if obs not in self._prepared:
            self._prepared[obs] = sampler.prepare_spec(self.spec, obs)
        return self._prepared[obs]

    def __call__(self, block) -> int:
        from mcsim import sampler

        self.check_test_hook()
        start, stop, obs = block
        arrays = sampler.draw(self.prepared(obs), start, stop - start)
        _store.write_block(self.pdir, self.spec.point_key(), start, stop, arrays, obs,
                           extra_attrs={"mpi_rank": self.rank})
        if self.delay > 0:
            time.sleep(self.delay)
        return stop - start


# --------------------------------------------------------------------------- run


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
        progress: bool = True, progress_interval: float = 30.0) -> int:
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

    Returns
    -------
    int
        Exit code (0 success, 1 error); the same on every rank.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return _run(comm, spec_path, store_root, out, block_size, realizations, progress, progress_interval)
    except BaseException:  # any rank, any phase: report and abort instead of leaving other ranks hanging
        _fail(comm, comm.Get_rank(), traceback.format_exc())
        return 1


def _run(comm, spec_path, store_root, out, block_size, realizations, progress, progress_interval) -> int:
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
                _log(f"mcsim run: note: realizations {_store._fmt_ranges(ranges)} are stored without "
                     f"{list(obs)}; sampling only those")
            check_block_memory(spec, todo, ranks_per_node)
            _log(f"mcsim run: point {spec.point_key()[:12]} (R={spec.realizations}, block_size={spec.block_size}, "
                 f"ranks={size}): {len(plan.reused)} shard(s) reused covering {plan.covered} realizations; "
                 f"{len(todo)} block(s) to sample" + (f": {_store._fmt_ranges(todo)}" if todo else ""))
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
        if _test_fail_phase(rank) == "setup":
            raise RuntimeError(f"test hook {ENV_FAIL_RANK}={rank}:setup: rank {rank} fails on purpose")
        if size > 1 and todo:
            if rank == 0 or spec is not pre:
                _warm_up(spec, todo[0])
            _barrier(comm)  # every rank is compiled and ready: start the first round together
        return _sample_and_finalise(comm, spec, Path(pdir), todo, out, progress, progress_interval, t_start)
    finally:
        if lock is not None:
            lock.release()


def _sample_and_finalise(comm, spec, pdir: Path, todo, out, progress, progress_interval, t_start) -> int:
    import numpy as np

    rank, size = comm.Get_rank(), comm.Get_size()
    worker = BlockWorker(spec, pdir, rank)

    # ---- first round static, then dynamic (exceptions propagate to run(), which aborts all ranks)
    if rank == 0:
        from mpi4py import MPI

        prog = Progress(len(todo), sum(blk[1] - blk[0] for blk in todo), enabled=progress, interval=progress_interval)
        disp = Dispatcher(todo, comm, prog)
        # rank 0's main thread may call MPI too (serialised by disp.mpi_lock) if the MPI library allows it
        main_serves = size > 1 and MPI.Query_thread() >= MPI.THREAD_SERIALIZED
        thread = threading.Thread(target=disp.serve, name="mcsim-dispatcher", daemon=True)
        thread.start()
        try:
            blk = first_round_block(todo, 0)
            while blk is not None:
                t0 = time.monotonic()
                try:
                    n_done = worker(blk)
                except Exception:
                    disp.fail(0, _sampling_failure(0))
                    break
                disp.busy_seconds[0] += time.monotonic() - t0
                disp.report(n_done)
                if main_serves:
                    disp.serve_pending()  # waiting ranks first
                blk = disp.next_block(0)
        finally:
            disp.main_done.set()
        while thread.is_alive():
            thread.join(timeout=0.1)
        prog.close(disp.blocks_done, disp.realizations_done)
        if size > 1 and todo:
            _log(f"mcsim run: blocks per rank {disp.blocks_per_rank}; seconds sampling per rank "
                 f"{_fmt_list(disp.busy_seconds)}; seconds ranks 1.. waited for assignments "
                 f"(incl. the final stop message) {_fmt_list(disp.wait_seconds[1:])}")
    else:
        finished, waited, busy, failure = 0, 0.0, 0.0, None
        blk = first_round_block(todo, rank)
        while True:
            if blk is not None:
                t0 = time.monotonic()
                try:
                    finished = worker(blk)
                except Exception:
                    finished, failure = 0, _sampling_failure(rank)
                busy += time.monotonic() - t0
            t0 = time.monotonic()
            comm.send((finished, waited, busy, failure), dest=0, tag=TAG_REQUEST)
            blk = _wait(comm.irecv(source=0, tag=TAG_ASSIGN))  # None after a failure (rank 0 stops us)
            waited += time.monotonic() - t0
            if blk is None:
                break

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
