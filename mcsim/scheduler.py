"""Work-unit scheduling over MPI ranks: the static first round, then a most-expensive-first queue on rank 0.

A *work unit* is one realization block of one point of a campaign,
``(point, start, stop, observables, cost)`` (``point`` indexes the
campaign's points, ``cost`` is the cost model's prediction in seconds,
:mod:`mcsim.cost`); for posterior HMC (:mod:`mcsim.chain_worker`) it is the
chains ``[start, stop)`` of the posterior point with the missing iterations
as cost.  The scheduler only orders, hands out and counts units; the worker
callable gives them their meaning.  A single-point ``mcsim run`` is the campaign with one
point.  :func:`order_units` sorts the units most expensive first; every rank
holds the same sorted list.  Rank ``r`` first samples unit ``r`` without any
message (:func:`first_round_block`).  The remaining units sit in the
:class:`Dispatcher` queue on rank 0; a rank asks for its next unit only when
it finished the previous one (request/grant messages ``TAG_REQUEST`` /
``TAG_ASSIGN``), so faster ranks and ranks with cheaper units take more.  On
rank 0 a dispatcher thread answers requests, and rank 0's own sampling loop
(:func:`sample_on_root`) serves pending requests before it takes a unit
itself (and finalises the points whose last unit was written).  Other ranks
run :func:`sample_on_worker`.

A failure while sampling a unit is reported to rank 0, which then drops the
queued units of *that point* (the other points go on; see
:mod:`mcsim.campaign` for the failure model).

:func:`simulate_schedule` replays this policy on given unit costs (e.g. the
measured block times of a run, :func:`mcsim.finalise.read_block_timings`)
and returns the makespan, to predict strong scaling on more ranks.
"""

from __future__ import annotations

import heapq
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from .mpi_util import _fail, _wait
from .progress import Progress, _fmt_list, _log, _sampling_failure


TAG_REQUEST = 4101
TAG_ASSIGN = 4102
DISPATCH_POLL_SECONDS = 0.005  # rank 0's dispatcher thread: sleep between Iprobe polls


def order_units(costs: Sequence[float]) -> list:
    """Dispatch order of work units: most expensive first (stable: ties keep their given order).

    Parameters
    ----------
    costs : sequence of float, length U
        Predicted (or measured) cost of each unit.

    Returns
    -------
    list of int, length U
        Unit indices in the order the dispatcher hands them out.
    """
    return sorted(range(len(costs)), key=lambda i: -float(costs[i]))


def first_round_block(blocks, rank: int):
    """Unit that ``rank`` samples first without asking (static first round), or None.

    Parameters
    ----------
    blocks : list of tuple
        The ordered work units (same list on every rank).
    rank : int

    Returns
    -------
    tuple or None
        ``blocks[rank]`` if it exists.
    """
    return tuple(blocks[rank]) if rank < len(blocks) else None


@dataclass
class Schedule:
    """Result of :func:`simulate_schedule`.

    Attributes
    ----------
    makespan : float
        Time at which the last unit finishes (same unit as the costs).
    assignment : list of (int, int, float, float)
        ``(unit, rank, start, finish)`` in the order the units are handed out.
    busy : list of float, length ranks
        Sum of the unit costs each rank sampled.
    """

    makespan: float
    assignment: list
    busy: list

    @property
    def efficiency(self) -> float:
        """Parallel efficiency ``sum(costs) / (ranks * makespan)`` (1.0 when there is no work)."""
        total = sum(self.busy)
        return total / (len(self.busy) * self.makespan) if self.makespan > 0 else 1.0


