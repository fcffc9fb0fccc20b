"""One compiled set of sampling kernels per activation (private).

:func:`kernel_set` returns the kernels the samplers call for an
:class:`theory.activations.Activation`: the activation-independent kernels of
:mod:`mcsim._kernels` (compiled once, disk-cached) and the set's own
``apply_act``, ``dnn_projected_block`` and ``rnn_projected_block`` (with its
diagnostic variant ``rnn_projected_block_checked``), compiled
from the source of :mod:`mcsim._kernels_act` with the activation bound to the
global ``phi``.

Why each set is a module of its own
-----------------------------------
Numba names a compiled function's symbol after its module, its qualname, a
per-process counter and its argument types.  When a library is loaded from the
disk cache, the callees linked into it are *weak* symbols, and the JIT linker
binds a weak symbol to a definition of the same name that this process
already holds.  The kernels used to be recompiled for a custom activation
under the very same module and qualnames; when the counter values coincided, a
built-in kernel loaded from the cache called the custom copy of ``apply_act``
(issue 7).  Here every set's kernels live in a module whose name carries a
hash of ``Activation.identity`` (built-ins: the name; custom: name plus code
hash), of the activation's code and of the kernel sources, so no two sets can
share a symbol, a dispatcher or a cache entry, whatever the order of
compilation and whatever is on disk.

Built-in activations
    The set's source is written to ``mcsim_kernelset_<name>_<hash>.py`` (under
    ``$NUMBA_CACHE_DIR/mcsim_kernelsets``, else ``mcsim/__pycache__/kernelsets``,
    else ``$XDG_CACHE_HOME/mcsim/kernelsets``) and imported from there with
    ``cache=True``: Numba gives each file its own cache index, and a second
    process loads instead of compiling.  If no directory is writable the set
    is compiled in memory, without disk cache.
Custom activations
    Compiled in memory once per process and activation, never cached on disk:
    the code hash in the identity does not cover functions the activation
    calls, and the user's own function symbols are not unique across
    processes, so a cached set could silently run stale or foreign code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import threading
import types
from pathlib import Path

import numba

from theory.activations import Activation, code_hash, get_activation

from . import _kernels as K

_HERE = Path(__file__).resolve().parent
_TEMPLATE = _HERE / "_kernels_act.py"

SHARED_KERNELS = ("gram", "cross_gram", "pivoted_cholesky", "correlate_rows", "sample_readout",
                  "add_scaled_vector", "pair_grams")
"""Kernels of :mod:`mcsim._kernels` that every set exposes."""
OWN_KERNELS = ("apply_act", "dnn_projected_block", "rnn_projected_block", "rnn_projected_block_checked")
"""Kernels compiled per activation from :mod:`mcsim._kernels_act`."""

_HINT = ("activation: a custom activation must be a numba-jittable function of a float64 scalar "
         "(e.g. @numba.njit or @numba.vectorize)")

_LOCK = threading.RLock()
_SETS: dict[str, list["KernelSet"]] = {}
_BINDINGS: dict[str, tuple] = {}


class KernelSet:
    """The compiled kernels for one activation.

    Attributes
    ----------
    activation : theory.activations.Activation
    module_name : str
        The module the set's own kernels were compiled in (unique per set).
    disk_cached : bool
        True if the set's own kernels use Numba's disk cache (built-ins with
        a writable source directory).
    source : pathlib.Path or None
        The generated source file (disk-cached sets only).
    apply_act, dnn_projected_block, rnn_projected_block, rnn_projected_block_checked : numba dispatcher
        This set's kernels (see :mod:`mcsim._kernels_act`).
    gram, cross_gram, pivoted_cholesky, correlate_rows, sample_readout, add_scaled_vector, pair_grams
        The shared kernels of :mod:`mcsim._kernels`.
    """

    def __init__(self, activation: Activation, module: types.ModuleType, disk_cached: bool, source):
        self.activation = activation
        self.module_name = module.__name__
        self.disk_cached = disk_cached
        self.source = source
        for name in SHARED_KERNELS:
            setattr(self, name, getattr(K, name))
        for name in OWN_KERNELS:
            setattr(self, name, getattr(module, name))

    def __repr__(self) -> str:
        return f"KernelSet({self.activation.identity!r}, module={self.module_name!r}, disk_cached={self.disk_cached})"


def _bound_names(module_name: str):
    """``(phi, _kernel)`` for the kernel-set module being executed (called by its source)."""
    try:
        return _BINDINGS.pop(module_name)
    except KeyError:
        raise ImportError(f"{module_name} is the source of the per-activation kernel sets; "
                          "use mcsim._kernelsets.kernel_set(activation)") from None


def jit_scalar(fn):
    """Numba-compiled scalar activation, checked on a float64 in nopython mode.

    Parameters
    ----------
    fn : callable
        A ``numba.njit`` dispatcher, a ``numba.vectorize`` ufunc, or a plain
        Python function that ``numba.njit`` can compile for a float64 scalar.

    Returns
    -------
    numba dispatcher or DUFunc
        ``fn`` itself if it is already compiled by Numba, else ``njit(nogil=True)(fn)``.

    Raises
    ------
    ValueError
        One line starting with ``activation:`` if ``fn`` cannot be called in
        nopython mode on a float64 scalar or does not return a number.
    """
    if isinstance(fn, (numba.core.registry.CPUDispatcher, numba.np.ufunc.dufunc.DUFunc)):
        jitted = fn
    else:
        try:
            jitted = numba.njit(nogil=True)(fn)
        except Exception as exc:  # numba raises many types
            raise ValueError(f"{_HINT}; numba.njit failed: {type(exc).__name__}: {exc}") from None

    @numba.njit
    def _probe(x):
        return jitted(x)

    try:
        float(_probe(0.5))
    except Exception as exc:
        raise ValueError(f"{_HINT}; calling it in nopython mode failed: {type(exc).__name__}") from None
    return jitted


def _source_hashes() -> str:
    """SHA-256 over every source file whose content ends up in a compiled kernel set.

    The kernel sources, this module (compile options) and :mod:`theory.activations`
    (the built-in scalar activations and the module constants they read, which
    Numba freezes into the compiled code).
    """
    import theory.activations as _acts

    h = hashlib.sha256()
    for path in (_TEMPLATE, _HERE / "_kernels.py", Path(__file__).resolve(), Path(_acts.__file__).resolve()):
        h.update(path.read_bytes())
    return h.hexdigest()


def _set_key(act: Activation) -> str:
    """16 hex digits over the identity, the activation's code and the kernel sources."""
    h = hashlib.sha256()
    for part in (act.identity, code_hash(act.scalar), _source_hashes(), numba.__version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _source_dirs():
    cache_dir = numba.config.CACHE_DIR
    if cache_dir:
        yield Path(cache_dir) / "mcsim_kernelsets"
        return
    yield _HERE / "__pycache__" / "kernelsets"
    yield Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcsim" / "kernelsets"


def _write_source(name: str, text: str):
    """Write ``text`` to ``<dir>/<name>.py`` in the first writable source directory (once).

    Returns the path, or None if no directory is writable.  An existing file
    with the same text is left untouched; otherwise the file is replaced
    atomically, so concurrent processes (MPI ranks) never see a partial file.
    (Numba stamps the cache with a hash of the file's content; the file name
    carries the set's hash, so a file never changes content in place.)
    """
    for directory in _source_dirs():
        path = directory / f"{name}.py"
        try:
            if path.is_file() and path.read_text() == text:
                return path
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, path)
            return path
        except OSError:
            continue
    return None


