"""The block worker: samples one realization block of a point and writes its shard.

:class:`BlockWorker` is what every rank calls for each block the scheduler
(:mod:`mcsim.scheduler`) gives it.  Test faults are injected through the
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
    """

    def __init__(self, spec, pdir: Path, rank: int, hooks: Optional[FaultHooks] = None):
        hooks = NO_HOOKS if hooks is None else hooks
        self.spec = spec
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
        start, stop, obs = block
        arrays = sampler.draw(self.prepared(obs), start, stop - start)
        write_block(self.pdir, self.spec.point_key(), start, stop, arrays, obs,
                    extra_attrs={"mpi_rank": self.rank})
        if self.delay > 0:
            time.sleep(self.delay)
        return stop - start