def simulate_schedule(unit_costs: Sequence[float], ranks: int, priority: Optional[Sequence[float]] = None) -> Schedule:
    """Replay the dispatcher's policy on given unit costs (a model: no messages, no start-up).

    The units are ordered by :func:`order_units` of ``priority`` (default:
    the costs themselves); rank ``r`` takes unit ``r`` at time 0 (the static
    first round); then whenever a rank finishes, it takes the next queued
    unit.  When ranks finish at the same time, the remote ranks are served
    before rank 0 (as :func:`sample_on_root` does), in rank order.

    Parameters
    ----------
    unit_costs : sequence of float, length U
        Seconds (or any unit) each work unit takes.
    ranks : int
        Number of MPI ranks, >= 1.
    priority : sequence of float, length U, optional
        What the dispatcher sorts by (the cost model's predictions in a real
        run); default ``unit_costs``.

    Returns
    -------
    Schedule
    """
    if ranks < 1:
        raise ValueError(f"ranks: must be >= 1, got {ranks}")
    costs = [float(c) for c in unit_costs]
    prio = costs if priority is None else [float(c) for c in priority]
    if len(prio) != len(costs):
        raise ValueError(f"priority: length {len(prio)} != {len(costs)} units")
    order = order_units(prio)
    busy = [0.0] * ranks
    assignment = []
    first = order[:ranks]
    for r, u in enumerate(first):  # static first round: unit r on rank r
        assignment.append((u, r, 0.0, costs[u]))
        busy[r] += costs[u]
    # heap of (time the rank is free, rank 0 after the remote ranks, rank)
    free = [(costs[first[r]] if r < len(first) else 0.0, r == 0, r) for r in range(ranks)]
    heapq.heapify(free)
    for u in order[ranks:]:
        t, is_root, r = heapq.heappop(free)
        assignment.append((u, r, t, t + costs[u]))
        busy[r] += costs[u]
        heapq.heappush(free, (t + costs[u], is_root, r))
    makespan = max((a[3] for a in assignment), default=0.0)
    return Schedule(makespan, assignment, busy)


def strong_scaling(unit_costs: Sequence[float], ranks: Sequence[int], priority: Optional[Sequence[float]] = None) -> list:
    """Predicted strong scaling of one campaign: :func:`simulate_schedule` replayed for several rank counts.

    A model: the measured unit costs are replayed under the dispatcher's policy;
    start-up, messages and finalisation are not included.

    Parameters
    ----------
    unit_costs : sequence of float, length U
        Seconds each work unit took (e.g. :func:`mcsim.campaign.measured_unit_costs`).
    ranks : sequence of int
        Rank counts to replay, each >= 1.
    priority : sequence of float, length U, optional
        What the dispatcher sorts by (the cost model's predictions); default ``unit_costs``.

    Returns
    -------
    list of dict
        One per rank count: ``ranks``, ``makespan`` (seconds), ``speedup`` (one-rank
        makespan / makespan), ``efficiency`` (``speedup / ranks``) and ``bound``
        (the largest single unit's cost, the makespan no rank count can beat).
    """
    if not len(unit_costs):
        raise ValueError("unit_costs: no work units")
    serial = float(sum(float(c) for c in unit_costs))
    bound = max(float(c) for c in unit_costs)
    rows = []
    for k in ranks:
        sched = simulate_schedule(unit_costs, int(k), priority)
        speedup = serial / sched.makespan if sched.makespan > 0 else float(k)
        rows.append({"ranks": int(k), "makespan": sched.makespan, "speedup": speedup,
                     "efficiency": speedup / int(k), "bound": bound})
    return rows


FINALISE = "finalise"  # second field of a finalisation unit ``(point, FINALISE, walls)``


def is_finalise_unit(unit) -> bool:
    """Whether ``unit`` is a finalisation unit ``(point, FINALISE, walls)`` (else a sampling unit)."""
    return len(unit) == 3 and unit[1] == FINALISE


