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
``d1``, ``d2``
    Vectorised ``phi'`` and ``phi''`` (analytic) for the built-ins; ``None``
    for custom activations.  :func:`derivative` returns them, or for a custom
    activation the documented fallback: a fourth-order central difference of
    ``numpy`` (step :data:`FD_STEP`, error ~1e-11 for smooth functions of
    order-one curvature scale).
``closed``
    :class:`GaussianClosedForms` holding the closed-form Gaussian
    expectations (relu, erf, linear), or ``None`` (tanh, custom): then
    :mod:`theory.gaussian` integrates numerically with error control.

Custom activations are validated by :meth:`Activation.validated`, which every
numerical routine of :mod:`theory` calls before it evaluates ``numpy`` (and the
``python -m theory`` CLI on resolution): ``numpy`` must map a float64 array to
a finite float64 array of the same shape (checked once per activation on a
small test array), otherwise a one-line ``ValueError("activation: ...")`` is
raised.  :func:`get_activation` itself only resolves (imports), because a
prior used only for sampling may carry a scalar-only numba function, which
:mod:`mcsim` accepts and checks itself.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
import types
from dataclasses import dataclass
from typing import Callable, Optional, Union

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


FD_STEP = 2e-3
"""Step of the fourth-order central difference used for the derivatives of custom activations."""


