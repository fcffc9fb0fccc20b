"""Available memory, for refusing blocks that cannot fit before they are allocated.

:func:`available_bytes` is the smallest of

- ``MCSIM_MEMORY_LIMIT`` (environment; bytes, or with a suffix ``K``, ``M``,
  ``G``, ``T``, optionally followed by ``iB``/``B``: powers of 1024), if set;
- ``MemAvailable`` of ``/proc/meminfo`` (Linux);
- the cgroup v2 limit ``memory.max - memory.current`` of this process (SLURM
  and container memory limits), when one is set.

If none is known (not Linux, no variable) no check is made.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

ENV_LIMIT = "MCSIM_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str, name: str = ENV_LIMIT) -> int:
    """Parse ``"123"``, ``"4G"``, ``"512MiB"``, ``"1.5 GB"`` (powers of 1024) to bytes.

    Raises
    ------
    ValueError
        ``"<name>: ..."`` for anything else.
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"{name}: expected a size such as 8G or 512MiB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_available() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> Optional[int]:
    try:
        rel = None
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip()
        if rel is None:
            return None
        d = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (d / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((d / "memory.current").read_text().strip())
        return max(int(limit) - current, 0)
    except (OSError, ValueError):
        return None


def available_bytes() -> tuple[Optional[int], str]:
    """Bytes this process can still allocate, and where the number comes from.

    Returns
    -------
    bytes : int or None
        None when nothing is known.
    source : str
        E.g. ``"MemAvailable in /proc/meminfo"`` or ``"MCSIM_MEMORY_LIMIT=4G"``.
    """
    cands = []
    env = os.environ.get(ENV_LIMIT, "").strip()
    if env:
        cands.append((parse_bytes(env), f"{ENV_LIMIT}={env}"))
    mem = _meminfo_available()
    if mem is not None:
        cands.append((mem, "MemAvailable in /proc/meminfo"))
    cg = _cgroup_available()
    if cg is not None:
        cands.append((cg, "cgroup memory.max"))
    if not cands:
        return None, "unknown"
    return min(cands)


def fmt_bytes(n: float) -> str:
    """``1.5 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"  # pragma: no cover
