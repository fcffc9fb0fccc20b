"""Campaign orchestration: one MPI job samples the missing blocks of many points.

``python -m mcsim campaign --specs CHUNK.json --store STORE`` (under
``mpiexec -n R`` or ``srun``) and ``python -m mcsim run`` (the campaign with
one point: one code path) both end up in :func:`run_campaign`.

Chunk file
----------
``{"points": [{"name": NAME, "spec": SPEC, "out": OUT}, ...]}``: ``SPEC`` is
the point-spec dict ``mcsim run --spec`` reads (:func:`theory.parse_point_spec`),
``OUT`` the final ``.h5`` file of the point.  Names and outputs are unique.
Two entries of the same point (same point key) must have the same spec
(e.g. one point used by two experiments): it is sampled once and finalised
into both outputs.  :func:`load_chunk` validates everything before any store
work (exit code 2, naming the point and the key).

Run
---
Rank 0 validates the chunk and, for each point (in point-key order, so two
campaigns sharing points cannot deadlock on the point locks):

- skips it in O(1) if its ``out`` is already a complete final file of
  exactly this spec (:func:`mcsim.finalise.final_file_matches`; campaign
  only: ``mcsim run`` always rewrites its output);
- otherwise takes the point's lock, removes temp files of killed runs, plans
  its missing blocks (:func:`mcsim.store.plan_blocks`, verifying shard
  checksums; bad shards are quarantined and resampled) and checks the
  largest block fits in memory (:func:`mcsim.driver.check_block_memory`).

The blocks of all points become work units ``(point, start, stop,
observables, cost)``, with ``cost`` from the cost model
(:func:`mcsim.cost.seconds_per_realization`), ordered most expensive first
(:func:`mcsim.scheduler.order_units`) and broadcast.  Every rank warms up
(compiles) the kernels of the campaign while rank 0 plans, all meet at a
barrier, then :mod:`mcsim.scheduler` hands the units out (static first
round, then request/grant).  As soon as the last block of a point is
written, a finalisation unit for it goes to the front of the queue: the
rank that wrote that block (it asks next) writes the point's final file,
while the other ranks keep sampling.  So a killed campaign keeps the final
files of the points it finished, and a rerun resumes the others from their
shards.  Rank 0 holds every point's lock from planning until the point is
finalised or failed, and reports each point on stderr.

Failures
--------
A unit that raises while sampling fails *its point*: rank 0 drops that
point's queued units, the other points go on and are finalised, every
finished block stays in the store, and the job exits 1 with one line
``error: <name>: <what>`` per failed point (``mcsim run`` keeps its
historical message ``error: sampling: failed on rank R (...)``).  A point
that fails in planning (stale store, block too large for memory) fails the
same way (exit 2 if every failure is bad input such as the memory check).
Failures outside sampling (setup, dispatcher thread, interrupts) abort all
ranks as described in :mod:`mcsim.driver`.

Progress
--------
Rank 0 prints one progress line per campaign (:class:`mcsim.progress.Progress`):
points done/total, blocks, realizations done/total over all points, the rate
and an ETA weighted by the cost model; ``--quiet`` keeps only errors and
warnings.  Each shard records its sampling wall time, collected in the final
file (:func:`mcsim.finalise.read_block_timings`) for
:func:`mcsim.scheduler.simulate_schedule`.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from theory.spec import ChunkPoint, read_chunk
from theory.spec import parse_chunk as _parse_chunk

from . import store as _store
from .driver import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError, check_block_memory, check_out_path, parse_spec
from .fault_hooks import NO_HOOKS, FaultHooks
from .mpi_util import _barrier, _bcast_object, _fail
from .progress import Progress, _log, _log_failure
from .scheduler import order_units, run_units, sample_on_root
from .shards import _fmt_ranges
from .worker import UnitWorker

DEFAULT_PROGRESS_INTERVAL = 10.0  # seconds between progress lines of a campaign in a log file
CampaignPoint = ChunkPoint
"""One entry of a chunk: :class:`theory.spec.ChunkPoint` (``name``, validated ``spec``, ``out`` Path)."""


def _validate_entry(spec: dict, out: str):
    """Chunk entry check of the campaign: :func:`mcsim.driver.parse_spec` and a creatable ``out``."""
    try:
        parsed = parse_spec(spec)
        check_out_path(out)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    return parsed


def load_chunk(path) -> List[CampaignPoint]:
    """Read and validate a chunk file ``{"points": [{"name", "spec", "out"}, ...]}`` (:func:`theory.spec.read_chunk`).

    Raises
    ------
    UserError
        ``specs: ...`` for an unreadable file, bad JSON or a bad layout,
        duplicate names or outputs; ``<name>: <key>: <what>`` for an invalid spec or output.
    """
    try:
        return read_chunk(path, _validate_entry)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def parse_chunk(raw, source: str = "chunk") -> List[CampaignPoint]:
    """Validate a decoded chunk (see :func:`load_chunk`); ``source`` names it in messages."""
    try:
        return _parse_chunk(raw, source, _validate_entry)
    except ValueError as exc:
        raise UserError(str(exc)) from None


@dataclass
class _Group:
    """Rank 0's state of one point (entries of the same point key share it)."""

    members: list  # CampaignPoint, first one leads
    pdir: Optional[Path] = None
    lock: object = None
    todo: list = field(default_factory=list)
    skipped: bool = False
    failure: Optional[str] = None  # message (without "error: ")
    failure_kind: str = ""  # "user", "store", "bug", "sampling"
    written: bool = False

    @property
    def lead(self) -> CampaignPoint:
        return self.members[0]

    @property
    def name(self) -> str:
        return self.lead.name


