"""The network prior: architecture, depth, activation and weight/bias variances.

A :class:`Prior` is the single description of a network ensemble shared by the
analytic side (:mod:`theory`) and the Monte Carlo side (:mod:`mcsim`).  It
normalises every scalar-or-sequence argument into per-layer arrays indexed by
the layer / time step ``a = 0 .. A+1`` of theory-notes Sec. 1-2.

Index conventions (``A = depth``)
---------------------------------
``g2_layers[a]``
    Weight variance scale of the weights *into* layer ``a``:
    ``g2_layers[0] = g2_in`` (input weights ``W^(in,0)``),
    ``g2_layers[a] = g_a^2`` for ``a = 1..A`` (hidden/recurrent weights),
    ``g2_layers[A+1] = g2_out`` (readout weights).  Shape ``(A+2,)``.
``sigma2_layers[a]``
    Bias variance of layer ``a`` for ``a = 0..A`` and of the readout bias at
    ``a = A+1``.  Shape ``(A+2,)``.
``nu[a]``
    Relative width ``n_a / n`` of hidden layer ``a = 0..A`` (all ones for the
    RNN).  Shape ``(A+1,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np

from .activations import (  # noqa: F401  (re-exported)
    ACTIVATION_HELP,
    BUILTIN_NAMES as BUILTIN_ACTIVATIONS,
    Activation,
    activation_function,
    get_activation,
    register_activation,
)

ARCHS = ("dnn", "rnn")
BIAS_MODES = ("uncorrelated", "static")

ArrayLike = Union[float, Sequence[float], np.ndarray]


def check_nonneg_scalar(name: str, value) -> float:
    """Validate a non-negative finite scalar (a variance or noise level).

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : object
        Value convertible to ``float``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming ``name`` if ``value`` is not a number, not finite, or negative.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a non-negative number, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a non-negative finite number, got {value!r}")
    return v


