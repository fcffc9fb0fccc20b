"""MPI driver: sample the missing realization blocks of a point over all ranks.

Scheduling
----------
Rank 0 plans (scans the store, see :func:`mcsim.store.plan_blocks`) and
broadcasts the list of blocks.  Blocks are then handed out *dynamically*:
a dispatcher thread on rank 0 answers work requests of the other ranks
(point-to-point messages, polled with ``Iprobe`` and short sleeps so it
does not burn a core), while the main thread of rank 0 also samples blocks
from the same queue.  A rank asks for its next block only when it finished
the previous one, so ranks with cheap blocks simply take more blocks.  The
answer latency is ~20 ms unless the sampling kernel on rank 0 holds the
Python GIL for a long time, in which case requests are answered between
GIL releases (at the latest after rank 0's current block).  Nothing here is
launcher specific: it works under ``mpiexec``, ``srun --mpi=pmi2`` or as a
plain single process (mpi4py singleton).

Each rank writes the shards of its blocks itself (atomic temp + rename);
after every rank is done rank 0 merges them into the final file.

Failures
--------
An exception on any rank prints ``mcsim: rank R failed`` with the traceback
to stderr and calls ``MPI.COMM_WORLD.Abort(1)`` (only when running with more
than one rank; a single process just returns exit code 1), so the launcher
exits non-zero promptly instead of hanging.

Test hooks (environment variables; for the test-suite only)
-----------------------------------------------------------
``MCSIM_TEST_FAIL_RANK=k``
    Rank ``k`` raises ``RuntimeError`` when it enters the sampling loop.
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
POLL_SECONDS = 0.02

ENV_FAIL_RANK = "MCSIM_TEST_FAIL_RANK"
ENV_BLOCK_DELAY = "MCSIM_TEST_BLOCK_DELAY"


class UserError(Exception):
    """A problem with the user's input (reported as a one-line message, exit 1)."""


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


class Dispatcher:
    """Dynamic block queue on rank 0, shared by its main thread and remote ranks.

    Parameters
    ----------
    blocks : list of (int, int)
        Realization blocks to hand out, in order.
    comm : mpi4py communicator
    progress : Progress
    """

    def __init__(self, blocks, comm, progress: Progress):
        self.queue = deque(blocks)
        self.comm = comm
        self.progress = progress
        self.lock = threading.Lock()
        self.blocks_done = 0
        self.realizations_done = 0
        self.active_workers = comm.Get_size() - 1
        self.main_done = threading.Event()
        self.blocks_per_rank = [0] * comm.Get_size()
        self.wait_seconds = [0.0] * comm.Get_size()

    def next_block(self, rank: int = 0):
        with self.lock:
            if not self.queue:
                return None
            self.blocks_per_rank[rank] += 1
            return self.queue.popleft()

    def report(self, n_realizations: int) -> None:
        with self.lock:
            self.blocks_done += 1
            self.realizations_done += n_realizations
            b, r = self.blocks_done, self.realizations_done
        self.progress.update(b, r)

    def serve(self) -> None:
        """Thread body: answer requests until every remote rank got its stop signal."""
        from mpi4py import MPI

        try:
            status = MPI.Status()
            while self.active_workers > 0 or not self.main_done.is_set():
                if self.active_workers > 0 and self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REQUEST, status=status):
                    src = status.Get_source()
                    finished, waited = self.comm.recv(source=src, tag=TAG_REQUEST)
                    if finished:
                        self.report(finished)
                    blk = self.next_block(src)
                    self.comm.send(blk, dest=src, tag=TAG_ASSIGN)
                    if blk is None:
                        self.wait_seconds[src] = waited
                        self.active_workers -= 1
                    continue
                with self.lock:
                    b, r = self.blocks_done, self.realizations_done
                self.progress.update(b, r)
                time.sleep(POLL_SECONDS)
        except BaseException:
            _fail(self.comm, 0, traceback.format_exc())


def _fail(comm, rank: int, tb: str) -> None:
    _log(f"mcsim: rank {rank} failed:\n{tb.rstrip()}")
    if comm is not None and comm.Get_size() > 1:
        _log(f"mcsim: rank {rank}: aborting all ranks (MPI Abort)")
        comm.Abort(1)


