"""Training/test data sets for posterior sampling: generated from a seed or read from a file, validated.

A data set is ``(X, y, train)``:

``X``      (P, n_in) single inputs (given at a = 0) or (P, A+1, n_in) sequences, float64.
``y``      (P, n_out) targets of all patterns (test targets give the test error), float64.
``train``  (P_D,) int64 sorted indices of the training patterns; the others are test patterns.

Generators (all draw with ``numpy.random.default_rng(seed)``):

``linear_teacher``  ``x ~ N(0, I)``, ``y = x . w / sqrt(n_in) + noise``, ``w ~ N(0, I)``.
``xor``             ``x`` = random corners of ``{-1, 1}^2`` plus ``N(0, jitter^2)``
                    (``n_in = 2``), ``y = x_0 x_1`` of the corner.
``sequence``        ``x^(a) ~ N(0, I)`` for a = 0..A (needs ``depth``), target the
                    first component of the first step, ``y = x^(0)_0`` (a recall task
                    for the RNN), plus noise.

Files: ``.npz`` with arrays ``X``, ``y`` and ``train`` (indices or a boolean
mask of length P).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from theory.inputs import strict_int
from theory.prior import Prior, check_inputs

KINDS = ("linear_teacher", "xor", "sequence")


def make_dataset(kind: str, count: int, dim: int, train: int, seed: int = 0, noise: float = 0.0,
                 depth: int | None = None, jitter: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate a data set from a seed.

    Parameters
    ----------
    kind : {"linear_teacher", "xor", "sequence"}
    count : int
        Number of patterns P (training plus test).
    dim : int
        Input dimension ``n_in`` (2 for ``xor``).
    train : int
        Number of training patterns P_D (the first P_D; ``1 <= train <= count``).
    seed : int
    noise : float
        Standard deviation of additive target noise.
    depth : int, optional
        ``A``; required for ``sequence`` (sequences of length A+1).
    jitter : float
        Input jitter of ``xor``.

    Returns
    -------
    X : ndarray of float64, shape (P, n_in) or (P, A+1, n_in)
    y : ndarray of float64, shape (P, 1)
    train : ndarray of int64, shape (P_D,)
    """
    if kind not in KINDS:
        raise ValueError(f"data.kind: unknown data set {kind!r}; allowed: {', '.join(KINDS)}")
    P = strict_int("data.count", count, 1)
    d = strict_int("data.dim", dim, 1)
    PD = strict_int("data.train", train, 1, P + 1)
    seed = strict_int("data.seed", seed, 0)
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"data.noise: must be a non-negative number, got {noise!r}")
    rng = np.random.default_rng(seed)
    if kind == "linear_teacher":
        X = rng.standard_normal((P, d))
        w = rng.standard_normal(d)
        y = X @ w / np.sqrt(d)
    elif kind == "xor":
        if d != 2:
            raise ValueError(f"data.dim: the xor task has 2 inputs, got {d}")
        corners = rng.choice([-1.0, 1.0], size=(P, 2))
        X = corners + float(jitter) * rng.standard_normal((P, 2))
        y = corners[:, 0] * corners[:, 1]
    else:
        if depth is None:
            raise ValueError("data.kind: the sequence task needs the network depth (sequence length A+1)")
        A = strict_int("depth", depth, 0)
        X = rng.standard_normal((P, A + 1, d))
        y = X[:, 0, 0].copy()
    y = (y + noise * rng.standard_normal(P))[:, None]
    return X, y, np.arange(PD, dtype=np.int64)


def load_dataset(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``X``, ``y``, ``train`` from an ``.npz`` file (validated by :func:`check_dataset` later).

    Raises
    ------
    ValueError
        ``data.file: ...`` if the file is missing, unreadable or lacks an array.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"data.file: no such file: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("not an .npz archive")
            arrays = {k: np.asarray(f[k]) for k in ("X", "y", "train") if k in f.files}
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"data.file: cannot read {p} as .npz: {exc}") from None
    missing = [k for k in ("X", "y", "train") if k not in arrays]
    if missing:
        raise ValueError(f"data.file: {p} lacks array(s) {missing} (needs X, y, train)")
    return arrays["X"], arrays["y"], arrays["train"]


def check_dataset(prior: Prior, X, y, train) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a data set against a prior.

    Parameters
    ----------
    prior : theory.Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
    y : array_like, shape (P,) or (P, n_out)
    train : array_like of int, shape (P_D,), or bool mask, shape (P,)

    Returns
    -------
    seq : ndarray of float64, shape (P, A+1, n_in)
    y : ndarray of float64, shape (P, n_out)
    train : ndarray of int64, shape (P_D,), sorted, unique

    Raises
    ------
    ValueError
        Naming ``X``, ``y`` or ``train`` and what is wrong.
    """
    seq = check_inputs(prior, X)
    P = seq.shape[0]
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != P:
        raise ValueError(f"y: must have shape (P={P},) or (P={P}, n_out), got {y.shape}")
    if y.shape[1] != prior.n_out:
        raise ValueError(f"y: has {y.shape[1]} output column(s), the prior has n_out={prior.n_out}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y: targets must be finite")
    t = np.asarray(train)
    if t.dtype == bool:
        if t.shape != (P,):
            raise ValueError(f"train: a boolean mask must have shape ({P},), got {t.shape}")
        t = np.flatnonzero(t)
    else:
        if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"train: must be a 1-D array of pattern indices or a boolean mask, got {t.dtype} {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= P):
            raise ValueError(f"train: indices must be in 0..{P - 1}")
        if np.unique(t).size != t.size:
            raise ValueError("train: indices must be unique")
    if t.size == 0:
        raise ValueError("train: needs at least one training pattern")
    return seq, np.ascontiguousarray(y), np.sort(t).astype(np.int64)


def data_hash(seq: np.ndarray, y: np.ndarray, train: np.ndarray) -> str:
    """SHA-256 (hex) of the validated data set (shapes and float64/int64 bytes)."""
    h = hashlib.sha256(b"mcsim-posterior-data-v1\0")
    for a in (np.ascontiguousarray(seq, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
              np.ascontiguousarray(train, dtype=np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def dataset_from_spec(spec: dict, prior: Prior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (unvalidated) data set of a posterior spec's ``data`` entry: ``{"file": ...}`` or generator arguments."""
    if not isinstance(spec, dict):
        raise ValueError(f"data: must be an object, got {type(spec).__name__}")
    if "file" in spec:
        extra = set(spec) - {"file"}
        if extra:
            raise ValueError(f"data: 'file' excludes other keys, got {sorted(extra)}")
        return load_dataset(spec["file"])
    allowed = {"kind", "count", "dim", "train", "seed", "noise", "jitter"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"data: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)} or 'file'")
    missing = {"kind", "count", "dim", "train"} - set(spec)
    if missing:
        raise ValueError(f"data: missing keys {sorted(missing)}")
    return make_dataset(depth=prior.depth, **spec)
