"""Block scheduling over MPI ranks: the static first round, then a dynamic queue on rank 0.

Rank ``r`` first samples block ``r`` of the plan without any message
(:func:`first_round_block`).  The remaining blocks sit in the
:class:`Dispatcher` queue on rank 0; a rank asks for its next block only
when it finished the previous one (request/grant messages ``TAG_REQUEST`` /
``TAG_ASSIGN``), so faster ranks and ranks with cheaper blocks take more.  On
rank 0 a dispatcher thread answers requests, and rank 0's own sampling loop
(:func:`sample_on_root`) serves pending requests before it takes a block
itself.  Other ranks run :func:`sample_on_worker`.  A failure while sampling
is reported to rank 0, which then hands out no more blocks (see
:mod:`mcsim.driver` for the failure model).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque

from .mpi_util import _fail, _wait
from .progress import Progress, _fmt_list, _log, _sampling_failure


TAG_REQUEST = 4101
TAG_ASSIGN = 4102
DISPATCH_POLL_SECONDS = 0.005  # rank 0's dispatcher thread: sleep between Iprobe polls


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


def sample_on_root(comm, todo, worker, prog: Progress) -> Dispatcher:
    """Rank 0's part of a run: serve the other ranks and sample blocks itself.

    Starts the dispatcher thread, samples rank 0's first-round block and then
    queued blocks (serving waiting ranks first) until the queue is empty or a
    rank failed, waits for every other rank's stop signal and closes the
    progress display.  Exceptions other than sampling failures propagate.

    Parameters
    ----------
    comm : mpi4py communicator
    todo : list of (int, int, tuple of str)
        The plan (same list on every rank).
    worker : callable
        ``worker(block) -> realizations sampled`` (:class:`mcsim.worker.BlockWorker`).
    prog : Progress

    Returns
    -------
    Dispatcher
        With the per-rank statistics and the ``failures`` of the run.
    """
    from mpi4py import MPI

    size = comm.Get_size()
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
    return disp


def sample_on_worker(comm, todo, worker) -> None:
    """A non-root rank's part of a run: sample its first-round block, then ask rank 0 for more.

    Each request carries the realizations of the block just finished, the
    seconds waited and sampled so far and the failure summary (or None) of
    that block; rank 0 answers with the next block, or None to stop (always
    after a failure).
    """
    rank = comm.Get_rank()
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