def _wait(req):
    """Wait for a non-blocking request without spinning a core; return its message."""
    delay = 0.0005
    while True:
        flag, msg = req.test()
        if flag:
            return msg
        time.sleep(delay)
        delay = min(delay * 2, POLL_SECONDS)


def _wait_buffer(req) -> None:
    delay = 0.0005
    while not req.Test():
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


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
    """Samples one block with :func:`mcsim.sample_point` and writes its shard."""

    def __init__(self, spec, pdir: Path, rank: int):
        self.spec = spec
        self.pdir = Path(pdir)
        self.rank = rank
        fail = os.environ.get(ENV_FAIL_RANK, "").strip()
        self.fail = fail != "" and int(fail) == rank
        self.delay = _parse_delay(os.environ.get(ENV_BLOCK_DELAY, ""), rank)

    def check_test_hook(self) -> None:
        """Raise if the ``MCSIM_TEST_FAIL_RANK`` test hook selects this rank."""
        if self.fail:
            raise RuntimeError(f"test hook {ENV_FAIL_RANK}={self.rank}: rank {self.rank} fails on purpose")

    def __call__(self, block) -> int:
        import mcsim

        start, stop = block
        arrays = mcsim.sample_point(self.spec, start, stop)
        _store.write_block(self.pdir, self.spec.point_key(), start, stop, arrays, self.spec.observables,
                           extra_attrs={"mpi_rank": self.rank})
        if self.delay > 0:
            time.sleep(self.delay)
        return stop - start


# --------------------------------------------------------------------------- run


def _prepare(spec_path, store_root, out, block_size, realizations):
    """Rank-0 setup: validate inputs, prepare the point dir and plan. Raises UserError."""
    import theory

    try:
        spec = theory.parse_point_spec(spec_path)
        overrides = {}
        if realizations is not None:
            overrides["realizations"] = realizations
        if block_size is not None:
            overrides["block_size"] = block_size
        if overrides:
            spec = theory.parse_point_spec({**spec.raw, **overrides})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_out_path(out)
    try:
        pdir = _store.prepare_point_dir(store_root, spec)
    except _store.StoreError as exc:
        raise UserError(str(exc)) from None
    return spec, pdir


def _validate_with_sampler(spec, block) -> None:
    """Sample one realization of ``block`` on rank 0 so that spec values the sampler rejects
    (``ValueError``, e.g. unknown observables) become a clean user error before any work is
    distributed.  Costs one realization."""
    import mcsim

    try:
        mcsim.sample_point(spec, block[0], block[0] + 1)
    except ValueError as exc:
        raise UserError(str(exc)) from None


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

    # ---- rank 0 validates and plans; everybody learns the outcome by bcast (no hang on errors)
    payload = None
    lock = None
    if rank == 0:
        try:
            spec, pdir = _prepare(spec_path, store_root, out, block_size, realizations)
            lock = _store.PointLock(pdir)
            holder = lock.acquire()
            if holder:
                _log(f"mcsim run: warning: another run of this point seems active ({holder}); continuing - "
                     "shards and the final file are written atomically, so this can duplicate work but not corrupt data")
            removed = _store.clean_temp_files(pdir)
            if removed:
                _log(f"mcsim run: removed {len(removed)} temp file(s) left by killed runs")
            plan = _store.plan_blocks(pdir, spec, verify=True)
            for s in plan.bad:
                dest = _quarantine(pdir, s.path)
                _log(f"mcsim run: warning: bad shard {s.path.name} {s.range_str}: {s.problem}; "
                     f"moved to {dest} and its range is resampled")
            for s in plan.lacking:
                _log(f"mcsim run: note: shard {s.path.name} {s.range_str} lacks requested observables "
                     f"(has {list(s.observables)}); its range is resampled")
            n_reused = sum(min(s.stop, spec.realizations) - s.start for s in plan.reused)
            todo = plan.to_sample
            if todo:
                _validate_with_sampler(spec, todo[0])
            _log(f"mcsim run: point {spec.point_key()[:12]} (R={spec.realizations}, block_size={spec.block_size}, "
                 f"ranks={size}): {len(plan.reused)} shard(s) reused covering {n_reused} realizations; "
                 f"{len(todo)} block(s) to sample" + (f": {_store._fmt_ranges(todo)}" if todo else ""))
            payload = ("ok", spec.raw, str(pdir), todo)
        except UserError as exc:
            payload = ("user", str(exc))
        except _store.StoreError as exc:
            payload = ("user", str(exc))
        except Exception:
            payload = ("bug", traceback.format_exc())
    if size > 1:
        payload = _bcast_object(comm, payload)
    if payload[0] != "ok":
        if rank == 0:
            if payload[0] == "user":
                _log(f"mcsim run: error: {payload[1]}")
            else:
                _log(f"mcsim: rank 0 failed:\n{payload[1].rstrip()}")
        if lock is not None:
            lock.release()
        return 1

    _, raw, pdir, todo = payload
    if rank != 0:
        spec = theory.parse_point_spec(raw)
        if spec.point_key() != Path(pdir).name:
            raise RuntimeError(f"rank {rank}: spec round trip changed the point key ({spec.point_key()[:12]} "
                               f"!= {Path(pdir).name[:12]})")
    try:
        return _sample_and_finalise(comm, spec, Path(pdir), todo, out, progress, progress_interval, t_start)
    finally:
        if lock is not None:
            lock.release()


