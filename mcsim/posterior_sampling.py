"""Posterior Monte Carlo of finite networks: importance weighting of prior samples, or HMC.

The posterior over the hidden parameters Theta with the readout integrated
out (theory-notes Sec. 9.1) is ``p(Theta) prod_o N(Y_o | 0, K_DD(Theta) + kappa I)``
with ``K = Caux^(A+1,A+1) / gamma0``.  Two samplers:

``method="importance"`` (Sec. 9.2)
    Prior realizations from :func:`mcsim.sample` on the training plus test
    patterns, weighted by ``w = prod_o N(Y_o | 0, K_DD + kappa I)``
    (log-sum-exp, Cholesky).  Posterior means are ratios of weighted sums;
    their standard errors are the self-normalised importance-sampling
    (delta-method) errors ``sqrt(sum w^2 (O - O_bar)^2) / sum w``.  The
    effective sample size ``ESS = (sum w)^2 / sum w^2`` below ``min_ess``
    raises :class:`ImportanceCollapseError` (or warns, ``on_collapse="warn"``).
``method="hmc"``
    Metropolis-corrected HMC (:mod:`mcsim.hmc`) on the whitened hidden
    parameters (:mod:`mcsim.backprop`), ``chains`` independent chains.
    Means are over all kept draws; standard errors are ``sd / sqrt(ESS)``
    (:mod:`mcsim.diagnostics`), with split-R-hat and bulk/tail ESS per
    observable element, acceptance rate and divergences per chain.

Observables (:data:`POSTERIOR_OBSERVABLES`): those of :func:`mcsim.sample`
with its conventions and shapes without the leading R (``chat``, ``caux``,
``*_diag``, ``*_readout``; ``y`` only for HMC, drawn from the readout's
conditional posterior, :func:`mcsim.readout_posterior.draw_outputs`; with
importance weighting the readout block of ``chat`` is its expectation given
Theta and Y, :func:`mcsim.readout_posterior.conditional_output_gram`, since
the prior's outputs are not conditioned on the data), plus

``predictor``    (P, n_out)  ``K_.D (K_DD + kappa I)^-1 Y`` on all patterns (units of ``f = y / sqrt(gamma0)``)
``train_error``  ()          mean over training patterns and outputs of ``(Y - predictor)^2``
``test_error``   ()          the same on the test patterns (needs at least one)
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from theory.inputs import strict_int
from theory.prior import Prior
from theory.spec import OBSERVABLES, check_observables, check_seed, point_key

from . import diagnostics as diag
from . import sampler as _sampler
from ._rng import realization_generator, stream_key
from .backprop import ExplicitNetwork, PosteriorPotential
from .datasets import check_dataset, data_hash
from .hmc import HMCSettings, init_state, step
from .readout_posterior import (
    check_kappa_gamma0,
    conditional_mean,
    conditional_output_gram,
    draw_outputs,
    log_likelihood,
)

METHODS = ("importance", "hmc")
READOUT_OBSERVABLES = ("predictor", "train_error", "test_error")
POSTERIOR_OBSERVABLES = tuple(OBSERVABLES) + READOUT_OBSERVABLES
DEFAULT_POSTERIOR_OBSERVABLES = ("chat", "caux", "predictor", "train_error", "test_error")
#: default smallest acceptable importance-sampling ESS (the SE estimate is unreliable below)
DEFAULT_MIN_ESS = 50.0
#: prior realizations per call of mcsim.sample in importance weighting
_IMPORTANCE_BLOCK = 256


class ImportanceCollapseError(RuntimeError):
    """The importance weights are dominated by a few prior samples (ESS below the threshold)."""


@dataclass
class PosteriorResult:
    """Posterior means, standard errors, diagnostics and draws of one run.

    Attributes
    ----------
    method : {"importance", "hmc"}
    mean, se : dict of str -> ndarray of float64
        Per observable (shapes in the module docstring).
    diagnostics : dict of str -> scalar or ndarray
        importance: ``ess``, ``draws``, ``overflow``, ``log_evidence``;
        hmc: ``accept_rate`` (chains,), ``divergences`` (chains,), ``step_size``
        (chains,), ``gradient_evaluations``, and ``rhat/<obs>``,
        ``ess_bulk/<obs>``, ``ess_tail/<obs>`` with the observable's shape,
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``.
    draws : dict of str -> ndarray
        importance: ``log_weights`` (R,); hmc: ``<obs>`` (chains, draws, ...).
    meta : dict
        prior, width, data hash, kappa, gamma0, seed, method, sampler settings
        (JSON-serialisable).
    """

    method: str
    mean: dict
    se: dict
    diagnostics: dict
    draws: dict
    meta: dict = field(default_factory=dict)


def check_posterior_observables(observables, prior: Prior, width: int, method: str, n_test: int) -> tuple:
    """Validate posterior observable names (see module docstring); returns them without duplicates."""
    if isinstance(observables, str):
        observables = (observables,)
    obs = tuple(dict.fromkeys(observables))
    for o in obs:
        if o not in POSTERIOR_OBSERVABLES:
            raise ValueError(f"observables: unknown observable {o!r}; allowed: {', '.join(POSTERIOR_OBSERVABLES)}")
    if not obs:
        raise ValueError("observables: must name at least one observable")
    net_obs = [o for o in obs if o in OBSERVABLES]
    if net_obs:
        check_observables(net_obs, prior, width)
    if method == "importance" and "y" in obs:
        raise ValueError("observables: 'y' is not available with method='importance' (prior outputs are not "
                         "conditioned on the data); use 'predictor', or method='hmc'")
    if "test_error" in obs and n_test == 0:
        raise ValueError("observables: 'test_error' needs at least one test pattern (train covers all patterns)")
    return obs


def _readout_values(caux_readout, Y, train, test, kappa, gamma0, obs) -> dict:
    """``predictor`` (R, P, n_out), ``train_error`` (R,), ``test_error`` (R,) as requested."""
    out = {}
    if not any(o in obs for o in READOUT_OBSERVABLES):
        return out
    m = conditional_mean(caux_readout, Y[train], train, kappa, gamma0)
    if "predictor" in obs:
        out["predictor"] = m
    if "train_error" in obs:
        out["train_error"] = np.mean((Y[train] - m[:, train]) ** 2, axis=(1, 2))
    if "test_error" in obs:
        out["test_error"] = np.mean((Y[test] - m[:, test]) ** 2, axis=(1, 2))
    return out


# ============================================================================ importance weighting
class _WeightedSums:
    """Streaming log-sum-exp accumulation of ``sum w``, ``sum w^2`` and weighted first/second moments."""

    def __init__(self):
        self.shift = -math.inf
        self.s0 = 0.0
        self.s00 = 0.0
        self.s1, self.s2w, self.s22 = {}, {}, {}

    def add(self, logw: np.ndarray, values: dict) -> None:
        new = max(self.shift, float(logw.max()))
        if new > self.shift:
            c = math.exp(self.shift - new) if math.isfinite(self.shift) else 0.0
            self.s0 *= c
            self.s00 *= c * c
            for k in self.s1:
                self.s1[k] *= c
                self.s2w[k] *= c * c
                self.s22[k] *= c * c
            self.shift = new
        w = np.exp(logw - self.shift)
        self.s0 += float(w.sum())
        self.s00 += float((w * w).sum())
        for k, v in values.items():
            v = np.asarray(v, dtype=float)
            ww = w.reshape((-1,) + (1,) * (v.ndim - 1))
            if k not in self.s1:
                self.s1[k] = np.zeros(v.shape[1:])
                self.s2w[k] = np.zeros(v.shape[1:])
                self.s22[k] = np.zeros(v.shape[1:])
            self.s1[k] += (ww * v).sum(axis=0)
            self.s2w[k] += (ww * ww * v).sum(axis=0)
            self.s22[k] += (ww * ww * v * v).sum(axis=0)

    def results(self):
        mean, se = {}, {}
        for k in self.s1:
            m = self.s1[k] / self.s0
            var = (self.s22[k] - 2 * m * self.s2w[k] + m * m * self.s00) / self.s0**2
            mean[k] = m
            se[k] = np.sqrt(np.clip(var, 0.0, None))
        return mean, se

    @property
    def ess(self) -> float:
        return self.s0**2 / self.s00 if self.s00 > 0 else 0.0


def _condition_readout_chat(values: dict, cr, Y, train, kappa, gamma0) -> None:
    """Replace the prior outputs' readout block of ``chat`` by its expectation given Theta and Y (in place)."""
    keys = [o for o in ("chat", "chat_diag", "chat_readout") if o in values]
    if not keys:
        return
    G = conditional_output_gram(cr, Y[train], train, kappa, gamma0)
    for o in keys:
        v = values[o].copy()
        if o == "chat":
            v[:, -1, -1] = G
        elif o == "chat_diag":
            v[:, -1] = G
        else:
            v = G
        values[o] = v


