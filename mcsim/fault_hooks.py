"""Fault injection for the test-suite: the :class:`FaultHooks` object handed to the block worker.

Production runs use :data:`NO_HOOKS` (nothing injected).  The MPI tests run
``python -m mcsim run`` in subprocesses and pass the hooks with the hidden
command-line option ``--test-hooks JSON`` (not shown by ``--help``), which
:func:`FaultHooks.from_json` turns into the object passed down to
:func:`mcsim.driver.run` and :class:`mcsim.worker.BlockWorker`.  No
environment variable is read.

JSON keys (all optional)
------------------------
``fail_rank`` : int
    Rank that raises ``RuntimeError`` on purpose.
``fail_phase`` : ``"sampling"`` (default) or ``"setup"``
    ``"sampling"``: when the rank starts sampling its first block (the
    cooperative stop); ``"setup"``: after the plan was broadcast, before the
    start barrier (the ``MPI_Abort`` fallback).
``block_delay`` : float or object of rank to float
    Seconds to sleep after writing each block, on every rank or on the ranks
    given (``{"1": 1.5}``), to kill a run mid-way or to make one rank slow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Optional

PHASES = ("sampling", "setup")

#: Name the failure messages give the hook (its historical environment-variable name, kept so that the
#: messages, and the tests matching them, are unchanged).
FAIL_HOOK_LABEL = "MCSIM_TEST_FAIL_RANK"


@dataclass(frozen=True)
class FaultHooks:
    """Faults to inject into a run (test-suite only).

    Attributes
    ----------
    fail_rank : int or None
        Rank that fails on purpose (None: no rank).
    fail_phase : {"sampling", "setup"}
        When ``fail_rank`` fails.
    block_delay : float
        Seconds to sleep after writing each block, on every rank not in ``block_delay_ranks``.
    block_delay_ranks : mapping of int to float
        Per-rank delays; when non-empty, ranks not listed sleep 0.
    """

    fail_rank: Optional[int] = None
    fail_phase: str = "sampling"
    block_delay: float = 0.0
    block_delay_ranks: Mapping[int, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> "FaultHooks":
        """Parse the ``--test-hooks`` value (see the module docstring); raise ``ValueError`` if malformed."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError("must be a JSON object")
        unknown = sorted(set(raw) - {"fail_rank", "fail_phase", "block_delay"})
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        fail_rank = raw.get("fail_rank")
        if fail_rank is not None and (not isinstance(fail_rank, int) or isinstance(fail_rank, bool)):
            raise ValueError(f"fail_rank must be an integer, got {fail_rank!r}")
        phase = raw.get("fail_phase", "sampling")
        if phase not in PHASES:
            raise ValueError(f"fail_phase must be one of {list(PHASES)}, got {phase!r}")
        delay = raw.get("block_delay", 0.0)
        if isinstance(delay, dict):
            try:
                ranks = {int(r): float(s) for r, s in delay.items()}
            except (TypeError, ValueError):
                raise ValueError(f"block_delay must map ranks to seconds, got {delay!r}") from None
            return cls(fail_rank, phase, 0.0, ranks)
        try:
            return cls(fail_rank, phase, float(delay))
        except (TypeError, ValueError):
            raise ValueError(f"block_delay must be seconds or an object of rank to seconds, got {delay!r}") from None

    def fails(self, rank: int, phase: str) -> bool:
        """Whether ``rank`` is to fail in ``phase`` (``"sampling"`` or ``"setup"``)."""
        return self.fail_rank is not None and self.fail_rank == rank and self.fail_phase == phase

    def failure(self, rank: int) -> RuntimeError:
        """The exception ``rank`` raises on purpose."""
        suffix = ":setup" if self.fail_phase == "setup" else ""
        return RuntimeError(f"test hook {FAIL_HOOK_LABEL}={rank}{suffix}: rank {rank} fails on purpose")

    def delay(self, rank: int) -> float:
        """Seconds ``rank`` sleeps after writing each block."""
        if self.block_delay_ranks:
            return float(self.block_delay_ranks.get(rank, 0.0))
        return self.block_delay


#: No faults: what every production run uses.
NO_HOOKS = FaultHooks()
