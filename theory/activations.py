"""Activation functions: one :class:`Activation` object per activation.

This module is the *single* definition of every activation used anywhere in
the project.  :mod:`theory` (Gaussian expectations, kernels, NLO terms) and
:mod:`mcsim` (Numba sampling kernels) both dispatch on the object returned by
:func:`get_activation`; nothing else keeps a table of activation names.

An :class:`Activation` holds

``name``
    What the user writes: ``"relu"``, a registered name, an import path
    ``"module:function"``, or ``"custom:<qualname>"`` for a bare callable.
``identity``
    A stable identity string.  Built-ins: the name.  Custom activations: the
    name plus a hash of the function's code (``"softplus#3f2a..."``), so that
    changing a custom function changes point keys (and so the mcsim store and
    the random streams) and the compiled sampling kernels.
``numpy``
    The vectorised NumPy function ``f(ndarray float64) -> ndarray float64``.
``scalar``
    A function of one float64 scalar that ``numba.njit`` can compile (a plain
    Python function using :mod:`math`, a numba dispatcher or a numba ufunc).
``builtin``
    True for ``relu``, ``erf``, ``linear``, ``tanh``.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
import types
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

BUILTIN_NAMES = ("relu", "erf", "linear", "tanh")

_SQRT_PI_HALF = 0.5 * math.sqrt(math.pi)

_IMPORT_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")

ACTIVATION_HELP = (
    f"one of {', '.join(BUILTIN_NAMES)}, a name given to theory.register_activation, "
    "an import path 'module:function', or a vectorised callable"
)
"""What ``activation`` accepts (used in error messages)."""


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function, as used by both the theory and the samplers.

    Parameters
    ----------
    name : str
        User-facing spelling (see module docstring).
    identity : str
        Stable identity: the name for built-ins, name plus code hash otherwise.
    numpy : callable
        Vectorised ``f(ndarray float64) -> ndarray float64``.
    scalar : callable
        ``float64 -> float64`` compilable by ``numba.njit``.
    builtin : bool
        True for the built-in activations.
    """

    name: str
    identity: str
    numpy: Callable[[np.ndarray], np.ndarray]
    scalar: Callable[[float], float]
    builtin: bool

    def __call__(self, x):
        """Apply the vectorised function (``self.numpy``)."""
        return self.numpy(x)

    def __repr__(self) -> str:
        return f"Activation({self.identity!r})"


# --------------------------------------------------------------------- built-ins
def _relu_scalar(x):
    return x if x > 0.0 else 0.0


def _erf_scalar(x):
    return math.erf(_SQRT_PI_HALF * x)


def _linear_scalar(x):
    return x


def _tanh_scalar(x):
    return math.tanh(x)


def _relu_numpy(x):
    return np.maximum(np.asarray(x, dtype=float), 0.0)


def _erf_numpy(x):
    from scipy.special import erf

    return erf(_SQRT_PI_HALF * np.asarray(x, dtype=float))


def _linear_numpy(x):
    return np.asarray(x, dtype=float)


def _tanh_numpy(x):
    return np.tanh(np.asarray(x, dtype=float))


_BUILTINS: dict[str, Activation] = {
    name: Activation(name=name, identity=name, numpy=np_fn, scalar=sc_fn, builtin=True)
    for name, np_fn, sc_fn in (
        ("relu", _relu_numpy, _relu_scalar),
        ("erf", _erf_numpy, _erf_scalar),
        ("linear", _linear_numpy, _linear_scalar),
        ("tanh", _tanh_numpy, _tanh_scalar),
    )
}


# ----------------------------------------------------------------------- custom
def _python_function(fn):
    """The Python function behind a numba dispatcher / DUFunc, or ``fn`` itself."""
    py = getattr(fn, "py_func", None)
    if py is None:
        disp = getattr(fn, "_dispatcher", None)
        py = getattr(disp, "py_func", None)
    return py if py is not None else fn


def _hash_code(h, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())


def code_hash(fn: Callable) -> str:
    """First 16 hex digits of a SHA-256 over the code of ``fn``.

    Covers the bytecode, the names it uses, its constants (recursively into
    nested functions), default arguments and closure values.  It does not
    follow calls into *other* functions: a custom activation that calls a
    helper changes identity only when its own code changes.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    str
    """
    py = _python_function(fn)
    h = hashlib.sha256()
    code = getattr(py, "__code__", None)
    if code is None:
        # e.g. a NumPy ufunc: identify it by module and name
        h.update(f"{type(py).__module__}.{getattr(py, '__name__', repr(py))}".encode())
    else:
        _hash_code(h, code)
        h.update(repr(getattr(py, "__defaults__", None)).encode())
        for cell in getattr(py, "__closure__", None) or ():
            try:
                h.update(repr(cell.cell_contents).encode())
            except ValueError:  # empty cell
                pass
    return h.hexdigest()[:16]


