"""Per-point run lock: an exclusive ``flock`` on ``STORE/<point_key>/.lock``.

A run holds :class:`PointLock` while it plans, samples and finalises a
point; a second run of the same point waits for it, then reuses its shards.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Optional

from .atomic_io import _utc_now
from .store_layout import PathLike


class PointLock:
    """Exclusive ``flock`` on ``<point_dir>/.lock``, held by a run while it plans, samples and finalises.

    :meth:`acquire` tries once and returns ``None`` on success, or a
    description of the current holder; :meth:`wait` blocks until the lock is
    free.  The lock is released automatically when the process dies.  On a
    file system without ``flock`` support there is no locking (shard and
    final-file writes stay atomic).
    """

    def __init__(self, pdir: PathLike):
        self.path = Path(pdir) / ".lock"
        self._fd: Optional[int] = None

    def acquire(self) -> Optional[str]:
        """Try to take the lock once; ``None`` on success, else who holds it."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                try:
                    holder = os.pread(fd, 400, 0).decode(errors="replace").strip() or "unknown process"
                finally:
                    os.close(fd)
                return holder
            os.close(fd)  # locking unsupported on this file system: no detection
            return None
        info = f"host={socket.gethostname()} pid={os.getpid()} since={_utc_now()}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd
        return None

    def wait(self, on_wait=None, poll: float = 0.2) -> None:
        """Block until the lock is taken; call ``on_wait(holder)`` once if another process holds it."""
        import time

        holder = self.acquire()
        if holder is None:
            return
        if on_wait is not None:
            on_wait(holder)
        while self.acquire() is not None:
            time.sleep(poll)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