def _as_nonneg_vector(name: str, value: ArrayLike, length: int, allow_sequence: bool) -> np.ndarray:
    """Broadcast a scalar or sequence to a float64 vector of ``length``, checking signs."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    elif arr.ndim == 1:
        if not allow_sequence:
            raise ValueError(f"{name}: must be a scalar for this architecture (weights are shared), got a sequence")
        if arr.shape[0] != length:
            raise ValueError(f"{name}: sequence must have length {length}, got {arr.shape[0]}")
    else:
        raise ValueError(f"{name}: must be a scalar or a 1-D sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name}: variances must be non-negative, got {value!r}")
    return arr


@dataclass(frozen=True, eq=False)
class Prior:
    """Gaussian parameter prior of a DNN or weight-shared RNN (theory-notes Sec. 2).

    Parameters
    ----------
    arch : {"dnn", "rnn"}
        Deep feedforward network or recurrent network with shared weights.
    depth : int
        ``A``: the last hidden layer / time step.  Layers are ``a = 0..A``,
        the readout is ``a = A+1``.
    activation : str, callable or Activation
        ``"relu"``, ``"erf"`` (meaning ``erf(sqrt(pi)/2 x)``), ``"linear"``,
        ``"tanh"``, a name given to :func:`register_activation`, an import
        path ``"module:function"``, any vectorised callable, or an
        :class:`~theory.activations.Activation` (see
        :func:`~theory.activations.get_activation`; the resolved object is
        :attr:`act`).  The theory checks a custom function before it first
        evaluates it (:meth:`~theory.activations.Activation.validated`): it
        must map a float64 array to a finite float64 array of the same shape.
        Only string activations can be serialised (point specs, the
        workflow, ``python -m mcsim``).
    g2 : float or sequence of float
        Hidden/recurrent weight variance scale ``g^2``.  For the DNN a sequence
        of length ``A`` gives ``g_a^2`` for ``a = 1..A``.
    sigma2 : float or sequence of float
        Bias variance ``sigma^2`` of layers ``a = 0..A``.  For the DNN a
        sequence of length ``A+1`` gives per-layer values.
    g2_in : float
        Input weight variance scale ``g_0^2`` (weights scale as ``g_0^2/n_in``).
    bias : {"uncorrelated", "static"}
        Fresh bias per layer/step, or one bias vector shared by ``a = 0..A``.
    g2_out : float, optional
        Readout weight variance ``g_{A+1}^2``; defaults to the last hidden
        ``g^2`` (or ``g2`` itself when ``A = 0``).
    sigma2_out : float, optional
        Readout bias variance ``sigma_{A+1}^2``; defaults to the last hidden
        ``sigma^2``.
    nu : float or sequence of float, optional
        DNN relative widths ``n_a / n`` for ``a = 0..A`` (default 1).  The RNN
        accepts only 1.
    n_out : int, optional
        Number of readout units (default 1).  The theory is per unit; the
        simulators use it for the shape of ``y``.

    Raises
    ------
    ValueError
        For an unknown ``arch``, ``bias`` or ``activation``, a negative or
        non-finite variance, sequences of the wrong length, per-layer
        sequences for the RNN, or DNN static bias with unequal widths.
    """

    arch: str
    depth: int
    activation: Union[str, Callable]
    g2: ArrayLike
    sigma2: ArrayLike
    g2_in: float
    bias: str = "uncorrelated"
    g2_out: float | None = None
    sigma2_out: float | None = None
    nu: ArrayLike = 1.0
    n_out: int = 1
    g2_layers: np.ndarray = field(init=False, repr=False)
    sigma2_layers: np.ndarray = field(init=False, repr=False)
    nu_layers: np.ndarray = field(init=False, repr=False)
    act: Activation = field(init=False, repr=False)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch: unknown architecture {self.arch!r}; allowed: {', '.join(ARCHS)}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"bias: unknown bias mode {self.bias!r}; allowed: {', '.join(BIAS_MODES)}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 0:
            raise ValueError(f"depth: must be a non-negative integer, got {self.depth!r}")
        if isinstance(self.n_out, bool) or not isinstance(self.n_out, (int, np.integer)) or self.n_out < 1:
            raise ValueError(f"n_out: must be a positive integer, got {self.n_out!r}")
        object.__setattr__(self, "act", get_activation(self.activation))  # validates
        A = int(self.depth)
        object.__setattr__(self, "depth", A)
        is_dnn = self.arch == "dnn"
        g2_hidden = _as_nonneg_vector("g2", self.g2, A, allow_sequence=is_dnn) if A > 0 else np.zeros(0)
        if A == 0:
            g2_scalar = np.asarray(self.g2, dtype=float)
            if g2_scalar.ndim != 0:
                raise ValueError("g2: must be a scalar when depth = 0")
            _as_nonneg_vector("g2", g2_scalar, 1, False)
        sigma2 = _as_nonneg_vector("sigma2", self.sigma2, A + 1, allow_sequence=is_dnn)
        g2_in = _as_nonneg_vector("g2_in", self.g2_in, 1, allow_sequence=False)[0]
        if self.g2_out is None:
            g2_out = float(g2_hidden[-1]) if A > 0 else float(self.g2)
        else:
            g2_out = float(_as_nonneg_vector("g2_out", self.g2_out, 1, allow_sequence=False)[0])
        if self.sigma2_out is None:
            sigma2_out = float(sigma2[-1])
        else:
            sigma2_out = float(_as_nonneg_vector("sigma2_out", self.sigma2_out, 1, allow_sequence=False)[0])
        nu = _as_nonneg_vector("nu", self.nu, A + 1, allow_sequence=is_dnn)
        if np.any(nu <= 0):
            raise ValueError(f"nu: relative widths must be positive, got {self.nu!r}")
        if not is_dnn and not np.all(nu == 1.0):
            raise ValueError("nu: the RNN has one width for all steps; nu must be 1")
        if is_dnn and self.bias == "static" and not np.all(nu == nu[0]):
            raise ValueError("bias: DNN static bias shares one bias vector across layers and needs equal widths (nu)")
        if self.bias == "static" and not np.all(sigma2 == sigma2[0]):
            raise ValueError("sigma2: static bias shares one bias vector across layers; per-layer sigma2 must be equal")
        object.__setattr__(self, "g2_layers", np.concatenate([[g2_in], g2_hidden, [g2_out]]))
        object.__setattr__(self, "sigma2_layers", np.concatenate([sigma2, [sigma2_out]]))
        object.__setattr__(self, "nu_layers", nu)
        for arr in (self.g2_layers, self.sigma2_layers, self.nu_layers):
            arr.setflags(write=False)

    # ------------------------------------------------------------------ helpers
    @property
    def A(self) -> int:
        """Depth ``A`` (alias of :attr:`depth`)."""
        return self.depth

    @property
    def activation_name(self) -> str:
        """Name of the activation (``"custom:<qualname>"`` for a callable)."""
        return self.act.name

    @property
    def phi(self) -> Callable[[np.ndarray], np.ndarray]:
        """Vectorised NumPy activation function."""
        return self.act.numpy

    @property
    def is_rnn(self) -> bool:
        """True for the weight-shared recurrent network."""
        return self.arch == "rnn"

    @property
    def shared(self) -> bool:
        """True where weights (and inputs weights) are shared across steps (RNN)."""
        return self.arch == "rnn"

    def widths(self, width: int) -> np.ndarray:
        """Hidden widths ``n_a = round(nu_a * width)`` for ``a = 0..A``.

        Parameters
        ----------
        width : int
            Reference width ``n`` (> 0).

        Returns
        -------
        ndarray of int64, shape (A+1,)
        """
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"width: must be a positive integer, got {width!r}")
        n = np.rint(self.nu_layers * int(width)).astype(np.int64)
        if np.any(n < 1):
            raise ValueError(f"width: nu * width rounds to zero units for width={width}")
        return n

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description, accepted by :meth:`from_dict`.

        Raises
        ------
        ValueError
            If the activation is a custom callable (not serialisable).
        """
        if not isinstance(self.activation, str):
            raise ValueError("activation: a custom callable prior cannot be serialised to a dict")

        def _py(v):
            a = np.asarray(v, dtype=float)
            return float(a) if a.ndim == 0 else [float(t) for t in a]

        return {
            "arch": self.arch,
            "depth": int(self.depth),
            "activation": self.activation,
            "g2": _py(self.g2),
            "sigma2": _py(self.sigma2),
            "g2_in": float(self.g2_in),
            "bias": self.bias,
            "g2_out": float(self.g2_layers[-1]),
            "sigma2_out": float(self.sigma2_layers[-1]),
            "nu": _py(self.nu),
            "n_out": int(self.n_out),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Prior":
        """Build a prior from :meth:`to_dict` output (unknown keys are an error)."""
        allowed = {"arch", "depth", "activation", "g2", "sigma2", "g2_in", "bias", "g2_out", "sigma2_out", "nu", "n_out"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"prior: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = {"arch", "depth", "activation", "g2", "sigma2", "g2_in"} - set(d)
        if missing:
            raise ValueError(f"prior: missing keys {sorted(missing)}")
        return cls(**d)

    def __repr__(self) -> str:
        return (
            f"Prior(arch={self.arch!r}, depth={self.depth}, activation={self.activation_name!r}, "
            f"g2={self.g2!r}, sigma2={self.sigma2!r}, g2_in={self.g2_in!r}, bias={self.bias!r}, "
            f"g2_out={float(self.g2_layers[-1])!r}, sigma2_out={float(self.sigma2_layers[-1])!r}, "
            f"nu={self.nu!r}, n_out={self.n_out})"
        )


def check_inputs(prior: Prior, X: np.ndarray) -> np.ndarray:
    """Validate an input array against a prior and return it as a sequence array.

    Parameters
    ----------
    prior : Prior
        The network prior (its depth fixes the sequence length ``A+1``).
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        Single inputs given at ``a = 0``, or input sequences.

    Returns
    -------
    ndarray of float64, shape (P, A+1, n_in)
        Inputs per step; for single inputs, steps ``a >= 1`` are zero.

    Raises
    ------
    ValueError
        If ``X`` has the wrong number of dimensions, a sequence length other
        than ``A+1``, zero patterns, zero input dimension, or non-finite values.
    """
    X = np.asarray(X, dtype=float)
    A = prior.depth
    if X.ndim == 2:
        P, n_in = X.shape
        seq = np.zeros((P, A + 1, n_in))
        seq[:, 0, :] = X
    elif X.ndim == 3:
        if X.shape[1] != A + 1:
            raise ValueError(f"X: a sequence input must have shape (P, A+1={A + 1}, n_in), got {X.shape}")
        seq = X.copy()
    else:
        raise ValueError(f"X: must have shape (P, n_in) or (P, A+1, n_in), got {X.shape}")
    if seq.shape[0] < 1 or seq.shape[2] < 1:
        raise ValueError(f"X: needs at least one pattern and one input dimension, got shape {X.shape}")
    if not np.all(np.isfinite(seq)):
        raise ValueError("X: inputs must be finite")
    return seq
