"""HMC chains over MPI ranks through the chain store: ``python -m mcsim posterior --store STORE``.

Every rank parses the same posterior spec.  Rank 0 prepares the posterior
point directory (:mod:`mcsim.posterior_store`), takes its lock, removes temp
files of killed runs, verifies every stored segment (quarantining bad ones)
and plans: each chain that has fewer than ``warmup + draws * thin``
iterations is a work unit ``(0, chain, chain + 1, observables, cost)``, with
the missing iterations as cost.  The units go through the prior sampler's
scheduler (:mod:`mcsim.scheduler`: static first round, then
most-expensive-first request/grant); :class:`ChainWorker` continues the chain
from its last checkpoint and writes a segment every ``checkpoint_every``
iterations (at absolute multiples, so segment boundaries do not depend on
where a run was killed).  When every chain is done the finalisation unit
reads all chains and writes the final file (:func:`mcsim.posterior_sampling.write_posterior`):
the same :class:`mcsim.posterior_sampling.PosteriorResult` the in-process
:func:`mcsim.posterior` gives, whatever the number of ranks or restarts.

Test faults come from :class:`mcsim.fault_hooks.FaultHooks` (``--test-hooks``):
``kill_after_blocks`` counts written segments, ``fail_rank`` and
``block_delay`` work as for prior blocks.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

from .campaign import _quarantine
from .driver import EXIT_FAILURE, EXIT_OK
from .fault_hooks import NO_HOOKS, FaultHooks
from .locking import PointLock
from .mpi_util import _barrier, _bcast_object, _fail
from .posterior_sampling import PosteriorRun, read_posterior, summarise_chains, write_posterior
from .posterior_store import PosteriorPoint, load_chain, write_segment
from .progress import Progress, _log
from .scheduler import is_finalise_unit, order_units, run_units, sample_on_root
from .store_layout import StoreError, clean_temp_files, prepare_point_dir


class ChainWorker:
    """Does the work units of one posterior point: continues a chain, or finalises the point.

    Parameters
    ----------
    run : PosteriorRun
    pdir : path
        Posterior point directory.
    out : path
        Final file.
    checkpoint_every : int
        Iterations between checkpoints.
    rank, ranks : int
    hooks : FaultHooks, optional
    """

    def __init__(self, run: PosteriorRun, pdir, out, checkpoint_every: int, rank: int = 0, ranks: int = 1,
                 hooks: Optional[FaultHooks] = None):
        self.run = run
        self.point = PosteriorPoint(run)
        self.key = self.point.point_key()
        self.problem = run.chain_problem()
        self.total = self.problem.total_iterations(run.draws)
        self.pdir, self.out = Path(pdir), Path(out)
        self.every = int(checkpoint_every)
        self.rank, self.ranks = rank, ranks
        self.hooks = NO_HOOKS if hooks is None else hooks
        self.segments_written = 0

    def resume_state(self, chain: int):
        """The sampler state at the end of the chain's valid stored segments (a fresh chain if none)."""
        segs = load_chain(self.pdir, self.key, self.problem, chain, last_only=True)  # raises if a segment is bad
        return segs[-1].state if segs else self.problem.initial_state(chain)

    def run_chain(self, chain: int) -> int:
        """Continue ``chain`` to the requested length, checkpointing; returns the iterations done."""
        if self.hooks.fails(self.rank, "sampling"):
            raise self.hooks.failure(self.rank)
        state = self.resume_state(chain)
        first = state.iteration
        while state.iteration < self.total:
            stop = min(self.total, (state.iteration // self.every + 1) * self.every)
            seg = self.problem.advance(chain, state, stop)
            write_segment(self.pdir, self.key, chain, seg)
            self.segments_written += 1
            self.hooks.after_block(self.segments_written)
            if self.hooks.delay(self.rank) > 0:
                time.sleep(self.hooks.delay(self.rank))
        return state.iteration - first

    def finalise(self):
        """Read every chain and write the final file; ``(error message or None, seconds)``."""
        t0 = time.monotonic()
        try:
            segments = [load_chain(self.pdir, self.key, self.problem, c, until=self.total)
                        for c in range(self.run.chains)]
            res = self.run.finish(summarise_chains(self.problem, segments, self.run.draws, self.run.chains))
            write_posterior(res, self.out, extra_attrs={"posterior_key": self.key, "mpi_ranks": np.int64(self.ranks)})
        except (StoreError, ValueError) as exc:
            return str(exc), time.monotonic() - t0
        return None, time.monotonic() - t0

    def __call__(self, unit):
        if is_finalise_unit(unit):
            return self.finalise()
        return self.run_chain(int(unit[1]))


def plan_chains(worker: ChainWorker) -> list:
    """Rank 0: verify the stored chains (quarantining bad segments) and return the ordered work units."""
    def quarantine(path, why):
        dest = _quarantine(worker.pdir, path)
        _log(f"mcsim posterior: warning: bad chain segment {path.name}: {why}; moved to {dest} and its "
             "iterations are recomputed")

    units, costs = [], []
    for c in range(worker.run.chains):
        segs = load_chain(worker.pdir, worker.key, worker.problem, c, quarantine=quarantine, last_only=True)
        done = segs[-1].stop if segs else 0
        if done < worker.total:
            units.append((0, c, c + 1, worker.run.obs, float(worker.total - done)))
            costs.append(float(worker.total - done))
    return [units[i] for i in order_units(costs)]


def run_chains(run: PosteriorRun, store, out, checkpoint_every: int, hooks: Optional[FaultHooks] = None,
               quiet: bool = False) -> int:
    """Collective entry point of ``python -m mcsim posterior --store`` (every rank calls it).

    Parameters
    ----------
    run : PosteriorRun
        Validated HMC request (the same on every rank).
    store : path
        Store root (created if missing).
    out : path
        Final file.
    checkpoint_every : int
        Iterations between checkpoints (>= 1); does not change the result.
    hooks : FaultHooks, optional
    quiet : bool

    Returns
    -------
    int
        Exit code (0 success, 1 failure, 2 bad input); the same on every rank.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return _run(comm, run, store, out, checkpoint_every, NO_HOOKS if hooks is None else hooks, quiet)
    except BaseException:
        _fail(comm, comm.Get_rank(), traceback.format_exc())
        return EXIT_FAILURE


def _run(comm, run, store, out, every, hooks, quiet) -> int:
    rank, size = comm.Get_rank(), comm.Get_size()
    point = PosteriorPoint(run)
    payload, lock = None, None
    if rank == 0:
        try:
            root = Path(store)
            if root.exists() and not root.is_dir():
                raise StoreError(f"store: {root} exists and is not a directory")
            pdir = prepare_point_dir(root, point)
            lock = PointLock(pdir)
            lock.wait(on_wait=lambda h: _log(f"mcsim posterior: note: another run holds the lock of {pdir} ({h}); "
                                            "waiting for it to finish, then its chains are reused"))
            removed = clean_temp_files(pdir)
            if removed and not quiet:
                _log(f"mcsim posterior: removed {len(removed)} temp file(s) left by killed runs")
            units = plan_chains(ChainWorker(run, pdir, out, every, 0, size, hooks))
            payload = ("ok", str(pdir), units)
        except StoreError as exc:
            payload = ("store", str(exc))
        except Exception:
            payload = ("bug", traceback.format_exc())
    if size > 1:
        payload = _bcast_object(comm, payload)
    try:
        if payload[0] != "ok":
            if rank == 0:
                _log(f"error: {payload[1]}")
            return EXIT_FAILURE
        _, pdir, units = payload
        worker = ChainWorker(run, pdir, out, every, rank, size, hooks)
        if size > 1:
            _barrier(comm)

        def on_root() -> int:
            if not quiet:
                _log(f"mcsim posterior: point {point.point_key()[:12]}: {run.chains} chain(s) of "
                     f"{worker.total} iterations, {len(units)} to (re)sample on {size} rank(s)")
            prog = Progress(len(units), sum(u[2] - u[1] for u in units), enabled=not quiet)
            disp = sample_on_root(comm, units, worker, prog, log_stats=not quiet, n_points=1,
                                  label="mcsim posterior")
            return _outcome(disp, quiet, out)

        return run_units(comm, units, worker, on_root)
    finally:
        if lock is not None:
            lock.release()


def _outcome(disp, quiet: bool, out) -> int:
    """Rank 0: exit code from the dispatcher's failures and the finalisation outcome."""
    if disp.failures:
        for r, summary in sorted(disp.failures.get(0, {}).items()):
            _log(f"error: sampling: failed on rank {r} ({summary})")
        return EXIT_FAILURE
    fin = disp.pop_finalised()
    if fin is None:
        _log("error: finalise: the final file was not written")
        return EXIT_FAILURE
    outcome = fin[2]
    if isinstance(outcome, str):
        _log(f"error: finalise: failed on rank {fin[1]} ({outcome})")
        return EXIT_FAILURE
    if outcome[0] is not None:
        _log(f"error: {outcome[0]}")
        return EXIT_FAILURE
    from .posterior_cli import summary_line

    print(summary_line(read_posterior(out), out), flush=True)  # as the in-process run
    return EXIT_OK