def _weigh_block(acc: _WeightedSums, res: dict, Y, train, test, kappa, gamma0, obs) -> tuple[np.ndarray, int]:
    """Add one block of prior realizations (a :func:`mcsim.sample` result) to ``acc``.

    Returns the block's log-weights (NaN where overflowed) and the number overflowed.
    """
    ok = ~np.asarray(res["overflow"], dtype=bool)
    logw_block = np.full(ok.size, np.nan)
    if not ok.any():
        return logw_block, int(ok.size)
    cr = res["caux_readout"][ok]
    logw = log_likelihood(cr, Y[train], train, kappa, gamma0)
    logw_block[ok] = logw
    values = {o: res[o][ok] for o in obs if o in OBSERVABLES}
    _condition_readout_chat(values, cr, Y, train, kappa, gamma0)
    values.update(_readout_values(cr, Y, train, test, kappa, gamma0, obs))
    acc.add(logw, values)
    return logw_block, int((~ok).sum())


def _importance_result(acc: _WeightedSums, logw_all, draws, n_over, min_ess, on_collapse, settings) -> PosteriorResult:
    """Diagnostics, the loud ESS check and the result of an accumulated importance run."""
    if n_over:
        warnings.warn(f"importance: {n_over} of {draws} prior realizations overflowed (inf/nan) and were excluded",
                      RuntimeWarning, stacklevel=4)
    ess = acc.ess
    used = draws - n_over
    collapsed = not ess >= min_ess
    if collapsed:
        msg = (f"importance: effective sample size {ess:.1f} of {used} prior samples is below min_ess={min_ess:g}: "
               f"the weights are dominated by a few samples (P_D too large for the width, small kappa or large "
               f"gamma0); use method='hmc' or more draws")
        if on_collapse == "raise":
            raise ImportanceCollapseError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
    mean, se = acc.results()
    log_evidence = acc.shift + math.log(acc.s0) - math.log(used) if used and acc.s0 > 0 else math.nan
    diagnostics = {"ess": float(ess), "draws": int(draws), "overflow": int(n_over), "ess_collapsed": bool(collapsed),
                   "min_ess": float(min_ess), "log_evidence": float(log_evidence)}
    settings = dict(settings, min_ess=float(min_ess), on_collapse=on_collapse)
    return PosteriorResult("importance", mean, se, diagnostics, {"log_weights": logw_all}, {"settings": settings})


