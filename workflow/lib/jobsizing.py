"""Job sizing of the workflow: grouping parameter points into campaign jobs, and their SLURM runtime.

Pure bookkeeping (no numerics, no Snakemake): loaded by ``workflow/rules/common.smk``
and tested directly by ``tests/test_workflow_jobsizing.py``.  Costs are predicted
single-core seconds from :func:`mcsim.cost.estimate_seconds` (the one cost model);
the callers pass them in.

Grouping is *content-defined* (as in the content-defined chunking of backup
tools): points are walked in a fixed order (their parameter tuple), and a chunk
ends after a point that is an *anchor*.  Whether a point is an anchor depends only
on the point itself: a fixed hash of its name, read as u in [0, 1), is below
``cost / target + 1 / max_items``.  Chunks therefore hold on average about
``target`` of cost (or ``max_items`` points).  Hard limits keep every chunk below
``2 * target`` of cost (a point that alone costs more gets a chunk of its own)
and at most ``max_items`` points.

Because anchors do not depend on the other points, adding grid values changes
only the chunks that receive new points (split or grown at their own anchors),
plus, after a hard limit, the chunks up to the next anchor; every other chunk
keeps exactly its membership and its id (the hash of its member names), so
Snakemake reruns only the changed chunks.
"""

from __future__ import annotations

import hashlib
import math
from typing import Hashable, Sequence

__all__ = ["HARD_LIMIT", "chunk", "chunk_id", "runtime_minutes"]

HARD_LIMIT = 2.0
"""A chunk is closed at HARD_LIMIT * target of cost, whether or not the point is an anchor."""


def _uniform(text: str) -> float:
    """Fixed pseudo-random number in [0, 1) of a text (SHA-256; the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def chunk(items: Sequence[tuple[str, Hashable, float]], target: float, max_items: int) -> list[list[str]]:
    """Group named items into chunks of bounded total cost and count.

    Parameters
    ----------
    items : sequence of (name, sort_key, cost)
        ``name`` unique str; ``sort_key`` orders the walk (e.g. the point's
        parameter tuple); ``cost`` >= 0 (e.g. predicted seconds).
    target : float
        Mean cost of a chunk (> 0; ``math.inf``: sized by count only).  No
        chunk reaches ``HARD_LIMIT * target`` except by its last item.
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
        anchor = _uniform(name) < c / target + 1.0 / max_items
        if anchor or cost >= HARD_LIMIT * target or len(current) >= max_items:
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