def _load(name: str, phi, cache: bool, path) -> types.ModuleType:
    """Execute the kernel-set source as module ``name`` (from ``path``, or in memory)."""
    _BINDINGS[name] = (phi, numba.njit(nogil=True, cache=cache))
    try:
        if path is not None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = types.ModuleType(name)
            module.__file__ = str(_TEMPLATE)
            sys.modules[name] = module
            exec(compile(_TEMPLATE.read_text(), str(_TEMPLATE), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        _BINDINGS.pop(name, None)
        raise
    return module


def _build(act: Activation, serial: int) -> KernelSet:
    phi = numba.njit(nogil=True)(act.scalar) if act.builtin else jit_scalar(act.scalar)
    key = _set_key(act)
    slug = re.sub(r"[^A-Za-z0-9_]", "_", act.name)[:40]
    if act.builtin:
        name = f"mcsim_kernelset_{slug}_{key}"
        path = _write_source(name, _TEMPLATE.read_text())
        if path is not None:
            return KernelSet(act, _load(name, phi, True, path), True, path)
        name += f"_nocache{serial}"
    else:
        name = f"mcsim_kernelset_custom_{slug}_{key}_{serial}"
    return KernelSet(act, _load(name, phi, False, None), False, None)


def kernel_set(activation) -> KernelSet:
    """The compiled kernel set of an activation (built once per process and activation).

    Parameters
    ----------
    activation : theory.activations.Activation, str or callable
        Anything :func:`theory.activations.get_activation` accepts.

    Returns
    -------
    KernelSet
        The same object for the same activation within a process.  Kernels
        compile on first call (built-ins: load from the disk cache if there).

    Raises
    ------
    ValueError
        One line starting with ``activation:`` for a custom activation that
        Numba cannot compile for a float64 scalar.
    """
    act = get_activation(activation)
    with _LOCK:
        sets = _SETS.setdefault(act.identity, [])
        for ks in sets:
            # same identity and the same function: the same set (a different function
            # object with the same identity, e.g. a redefined lambda, gets its own)
            if ks.activation is act or ks.activation.scalar is act.scalar:
                return ks
        ks = _build(act, len(sets))
        sets.append(ks)
        return ks