def _custom(name: str, fn: Callable) -> Activation:
    return Activation(name=name, identity=f"{name}#{code_hash(fn)}", numpy=fn, scalar=fn, builtin=False)


_REGISTERED: dict[str, Activation] = {}
_IMPORTED: dict[str, Activation] = {}
_CALLABLES: dict[int, tuple[Callable, Activation]] = {}


def register_activation(name: str, fn: Callable) -> None:
    """Make a custom activation available under a name, in this process.

    A :class:`theory.Prior` with ``activation=name`` then works everywhere a
    built-in name does, including point specs and ``mcsim.sample``.  Jobs in
    *other* processes (``python -m mcsim run`` under MPI, workflow rules) do
    not see this registry: give them the import path ``"module:function"``.

    Parameters
    ----------
    name : str
        Letters, digits, ``_`` and ``-``; not a built-in name and without ``:``.
    fn : callable
        ``f(ndarray of float64) -> ndarray of float64``, element-wise and
        vectorised (used by the quadrature of :mod:`theory.gaussian`) and
        compilable by ``numba.njit`` for a float64 scalar (used by
        :mod:`mcsim`).

    Raises
    ------
    ValueError
        For a built-in or malformed name, a non-callable ``fn``, or a name
        registered before with a different function.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name: an activation name must match {_NAME.pattern}, got {name!r}")
    if name in BUILTIN_NAMES:
        raise ValueError(f"name: {name!r} is a built-in activation and cannot be re-registered")
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    old = _REGISTERED.get(name)
    if old is not None and old.numpy is not fn:
        raise ValueError(f"name: activation {name!r} is already registered with a different function; "
                         "use a new name")
    _REGISTERED[name] = _custom(name, fn)


def _import_activation(path: str) -> Activation:
    """Resolve ``"module:attr"`` (attr may be dotted) to an Activation, once per process."""
    act = _IMPORTED.get(path)
    if act is not None:
        return act
    module_name, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"activation: cannot import module {module_name!r} for activation {path!r} "
                         f"({type(exc).__name__}: {exc}); it must be installed or on PYTHONPATH") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"activation: module {module_name!r} has no attribute {attr!r} "
                             f"(activation {path!r})") from None
    if not callable(obj):
        raise ValueError(f"activation: {path!r} is not callable ({type(obj).__name__})")
    act = _custom(path, obj)
    _IMPORTED[path] = act
    return act


def get_activation(activation: Union[str, Callable, Activation]) -> Activation:
    """Resolve an activation specification to its :class:`Activation` object.

    Parameters
    ----------
    activation : str, callable or Activation
        A built-in name (``"relu"``, ``"erf"`` meaning ``erf(sqrt(pi)/2 x)``,
        ``"linear"``, ``"tanh"``), a name given to :func:`register_activation`,
        an import path ``"module:function"`` (imported on first use), a
        vectorised callable, or an :class:`Activation` (returned as is).

    Returns
    -------
    Activation
        The same object for the same specification within a process.

    Raises
    ------
    ValueError
        Naming ``activation``: an unknown name, an import path that cannot be
        resolved, or neither a string nor a callable.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        act = _BUILTINS.get(activation) or _REGISTERED.get(activation)
        if act is not None:
            return act
        if ":" in activation:
            if not _IMPORT_PATH.match(activation):
                raise ValueError(f"activation: malformed import path {activation!r}; expected 'module:function'")
            return _import_activation(activation)
        raise ValueError(f"activation: unknown activation {activation!r}; allowed: {ACTIVATION_HELP}")
    if callable(activation):
        hit = _CALLABLES.get(id(activation))
        if hit is not None and hit[0] is activation:
            return hit[1]
        qual = getattr(activation, "__qualname__", type(activation).__name__)
        act = _custom("custom:" + qual, activation)
        _CALLABLES[id(activation)] = (activation, act)
        return act
    raise ValueError(f"activation: expected {ACTIVATION_HELP}; got {type(activation).__name__}")


def activation_function(activation: Union[str, Callable, Activation]) -> Callable[[np.ndarray], np.ndarray]:
    """The vectorised NumPy function of an activation (``get_activation(activation).numpy``)."""
    return get_activation(activation).numpy