@dataclass(frozen=True, eq=False)
class GaussianClosedForms:
    """Closed-form expectations over centred Gaussians for one activation.

    Every callable is vectorised: arguments are float64 arrays of one
    broadcast shape (variances ``c_uu, c_vv >= 0``, covariance ``c_uv``) and
    the result is a float64 array of that shape.  ``None`` means "no closed
    form": :mod:`theory.gaussian` then uses quadrature.

    Attributes
    ----------
    pair : callable ``(c_uu, c_vv, c_uv) -> <phi(u) phi(v)>``
    second_moment : callable ``c -> <phi(h)^2>``
    d_second_moment : callable ``c -> d<phi(h)^2>/dc``
    derivative_pair : callable ``(c_uu, c_vv, c_uv) -> <phi'(u) phi'(v)>``
    fourth_moment_pair : callable ``(c_uu, c_vv, c_uv) -> <phi(u)^2 phi(v)^2>`` or None
    fixed_point : callable ``(g2, sigma2) -> q*`` (NaN where none exists) or None
    stable_range : str
        Human-readable condition for a fixed point (used in error messages).
    """

    pair: Callable
    second_moment: Callable
    d_second_moment: Callable
    derivative_pair: Callable
    fourth_moment_pair: Optional[Callable] = None
    fixed_point: Optional[Callable] = None
    stable_range: str = ""


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
    d1, d2 : callable or None
        Analytic vectorised ``phi'`` and ``phi''`` (built-ins only).
    closed : GaussianClosedForms or None
        Closed-form Gaussian expectations, where they exist.
    """

    name: str
    identity: str
    numpy: Callable[[np.ndarray], np.ndarray]
    scalar: Callable[[float], float]
    builtin: bool
    d1: Optional[Callable[[np.ndarray], np.ndarray]] = None
    d2: Optional[Callable[[np.ndarray], np.ndarray]] = None
    closed: Optional[GaussianClosedForms] = None

    def validated(self) -> "Activation":
        """This activation, after checking that :attr:`numpy` is a usable vectorised function.

        Built-ins pass; a custom activation must map a float64 array to a
        finite float64 array of the same shape (checked once, on a fixed
        test array with values in [-3, 3]).

        Returns
        -------
        Activation
            ``self``.

        Raises
        ------
        ValueError
            One line starting ``activation:``, naming the activation and what
            went wrong (exception raised, wrong type/dtype/shape, non-finite).
        """
        if self.builtin or self.__dict__.get("_validated"):
            return self
        _validate(self.name, self.numpy)
        object.__setattr__(self, "_validated", True)
        return self

    def derivative(self, order: int) -> Callable[[np.ndarray], np.ndarray]:
        """Vectorised ``phi'`` (``order=1``) or ``phi''`` (``order=2``).

        Built-ins: the analytic derivative.  Custom activations: fourth-order
        central differences of :attr:`numpy` with step :data:`FD_STEP`
        (truncation ~ ``FD_STEP**4 phi^(5+order)/30``, rounding
        ~ ``1e-16 |phi| / FD_STEP**order``: about 1e-11 for ``phi'`` and 1e-8
        for ``phi''`` at order-one scales).

        Parameters
        ----------
        order : {1, 2}

        Returns
        -------
        callable
            ``f(ndarray float64) -> ndarray float64`` of the same shape.
        """
        if order not in (1, 2):
            raise ValueError(f"order: must be 1 or 2, got {order!r}")
        exact = self.d1 if order == 1 else self.d2
        if exact is not None:
            return exact
        memo = self.__dict__.get("_fd_memo")
        if memo is None:
            memo = {}
            object.__setattr__(self, "_fd_memo", memo)  # one function object per order (quadrature caches key on it)
        if order not in memo:
            memo[order] = self._finite_difference(order)
        return memo[order]

    def _finite_difference(self, order: int) -> Callable[[np.ndarray], np.ndarray]:
        phi, e = self.numpy, FD_STEP
        if order == 1:
            def dphi(x):
                x = np.asarray(x, dtype=float)
                return (8.0 * (phi(x + e) - phi(x - e)) - (phi(x + 2 * e) - phi(x - 2 * e))) / (12.0 * e)
        else:
            def dphi(x):
                x = np.asarray(x, dtype=float)
                return (16.0 * (phi(x + e) + phi(x - e)) - (phi(x + 2 * e) + phi(x - 2 * e)) - 30.0 * phi(x)) / (
                    12.0 * e * e
                )
        return dphi

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


# derivatives (vectorised, analytic)
def _relu_d1(x):
    return (np.asarray(x, dtype=float) > 0).astype(float)


def _zeros(x):
    return np.zeros(np.shape(x))


def _ones(x):
    return np.ones(np.shape(x))


def _erf_d1(x):
    x = np.asarray(x, dtype=float)
    return np.exp(-0.25 * math.pi * x * x)


def _erf_d2(x):
    x = np.asarray(x, dtype=float)
    return -0.5 * math.pi * x * np.exp(-0.25 * math.pi * x * x)


def _tanh_d1(x):
    t = np.tanh(np.asarray(x, dtype=float))
    return 1.0 - t * t


def _tanh_d2(x):
    t = np.tanh(np.asarray(x, dtype=float))
    return -2.0 * t * (1.0 - t * t)


# closed-form Gaussian expectations (theory-notes Sec. 3 and 6)
def _relu_theta(c_uu, c_vv, c_uv):
    # sqrt(c_uu) sqrt(c_vv), not sqrt(c_uu c_vv): the product overflows above ~1e154
    norm = np.sqrt(c_uu) * np.sqrt(c_vv)
    pos = norm > 0
    cos_t = np.clip(np.where(pos, c_uv / np.where(pos, norm, 1.0), 1.0), -1.0, 1.0)
    return norm, cos_t, np.arccos(cos_t)


def _relu_pair(c_uu, c_vv, c_uv):  # Eq. 55 (arc-cosine kernel of degree 1)
    norm, cos_t, t = _relu_theta(c_uu, c_vv, c_uv)
    return norm / (2 * math.pi) * (np.sqrt(1.0 - cos_t**2) + (math.pi - t) * cos_t)


def _relu_four(c_uu, c_vv, c_uv):  # Eq. 69, degree-2 arc-cosine kernel (Cho & Saul 2009)
    norm, cos_t, t = _relu_theta(c_uu, c_vv, c_uv)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return norm**2 / (2 * math.pi) * (3 * sin_t * cos_t + (math.pi - t) * (1 + 2 * cos_t**2))


def _relu_dpair(c_uu, c_vv, c_uv):
    _, _, t = _relu_theta(c_uu, c_vv, c_uv)
    return (math.pi - t) / (2 * math.pi)


def _relu_fixed_point(g2, s2):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g2 < 2.0, s2 / (1.0 - 0.5 * g2), np.nan)


def _erf_pair(c_uu, c_vv, c_uv):
    k = 0.5 * math.pi
    arg = k * c_uv / (np.sqrt(1.0 + k * c_uu) * np.sqrt(1.0 + k * c_vv))
    return (2.0 / math.pi) * np.arcsin(np.clip(arg, -1.0, 1.0))


def _erf_second(c):
    return _erf_pair(c, c, c)


def _erf_dsecond(c):
    k = 0.5 * math.pi
    s = k * c / (1.0 + k * c)
    return (2.0 / math.pi) * (k / (1.0 + k * c) ** 2) / np.sqrt(1.0 - s**2)


def _erf_dpair(c_uu, c_vv, c_uv):
    k = 0.5 * math.pi
    return 1.0 / np.sqrt((1 + k * c_uu) * (1 + k * c_vv) - (k * c_uv) ** 2)


def _linear_fixed_point(g2, s2):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g2 < 1.0, s2 / (1.0 - g2), np.nan)


_CLOSED = {
    "relu": GaussianClosedForms(
        pair=_relu_pair,
        second_moment=lambda c: 0.5 * c,
        d_second_moment=lambda c: np.full(np.shape(c), 0.5),
        derivative_pair=_relu_dpair,
        fourth_moment_pair=_relu_four,
        fixed_point=_relu_fixed_point,
        stable_range="ReLU needs g2 < 2",
    ),
    "erf": GaussianClosedForms(
        pair=_erf_pair, second_moment=_erf_second, d_second_moment=_erf_dsecond, derivative_pair=_erf_dpair
    ),
    "linear": GaussianClosedForms(
        pair=lambda c_uu, c_vv, c_uv: np.array(c_uv, dtype=float),
        second_moment=lambda c: np.array(c, dtype=float),
        d_second_moment=lambda c: np.ones(np.shape(c)),
        derivative_pair=lambda c_uu, c_vv, c_uv: np.ones(np.shape(c_uu)),
        fourth_moment_pair=lambda c_uu, c_vv, c_uv: c_uu * c_vv + 2 * c_uv**2,  # Isserlis
        fixed_point=_linear_fixed_point,
        stable_range="linear needs g2 < 1",
    ),
}

_BUILTINS: dict[str, Activation] = {
    name: Activation(name=name, identity=name, numpy=np_fn, scalar=sc_fn, builtin=True, d1=d1, d2=d2,
                     closed=_CLOSED.get(name))
    for name, np_fn, sc_fn, d1, d2 in (
        ("relu", _relu_numpy, _relu_scalar, _relu_d1, _zeros),
        ("erf", _erf_numpy, _erf_scalar, _erf_d1, _erf_d2),
        ("linear", _linear_numpy, _linear_scalar, _ones, _zeros),
        ("tanh", _tanh_numpy, _tanh_scalar, _tanh_d1, _tanh_d2),
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


def _hash_function(h, fn, seen: set, depth: int) -> None:
    """Feed the code of ``fn`` and of what it reads from its module into ``h``."""
    py = _python_function(fn)
    code = getattr(py, "__code__", None)
    if code is None:
        # e.g. a NumPy ufunc: identify it by module and name
        h.update(f"{type(py).__module__}.{getattr(py, '__name__', repr(py))}".encode())
        return
    if id(code) in seen:
        return
    seen.add(id(code))
    _hash_code(h, code)
    h.update(repr(getattr(py, "__defaults__", None)).encode())
    for cell in getattr(py, "__closure__", None) or ():
        try:
            _hash_value(h, cell.cell_contents, seen, depth)
        except ValueError:  # empty cell
            pass
    glob = getattr(py, "__globals__", {})
    for name in _all_names(code):
        if name in glob:
            h.update(name.encode() + b"=")
            _hash_value(h, glob[name], seen, depth)


def _all_names(code: types.CodeType):
    """Global names used by ``code`` and the code objects nested in it, in order."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_all_names(const))
    return dict.fromkeys(names)


