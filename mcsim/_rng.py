"""Counter-based random streams: one independent stream per realization (private).

Scheme
------
A 128-bit Philox key is derived from the root seed and the point identity::

    key = int.from_bytes(sha256(b"mcsim-v1\\0" + str(seed) + "\\0" + point_key)[:16], "little")

Realization ``r`` uses ``numpy.random.Philox(key=key, counter=[0, 0, r, 0])``,
i.e. the counter block ``r * 2**128 .. (r+1) * 2**128 - 1`` of that key.  Streams
of different realizations are disjoint, and realization r's stream depends only
on (seed, point_key, r): any split of realizations into blocks, ranks or
threads reproduces it bit for bit.  The per-step readouts ``y_steps`` use the
sub-stream ``counter=[0, 0, r, 1]`` (:data:`STEP_READOUT_STREAM`), disjoint from
every realization's main stream.  Normals come from
``numpy.random.Generator.standard_normal`` (ziggurat) on that bit generator.

Sampler stream version
----------------------
:data:`SAMPLER_STREAM_VERSION` names the mapping from (point key, r) to the
numbers of realization r: the key derivation here, the order in which the
samplers consume the stream, and the arithmetic of the samplers and kernels.
**Bump it whenever a change to mcsim changes the numbers of a realization**
(``tests/test_mcsim_stream_version.py`` pins a hash of a few realizations to
it and fails, telling you so, if the numbers change without a bump).  The
store records it in every point directory, shard and final file, reuses
stored realizations only when it matches, and refuses a mismatch (it never
mixes realizations drawn by different code).
"""

from __future__ import annotations

import hashlib

import numpy as np

_TAG = b"mcsim-v1\0"

SAMPLER_STREAM_VERSION = 3
"""Version of the realization numbers (see the module docstring); bump when they change.

History: 1 = stores written before versions were recorded (never reused);
2 = first recorded version (point key scheme ``mcsim-point-key-v2``);
3 = BLAS-3 RNN projection (block CGS2 + Cholesky-QR), GEMM direct sampler,
distinct patterns drawn once (the number of normals consumed depends on the
number of distinct patterns)."""


STEP_READOUT_STREAM = 1
"""Counter word 3 of the per-step readout normals (``y_steps``) of a realization."""


def stream_key(seed: int, point_key: str) -> int:
    """128-bit Philox key for (seed, point_key).

    Parameters
    ----------
    seed : int
        Root seed (>= 0).
    point_key : str
        Point identity (e.g. ``PointSpec.point_key()``).

    Returns
    -------
    int
        Key in ``[0, 2**128)``.
    """
    h = hashlib.sha256(_TAG + str(int(seed)).encode() + b"\0" + point_key.encode()).digest()
    return int.from_bytes(h[:16], "little")


def realization_generator(key: int, r: int, stream: int = 0) -> np.random.Generator:
    """Generator of realization ``r`` (Philox, counter word 2 = r, word 3 = ``stream``).

    Parameters
    ----------
    key : int
        From :func:`stream_key`.
    r : int
        Global realization index (0 <= r < 2**64).
    stream : int, optional
        Sub-stream of the realization: 0 (default) for the network itself;
        :data:`STEP_READOUT_STREAM` for the per-step readouts (``y_steps``),
        drawn apart so that requesting them never changes the other
        observables.  Streams ``(r, s)`` are disjoint for any realization
        consuming fewer than ``2**128`` Philox blocks.

    Returns
    -------
    numpy.random.Generator
    """
    if r < 0 or r >= 2**64:
        raise ValueError(f"start: realization index {r} out of range [0, 2**64)")
    if stream < 0 or stream >= 2**64:
        raise ValueError(f"stream: sub-stream index {stream} out of range [0, 2**64)")
    return np.random.Generator(np.random.Philox(key=key, counter=[0, 0, int(r), int(stream)]))
