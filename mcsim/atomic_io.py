"""Atomic file writes: temp file, fsync, rename; removal of temp files left by killed runs.

Every file of the store (shards, ``spec.json``, final point files) is
written to a temp file named ``.tmp-<host>-<pid>-<random>-<final name>`` next
to its destination and published by :func:`_publish` (fsync the file,
``os.replace``, fsync the directory), so a reader never sees a partial file.
:func:`_clean_temps` removes temp files whose writer is dead (same host) or
that are older than :data:`STALE_TEMP_SECONDS`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import uuid
from pathlib import Path
from typing import Iterator


TEMP_PREFIX = ".tmp-"
#: Age in seconds after which a temp file of an unknown (other-host) process is removed.
STALE_TEMP_SECONDS = 24 * 3600


def _temp_path(directory: Path, final_name: str) -> Path:
    host = socket.gethostname().split(".")[0].replace("-", "_")
    return directory / f"{TEMP_PREFIX}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final_name}"


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` and atomically rename it to ``final`` (then fsync the directory)."""
    _fsync_path(tmp)
    os.replace(tmp, final)
    _fsync_path(final.parent)


@contextlib.contextmanager
def _atomic_file(final: Path) -> Iterator[Path]:
    """Write a file atomically: yield a fresh temporary path next to ``final``.

    When the ``with`` body completes, the temporary file is published as
    ``final`` (:func:`_publish`: fsync, atomic rename); if the body or the
    publication raises (including ``KeyboardInterrupt``), the temporary file is
    removed and the exception propagates, so ``final`` is never partial.

    Parameters
    ----------
    final : Path
        Destination path; its directory must exist.

    Yields
    ------
    Path
        Temporary path in ``final.parent`` (see :func:`_temp_path`) to write to.
    """
    tmp = _temp_path(final.parent, final.name)
    try:
        yield tmp
        _publish(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _clean_temps(directories, max_age: float, suffix: str = "") -> list[Path]:
    import time

    host = socket.gethostname().split(".")[0].replace("-", "_")
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for p in directory.iterdir():
            if not p.name.startswith(TEMP_PREFIX) or not p.name.endswith(suffix):
                continue
            parts = p.name[len(TEMP_PREFIX):].split("-")
            stale = False
            try:
                stale = time.time() - p.stat().st_mtime > max_age
            except OSError:
                continue
            if not stale and len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
                stale = not _pid_alive(int(parts[1]))
            if stale:
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