class Dispatcher:
    """Dynamic work-unit queue on rank 0, shared by its main thread and the remote ranks.

    The first ``min(ranks, len(units))`` units are the static first round
    (see :func:`first_round_block`) and are not queued.  When the last
    sampling unit of a point is reported (or at the start, for a point with
    nothing to sample), a *finalisation unit* ``(point, FINALISE, walls)``
    goes to the front of the queue: the next rank that asks, normally the one
    that wrote that last block, writes the point's final file(s), so rank 0
    does not do every point's finalisation.  ``walls`` lists ``[start, stop,
    seconds, rank]`` of each block of the point sampled in this run, with
    the wall seconds of the whole unit (sampling and writing its shard) as
    measured by the rank that did it; the final file records them
    (:func:`mcsim.finalise.read_block_timings`).

    Parameters
    ----------
    units : list of tuple
        Sampling units ``(point, start, stop, observables, cost)``, ordered by :func:`order_units`.
    comm : mpi4py communicator
    progress : Progress
    n_points : int, optional
        Number of points (default: those with units); points without units are finalised only.

    Attributes
    ----------
    blocks_per_rank : list of int, length comm size
        Sampling units given to each rank (first round included).
    busy_seconds, wait_seconds : list of float, length comm size
        Seconds each rank spent on units / waiting for grants (remote ranks
        report theirs with their last request; entry 0 of ``wait_seconds`` is 0).
    failures : dict of int to dict of int to str
        Point -> (rank -> one-line summary of the exception raised while sampling a unit of that point).
        No more units of a failed point are handed out.
    remaining : dict of int to int
        Point -> sampling units not yet finished (dropped ones count as finished).
    failed : collections.deque of int
        Failed points none of whose units is still running or queued: to be reported by rank 0.
    finalised : collections.deque of (int, int, object)
        ``(point, rank, outcome)`` of each finalisation unit done (the worker's
        return value, or the failure summary string if it raised): to be
        reported by rank 0.
    blocks_done_point : dict of int to int
        Point -> sampling units written in this run.
    """

    def __init__(self, blocks, comm, progress: Progress, n_points: Optional[int] = None):
        size = comm.Get_size()
        n_first = min(size, len(blocks))
        self.queue = deque(tuple(b) for b in blocks[n_first:])
        self.comm = comm
        self.progress = progress
        self.lock = threading.Lock()  # queue and counters
        self.mpi_lock = threading.Lock()  # serialises rank 0's MPI calls between its two threads
        self.blocks_done = 0
        self.realizations_done = 0
        self.cost_done = 0.0
        self.points_done = 0
        self.active_workers = size - 1
        self.main_done = threading.Event()
        self.blocks_per_rank = [1] * n_first + [0] * (size - n_first)
        self.wait_seconds = [0.0] * size
        self.busy_seconds = [0.0] * size
        self.failures = {}
        n = n_points if n_points is not None else len({u[0] for u in blocks})
        self.remaining = {pt: 0 for pt in range(n)}
        self.blocks_done_point = {pt: 0 for pt in range(n)}
        for u in blocks:
            self.remaining[u[0]] += 1
        for pt in range(n - 1, -1, -1):
            if self.remaining[pt] == 0:
                self.queue.appendleft((pt, FINALISE, []))
        self.failed = deque()
        self.finalised = deque()
        self.walls = {}
        self.single_point = n <= 1
        self.label = "mcsim run" if self.single_point else "mcsim campaign"
        self.point_names = {}

    def fail(self, rank: int, summary: str, unit) -> None:
        """Record that ``rank`` failed on sampling ``unit``: drop the queued units of its point, say so once."""
        pt = unit[0]
        with self.lock:
            first = pt not in self.failures
            self.failures.setdefault(pt, {})[rank] = summary
            self._finish(pt)
        if first:
            if self.single_point:
                _log(f"{self.label}: rank {rank} failed ({summary}); no more blocks are handed out, "
                     "the other ranks finish the block they are sampling")
            else:
                _log(f"mcsim campaign: rank {rank} failed on point {self.point_names.get(pt, pt)} ({summary}); "
                     "no more blocks of this point are handed out, the other points go on")

    def _finish(self, pt: int) -> None:  # under self.lock
        self.remaining[pt] -= 1
        if self.remaining[pt] == 0:
            if pt in self.failures:
                self.failed.append(pt)
            else:
                self.queue.appendleft((pt, FINALISE, self.walls.pop(pt, [])))  # next rank that asks finalises

    def next_block(self, rank: int = 0):
        """Pop the next queued unit for ``rank``, skipping units of failed points (None when none is left)."""
        with self.lock:
            while self.queue:
                u = self.queue.popleft()
                if u[0] in self.failures:
                    self._finish(u[0])  # dropped: counts as done for the point's bookkeeping
                    continue
                if not is_finalise_unit(u):
                    self.blocks_per_rank[rank] += 1
                return u
            return None

    def done(self, rank: int, unit, outcome, seconds: float = float("nan")) -> None:
        """Record that ``rank`` finished ``unit`` in ``seconds`` with ``outcome`` (sampling: failure summary or None)."""
        if is_finalise_unit(unit):
            with self.lock:
                self.finalised.append((unit[0], rank, outcome))
        elif outcome is not None:
            self.fail(rank, outcome, unit)
        else:
            with self.lock:
                self.walls.setdefault(unit[0], []).append([int(unit[1]), int(unit[2]), float(seconds), int(rank)])
            self.progress.observe(unit[4], seconds)
            self.report(unit)

    def report(self, unit) -> None:
        """Count one finished sampling ``unit`` and update the progress display."""
        with self.lock:
            self.blocks_done += 1
            self.realizations_done += unit[2] - unit[1]
            self.cost_done += unit[4]
            self.blocks_done_point[unit[0]] += 1
            self._finish(unit[0])
        self.update_progress()

    def update_progress(self, force: bool = False) -> None:
        with self.lock:
            b, r, c, p = self.blocks_done, self.realizations_done, self.cost_done, self.points_done
        self.progress.update(b, r, force=force, points=p, cost=c)

    def point_finished(self) -> None:
        """Count one point finalised (or failed) for the progress display."""
        with self.lock:
            self.points_done += 1
        self.update_progress()

    def pop_failed(self):
        """Next failed point with no unit left running or queued (None if there is none)."""
        with self.lock:
            return self.failed.popleft() if self.failed else None

    def pop_finalised(self):
        """Next ``(point, rank, outcome)`` of a finished finalisation unit (None if there is none)."""
        with self.lock:
            return self.finalised.popleft() if self.finalised else None

    def serve_pending(self) -> int:
        """Answer every request that has arrived; return how many were answered.

        Called by the dispatcher thread and by rank 0's sampling loop before
        it takes a unit itself (so waiting ranks have priority).
        """
        from mpi4py import MPI

        served = 0
        with self.mpi_lock:
            status = MPI.Status()
            while self.active_workers > 0 and self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REQUEST,
                                                               status=status):
                src = status.Get_source()
                unit, seconds, waited, busy, outcome = self.comm.recv(source=src, tag=TAG_REQUEST)
                if unit is not None:
                    self.done(src, unit, outcome, seconds)
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
                self.update_progress()
                time.sleep(DISPATCH_POLL_SECONDS)
        except BaseException:
            _fail(self.comm, 0, traceback.format_exc())