def _importance(prior, seq, Y, train, test, width, draws, kappa, gamma0, seed, obs, sample_method,
                min_ess, on_collapse) -> PosteriorResult:
    net_obs = tuple(o for o in obs if o in OBSERVABLES)
    sample_obs = tuple(dict.fromkeys(net_obs + ("caux_readout",)))
    acc = _WeightedSums()
    logw_all = np.full(draws, np.nan)
    n_over = 0
    for r0 in range(0, draws, _IMPORTANCE_BLOCK):
        B = min(_IMPORTANCE_BLOCK, draws - r0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # counted below
            res = _sampler.sample(prior, seq, width, B, seed=seed, method=sample_method, observables=sample_obs,
                                  start=r0)
        logw_all[r0:r0 + B], k = _weigh_block(acc, res, Y, train, test, kappa, gamma0, obs)
        n_over += k
    return _importance_result(acc, logw_all, draws, n_over, min_ess, on_collapse, {"sample_method": sample_method})


def importance_weight(samples: dict, y, train, kappa: float, gamma0: float = 1.0,
                      observables: Sequence[str] | None = None, min_ess: float = DEFAULT_MIN_ESS,
                      on_collapse: str = "raise") -> PosteriorResult:
    """Importance-weight prior realizations that are already drawn (e.g. a point file of the MPI driver).

    Parameters
    ----------
    samples : dict of str -> ndarray
        Prior realizations on the training plus test patterns, as returned by
        :func:`mcsim.sample` or the arrays of :func:`mcsim.read_point`: must hold
        ``caux_readout`` (R, P, P) or ``caux`` (R, A+2, A+2, P, P); ``overflow``
        (R,) bool is used when present.
    y : array_like, shape (P,) or (P, n_out)
    train : array_like of int (P_D,) or bool (P,)
    kappa, gamma0 : float
    observables : sequence of str, optional
        Default: every network observable in ``samples`` plus ``predictor``,
        ``train_error`` and (with test patterns) ``test_error``.
    min_ess, on_collapse
        As in :func:`posterior`.

    Returns
    -------
    PosteriorResult
        As :func:`posterior` with ``method="importance"`` on the same realizations.
    """
    if not isinstance(samples, dict):
        raise ValueError(f"samples: expected a dict of arrays, got {type(samples).__name__}")
    res = {k: np.asarray(v) for k, v in samples.items()}
    if "caux_readout" not in res:
        if "caux" not in res:
            raise ValueError("samples: needs 'caux_readout' or 'caux' (the readout kernel per realization)")
        res["caux_readout"] = np.ascontiguousarray(res["caux"][:, -1, -1])
    cr = res["caux_readout"]
    if cr.ndim != 3 or cr.shape[1] != cr.shape[2]:
        raise ValueError(f"samples: caux_readout must have shape (R, P, P), got {cr.shape}")
    R, P = cr.shape[0], cr.shape[1]
    res.setdefault("overflow", np.zeros(R, dtype=bool))
    Y = np.asarray(y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] != P or not np.all(np.isfinite(Y)):
        raise ValueError(f"y: must be finite with shape ({P},) or ({P}, n_out), got {np.shape(y)}")
    t = np.asarray(train)
    t = np.flatnonzero(t) if t.dtype == bool else t.astype(np.int64)
    if t.size == 0 or t.min() < 0 or t.max() >= P or np.unique(t).size != t.size:
        raise ValueError(f"train: must be unique indices in 0..{P - 1} (at least one) or a boolean mask")
    tr = np.sort(t)
    test = np.setdiff1d(np.arange(P), tr).astype(np.int64)
    kappa, gamma0 = check_kappa_gamma0(kappa, gamma0)
    if observables is None:
        observables = [o for o in res if o in OBSERVABLES] + ["predictor", "train_error"] + (
            ["test_error"] if test.size else [])
    obs = tuple(dict.fromkeys(observables))
    for o in obs:
        if o not in POSTERIOR_OBSERVABLES or o == "y":
            raise ValueError(f"observables: {o!r} cannot be importance-weighted; allowed: "
                             f"{', '.join(x for x in POSTERIOR_OBSERVABLES if x != 'y')}")
        if o in OBSERVABLES and o not in res:
            raise ValueError(f"observables: {o!r} is not in samples")
    if "test_error" in obs and not test.size:
        raise ValueError("observables: 'test_error' needs at least one test pattern")
    acc = _WeightedSums()
    logw, n_over = _weigh_block(acc, res, Y, tr, test, kappa, gamma0, obs)
    out = _importance_result(acc, logw, R, n_over, float(min_ess), on_collapse, {"sample_method": "given"})
    out.meta.update({"kappa": kappa, "gamma0": gamma0, "method": "importance", "draws": R, "observables": list(obs),
                     "train": tr.tolist(), "patterns": P})
    return out


# ============================================================================ HMC
def draw_observables(net: ExplicitNetwork, setup, kern, z: np.ndarray, obs: Sequence[str], Y: np.ndarray,
                     train: np.ndarray, test: np.ndarray, kappa: float, gamma0: float,
                     rng: np.random.Generator) -> dict:
    """Observables of one explicit parameter vector, in :func:`mcsim.sample`'s conventions (leading R = 1 dropped).

    Parameters
    ----------
    net : ExplicitNetwork
    setup, kern : :class:`mcsim.sampler._Setup` and the prior's kernel set
    z : ndarray of float64, shape (net.dim,)
    obs : sequence of str
        Posterior observable names.
    Y : ndarray of float64, shape (P, n_out)
    train, test : ndarray of int64
    kappa, gamma0 : float
    rng : numpy.random.Generator
        For the readout draw of ``y`` (and the readout block of ``chat``).

    Returns
    -------
    dict of str -> ndarray
    """
    H, PHI = net.forward(z)
    A1 = net.A1
    P = net.P
    nmax = int(net.widths.max())
    cr = net.readout_kernel(PHI[-1])
    out = {k: v[0] for k, v in _readout_values(cr[None], Y, train, test, kappa, gamma0, obs).items()}
    net_obs = tuple(o for o in obs if o in OBSERVABLES)
    if not net_obs:
        return out
    y = draw_outputs(cr, Y[train], train, kappa, gamma0, rng)
    chat_d = np.empty((1, A1 + 1, P, P))
    caux_d = np.empty((1, A1 + 1, P, P))
    Hs = np.zeros((1, A1, P, nmax))
    PHIs = np.zeros((1, A1, P, nmax))
    g2 = net.prior.g2_layers
    for a in range(A1):
        na = int(net.widths[a])
        Hs[0, a, :, :na] = H[a]
        PHIs[0, a, :, :na] = PHI[a]
        chat_d[0, a] = H[a] @ H[a].T / na
        caux_d[0, a] = setup.det_caux[a, a]
        if a >= 1:
            caux_d[0, a] += (g2[a] / PHI[a - 1].shape[1]) * (PHI[a - 1] @ PHI[a - 1].T)
    caux_d[0, A1] = cr
    chat_d[0, A1] = y @ y.T / y.shape[1]
    full = _sampler._assemble(setup, kern, net_obs, y[None], chat_d, caux_d, Hs, PHIs)
    out.update({k: v[0] for k, v in full.items()})
    return out


@dataclass
class ChainSegment:
    """Iterations ``[start, stop)`` of one HMC chain: per-iteration records, kept draws and the state at ``stop``.

    The unit of checkpointing (:mod:`mcsim.posterior_store`) and of the
    in-process run alike, so both give identical results.

    Attributes
    ----------
    start, stop : int
        Iteration range (warm-up included; iteration ``i`` uses random stream ``i``).
    accept : ndarray of float64, shape (stop - start,)
        Acceptance probability of each iteration.
    divergent : ndarray of bool, shape (stop - start,)
    evals : ndarray of int64, shape (stop - start,)
        Potential-gradient evaluations of each iteration.
    draws : dict of str -> ndarray, shape (k, ...)
        Observables of the kept iterations in the range (:meth:`ChainProblem.kept`).
    state : mcsim.hmc.ChainState
        Sampler state after iteration ``stop - 1``.
    """

    start: int
    stop: int
    accept: np.ndarray
    divergent: np.ndarray
    evals: np.ndarray
    draws: dict
    state: object


class ChainProblem:
    """One HMC posterior problem: the potential, the random streams of each chain and how to advance a chain.

    Chain ``c`` is a function of the problem and ``c`` only (its own random
    streams), so chains can run in any order, on any rank, in any number of
    pieces (:meth:`advance` from a restored state continues bit-identically).

    Parameters
    ----------
    prior, seq, Y, train, test, width, kappa, gamma0, seed, obs, settings
        As validated by :func:`posterior` (``seq`` (P, A+1, n_in), ``Y`` (P, n_out)).
    dhash : str
        :func:`mcsim.datasets.data_hash` of the data.
    """

    def __init__(self, prior, seq, Y, train, test, width, kappa, gamma0, seed, obs, settings: HMCSettings,
                 dhash: str = "", data_scale: float = 1.0):
        self.net = ExplicitNetwork(prior, seq, width)
        self.pot = PosteriorPotential(self.net, Y[train], train, kappa, gamma0, data_scale=data_scale)
        self.setup = _sampler._Setup(prior, seq, width)
        self.kern = _sampler._kernels_for(prior)
        self.base = f"posterior-hmc/{point_key(prior, seq, width, 'direct', seed)}/{dhash}/{kappa!r}/{gamma0!r}"
        self.seed, self.obs, self.settings = seed, tuple(obs), settings
        self.Y, self.train, self.test, self.kappa, self.gamma0 = Y, train, test, kappa, gamma0

    def total_iterations(self, draws: int) -> int:
        """Iterations (warm-up included) a chain needs for ``draws`` kept draws."""
        return self.settings.warmup + draws * self.settings.thin

    def kept(self, start: int, stop: int) -> np.ndarray:
        """Iterations in ``[start, stop)`` whose draws are kept (int64, ascending)."""
        W, t = self.settings.warmup, self.settings.thin
        i = np.arange(max(start, W), stop, dtype=np.int64)
        return i[(i - W + 1) % t == 0]

    def initial_state(self, c: int):
        """State of chain ``c`` before its first iteration (a prior draw); one gradient evaluation."""
        z0 = self.net.prior_draw(realization_generator(stream_key(self.seed, f"{self.base}/chain{c}/init"), 0))
        return init_state(self.pot, z0, self.settings)

    def advance(self, c: int, state, stop: int) -> ChainSegment:
        """Run chain ``c`` from ``state`` (updated in place) to iteration ``stop``; return the segment."""
        key = stream_key(self.seed, f"{self.base}/chain{c}")
        obs_key = stream_key(self.seed, f"{self.base}/chain{c}/outputs")
        start = state.iteration
        n = max(0, stop - start)
        accept, divergent, evals = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
        kept = {o: [] for o in self.obs}
        W, t = self.settings.warmup, self.settings.thin
        for j in range(n):
            e0 = self.pot.n_evals
            accept[j], divergent[j] = step(self.pot, state, key, self.settings)
            evals[j] = self.pot.n_evals - e0
            i = state.iteration - 1 - W
            if i >= 0 and (i + 1) % t == 0:
                rng = realization_generator(obs_key, i)
                vals = draw_observables(self.net, self.setup, self.kern, state.position, self.obs, self.Y,
                                        self.train, self.test, self.kappa, self.gamma0, rng)
                for o in self.obs:
                    kept[o].append(vals[o])
        draws = {o: np.asarray(kept[o]) if kept[o] else np.zeros((0,) + self.draw_shape(o)) for o in self.obs}
        return ChainSegment(start, start + n, accept, divergent, evals, draws, state)

    def draw_shape(self, o: str) -> tuple:
        """Shape of one kept draw of observable ``o``."""
        if not hasattr(self, "_shapes"):
            rng = np.random.default_rng(0)
            z = self.net.prior_draw(rng)
            vals = draw_observables(self.net, self.setup, self.kern, z, self.obs, self.Y, self.train, self.test,
                                    self.kappa, self.gamma0, rng)
            self._shapes = {k: np.shape(v) for k, v in vals.items()}
        return self._shapes[o]


def summarise_chains(problem: ChainProblem, segments, draws: int, chains: int) -> PosteriorResult:
    """Posterior means, standard errors and diagnostics from the segments of every chain.

    Parameters
    ----------
    problem : ChainProblem
    segments : sequence (length chains) of sequence of ChainSegment
        Contiguous segments of each chain from iteration 0, covering at least
        ``problem.total_iterations(draws)`` iterations (later ones are ignored,
        so a store holding longer chains gives the result of the shorter run).
    draws, chains : int

    Returns
    -------
    PosteriorResult
        ``method="hmc"``; the diagnostics depend only on the iterations used,
        never on how the chains were cut into segments.
    """
    settings = problem.settings
    total = problem.total_iterations(draws)
    W = settings.warmup
    per_chain = {o: [] for o in problem.obs}
    acc_rate = np.zeros(chains)
    divergences = np.zeros(chains, dtype=np.int64)
    step_size = np.zeros(chains)
    n_evals = 0
    for c in range(chains):
        segs = list(segments[c])
        if not segs or segs[0].start != 0 or any(a.stop != b.start for a, b in zip(segs, segs[1:])) \
                or segs[-1].stop < total:
            raise ValueError(f"chain {c}: segments do not cover iterations 0..{total}")
        accept = np.concatenate([s.accept for s in segs])[:total]
        div = np.concatenate([s.divergent for s in segs])[:total]
        ev = np.concatenate([s.evals for s in segs])[:total]
        for o in problem.obs:
            per_chain[o].append(np.concatenate([s.draws[o] for s in segs])[:draws])
        acc_rate[c] = math.fsum(accept[W:].tolist()) / (total - W)
        divergences[c] = int(div[W:].sum())
        last = next(s for s in segs if s.stop >= total)  # step size is frozen after warm-up
        step_size[c] = math.exp(last.state.log_eps)
        n_evals += 1 + int(ev.sum())  # + the initial gradient
    drawn = {o: np.stack(per_chain[o]) for o in problem.obs}  # (chains, draws, ...)
    mean, se = {}, {}
    dg = {"accept_rate": acc_rate, "divergences": divergences, "step_size": step_size,
          "gradient_evaluations": int(n_evals)}
    worst_rhat, min_bulk, min_tail = 1.0, math.inf, math.inf
    for o, x in drawn.items():
        shp = x.shape[2:]
        flat = x.reshape(chains, draws, -1)
        rh = np.full(flat.shape[2], np.nan)
        eb = np.full(flat.shape[2], np.nan)
        et = np.full(flat.shape[2], np.nan)
        em = np.full(flat.shape[2], np.nan)
        for j in range(flat.shape[2]):
            col = flat[:, :, j]
            if np.ptp(col) == 0:  # a constant (e.g. a deterministic bias block): exact
                continue
            s = diag.summarise(col)
            rh[j], eb[j], et[j], em[j] = s["rhat"], s["ess_bulk"], s["ess_tail"], s["ess_mean"]
        mean[o] = x.mean(axis=(0, 1))
        sd = flat.std(axis=(0, 1), ddof=1)
        se[o] = np.where(np.isnan(em), 0.0, sd / np.sqrt(np.where(np.isnan(em), 1.0, em))).reshape(shp)
        dg[f"rhat/{o}"] = rh.reshape(shp)
        dg[f"ess_bulk/{o}"] = eb.reshape(shp)
        dg[f"ess_tail/{o}"] = et.reshape(shp)
        if np.isfinite(rh).any():
            worst_rhat = max(worst_rhat, float(np.nanmax(rh)))
            min_bulk = min(min_bulk, float(np.nanmin(eb)))
            min_tail = min(min_tail, float(np.nanmin(et)))
    dg.update({"max_rhat": worst_rhat, "min_ess_bulk": min_bulk, "min_ess_tail": min_tail})
    if worst_rhat > 1.01 or divergences.sum() > 0:
        warnings.warn(f"hmc: max split-R-hat {worst_rhat:.3f}, {int(divergences.sum())} divergences: the chains "
                      "may not have converged (more warm-up/draws, smaller step size)", RuntimeWarning, stacklevel=3)
    return PosteriorResult("hmc", mean, se, dg, drawn, {"settings": settings.to_dict()})


# ============================================================================ public API
def posterior(prior: Prior, X, y, train, width: int, draws: int, kappa: float, gamma0: float = 1.0,
              method: str = "importance", chains: int = 4, seed: int = 0,
              observables: Sequence[str] = DEFAULT_POSTERIOR_OBSERVABLES, hmc: HMCSettings | dict | None = None,
              sample_method: str = "auto", min_ess: float = DEFAULT_MIN_ESS, on_collapse: str = "raise",
              ) -> PosteriorResult:
    """Posterior means (with standard errors) of network observables given training data.

    Parameters
    ----------
    prior : theory.Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        Inputs of all patterns (training and test).
    y : array_like, shape (P,) or (P, n_out)
        Targets of all patterns (test targets only enter ``test_error``).
    train : array_like of int (P_D,) or bool (P,)
        Training patterns.
    width : int
    draws : int
        importance: prior realizations R; hmc: kept draws per chain.
    kappa : float
        Observation noise (>= 0; ``inf`` switches the data term off).
    gamma0 : float
        Output scale (``K = Caux^(A+1,A+1) / gamma0``).
    method : {"importance", "hmc"}
    chains : int
        HMC chains (ignored for importance).
    seed : int
    observables : sequence of str
        From :data:`POSTERIOR_OBSERVABLES`.
    hmc : HMCSettings or dict, optional
        HMC settings (default :class:`mcsim.hmc.HMCSettings`).
    sample_method : {"auto", "projected", "direct"}
        Prior sampler of importance weighting (:func:`mcsim.sample`).
    min_ess : float
        Importance weighting: smallest acceptable ESS.
    on_collapse : {"raise", "warn"}
        What a collapsed ESS does.

    Returns
    -------
    PosteriorResult

    Raises
    ------
    ValueError
        Naming the bad argument.
    ImportanceCollapseError
        ESS below ``min_ess`` with ``on_collapse="raise"``.
    """
    run = prepare_posterior(prior, X, y, train, width, draws, kappa, gamma0, method, chains, seed, observables,
                            hmc, sample_method, min_ess, on_collapse)
    if run.method == "importance":
        res = _importance(run.prior, run.seq, run.Y, run.train, run.test, run.width, run.draws, run.kappa,
                          run.gamma0, run.seed, run.obs, run.sample_method, run.min_ess, run.on_collapse)
    else:
        problem = run.chain_problem()
        total = problem.total_iterations(run.draws)
        segments = [[problem.advance(c, problem.initial_state(c), total)] for c in range(run.chains)]
        res = summarise_chains(problem, segments, run.draws, run.chains)
    return run.finish(res)


@dataclass
class PosteriorRun:
    """A validated posterior request (:func:`prepare_posterior`); the arguments of :func:`posterior`, checked.

    Attributes
    ----------
    seq : ndarray of float64, shape (P, A+1, n_in)
    Y : ndarray of float64, shape (P, n_out)
    train, test : ndarray of int64
    obs : tuple of str
    settings : HMCSettings or None
        HMC only.
    dhash : str
        :func:`mcsim.datasets.data_hash`.
    The other attributes are the arguments of :func:`posterior`.
    """

    prior: Prior
    seq: np.ndarray
    Y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    width: int
    draws: int
    kappa: float
    gamma0: float
    method: str
    chains: int
    seed: int
    obs: tuple
    settings: object
    sample_method: str
    min_ess: float
    on_collapse: str
    dhash: str

    def chain_problem(self) -> "ChainProblem":
        """The :class:`ChainProblem` of an HMC request."""
        return ChainProblem(self.prior, self.seq, self.Y, self.train, self.test, self.width, self.kappa,
                            self.gamma0, self.seed, self.obs, self.settings, dhash=self.dhash)

    def prior_doc(self) -> dict:
        try:
            return self.prior.to_dict()
        except ValueError:
            return {"activation": self.prior.activation_name}

    def finish(self, res: PosteriorResult) -> PosteriorResult:
        """Add the self-description (``meta``) to a result of this request."""
        if self.method == "hmc":
            res.meta["settings"]["chains"] = self.chains
        res.meta.update({"prior": self.prior_doc(), "width": self.width, "data_hash": self.dhash,
                         "kappa": self.kappa, "gamma0": self.gamma0, "seed": self.seed, "method": self.method,
                         "draws": self.draws, "observables": list(self.obs), "train": self.train.tolist(),
                         "patterns": int(self.seq.shape[0])})
        return res


def prepare_posterior(prior: Prior, X, y, train, width: int, draws: int, kappa: float, gamma0: float = 1.0,
                      method: str = "importance", chains: int = 4, seed: int = 0,
                      observables: Sequence[str] = DEFAULT_POSTERIOR_OBSERVABLES,
                      hmc: HMCSettings | dict | None = None, sample_method: str = "auto",
                      min_ess: float = DEFAULT_MIN_ESS, on_collapse: str = "raise") -> PosteriorRun:
    """Validate the arguments of :func:`posterior` (same parameters); raises ``ValueError`` naming the bad one."""
    if method not in METHODS:
        raise ValueError(f"method: unknown posterior method {method!r}; allowed: {', '.join(METHODS)}")
    if not isinstance(prior, Prior):
        raise ValueError(f"prior: expected theory.Prior, got {type(prior).__name__}")
    seq, Y, tr = check_dataset(prior, X, y, train)
    width = strict_int("width", width, 1)
    prior.widths(width)
    draws = strict_int("draws", draws, 2 if method == "importance" else 4)
    kappa, gamma0 = check_kappa_gamma0(kappa, gamma0)
    seed = check_seed(seed)
    test = np.setdiff1d(np.arange(seq.shape[0]), tr).astype(np.int64)
    obs = check_posterior_observables(observables, prior, width, method, test.size)
    if on_collapse not in ("raise", "warn"):
        raise ValueError(f"on_collapse: must be 'raise' or 'warn', got {on_collapse!r}")
    try:
        me = float(min_ess)
    except (TypeError, ValueError):
        raise ValueError(f"min_ess: must be a number, got {min_ess!r}") from None
    settings = None
    if method == "hmc":
        chains = strict_int("chains", chains, 1)
        settings = hmc if isinstance(hmc, HMCSettings) else HMCSettings.from_dict(dict(hmc or {}))
    return PosteriorRun(prior, seq, Y, tr, test, width, draws, kappa, gamma0, method, chains, seed, obs, settings,
                        sample_method, me, on_collapse, data_hash(seq, Y, tr))


# ============================================================================ files
def write_posterior(result: PosteriorResult, path, extra_attrs: dict | None = None) -> Path:
    """Write a self-describing HDF5 file atomically (never a partial file at ``path``).

    Layout: root attributes ``format = "mcsim-posterior-v1"``, ``method`` and
    ``meta`` (JSON: prior, width, data hash, kappa, gamma0, seed, sampler
    settings, observables); groups ``mean/``, ``se/``, ``diagnostics/``
    (scalars as attributes, arrays as datasets) and ``draws/``.  ``extra_attrs``
    are further root attributes (provenance of a store run: ``posterior_key``,
    ``mpi_ranks``).
    """
    import h5py

    from .atomic_io import _atomic_file

    final = Path(path)
    if not final.parent.is_dir():
        raise ValueError(f"out: directory does not exist: {final.parent}")
    with _atomic_file(final) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "mcsim-posterior-v1"
            f.attrs["method"] = result.method
            f.attrs["meta"] = json.dumps(result.meta, sort_keys=True, default=_json_default)
            for k, v in (extra_attrs or {}).items():
                f.attrs[k] = v
            for gname, d in (("mean", result.mean), ("se", result.se), ("draws", result.draws)):
                g = f.create_group(gname)
                for k, v in d.items():
                    g.create_dataset(k, data=np.asarray(v))
            g = f.create_group("diagnostics")
            for k, v in result.diagnostics.items():
                if np.ndim(v) == 0:
                    g.attrs[k] = v
                else:
                    g.create_dataset(k, data=np.asarray(v))
    return final


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_posterior(path) -> PosteriorResult:
    """Read a file written by :func:`write_posterior`.

    Raises
    ------
    ValueError
        If the file is not a posterior file.
    """
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "mcsim-posterior-v1":
            raise ValueError(f"path: {path} is not an mcsim posterior file")

        def grp(name):
            out = {}
            f[name].visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            return out

        dg = dict(grp("diagnostics"))
        dg.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in f["diagnostics"].attrs.items()})
        return PosteriorResult(str(f.attrs["method"]), grp("mean"), grp("se"), dg, grp("draws"),
                               json.loads(f.attrs["meta"]))
