"""MPI helpers that wait without spinning a core, and the abort fallback.

MPICH busy-waits in blocking calls, so waiting ranks poll non-blocking
requests with growing sleeps instead (:func:`_wait`, :func:`_wait_buffer`,
:func:`_barrier`, :func:`_bcast_object`) and leave the CPU to the ranks that
work.  :func:`_fail` reports an unexpected exception and aborts every rank
(``MPI_Abort``) after a grace period, for failures outside sampling.
"""

from __future__ import annotations

import time

from .progress import _log, _log_failure


POLL_SECONDS = 0.02  # longest sleep between polls of a rank waiting for a message (bcast, grant)
ABORT_GRACE_SECONDS = 1.0  # before MPI Abort: time for the launcher to forward the failure message


def _fail(comm, rank: int, tb: str) -> None:
    """Report an unexpected exception and abort every rank (fallback for failures outside sampling)."""
    _log_failure(rank, tb)
    if comm is not None and comm.Get_size() > 1:
        _log(f"mcsim: rank {rank}: aborting all ranks (MPI Abort)")
        time.sleep(ABORT_GRACE_SECONDS)  # let the launcher forward this rank's stderr before the kill
        comm.Abort(1)


def _wait(req, max_delay: float = 0.005):
    """Wait for a non-blocking request without spinning a core; return its message.

    Sleeps between tests grow from 0.1 ms to ``max_delay`` (default 5 ms:
    used for block grants, which normally arrive within milliseconds).
    """
    delay = 0.0001
    while True:
        flag, msg = req.test()
        if flag:
            return msg
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _wait_buffer(req, max_delay: float = 0.05) -> None:
    """Wait for a non-blocking buffer operation, sleeping up to ``max_delay`` s between tests."""
    delay = 0.0005
    while not req.Test():
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def _barrier(comm) -> None:
    """Barrier that does not busy-wait (ranks leave after at most ``POLL_SECONDS`` of skew)."""
    _wait_buffer(comm.Ibarrier(), max_delay=POLL_SECONDS)


def _bcast_object(comm, obj, root: int = 0):
    """Broadcast a picklable object with non-blocking collectives polled with sleeps.

    Unlike ``comm.bcast`` this does not busy-wait (MPICH spins in blocking
    calls), so waiting ranks leave the CPU to rank 0 while it plans.
    """
    import pickle

    import numpy as np

    data = pickle.dumps(obj) if comm.Get_rank() == root else b""
    size = np.array([len(data)], dtype=np.int64)
    _wait_buffer(comm.Ibcast(size, root=root))
    buf = np.frombuffer(data, dtype=np.uint8).copy() if comm.Get_rank() == root else np.empty(int(size[0]), np.uint8)
    _wait_buffer(comm.Ibcast(buf, root=root))
    return obj if comm.Get_rank() == root else pickle.loads(buf.tobytes())