def _hash_value(h, value, seen: set, depth: int) -> None:
    """Hash a global or closure value: data by value, functions by their code (recursively)."""
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        h.update(repr(value).encode())
    elif isinstance(value, np.ndarray):
        h.update(repr((value.dtype.str, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list, frozenset)):
        h.update(type(value).__name__.encode())
        for item in value:
            _hash_value(h, item, seen, depth)
    elif isinstance(value, types.ModuleType):
        h.update(("module:" + value.__name__).encode())
    elif callable(value) and depth < 8:
        _hash_function(h, value, seen, depth + 1)
    else:
        h.update(type(value).__qualname__.encode())


def code_hash(fn: Callable) -> str:
    """First 16 hex digits of a SHA-256 over the code of ``fn`` and what it reads.

    Covers the bytecode, the names it uses, its constants (recursively into
    nested functions), default arguments, closure values, and the values of
    the module globals it reads: numbers, strings and arrays by value, and
    functions it calls by their own code hash (recursively, up to depth 8).
    So editing a helper or a module constant of a custom activation changes
    its identity (and so its point keys and compiled kernels).  Modules are
    identified by name only: a change *inside* a library the activation calls
    (e.g. a new SciPy version) is not seen.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    _hash_function(h, fn, set(), 0)
    return h.hexdigest()[:16]


_PROBE = np.array([[-3.0, -1.0, -0.25, 0.0], [0.25, 0.5, 1.0, 3.0]])


def _validate(name: str, fn: Callable) -> None:
    """Check that ``fn`` maps a float64 array to a finite float64 array of the same shape."""
    try:
        with np.errstate(all="ignore"):
            out = fn(_PROBE.copy())
    except Exception as exc:  # noqa: BLE001  (any failure of user code is bad input)
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"activation: {name!r} cannot be applied to a float64 array "
                         f"({type(exc).__name__}: {msg}); it must be a vectorised function "
                         "float64 array -> float64 array") from None
    if not isinstance(out, np.ndarray) or out.dtype != np.float64 or out.shape != _PROBE.shape:
        got = (f"{type(out).__name__}" if not isinstance(out, np.ndarray)
               else f"an array of dtype {out.dtype} and shape {out.shape}")
        raise ValueError(f"activation: {name!r} must map a float64 array of shape {_PROBE.shape} to a float64 "
                         f"array of the same shape, got {got}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"activation: {name!r} returned non-finite values on the test inputs "
                         f"{_PROBE.ravel().tolist()}")


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