def _do_unit(worker, unit, rank: int):
    """Run ``worker(unit)``; return its outcome for rank 0 (see :meth:`Dispatcher.done`)."""
    try:
        out = worker(unit)
    except Exception:
        return _sampling_failure(rank)
    return out if is_finalise_unit(unit) else None


def sample_on_root(comm, todo, worker, prog: Progress, between_units: Optional[Callable] = None,
                   point_names: Optional[dict] = None, log_stats: bool = True,
                   n_points: Optional[int] = None, label: Optional[str] = None) -> Dispatcher:
    """Rank 0's part of a run: serve the other ranks and do units itself.

    Starts the dispatcher thread, samples rank 0's first-round unit and then
    queued units (serving waiting ranks first) until the queue is empty,
    calling ``between_units(disp)`` after each unit and, once rank 0 is done,
    repeatedly while the other ranks finish theirs (this is where the
    campaign reports finalised and failed points); waits for every other
    rank's stop signal and closes the progress display.  Exceptions other
    than those raised by ``worker`` propagate.

    Parameters
    ----------
    comm : mpi4py communicator
    todo : list of tuple
        The ordered sampling units (same list on every rank).
    worker : callable
        ``worker(unit)`` (:class:`mcsim.worker.UnitWorker`): samples a
        sampling unit, or finalises the point of a finalisation unit and
        returns its outcome.
    prog : Progress
    between_units : callable, optional
        ``between_units(disp)``, called on rank 0's main thread.
    point_names : dict of int to str, optional
        Names of the points, for messages.
    log_stats : bool
        Print the per-rank statistics line (blocks, seconds busy and waiting) at the end.
    n_points : int, optional
        Number of points (see :class:`Dispatcher`).
    label : str, optional
        Command named in the messages (default ``"mcsim run"`` for one point, else ``"mcsim campaign"``).

    Returns
    -------
    Dispatcher
        With the per-rank statistics and the ``failures`` of the run.
    """
    from mpi4py import MPI

    size = comm.Get_size()
    disp = Dispatcher(todo, comm, prog, n_points)
    disp.point_names = dict(point_names or {})
    if label is not None:
        disp.label = label
    # rank 0's main thread may call MPI too (serialised by disp.mpi_lock) if the MPI library allows it
    main_serves = size > 1 and MPI.Query_thread() >= MPI.THREAD_SERIALIZED
    thread = threading.Thread(target=disp.serve, name="mcsim-dispatcher", daemon=True)
    thread.start()
    try:
        blk = first_round_block(todo, 0)
        if blk is None:
            blk = disp.next_block(0)
        while blk is not None:
            t0 = time.monotonic()
            outcome = _do_unit(worker, blk, 0)
            seconds = time.monotonic() - t0
            disp.busy_seconds[0] += seconds
            disp.done(0, blk, outcome, seconds)
            if main_serves:
                disp.serve_pending()  # waiting ranks first
            if between_units is not None:
                between_units(disp)
            blk = disp.next_block(0)
    finally:
        disp.main_done.set()
    while thread.is_alive():
        if between_units is not None:
            between_units(disp)
        thread.join(timeout=0.1)
    if between_units is not None:
        between_units(disp)
    disp.update_progress()
    prog.close(disp.blocks_done, disp.realizations_done, points=disp.points_done, cost=disp.cost_done)
    if size > 1 and todo and log_stats:
        _log(f"{disp.label}: blocks per rank {disp.blocks_per_rank}; seconds busy per rank "
             f"{_fmt_list(disp.busy_seconds)}; seconds ranks 1.. waited for assignments "
             f"(incl. the final stop message) {_fmt_list(disp.wait_seconds[1:])}")
    return disp


