"""The block worker: samples one realization block of a point and writes its shard.

:class:`BlockWorker` samples the blocks of one point; :class:`UnitWorker` is
what every rank calls for each work unit ``(point, start, stop, observables,
cost)`` the scheduler (:mod:`mcsim.scheduler`) gives it, with one
:class:`BlockWorker` per point.  Each shard records the rank that wrote it
(``mpi_rank``) and the wall seconds its sampling took (``sample_seconds``),
which the final file collects (:func:`mcsim.finalise.read_block_timings`).  Test faults are injected through the
:class:`mcsim.fault_hooks.FaultHooks` object it is given, never through the
environment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .fault_hooks import NO_HOOKS, FaultHooks
from .shards import write_block


class BlockWorker:
    """Samples one block ``(start, stop, observables)`` and writes its shard.

    The point is prepared once per observable set (:func:`mcsim.sampler.prepare_spec`);
    the spec was validated once when it was parsed.

    Parameters
    ----------
    spec : theory.PointSpec
    pdir : path
        Point directory.
    rank : int
        MPI rank (recorded in each shard's ``mpi_rank`` attribute).
    hooks : FaultHooks, optional
        Test faults (default: none).
    name : str, optional
        Campaign point name (for the ``fail_point`` test hook).
    """

    def __init__(self, spec, pdir: Path, rank: int, hooks: Optional[FaultHooks] = None, name: str = ""):
        hooks = NO_HOOKS if hooks is None else hooks
        self.spec = spec
        self.name = name
        self.pdir = Path(pdir)
        self.rank = rank
        self.hooks = hooks
        self.fail = hooks.fails(rank, "sampling")
        self.delay = hooks.delay(rank)
        self._prepared = {}

    def check_test_hook(self) -> None:
        """Raise if the ``fail_rank`` test hook selects this rank (phase ``"sampling"``)."""
        if self.fail:
            raise self.hooks.failure(self.rank)

    def prepared(self, observables):
        from mcsim import sampler

        obs = tuple(observables)
        if obs not in self._prepared:
            self._prepared[obs] = sampler.prepare_spec(self.spec, obs)
        return self._prepared[obs]

    def __call__(self, block) -> int:
        from mcsim import sampler

        self.check_test_hook()
        failure = self.hooks.point_failure(self.name)
        if failure is not None:
            raise failure
        start, stop, obs = block
        t0 = time.perf_counter()
        arrays = sampler.draw(self.prepared(obs), start, stop - start)
        seconds = time.perf_counter() - t0
        write_block(self.pdir, self.spec.point_key(), start, stop, arrays, obs,
                    extra_attrs={"mpi_rank": self.rank, "sample_seconds": float(seconds)})
        if self.delay > 0:
            time.sleep(self.delay)
        return stop - start


class UnitWorker:
    """Samples campaign work units ``(point, start, stop, observables, cost)`` with one :class:`BlockWorker` per point.

    Parameters
    ----------
    points : sequence of (str, theory.PointSpec, path)
        ``(name, spec, point directory)`` of each point the units refer to.
    rank : int
    hooks : FaultHooks, optional
    """

    def __init__(self, points, rank: int, hooks: Optional[FaultHooks] = None):
        self.hooks = NO_HOOKS if hooks is None else hooks
        self.points = list(points)
        self.rank = rank
        self._workers = {}
        self.blocks_written = 0

    def __call__(self, unit) -> int:
        pt, start, stop, obs = unit[:4]
        if pt not in self._workers:
            name, spec, pdir = self.points[pt]
            self._workers[pt] = BlockWorker(spec, pdir, self.rank, self.hooks, name=name)
        n = self._workers[pt]((start, stop, obs))
        self.blocks_written += 1
        self.hooks.after_block(self.blocks_written)
        return n
