"""Metropolis-corrected Hamiltonian Monte Carlo with dual-averaging step size and diagonal mass matrix.

Generic over a potential with ``value(z) -> float`` and
``value_and_grad(z) -> (float, ndarray)`` (e.g.
:class:`mcsim.backprop.PosteriorPotential`).  One iteration: momentum
``p ~ N(0, M)``, ``n_leapfrog`` leapfrog steps of size ``eps`` with the
kinetic energy ``p M^-1 p / 2``, Metropolis accept/reject on the total
energy (exact: the chain leaves ``exp(-U)`` invariant).  A trajectory whose
energy error exceeds ``max_energy_error`` (or becomes non-finite) is a
*divergence* and is rejected.

Warm-up (Hoffman and Gelman 2014, Alg. 5; Stan's windows simplified):
dual averaging of ``log eps`` towards the acceptance ``target_accept``
during all warm-up iterations; with ``adapt_mass`` the diagonal inverse mass
matrix is set once, at the middle of warm-up, to the (regularised) variance
of the draws of the second quarter, and dual averaging restarts.  After
warm-up ``eps`` is frozen at the averaged value.

Reproducibility and checkpoints: iteration ``i`` of a chain draws all its
random numbers (momentum, Metropolis uniform, and the caller's extras) from
:func:`mcsim._rng.realization_generator` ``(key, i)``, so the complete
sampler state is :class:`ChainState` (position, iteration counter, step
size, dual-averaging state, inverse mass, cached potential and gradient):
restoring it and continuing reproduces the uninterrupted chain bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ._rng import realization_generator


@dataclass(frozen=True)
class HMCSettings:
    """Sampler settings (all recorded in output files).

    Attributes
    ----------
    warmup : int
        Adaptation iterations (discarded).
    n_leapfrog : int
        Leapfrog steps per iteration.
    target_accept : float
        Dual-averaging target of the mean acceptance probability.
    step_size : float
        Initial step size.
    adapt_mass : bool
        Estimate a diagonal inverse mass matrix in warm-up.
    max_energy_error : float
        Energy error above which a trajectory is a divergence.
    thin : int
        Keep every ``thin``-th iteration after warm-up.
    jitter : float
        Each iteration uses the step size ``eps * U(1 - jitter, 1 + jitter)``
        (``0 <= jitter < 1``): random trajectory lengths avoid the near-periodic
        orbits of near-Gaussian targets, along which e.g. ``|z|^2`` would not move.
    """

    warmup: int = 300
    n_leapfrog: int = 10
    target_accept: float = 0.8
    step_size: float = 0.1
    adapt_mass: bool = True
    max_energy_error: float = 1000.0
    thin: int = 1
    jitter: float = 0.5

    def __post_init__(self):
        for name in ("warmup", "n_leapfrog", "thin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"hmc.{name}: must be an integer >= {0 if name == 'warmup' else 1}, got {v!r}")
        if not (0.0 < float(self.target_accept) < 1.0):
            raise ValueError(f"hmc.target_accept: must be in (0, 1), got {self.target_accept!r}")
        if not (float(self.step_size) > 0 and math.isfinite(self.step_size)):
            raise ValueError(f"hmc.step_size: must be a positive number, got {self.step_size!r}")
        if not (0.0 <= float(self.jitter) < 1.0):
            raise ValueError(f"hmc.jitter: must be in [0, 1), got {self.jitter!r}")
        if not float(self.max_energy_error) > 0:
            raise ValueError(f"hmc.max_energy_error: must be positive, got {self.max_energy_error!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "HMCSettings":
        """Build from a plain dict (unknown keys are an error)."""
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"hmc: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DualAveraging:
    """State of Nesterov dual averaging of ``log eps`` (Hoffman and Gelman 2014, Sec. 3.2)."""

    mu: float
    log_eps_bar: float = 0.0
    h_bar: float = 0.0
    t: int = 0
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def update(self, accept_prob: float, target: float) -> float:
        """Record one acceptance probability; return the new ``log eps``."""
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (target - accept_prob)
        log_eps = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** (-self.kappa)
        self.log_eps_bar = eta * log_eps + (1.0 - eta) * self.log_eps_bar
        return log_eps


@dataclass
class ChainState:
    """Everything needed to continue a chain bit-identically (checkpointable).

    Attributes
    ----------
    position : ndarray of float64, shape (dim,)
    iteration : int
        Number of completed iterations (warm-up included); the next one uses
        random stream ``iteration``.
    log_eps : float
        Current log step size.
    dual : DualAveraging
    inv_mass : ndarray of float64, shape (dim,)
    potential : float
    grad : ndarray of float64, shape (dim,)
    n_accept_sum : float
        Sum of acceptance probabilities after warm-up.
    n_divergent : int
        Divergences after warm-up.
    warmup_draws : list
        Positions collected for the mass matrix (warm-up only).
    """

    position: np.ndarray
    iteration: int
    log_eps: float
    dual: DualAveraging
    inv_mass: np.ndarray
    potential: float
    grad: np.ndarray
    n_accept_sum: float = 0.0
    n_divergent: int = 0
    warmup_draws: list = field(default_factory=list)


def init_state(potential, position: np.ndarray, settings: HMCSettings) -> ChainState:
    """Start a chain at ``position`` (e.g. a prior draw).

    Raises
    ------
    ValueError
        ``position: ...`` if the potential is not finite there.
    """
    z = np.array(position, dtype=float)
    u, g = potential.value_and_grad(z)
    if not math.isfinite(u):
        raise ValueError("position: the potential is not finite at the initial position")
    eps = float(settings.step_size)
    return ChainState(z, 0, math.log(eps), DualAveraging(mu=math.log(10 * eps)), np.ones(z.size), u, g)


def _leapfrog(potential, z, p, grad, eps, inv_mass, n):
    z = z.copy()
    p = p - 0.5 * eps * grad
    u = math.inf
    for i in range(n):
        z += eps * inv_mass * p
        u, grad = potential.value_and_grad(z)
        if not math.isfinite(u):
            return z, p, u, grad
        p -= (eps if i < n - 1 else 0.5 * eps) * grad
    return z, p, u, grad


def step(potential, state: ChainState, key: int, settings: HMCSettings) -> tuple[float, bool]:
    """One HMC iteration in place (warm-up adaptation if ``state.iteration < settings.warmup``).

    Parameters
    ----------
    potential : object with ``value_and_grad``
    state : ChainState
        Updated in place.
    key : int
        Stream key of the chain (:func:`mcsim._rng.stream_key`).
    settings : HMCSettings

    Returns
    -------
    accept_prob : float
    divergent : bool
    """
    rng = realization_generator(key, state.iteration)
    eps = math.exp(state.log_eps) * (1.0 + settings.jitter * (2.0 * rng.uniform() - 1.0))
    p0 = rng.standard_normal(state.position.size) / np.sqrt(state.inv_mass)
    h0 = state.potential + 0.5 * float(np.sum(state.inv_mass * p0 * p0))
    z1, p1, u1, g1 = _leapfrog(potential, state.position, p0, state.grad, eps, state.inv_mass, settings.n_leapfrog)
    h1 = u1 + 0.5 * float(np.sum(state.inv_mass * p1 * p1)) if math.isfinite(u1) else math.inf
    dH = h1 - h0
    divergent = not math.isfinite(dH) or dH > settings.max_energy_error
    accept_prob = 0.0 if divergent else min(1.0, math.exp(-dH))
    if rng.uniform() < accept_prob:
        state.position, state.potential, state.grad = z1, u1, g1
    warm = state.iteration < settings.warmup
    if warm:
        _adapt(potential, state, accept_prob, settings)
    else:
        state.n_accept_sum += accept_prob
        state.n_divergent += int(divergent)
    state.iteration += 1
    return accept_prob, divergent


def _adapt(potential, state: ChainState, accept_prob: float, settings: HMCSettings) -> None:
    i, W = state.iteration, settings.warmup
    state.log_eps = state.dual.update(accept_prob, settings.target_accept)
    if settings.adapt_mass and W >= 20:
        if W // 4 <= i < W // 2:
            state.warmup_draws.append(state.position.copy())
        if i == W // 2 - 1 and len(state.warmup_draws) >= 5:
            Z = np.asarray(state.warmup_draws)
            m = Z.shape[0]
            var = Z.var(axis=0, ddof=1)
            # Stan's regularisation towards 1e-3 (here: towards the prior scale 1 of whitened coordinates)
            state.inv_mass = (m / (m + 5.0)) * var + 1e-3 * (5.0 / (m + 5.0))
            state.warmup_draws = []
            state.dual = DualAveraging(mu=math.log(10 * math.exp(state.log_eps)))
    if i == W - 1:
        state.log_eps = state.dual.log_eps_bar
        state.warmup_draws = []


# ============================================================================ state I/O (checkpoints)
_STATE_SCALARS = ("iteration", "log_eps", "potential", "n_accept_sum", "n_divergent")
_DUAL_FIELDS = ("mu", "log_eps_bar", "h_bar", "t", "gamma", "t0", "kappa")


def state_to_arrays(state: ChainState) -> dict:
    """The complete :class:`ChainState` as named arrays (for a checkpoint file; exact, no rounding).

    Returns
    -------
    dict of str -> ndarray
        ``position``, ``inv_mass``, ``grad`` (dim,) float64; ``warmup_draws``
        (m, dim) float64 (m >= 0); ``scalars`` (5,) float64 (``iteration``,
        ``log_eps``, ``potential``, ``n_accept_sum``, ``n_divergent``);
        ``dual`` (7,) float64 (the :class:`DualAveraging` fields in order).
        Integers are stored as float64, exact below 2**53.
    """
    dim = state.position.size
    wd = np.asarray(state.warmup_draws, dtype=np.float64).reshape(-1, dim)
    return {
        "position": np.asarray(state.position, dtype=np.float64),
        "inv_mass": np.asarray(state.inv_mass, dtype=np.float64),
        "grad": np.asarray(state.grad, dtype=np.float64),
        "warmup_draws": wd,
        "scalars": np.array([float(getattr(state, k)) for k in _STATE_SCALARS]),
        "dual": np.array([float(getattr(state.dual, k)) for k in _DUAL_FIELDS]),
    }


def state_from_arrays(arrays) -> ChainState:
    """Inverse of :func:`state_to_arrays` (arrays may be HDF5 datasets' values).

    Raises
    ------
    ValueError
        If an array is missing or has the wrong shape.
    """
    try:
        pos = np.array(arrays["position"], dtype=np.float64)
        inv_mass = np.array(arrays["inv_mass"], dtype=np.float64)
        grad = np.array(arrays["grad"], dtype=np.float64)
        wd = np.array(arrays["warmup_draws"], dtype=np.float64)
        sc = np.array(arrays["scalars"], dtype=np.float64)
        du = np.array(arrays["dual"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"chain state: missing array {exc.args[0]!r}") from None
    dim = pos.size
    if (pos.ndim != 1 or inv_mass.shape != (dim,) or grad.shape != (dim,) or wd.ndim != 2 or wd.shape[1] != dim
            or sc.shape != (len(_STATE_SCALARS),) or du.shape != (len(_DUAL_FIELDS),)):
        raise ValueError("chain state: inconsistent array shapes")
    d = dict(zip(_DUAL_FIELDS, du.tolist()))
    d["t"] = int(d["t"])
    s = dict(zip(_STATE_SCALARS, sc.tolist()))
    return ChainState(pos, int(s["iteration"]), s["log_eps"], DualAveraging(**d), inv_mass, s["potential"], grad,
                      s["n_accept_sum"], int(s["n_divergent"]), [row.copy() for row in wd])
