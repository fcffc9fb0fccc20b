"""Progress and failure reporting on stderr.

:class:`Progress` is rank 0's progress display (blocks and realizations
done, rate, elapsed time, ETA; redrawn in place on a TTY, one line every
``interval`` seconds otherwise).  :func:`_log` writes one status line,
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
    """Plain-text progress display on one stream (rank 0's stderr).

    On a TTY the line is redrawn in place at most every 0.5 s; otherwise a
    full line is printed every ``interval`` seconds.  A final line is always
    printed by :meth:`close` (unless disabled).

    Parameters
    ----------
    total_blocks, total_realizations : int
        Work of this run (reused shards excluded).
    enabled : bool
    interval : float
        Seconds between lines when the stream is not a TTY.
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(self, total_blocks: int, total_realizations: int, enabled: bool = True,
                 interval: float = 30.0, stream: Optional[TextIO] = None):
        self.total_blocks = total_blocks
        self.total_realizations = total_realizations
        self.enabled = enabled and total_blocks > 0
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

    def line(self, blocks: int, realizations: int) -> str:
        elapsed = time.monotonic() - self.t0
        rate = realizations / elapsed if elapsed > 0 else 0.0
        remaining = self.total_realizations - realizations
        eta = remaining / rate if rate > 0 else float("inf")
        pct = 100.0 * realizations / self.total_realizations if self.total_realizations else 100.0
        return (f"mcsim: blocks {blocks}/{self.total_blocks}, realizations {realizations}/"
                f"{self.total_realizations} ({pct:.0f}%), {rate:.3g} real/s, elapsed "
                f"{_fmt_seconds(elapsed)}, ETA {_fmt_seconds(eta) if remaining > 0 else '0:00:00'}")

    def update(self, blocks: int, realizations: int, force: bool = False) -> None:
        """Redraw / print the line if due (thread-safe)."""
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return
            self._last = now
            text = self.line(blocks, realizations)
            if self.tty:
                pad = max(self._width - len(text), 0)
                self._width = len(text)
                self.stream.write("\r" + text + " " * pad)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def close(self, blocks: int, realizations: int) -> None:
        if not self.enabled:
            return
        self.update(blocks, realizations, force=True)
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
