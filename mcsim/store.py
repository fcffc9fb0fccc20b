"""HDF5 sample store: per-block shard files, finalisation and reading.

Store layout
------------
A store is a directory (``--store STORE``) holding one sub-directory per
parameter point, named by :func:`theory.spec.point_key` (the key that
:func:`mcsim.sample` uses too)::

    STORE/<point_key>/spec.json                               point identity
    STORE/<point_key>/blocks/r{start:09d}-{stop:09d}.{obs}.h5    one shard per block
    STORE/<point_key>/blocks/.tmp-*                           in-flight temp files (ignored)
    STORE/<point_key>/.lock                                   run lock (flock)
    STORE/<point_key>/corrupt/                                bad shards moved aside by ``run``

``spec.json`` holds :func:`theory.spec.point_identity` (prior with activation
identity, input values hash, width, resolved method, seed), the raw ``prior``,
``inputs`` and ``method`` of the spec that created it, the ``point_key``, the
store format and the ``sampler_stream_version``
(:data:`mcsim._rng.SAMPLER_STREAM_VERSION`) of the code that drew its
realizations.  ``realizations``, ``block_size`` and ``observables`` are not
part of the point identity: realization ``r`` depends only on
``(point_key, r)``, so shards of any tiling, written by any number of ranks,
can be reused.

A shard holds realizations ``[start, stop)`` of the observables ``{obs}``
(sorted names joined by ``+``, e.g. ``caux_diag+chat_diag+y``) plus
``overflow``, each with the realization as leading axis, and the attributes
``mcsim_block_format``, ``point_key``, ``sampler_stream_version``, ``start``,
``stop``, ``observables`` (JSON list), ``sha256`` (checksum of names, dtypes,
shapes and raw bytes of all datasets), ``complete`` (marker, written last)
and provenance.  Shards are written to a temp file and published by
``os.replace``; a shard's name determines its contents, so two writers of the
same name write identical data.

Observables share realizations
------------------------------
Specs of one point that differ only in ``observables`` share the point
directory and its realizations: each requested observable is tiled over
``[0, R)`` from every valid shard that holds it, and a run samples, for each
realization range, only the observables still missing there.  Nothing is
overwritten: shards with different observable sets have different names.

Reuse rules
-----------
- A shard is *usable* if it is valid (opens, marker set, ``point_key``,
  stream version, range and observables match its name, leading axes match,
  checksum matches).
- A point directory or shard drawn by another ``sampler_stream_version`` is
  refused (:class:`StaleStoreError`, never mixed in): delete the point
  directory or use a new store.  Point directories of stores written before
  the version was recorded are refused in the same way.
- Per observable, a deterministic greedy tiling covers ``[0, R)`` (at each
  position the shard reaching furthest, ties broken by the larger start,
  then by file name).  Shards extending beyond ``R`` are sliced.
- Concurrency: a run holds an exclusive ``flock`` on ``<point>/.lock`` while
  it plans, samples and finalises; a second run of the same point (with the
  same or other observables) waits for it, then reuses its shards.

Final point files
-----------------
:func:`finalise` writes one self-describing file per point.  Every dataset
carries a ``sha256`` attribute (:func:`dataset_checksum`, computed from the
verified shard data while copying), and the root attribute ``datasets``
lists them; :func:`read_point` and ``python -m mcsim info --verify`` verify
every checksum and fail naming the dataset and the file.

Modules
-------
This module is the store's API: it re-exports the names of the modules
that implement it, one capability each:

- :mod:`mcsim.store_layout` -- format constants, errors, file names and
  paths, the point directory's ``spec.json``, temp-file cleanup of a point;
- :mod:`mcsim.atomic_io` -- atomic writes (temp file, fsync, rename) and
  removal of temp files left by killed runs;
- :mod:`mcsim.locking` -- the per-point run lock (:class:`PointLock`);
- :mod:`mcsim.checksums` -- SHA-256 of shards and final-file datasets;
- :mod:`mcsim.shards` -- writing and inspecting shards, tiling, planning;
- :mod:`mcsim.finalise` -- writing, reading and verifying final point files;
- :mod:`mcsim.info` -- the text of ``python -m mcsim info``.
"""

from __future__ import annotations

from .atomic_io import (  # noqa: F401
    STALE_TEMP_SECONDS,
    TEMP_PREFIX,
    _atomic_file,
    _clean_temps,
    _fsync_path,
    _pid_alive,
    _publish,
    _temp_path,
    _utc_now,
)
from .checksums import (  # noqa: F401
    READ_CHUNK_BYTES,
    _checksum_header,
    _dataset_checksum_h5,
    checksum_arrays,
    dataset_checksum,
)
from .finalise import (  # noqa: F401
    _DESCRIPTIONS,
    _check_dataset,
    _corrupt_message,
    _missing_message,
    _open_point_file,
    _package_versions,
    _verify_only,
    describe_dataset,
    final_file_matches,
    finalise,
    point_attrs,
    read_block_timings,
    read_point,
    verify_point,
)
from .info import _short, describe_final_file, describe_path, describe_point_dir  # noqa: F401
from .locking import PointLock  # noqa: F401
from .shards import (  # noqa: F401
    Plan,
    ShardInfo,
    _fmt_ranges,
    _intervals,
    choose_tiling,
    inspect_block,
    missing_segments,
    plan_blocks,
    read_block_arrays,
    scan_blocks,
    split_range,
    tile_observables,
    write_block,
)
from .store_layout import (  # noqa: F401
    BLOCK_FORMAT,
    BLOCK_NAME_RE,
    POINT_FORMAT,
    STORE_FORMAT,
    PathLike,
    StaleStoreError,
    StoreError,
    _attr_py,
    _h5py,
    _open_h5,
    _stale_message,
    _unique,
    block_name,
    blocks_dir,
    check_point_dir,
    clean_temp_files,
    identity_dict,
    obs_tag,
    point_dir,
    prepare_point_dir,
    stale_shards_message,
    stream_version,
)
