"""Random streams: one independent stream per realization (private).

Scheme
------
A 128-bit key is derived from the root seed and the point identity::

    key = int.from_bytes(sha256(b"mcsim-v1\\0" + str(seed) + "\\0" + point_key)[:16], "little")

Realization ``r`` uses the bit generator ``numpy.random.SFC64`` seeded by
``numpy.random.SeedSequence(entropy=key, spawn_key=(r, 0))``: NumPy's scheme
for parallel streams (the spawn key is hashed with the entropy into the
generator's 192-bit initial state).  Realization r's stream depends only on
(seed, point_key, r): any split of realizations into blocks, ranks or threads
reproduces it bit for bit.  The per-step readouts ``y_steps`` use the
sub-stream ``spawn_key=(r, 1)`` (:data:`STEP_READOUT_STREAM`).  Normals come
from ``numpy.random.Generator.standard_normal`` (ziggurat) on that bit
generator.

Streams are independent with overwhelming probability rather than disjoint by
construction (as the counter blocks of Philox, used up to stream version 3,
were).  The bound is set by SeedSequence's 128-bit entropy pool: two of N
streams start from the same state with probability about N**2 / 2**129, below
2**-48 for N = 10**12 realizations; overlaps of distinct SFC64 states (cycles of
at least 2**64, about 2**255 on average) are far less likely still.  SFC64 was chosen for speed: 7.6 ns per normal against Philox's 11.4
on the 2-core test machine (measured 2026-12-07 in one run), and normals are
30-50 % of the sampling time of the paper's Fig. 2 grid.

Sampler stream version
----------------------
:data:`SAMPLER_STREAM_VERSION` names the mapping from (point key, r) to the
numbers of realization r: the key derivation here, the order in which the
samplers consume the stream, and the arithmetic of the samplers and kernels.
**Bump it whenever a change to mcsim changes the numbers of a realization**
(``tests/test_mcsim_trust.py::test_golden_stream_is_pinned_to_the_stream_version``
pins a few realizations to it and fails, telling you so, if the numbers
change without a bump).  The
store records it in every point directory, shard and final file, reuses
stored realizations only when it matches, and refuses a mismatch (it never
mixes realizations drawn by different code).
"""

from __future__ import annotations

import hashlib

import numpy as np

_TAG = b"mcsim-v1\0"

SAMPLER_STREAM_VERSION = 4
"""Version of the realization numbers (see the module docstring); bump when they change.

History: 1 = stores written before versions were recorded (never reused);
2 = first recorded version (point key scheme ``mcsim-point-key-v2``);
3 = BLAS-3 RNN projection (block CGS2 + Cholesky-QR), GEMM direct sampler,
distinct patterns drawn once (the number of normals consumed depends on the
number of distinct patterns);
4 = SFC64 seeded by SeedSequence(key, spawn_key=(r, stream)) instead of Philox counter
blocks (normals about 1.5x faster)."""


STEP_READOUT_STREAM = 1
"""Counter word 3 of the per-step readout normals (``y_steps``) of a realization."""


def stream_key(seed: int, point_key: str) -> int:
    """128-bit stream key for (seed, point_key).

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
    """Generator of realization ``r``: SFC64 seeded by ``SeedSequence(key, spawn_key=(r, stream))``.

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
        observables.  Distinct ``(key, r, stream)`` give independent
        streams (see the module docstring).

    Returns
    -------
    numpy.random.Generator
    """
    if r < 0 or r >= 2**64:
        raise ValueError(f"start: realization index {r} out of range [0, 2**64)")
    if stream < 0 or stream >= 2**64:
        raise ValueError(f"stream: sub-stream index {stream} out of range [0, 2**64)")
    seed = np.random.SeedSequence(entropy=key, spawn_key=(int(r), int(stream)))
    return np.random.Generator(np.random.SFC64(seed))
