"""Progress and failure reporting on stderr.

:class:`Progress` is rank 0's progress display: one line per run or campaign
(points, blocks and realizations done, rate, elapsed time, ETA weighted by
the cost model; redrawn in place on a TTY, one line every ``interval``
seconds otherwise).  :func:`_log` writes one status line,
:func:`_log_failure` the ``mcsim: rank R failed:`` message with a traceback
(the one format of every rank failure) and :func:`_sampling_failure` reports
the exception being handled as a rank's sampling failure.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Optional, TextIO


def _log(msg: str, stream: Optional[TextIO] = None) -> None:
    stream = stream or sys.stderr
    stream.write(msg + "\n")
    stream.flush()


def _fmt_list(values) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _fmt_seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}"


class Progress:
    """Plain-text progress display on one stream (rank 0's stderr): one line per run or campaign.

    On a TTY the line is redrawn in place (carriage return) at most every
    0.5 s; otherwise a full line is printed at most every ``interval``
    seconds, with no control characters (readable in a log file).  A final
    line is always printed by :meth:`close` (unless disabled).

    A single-point run shows ``mcsim: blocks b/B, realizations r/R (p%),
    RATE real/s, elapsed H:MM:SS, ETA H:MM:SS`` over the blocks of this run.
    A campaign (``points_total`` given) shows ``mcsim campaign: points d/P,
    blocks b/B, realizations r/R (p%), RATE real/s, elapsed ..., ETA ...``
    over all its points: ``d`` counts points finalised, skipped or failed,
    ``r`` includes the realizations already in the store, the rate counts
    realizations sampled in this run, and the ETA is the cost model's
    remaining seconds (:mod:`mcsim.cost`) scaled by the measured speed
    (elapsed seconds per predicted second so far), so expensive points
    weigh more than cheap ones.

    Parameters
    ----------
    total_blocks, total_realizations : int
        Work of this run (reused shards excluded).
    enabled : bool
    interval : float
        Seconds between lines when the stream is not a TTY.
    stream : file, optional
        Default ``sys.stderr``.
    points_total : int, optional
        Campaign: number of points (switches to the campaign line).
    points_base, realizations_base : int
        Campaign: points and realizations already done before sampling (skipped points, reused shards).
    total_cost : float
        Campaign: predicted seconds of this run's units (for the ETA).
    """

    def __init__(self, total_blocks: int, total_realizations: int, enabled: bool = True,
                 interval: float = 30.0, stream: Optional[TextIO] = None, points_total: Optional[int] = None,
                 points_base: int = 0, realizations_base: int = 0, total_cost: float = 0.0):
        self.total_blocks = total_blocks
        self.total_realizations = total_realizations
        self.points_total = points_total
        self.points_base = points_base
        self.realizations_base = realizations_base
        self.total_cost = float(total_cost)
        busy = total_blocks > 0 if points_total is None else points_total > 0
        self.enabled = enabled and busy
        self.stream = stream or sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = 0.5 if self.tty else max(float(interval), 0.1)
        self.t0 = time.monotonic()
        self._last = self.t0
        self._width = 0
        self._lock = threading.Lock()

    def line(self, blocks: int, realizations: int, points: int = 0, cost: float = 0.0) -> str:
        """The progress text (no newline) after ``blocks`` units / ``realizations`` sampled in this run.

        ``points`` (finalised or failed in this run) and ``cost`` (predicted
        seconds of the units done) are used by the campaign line only.
        """
        elapsed = time.monotonic() - self.t0
        rate = realizations / elapsed if elapsed > 0 else 0.0
        if self.points_total is None:
            remaining = self.total_realizations - realizations
            eta = remaining / rate if rate > 0 else float("inf")
            pct = 100.0 * realizations / self.total_realizations if self.total_realizations else 100.0
            return (f"mcsim: blocks {blocks}/{self.total_blocks}, realizations {realizations}/"
                    f"{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, elapsed "
                    f"{_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta) if remaining > 0 else '0:00:00'}")
        done = self.realizations_base + realizations
        left = self.total_cost - cost
        eta = left * elapsed / cost if cost > 0 else float("inf")
        pct = 100.0 * done / self.total_realizations if self.total_realizations else 100.0
        finished = blocks >= self.total_blocks
        return (f"mcsim campaign: points {self.points_base + points}/{self.points_total}, blocks {blocks}/"
                f"{self.total_blocks}, realizations {done}/{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, "
                f"elapsed {_fmt_seconds(elapsed)}, ETA {'0:00:00' if finished else _fmt_seconds(eta)}")

    def update(self, blocks: int, realizations: int, force: bool = False, points: int = 0,
               cost: float = 0.0) -> None:
        """Redraw / print the line if due (thread-safe)."""
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return
            self._last = now
            text = self.line(blocks, realizations, points, cost)
            if self.tty:
                pad = max(self._width - len(text), 0)
                self._width = len(text)
                self.stream.write("\r" + text + " " * pad)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def close(self, blocks: int, realizations: int, points: int = 0, cost: float = 0.0) -> None:
        """Print the final line (and end the redrawn line on a TTY)."""
        if not self.enabled:
            return
        self.update(blocks, realizations, force=True, points=points, cost=cost)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _log_failure(rank: int, tb: str) -> None:
    """Print ``mcsim: rank R failed:`` and the traceback ``tb`` (the one format of every rank failure)."""
    _log(f"mcsim: rank {rank} failed:\n{tb.rstrip()}")


def _sampling_failure(rank: int) -> str:
    """Print the current exception's traceback as rank ``rank``'s failure; return its one-line summary."""
    exc_type, exc, _ = sys.exc_info()
    _log_failure(rank, traceback.format_exc())
    return f"{exc_type.__name__}: {exc}"
