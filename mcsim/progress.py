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

import math
import sys
import threading
import time
import traceback
from typing import Callable, Optional, TextIO


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


class UnitTimeModel:
    """Online fit ``seconds = k * predicted + c`` of finished work units, weighted to the recent ones (for the ETA).

    ``predicted`` is the cost model's prediction of a unit (:mod:`mcsim.cost`)
    and ``c`` the per-unit overhead the cost model does not know (writing the
    shard, messages).  Units are handed out most expensive first, so the
    units still to do are the cheap ones, often of another kind (DNN after
    RNN) for which the cost model is off by another factor.  A plain least
    squares fit of all finished units is dominated by the first, most
    expensive ones and extrapolates their factor to the rest; this fit
    therefore

    * weighs each unit by ``1 / predicted**2`` (relative errors: a cheap
      unit counts as much as an expensive one), and
    * forgets old units exponentially with a half-life of ``half_life``
      finished units (the most recently finished units are the closest in
      cost and kind to the remaining ones).

    After one unit (or if the fit is degenerate) it is the weighted ratio
    ``k = sum(w p y) / sum(w p^2)``, ``c = 0``; both coefficients are kept >= 0.

    Parameters
    ----------
    half_life : float
        Finished units after which a unit's weight has halved.
    """

    def __init__(self, half_life: float = 16.0):
        if not half_life > 0:
            raise ValueError(f"half_life: must be > 0, got {half_life!r}")
        self.decay = 0.5 ** (1.0 / float(half_life))
        self.n = 0
        self.sw = self.sx = self.sy = self.sxx = self.sxy = 0.0

    def add(self, predicted: float, seconds: float) -> None:
        """Record one finished unit (ignored unless both numbers are finite and ``predicted > 0``)."""
        if not (math.isfinite(predicted) and math.isfinite(seconds) and predicted > 0):
            return
        d = self.decay
        w = 1.0 / (predicted * predicted)
        self.n += 1
        self.sw = d * self.sw + w
        self.sx = d * self.sx + w * predicted
        self.sy = d * self.sy + w * seconds
        self.sxx = d * self.sxx + w * predicted * predicted
        self.sxy = d * self.sxy + w * predicted * seconds

    def coefficients(self) -> tuple:
        """``(k, c)`` of the current fit (``(nan, nan)`` before the first unit)."""
        if self.n == 0:
            return float("nan"), float("nan")
        ratio = max(self.sxy / self.sxx, 0.0), 0.0
        if self.n < 2:
            return ratio
        var = self.sw * self.sxx - self.sx * self.sx
        if var <= 1e-9 * self.sw * self.sxx:
            return ratio
        k = (self.sw * self.sxy - self.sx * self.sy) / var
        c = (self.sy - k * self.sx) / self.sw
        if k <= 0:
            return 0.0, max(self.sy / self.sw, 0.0)
        if c < 0:
            return ratio
        return k, c

    def seconds(self, predicted: float, units: int) -> float:
        """Predicted wall seconds of ``units`` units of total predicted cost ``predicted`` (nan before any unit)."""
        k, c = self.coefficients()
        return k * predicted + c * units


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
    realizations sampled in this run.  The ETA is the predicted seconds of
    the remaining units, from the cost model (:mod:`mcsim.cost`) calibrated
    on the recently finished units (:class:`UnitTimeModel`, fed by
    :meth:`observe`), divided by the parallelism so far (measured seconds
    of the finished units per elapsed second, which covers the number of
    ranks), so expensive points weigh more than cheap ones.

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
    clock : callable, optional
        Monotonic seconds (default :func:`time.monotonic`; tests inject a fake clock).
    """

    def __init__(self, total_blocks: int, total_realizations: int, enabled: bool = True,
                 interval: float = 30.0, stream: Optional[TextIO] = None, points_total: Optional[int] = None,
                 points_base: int = 0, realizations_base: int = 0, total_cost: float = 0.0,
                 clock: Optional[Callable[[], float]] = None):
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
        self.unit_model = UnitTimeModel()
        self.seconds_done = 0.0  # measured seconds of the finished units (all ranks)
        self.clock = clock or (lambda: time.monotonic())
        self.t0 = self.clock()
        self._last = self.t0
        self._width = 0
        self._lock = threading.Lock()

    def line(self, blocks: int, realizations: int, points: int = 0, cost: float = 0.0) -> str:
        """The progress text (no newline) after ``blocks`` units / ``realizations`` sampled in this run.

        ``points`` (finalised or failed in this run) and ``cost`` (predicted
        seconds of the units done) are used by the campaign line only.
        """
        elapsed = self.clock() - self.t0
        rate = realizations / elapsed if elapsed > 0 else 0.0
        if self.points_total is None:
            remaining = self.total_realizations - realizations
            eta = remaining / rate if rate > 0 else float("inf")
            pct = 100.0 * realizations / self.total_realizations if self.total_realizations else 100.0
            return (f"mcsim: blocks {blocks}/{self.total_blocks}, realizations {realizations}/"
                    f"{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, elapsed "
                    f"{_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta) if remaining > 0 else '0:00:00'}")
        done = self.realizations_base + realizations
        eta = self.eta(blocks, cost, elapsed)
        pct = 100.0 * done / self.total_realizations if self.total_realizations else 100.0
        finished = blocks >= self.total_blocks
        return (f"mcsim campaign: points {self.points_base + points}/{self.points_total}, blocks {blocks}/"
                f"{self.total_blocks}, realizations {done}/{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, "
                f"elapsed {_fmt_seconds(elapsed)}, ETA {'0:00:00' if finished else _fmt_seconds(eta)}")

    def eta(self, blocks: int, cost: float, elapsed: Optional[float] = None) -> float:
        """Campaign ETA in seconds after ``blocks`` units of predicted ``cost`` (inf while unknown).

        ``(calibrated seconds of the remaining units) / (seconds_done / elapsed)``:
        the remaining units at the recent units' seconds per predicted
        second (:class:`UnitTimeModel`), over the parallelism so far.
        """
        if elapsed is None:
            elapsed = self.clock() - self.t0
        left = self.unit_model.seconds(self.total_cost - cost, self.total_blocks - blocks)
        if not (self.seconds_done > 0 and elapsed > 0 and math.isfinite(left)):
            return float("inf")
        return max(left, 0.0) * elapsed / self.seconds_done

    def observe(self, predicted: float, seconds: float) -> None:
        """Record a finished unit's predicted cost and measured wall seconds (for the campaign ETA)."""
        with self._lock:
            self.unit_model.add(predicted, seconds)
            if math.isfinite(seconds) and seconds > 0:
                self.seconds_done += seconds

    def update(self, blocks: int, realizations: int, force: bool = False, points: int = 0,
               cost: float = 0.0) -> None:
        """Redraw / print the line if due (thread-safe)."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
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