def _group_points(points: List[CampaignPoint]) -> List[_Group]:
    """Group entries by point key; entries of one key must have identical specs (else UserError)."""
    groups: dict = {}
    for p in points:
        key = p.spec.point_key()
        g = groups.get(key)
        if g is None:
            groups[key] = _Group([p])
            continue
        if p.spec.canonical_json() != g.lead.spec.canonical_json():
            raise UserError(f"{p.name}: spec: same point (key {key[:12]}) as {g.lead.name!r} but a different spec "
                            "(realizations, observables, block_size or label); give both the same spec")
        g.members.append(p)
    return list(groups.values())


def _kernel_key(spec, obs) -> tuple:
    """What selects the compiled kernels of a point (one warm-up per distinct key)."""
    return (spec.prior.arch, spec.prior.act.identity, spec.resolved_method(), tuple(obs))


def _warm_up(spec, obs, warmed: set) -> None:
    """Sample (and discard) one realization: loads or compiles the Numba kernels (once per kernel key).

    Only used under MPI with more than one rank, so that every rank is
    compiled before the first round starts; not used to validate anything.
    Warnings (e.g. overflow) are suppressed.
    """
    import warnings

    from mcsim import sampler

    key = _kernel_key(spec, obs)
    if key in warmed:
        return
    warmed.add(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.draw(sampler.prepare_spec(spec, obs), 0, 1)


def _prewarm(loader, warmed: set) -> Optional[list]:
    """Best-effort load and warm-up on a non-root rank while rank 0 plans; the points, or None on any error."""
    try:
        points = loader()
        for p in points:
            _warm_up(p.spec, p.spec.observables, warmed)
        return points
    except Exception:
        return None


class _Campaign:
    """Rank 0's planning, per-point finalisation and reporting (see the module docstring)."""

    def __init__(self, comm, groups: List[_Group], store_root, single: bool, quiet: bool, skip_finished: bool):
        self.comm = comm
        self.groups = groups
        self.store_root = store_root
        self.single = single
        self.quiet = quiet
        self.skip_finished = skip_finished
        self.label = "mcsim run" if single else "mcsim campaign"
        self.active: List[_Group] = []  # groups to sample and/or finalise, indexed by the units' point index
        self.t_start = time.monotonic()

    def info(self, msg: str) -> None:
        if not self.quiet:
            _log(f"{self.label}: {msg}")

    def prefix(self, g: _Group) -> str:
        return "" if self.single else f"{g.name}: "

    # ---- planning
    def plan(self, ranks: int, ranks_per_node: int) -> list:
        """Plan every point; return the ordered work units (points that fail planning are recorded)."""
        from .cost import seconds_per_realization

        units, costs = [], []
        for g in sorted(self.groups, key=lambda g: g.lead.spec.point_key()):
            spec = g.lead.spec
            if self.skip_finished and all(_store.final_file_matches(m.out, spec) for m in g.members):
                g.skipped = True
                continue
            try:
                self._plan_point(g, ranks, ranks_per_node)
            except UserError as exc:
                self.point_failed(g, str(exc), "user")
                continue
            except _store.StoreError as exc:
                self.point_failed(g, str(exc), "store")
                continue
            except Exception:
                _log_failure(0, traceback.format_exc())
                self.point_failed(g, "planning failed (traceback above)", "bug")
                continue
            pt = len(self.active)
            self.active.append(g)
            per_real = seconds_per_realization(spec)
            for a, b, obs in g.todo:
                units.append((pt, a, b, tuple(obs), per_real * (b - a)))
                costs.append(per_real * (b - a))
        return [units[i] for i in order_units(costs)]

    def _plan_point(self, g: _Group, ranks: int, ranks_per_node: int) -> None:
        spec = g.lead.spec
        g.pdir = _store.prepare_point_dir(self.store_root, spec)
        g.lock = _store.PointLock(g.pdir)
        g.lock.wait(on_wait=lambda holder: _log(
            f"{self.label}: note: {self.prefix(g)}another run of this point holds its lock ({holder}); waiting for "
            "it to finish, then its realizations are reused"))
        removed = _store.clean_temp_files(g.pdir)
        if removed:
            self.info(f"{self.prefix(g)}removed {len(removed)} temp file(s) left by killed runs")
        plan = _store.plan_blocks(g.pdir, spec, verify=True)
        if plan.stale:
            raise _store.StaleStoreError(_store.stale_shards_message(g.pdir, plan.stale))
        for s in plan.bad:
            dest = _quarantine(g.pdir, s.path)
            _log(f"{self.label}: warning: {self.prefix(g)}bad shard {s.path.name} {s.range_str}: {s.problem}; "
                 f"moved to {dest} and its range is resampled")
        todo = plan.to_sample
        partial = sorted({blk[2] for blk in todo if tuple(blk[2]) != tuple(spec.observables)})
        for obs in partial:
            ranges = [blk for blk in todo if blk[2] == obs]
            self.info(f"note: {self.prefix(g)}realizations {_fmt_ranges(ranges)} are stored without "
                      f"{list(obs)}; sampling only those")
        check_block_memory(spec, todo, ranks_per_node)
        head = f"point {spec.point_key()[:12]}" if self.single else f"point {g.name} ({spec.point_key()[:12]})"
        self.info(f"{head} (R={spec.realizations}, block_size={spec.block_size}, ranks={ranks}): "
                  f"{len(plan.reused)} shard(s) reused covering {plan.covered} realizations; "
                  f"{len(todo)} block(s) to sample" + (f": {_fmt_ranges(todo)}" if todo else ""))
        g.todo = todo

    # ---- outcome of each point
    def point_failed(self, g: _Group, msg: str, kind: str) -> None:
        g.failure, g.failure_kind = msg, kind
        _log(f"error: {self.prefix(g)}{msg}")
        self.release(g)

    def release(self, g: _Group) -> None:
        if g.lock is not None:
            g.lock.release()
            g.lock = None

    def finalised(self, disp, pt: int, rank: int, outcome) -> None:
        """Report the finalisation of point ``pt`` by ``rank`` (outcome of :meth:`mcsim.worker.UnitWorker.finalise`,
        or the failure summary if it raised) and release the point's lock."""
        g = self.active[pt]
        sampled = disp.blocks_done_point[pt]
        if isinstance(outcome, str):  # raised: that rank printed the traceback
            self.point_failed(g, f"finalizing failed on rank {rank} ({outcome})", "bug")
        elif outcome[0] is not None:
            self.point_failed(g, outcome[0], "store")
        else:
            g.written = True
            for m in g.members:
                if self.single:
                    self.info(f"wrote {m.out} ({g.lead.spec.realizations} realizations; sampled {sampled} "
                              f"block(s); total {time.monotonic() - self.t_start:.1f} s, finalize {outcome[1]:.1f} s)")
                else:
                    self.info(f"{m.name}: wrote {m.out} ({g.lead.spec.realizations} realizations; sampled {sampled} "
                              f"block(s) in this run; finalize {outcome[1]:.1f} s on rank {rank})")
            self.release(g)
        disp.point_finished()

    def between_units(self, disp) -> None:
        """Report finalised points (releasing their locks) and failed points (rank 0's main thread)."""
        while True:
            item = disp.pop_finalised()
            if item is None:
                break
            self.finalised(disp, *item)
        while True:
            pt = disp.pop_failed()
            if pt is None:
                break
            self.sampling_failed(disp, pt)

    def sampling_failed(self, disp, pt: int) -> None:
        """Report point ``pt`` failed while sampling (none of its units is left running or queued)."""
        by_rank = disp.failures[pt]
        g = self.active[pt]
        failed = ", ".join(f"rank {r} ({msg})" for r, msg in sorted(by_rank.items()))
        kept = disp.blocks_done_point[pt]
        if self.single:
            msg = (f"sampling: failed on {failed}; no final file written. {kept} block(s) finished in this run "
                   f"are kept in the store {g.pdir}; rerun the same command to resume")
        else:
            msg = (f"sampling failed on {failed}; no final file written; {kept} block(s) of this point finished "
                   f"in this run are kept in the store {g.pdir}; rerun the campaign to resume")
        self.point_failed(g, msg, "sampling")
        disp.point_finished()

    def exit_code(self) -> int:
        kinds = {g.failure_kind for g in self.groups if g.failure is not None}
        if not kinds:
            return EXIT_OK
        return EXIT_USAGE if kinds == {"user"} else EXIT_FAILURE

    def summary(self, disp) -> None:
        if self.single:
            return
        n = sum(len(g.members) for g in self.groups)
        written = sum(len(g.members) for g in self.groups if g.written)
        skipped = sum(len(g.members) for g in self.groups if g.skipped)
        failed = [m.name for g in self.groups if g.failure is not None for m in g.members]
        blocks = disp.blocks_done if disp is not None else 0
        reals = disp.realizations_done if disp is not None else 0
        text = (f"mcsim campaign: {n} point(s): {written} written, {skipped} skipped (final file up to date), "
                f"{len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''}; sampled {blocks} block(s), "
                f"{reals} realizations in {time.monotonic() - self.t_start:.1f} s")
        if failed:
            _log(text)
        else:
            self.info(text[len("mcsim campaign: "):])


def measured_unit_costs(paths) -> tuple:
    """Measured and predicted seconds of every block of some final point files, for scheduling replays.

    Parameters
    ----------
    paths : iterable of path
        Final point files written by a campaign or run (their ``block_timings``).

    Returns
    -------
    measured, predicted : list of float
        Per block (file order, then realization order): the measured seconds
        (the whole unit's wall time, sampling plus writing the shard, where
        the run that wrote the file sampled the block; else the sampling
        seconds recorded in the shard) and the cost model's prediction
        (:mod:`mcsim.cost`).  Feed them to
        ``mcsim.scheduler.simulate_schedule(measured, ranks, priority=predicted)``
        to predict the makespan on ``ranks`` ranks.

    Raises
    ------
    mcsim.store.StoreError
        If a file is not a final point file or a block has no recorded time.
    """
    import theory

    from .cost import seconds_per_realization
    from .finalise import _open_point_file

    measured, predicted = [], []
    for path in paths:
        f, attrs = _open_point_file(Path(path))
        f.close()
        per = seconds_per_realization(theory.parse_point_spec(json.loads(attrs["spec_json"])))
        for t in _store.read_block_timings(path):
            if t["seconds"] is None:
                raise _store.StoreError(f"{path}: block [{t['start']}, {t['stop']}) has no recorded sampling time "
                                        "(written before timings were recorded)")
            measured.append(t["wall"] if t["wall"] is not None else t["seconds"])
            predicted.append(per * (t["stop"] - t["start"]))
    return measured, predicted


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


def run_campaign(loader: Callable[[], List[CampaignPoint]], store_root, *, single: bool = False,
                 progress: bool = True, progress_interval: float = DEFAULT_PROGRESS_INTERVAL, quiet: bool = False,
                 hooks: Optional[FaultHooks] = None) -> int:
    """Collective entry point of ``python -m mcsim campaign`` and ``run`` (every rank calls it).

    Parameters
    ----------
    loader : callable
        ``loader() -> list of CampaignPoint``; raises :class:`mcsim.driver.UserError`
        on bad input.  Rank 0's result is authoritative; the other ranks call
        it too (best effort) to compile the kernels while rank 0 plans.
    store_root : path
        Store root directory (created if missing).
    single : bool
        ``mcsim run``: one point, its historical messages, no skipping of an existing output.
    progress : bool
        Show the progress line on rank 0 (stderr).
    progress_interval : float
        Seconds between progress lines when stderr is not a TTY.
    quiet : bool
        Only errors and warnings on stderr (no progress, no per-point lines).
    hooks : FaultHooks, optional
        Test faults to inject (test-suite only; default none).

    Returns
    -------
    int
        Exit code (0 success, 1 a point failed, 2 bad input); the same on every rank.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return _run(comm, loader, store_root, single, progress and not quiet, progress_interval, quiet,
                    NO_HOOKS if hooks is None else hooks)
    except BaseException:  # any rank, any phase: report and abort instead of leaving other ranks hanging
        _fail(comm, comm.Get_rank(), traceback.format_exc())
        return EXIT_FAILURE


def _run(comm, loader, store_root, single, progress, progress_interval, quiet, hooks: FaultHooks) -> int:
    import theory

    rank, size = comm.Get_rank(), comm.Get_size()
    ranks_per_node = _ranks_per_node(comm) if size > 1 else 1  # collective
    warmed: set = set()

    # ---- rank 0 validates and plans; everybody learns the outcome by bcast (no hang on errors)
    payload, camp = None, None
    if rank == 0:
        try:
            points = loader()
            root = Path(store_root)
            if root.exists() and not root.is_dir():
                raise UserError(f"store: {root} exists and is not a directory")
            camp = _Campaign(comm, _group_points(points), store_root, single, quiet, skip_finished=not single)
            units = camp.plan(size, ranks_per_node)
            payload = ("ok", [(g.name, g.lead.spec.raw, str(g.pdir), [str(m.out) for m in g.members])
                              for g in camp.active], units)
        except UserError as exc:
            payload = ("user", str(exc))
        except _store.StoreError as exc:
            payload = ("store", str(exc))
        except Exception:
            payload = ("bug", traceback.format_exc())
    pre = None
    if rank != 0 and size > 1:  # overlaps with rank 0's planning
        pre = _prewarm(loader, warmed)
    if size > 1:
        payload = _bcast_object(comm, payload)
    if payload[0] != "ok":
        if rank == 0:
            if payload[0] == "bug":
                _log_failure(0, payload[1])
            else:
                _log(f"error: {payload[1]}")
            if camp is not None:
                for g in camp.groups:
                    camp.release(g)
        return EXIT_USAGE if payload[0] == "user" else EXIT_FAILURE

    _, active, units = payload
    known = {json.dumps(p.spec.raw, sort_keys=True): p.spec for p in (pre or [])}  # validated once here
    specs = []
    for name, raw, pdir, outs in active:
        if rank == 0:
            spec = camp.active[len(specs)].lead.spec
        else:
            spec = known.get(json.dumps(raw, sort_keys=True)) or theory.parse_point_spec(raw)
            if spec.point_key() != Path(pdir).name:
                raise RuntimeError(f"rank {rank}: spec round trip changed the point key of {name} "
                                   f"({spec.point_key()[:12]} != {Path(pdir).name[:12]})")
        specs.append((name, spec, Path(pdir), [Path(o) for o in outs]))
    try:
        if hooks.fails(rank, "setup"):
            raise hooks.failure(rank)
        if size > 1 and units:
            for u in units:
                _warm_up(specs[u[0]][1], u[3], warmed)
            _barrier(comm)  # every rank is compiled and ready: start the first round together
        worker = UnitWorker(specs, rank, hooks, ranks=size)
        return run_units(comm, units, worker,
                         lambda: _sample_on_root(comm, camp, units, worker, progress, progress_interval))
    finally:
        if camp is not None:
            for g in camp.groups:
                camp.release(g)


def _sample_on_root(comm, camp: _Campaign, units, worker, progress, progress_interval) -> int:
    """Rank 0: sample and serve (finalising finished points on the way), report every failure; the exit code."""
    if camp.single:
        prog = Progress(len(units), sum(u[2] - u[1] for u in units), enabled=progress, interval=progress_interval)
    else:
        n_points = sum(len(g.members) for g in camp.groups)
        total = sum(g.lead.spec.realizations * len(g.members) for g in camp.groups)
        sampling = sum(u[2] - u[1] for u in units)
        base_points = sum(len(g.members) for g in camp.groups if g.skipped or g.failure is not None)
        prog = Progress(len(units), total, enabled=progress, interval=progress_interval, points_total=n_points,
                        points_base=base_points, realizations_base=total - sampling - sum(
                            g.lead.spec.realizations * len(g.members) for g in camp.groups if g.failure is not None),
                        total_cost=sum(u[4] for u in units))
    names = {i: g.name for i, g in enumerate(camp.active)}
    disp = sample_on_root(comm, units, worker, prog, between_units=camp.between_units, point_names=names,
                          log_stats=not camp.quiet, n_points=len(camp.active))
    camp.summary(disp)
    return camp.exit_code()
