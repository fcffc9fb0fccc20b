"""Job sizing of the workflow: grouping parameter points into campaign jobs, and their SLURM runtime.

Pure bookkeeping (no numerics, no Snakemake): loaded by ``workflow/rules/common.smk``
and tested directly by ``tests/test_workflow_jobsizing.py``.  Costs are predicted
single-core seconds from :func:`mcsim.cost.estimate_seconds` (the one cost model);
the callers pass them in.

Grouping is *content-defined* (as in content-defined chunking of backup tools):
points are walked in a fixed order (their parameter tuple), and a chunk ends after
a point when

* the chunk reached ``target`` (cost) or ``max_items`` points (hard limits), or
* the chunk reached :data:`MIN_FILL` of either limit and the point is an
  *anchor*: a fixed hash of its name is divisible by :data:`ANCHOR_PERIOD`.

Anchors depend only on a point's own name, so adding grid values changes the
chunk that receives the new points and at most a few neighbours until the
boundaries fall on the same anchor again; every other chunk keeps exactly its
membership (and its id, the hash of its member names), so Snakemake reruns only
the changed chunks.  Chunks hold between MIN_FILL and all of the limits, except
the last chunk of an experiment and points that alone exceed ``target``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Hashable, Sequence

__all__ = ["ANCHOR_PERIOD", "MIN_FILL", "chunk", "chunk_id", "runtime_minutes"]

ANCHOR_PERIOD = 3
"""A point is an anchor (a preferred chunk boundary) with probability 1/ANCHOR_PERIOD."""

MIN_FILL = 0.75
"""Fraction of a limit from which a chunk may end at an anchor."""


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def chunk(items: Sequence[tuple[str, Hashable, float]], target: float, max_items: int) -> list[list[str]]:
    """Group named items into chunks of bounded total cost and count.

    Parameters
    ----------
    items : sequence of (name, sort_key, cost)
        ``name`` unique str; ``sort_key`` orders the walk (e.g. the point's
        parameter tuple); ``cost`` >= 0 (e.g. predicted seconds).
    target : float
        Cost at which a chunk is closed (> 0).
    max_items : int
        Largest number of items in a chunk (>= 1).

    Returns
    -------
    list of list of str
        Item names per chunk, in walk order.  Deterministic: a function of
        ``items`` (as a set), ``target`` and ``max_items`` only.
    """
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target!r}")
    if int(max_items) < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items!r}")
    names = [name for name, _, _ in items]
    if len(set(names)) != len(names):
        raise ValueError("item names must be unique")
    chunks, current, cost = [], [], 0.0
    for name, _, c in sorted(items, key=lambda item: (item[1], item[0])):
        if c < 0 or not math.isfinite(c):
            raise ValueError(f"{name}: cost must be finite and >= 0, got {c!r}")
        current.append(name)
        cost += c
        full = cost >= target or len(current) >= max_items
        filled = cost >= MIN_FILL * target or len(current) >= MIN_FILL * max_items
        if full or (filled and _hash(name) % ANCHOR_PERIOD == 0):
            chunks.append(current)
            current, cost = [], 0.0
    if current:
        chunks.append(current)
    return chunks


def chunk_id(names: Sequence[str]) -> str:
    """Short stable id of a chunk: 8 hex digits of the hash of its member names (order-independent)."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:8]


def runtime_minutes(seconds: float, tasks: int, safety: float, margin: float) -> int:
    """Wall-time request (minutes) of a job predicted to take ``seconds`` of single-core work.

    ``ceil(safety * seconds / tasks / 60 + margin)``: the work is spread over
    ``tasks`` ranks, ``safety`` covers the cost model's error and a slower
    machine, ``margin`` (minutes) the start-up (MPI launch, imports, Numba
    cache loading) and finalisation.

    Parameters
    ----------
    seconds : float
        Predicted single-core seconds (sum over the job's points).
    tasks : int
        MPI ranks of the job.
    safety : float
        Multiplicative safety factor (>= 1).
    margin : float
        Start-up margin in minutes (>= 0).

    Returns
    -------
    int
        Minutes, >= 1.
    """
    return max(1, math.ceil(safety * seconds / max(int(tasks), 1) / 60.0 + margin))