def _sample_and_finalise(comm, spec, pdir: Path, todo, out, progress, progress_interval, t_start) -> int:
    import numpy as np

    rank, size = comm.Get_rank(), comm.Get_size()
    worker = BlockWorker(spec, pdir, rank)

    # ---- dynamic sampling (exceptions propagate to run(), which aborts all ranks)
    if rank == 0:
        prog = Progress(len(todo), sum(b - a for a, b in todo), enabled=progress, interval=progress_interval)
        disp = Dispatcher(todo, comm, prog)
        thread = threading.Thread(target=disp.serve, name="mcsim-dispatcher", daemon=True)
        thread.start()
        try:
            worker.check_test_hook()
            while True:
                blk = disp.next_block()
                if blk is None:
                    break
                disp.report(worker(blk))
        finally:
            disp.main_done.set()
        while thread.is_alive():
            thread.join(timeout=0.1)
        prog.close(disp.blocks_done, disp.realizations_done)
        if size > 1 and todo:
            _log(f"mcsim run: blocks per rank {disp.blocks_per_rank}; time workers waited for assignments "
                 f"(incl. the final stop message) {_fmt_list(disp.wait_seconds[1:])} s")
    else:
        worker.check_test_hook()
        finished, waited = 0, 0.0
        while True:
            t0 = time.monotonic()
            comm.send((finished, waited), dest=0, tag=TAG_REQUEST)
            blk = _wait(comm.irecv(source=0, tag=TAG_ASSIGN))
            waited += time.monotonic() - t0
            if blk is None:
                break
            finished = worker(blk)

    # ---- rank 0 finalises; the status reaches every rank
    status = np.zeros(1, dtype=np.int64)
    if rank == 0:
        try:
            t_fin = time.monotonic()
            _store.finalise(spec, pdir, out, extra_attrs={"mpi_ranks": np.int64(size)})
            _log(f"mcsim run: wrote {out} ({spec.realizations} realizations; sampled {len(todo)} block(s); "
                 f"total {time.monotonic() - t_start:.1f} s, finalize {time.monotonic() - t_fin:.1f} s)")
        except _store.StoreError as exc:
            _log(f"mcsim run: error: {exc}")
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
        0 on success; raises :class:`UserError` / :class:`mcsim.store.StoreError`
        for bad input or missing / corrupt shards.
    """
    import theory

    try:
        spec = theory.parse_point_spec(spec_path)
        if realizations is not None:
            spec = theory.parse_point_spec({**spec.raw, "realizations": realizations})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_out_path(out)
    pdir = _store.point_dir(store_root, spec.point_key())
    if not Path(store_root).is_dir():
        raise UserError(f"store: no such directory: {store_root}")
    if not pdir.is_dir():
        raise _store.StoreError(f"finalize: point {spec.point_key()[:12]} has no directory in store {store_root} "
                                f"(expected {pdir}); run 'python -m mcsim run' first")
    _store.finalise(spec, pdir, out)
    _log(f"mcsim finalize: wrote {out} ({spec.realizations} realizations)")
    return 0