def sample_on_worker(comm, todo, worker) -> None:
    """A non-root rank's part of a run: do its first-round unit, then ask rank 0 for more.

    Each request carries the unit just finished (None at first if there was
    none) and its wall seconds, the seconds waited and busy so far and the
    unit's outcome (:func:`_do_unit`); rank 0 answers with the next unit, or
    None to stop.
    """
    rank = comm.Get_rank()
    done, seconds, waited, busy, outcome = None, 0.0, 0.0, 0.0, None
    blk = first_round_block(todo, rank)
    while True:
        if blk is not None:
            t0 = time.monotonic()
            outcome = _do_unit(worker, blk, rank)
            done = blk
            seconds = time.monotonic() - t0
            busy += seconds
        t0 = time.monotonic()
        comm.send((done, seconds, waited, busy, outcome), dest=0, tag=TAG_REQUEST)
        blk = _wait(comm.irecv(source=0, tag=TAG_ASSIGN))
        waited += time.monotonic() - t0
        if blk is None:
            break


def run_units(comm, todo, worker, on_root: Callable[[], int]) -> int:
    """The collective part of a run: rank 0 calls ``on_root()`` (which samples and serves, e.g. via
    :func:`sample_on_root`, and returns the exit code), the other ranks :func:`sample_on_worker`;
    returns rank 0's exit code on every rank."""
    import numpy as np

    status = np.zeros(1, dtype=np.int64)
    if comm.Get_rank() == 0:
        status[0] = on_root()
    else:
        sample_on_worker(comm, todo, worker)
    if comm.Get_size() > 1:
        from .mpi_util import _wait_buffer

        _wait_buffer(comm.Ibcast(status, root=0))
    return int(status[0])
