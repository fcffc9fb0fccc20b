"""Fault injection for the test-suite: the :class:`FaultHooks` object handed to the block worker.

Production runs use :data:`NO_HOOKS` (nothing injected).  The MPI tests run
``python -m mcsim run`` / ``campaign`` / ``posterior --store`` in subprocesses and pass the hooks
with the hidden command-line option ``--test-hooks JSON`` (not shown by
``--help``), which :func:`FaultHooks.from_json` turns into the object passed
down to :func:`mcsim.campaign.run_campaign` and
:class:`mcsim.worker.BlockWorker`.  No environment variable is read.

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
``fail_point`` : str
    Name of a campaign point whose blocks raise ``RuntimeError`` on purpose
    (on every rank; the other points go on).
``kill_after_blocks`` : int
    Every rank kills its own process with ``SIGKILL`` right after writing
    this many blocks (a real ``kill -9`` mid-run, for the resume tests).
    In ``mcsim posterior --store`` a block is a chain checkpoint segment
    (:mod:`mcsim.chain_worker`), so the kill lands mid-chain.
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
    fail_point : str or None
        Campaign point whose blocks fail on purpose.
    kill_after_blocks : int or None
        Blocks a rank writes before it SIGKILLs itself.
    """

    fail_rank: Optional[int] = None
    fail_phase: str = "sampling"
    block_delay: float = 0.0
    block_delay_ranks: Mapping[int, float] = field(default_factory=dict)
    fail_point: Optional[str] = None
    kill_after_blocks: Optional[int] = None

    @classmethod
    def from_json(cls, text: str) -> "FaultHooks":
        """Parse the ``--test-hooks`` value (see the module docstring); raise ``ValueError`` if malformed."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError("must be a JSON object")
        unknown = sorted(set(raw) - {"fail_rank", "fail_phase", "block_delay", "fail_point", "kill_after_blocks"})
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        fail_rank = raw.get("fail_rank")
        if fail_rank is not None and (not isinstance(fail_rank, int) or isinstance(fail_rank, bool)):
            raise ValueError(f"fail_rank must be an integer, got {fail_rank!r}")
        phase = raw.get("fail_phase", "sampling")
        if phase not in PHASES:
            raise ValueError(f"fail_phase must be one of {list(PHASES)}, got {phase!r}")
        fail_point = raw.get("fail_point")
        if fail_point is not None and not isinstance(fail_point, str):
            raise ValueError(f"fail_point must be a point name (string), got {fail_point!r}")
        kill = raw.get("kill_after_blocks")
        if kill is not None and (not isinstance(kill, int) or isinstance(kill, bool) or kill < 1):
            raise ValueError(f"kill_after_blocks must be an integer >= 1, got {kill!r}")
        delay = raw.get("block_delay", 0.0)
        if isinstance(delay, dict):
            try:
                ranks = {int(r): float(s) for r, s in delay.items()}
            except (TypeError, ValueError):
                raise ValueError(f"block_delay must map ranks to seconds, got {delay!r}") from None
            return cls(fail_rank, phase, 0.0, ranks, fail_point, kill)
        try:
            return cls(fail_rank, phase, float(delay), {}, fail_point, kill)
        except (TypeError, ValueError):
            raise ValueError(f"block_delay must be seconds or an object of rank to seconds, got {delay!r}") from None

    def fails(self, rank: int, phase: str) -> bool:
        """Whether ``rank`` is to fail in ``phase`` (``"sampling"`` or ``"setup"``)."""
        return self.fail_rank is not None and self.fail_rank == rank and self.fail_phase == phase

    def failure(self, rank: int) -> RuntimeError:
        """The exception ``rank`` raises on purpose."""
        suffix = ":setup" if self.fail_phase == "setup" else ""
        return RuntimeError(f"test hook {FAIL_HOOK_LABEL}={rank}{suffix}: rank {rank} fails on purpose")

    def point_failure(self, name: str) -> Optional[RuntimeError]:
        """The exception a block of point ``name`` raises on purpose, or None."""
        if self.fail_point is not None and self.fail_point == name:
            return RuntimeError(f"test hook fail_point={name}: point {name} fails on purpose")
        return None

    def after_block(self, blocks_written: int) -> None:
        """Kill this process with SIGKILL once it wrote ``kill_after_blocks`` blocks (no-op otherwise)."""
        if self.kill_after_blocks is not None and blocks_written >= self.kill_after_blocks:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def delay(self, rank: int) -> float:
        """Seconds ``rank`` sleeps after writing each block."""
        if self.block_delay_ranks:
            return float(self.block_delay_ranks.get(rank, 0.0))
        return self.block_delay


#: No faults: what every production run uses.
NO_HOOKS = FaultHooks()
