"""SHA-256 checksums of shard contents and of final-file datasets.

A checksum covers the names, dtypes, shapes and raw C-order bytes of the
arrays (:func:`checksum_arrays`); :func:`dataset_checksum` is the checksum of
one dataset, and :func:`_dataset_checksum_h5` computes the same digest from
an HDF5 dataset read in chunks of about :data:`READ_CHUNK_BYTES`.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np


READ_CHUNK_BYTES = 64 << 20


def checksum_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and raw C-order bytes of ``arrays``.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        Datasets of one shard; iterated in sorted name order.

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _checksum_header(h, name: str, dtype: np.dtype, shape: Sequence[int]) -> None:
    h.update(f"{name}\0{np.dtype(dtype).str}\0{tuple(int(x) for x in shape)}\0".encode())


def dataset_checksum(name: str, array: np.ndarray) -> str:
    """SHA-256 of one dataset: name, dtype, shape and raw C-order bytes (``checksum_arrays({name: array})``)."""
    return checksum_arrays({name: array})


def _dataset_checksum_h5(ds, name: str) -> str:
    """:func:`dataset_checksum` of an HDF5 dataset, read in chunks along axis 0."""
    h = hashlib.sha256()
    _checksum_header(h, name, ds.dtype, ds.shape)
    if ds.ndim == 0:
        h.update(np.ascontiguousarray(ds[()]).reshape(-1).view(np.uint8).data)
        return h.hexdigest()
    row = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, READ_CHUNK_BYTES // row)
    for i in range(0, ds.shape[0], step):
        h.update(np.ascontiguousarray(ds[i:i + step]).reshape(-1).view(np.uint8).data)
    return h.hexdigest()
