"""Benchmark: realizations per second on one core, against a floor measured in the same run.

Usage::

    nice -n 0 python -m mcsim bench [options]
    python -m mcsim.bench [options]

For every configuration (architecture DNN / RNN; width n in {500, 2000,
8000}; depth/patterns (A, P) in {(30, 1), (15, 10)}; plus the target
configurations RNN (1000, 15, 10), (500, 40, 10), (2000, 30, 1); single
inputs, relu, g^2 = 1.6, sigma^2 = 0.2) it measures, in the same run:

``projected``  realizations/s of ``mcsim.sample(method="projected")``;
``direct``     realizations/s of ``mcsim.sample(method="direct")`` (materialised
               weights, one GEMM per layer).  Direct is slow at large n, so it
               runs only as many realizations as fit into ``--min-time`` (at
               least one, at most ``--max-direct``);
``numpy``      (RNN only) realizations/s of a plain NumPy materialised-weight
               sampler: draw W, W_in, W_out and the biases of a realization from
               its stream, then ``h = W phi + ...`` step by step with BLAS
               products (:func:`numpy_materialised_rnn`, no observables beyond
               the states and outputs);
``floor``      the time of the normals the projected sampler consumes (measured:
               per-realization generator + ``standard_normal`` of that
               size) plus its Gram-Schmidt and update flops
               (:func:`mcsim.sampler.rnn_projection_flops`; the DNN has none) at
               the single-core GEMM rate (``C = A B`` with 512 x 512 matrices),
               measured at the start of the run and again in every round next
               to the sampler, best of all (column ``GFLOP/s``);
plus the ratios projected time / floor time and numpy time / projected time,
and (RNN) ``proj/fl_sh``: projected time over the normals time plus the
measured time of the kernel's BLAS calls at their own thin shapes
(:func:`_gemm_sequence_fn`; BLAS reaches about half its square-GEMM rate there).
Projected and floor are measured in ``--rounds`` interleaved rounds and the
best of each is kept, so load from other processes affects both alike.

``--cost-model`` checks the cost model instead: measured against predicted
time per realization of both samplers on the workflow's configurations
(:func:`bench_cost_model`), and what ``auto`` picks against the faster one.

``--posterior`` runs the posterior-sampling benchmark instead
(:mod:`mcsim.bench_posterior`: HMC gradient evaluations/s against a GEMM
floor, importance-weighted samples/s against prior realizations/s).

BLAS runs on one thread (the samplers pin it, see
:func:`mcsim.sampler.single_thread_blas`; the GEMM-rate and NumPy
measurements run in the same context).  JIT compilation is excluded (each
sampler is warmed up on the same configuration first).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import sys
import time
import tracemalloc
from typing import Optional

import numpy as np

from theory.prior import Prior
from theory.spec import DEFAULT_OBSERVABLES

from . import sampler as S
from ._rng import realization_generator, stream_key

WIDTHS = (500, 2000, 8000)
SHAPES = {"A30P1": (30, 1), "A15P10": (15, 10)}
TARGETS = (("rnn", 1000, 15, 10), ("rnn", 500, 40, 10), ("rnn", 2000, 30, 1))
"""Target configurations (arch, n, A, P) of issue 8: the first two within 2x of
the floor, the third at least 40x faster than the NumPy materialised sampler."""
GEMM_SIZE = 512


def _prior(arch: str, depth: int) -> Prior:
    return Prior(arch, depth, "relu", 1.6, 0.2, 1.6, bias="uncorrelated")


def _inputs(P: int, n_in: int = 100) -> np.ndarray:
    return np.random.default_rng(0).normal(1.0, 1.0, size=(P, n_in))


def _timed(fn, min_time: float, max_reps: int, min_reps: int = 1):
    """Run ``fn(reps)`` growing reps until ``min_time`` s; return seconds per rep."""
    reps = min_reps
    while True:
        t0 = time.perf_counter()
        fn(reps)
        dt = time.perf_counter() - t0
        if dt >= min_time or reps >= max_reps:
            return dt / reps, reps
        reps = min(max_reps, max(reps + 1, int(reps * min(10.0, 1.5 * min_time / max(dt, 1e-9)))))


def gemm_rate(size: int = GEMM_SIZE, min_time: float = 0.3, rounds: int = 3, shape=None,
              single_thread: bool = True) -> float:
    """Double-precision GEMM rate in flop/s (``C = A B``, best of ``rounds``).

    Parameters
    ----------
    size : int
        Square matrices ``size x size`` (unless ``shape`` is given).
    min_time : float
        Seconds per round.
    rounds : int
    shape : tuple of int, optional
        ``(m, k, n)``: ``(m x k) @ (k x n)`` (e.g. the thin products of a sampler).
    single_thread : bool
        Pin BLAS to one thread (:func:`mcsim.sampler.single_thread_blas`);
        False: as the environment sets it.
    """
    m, k, n = shape if shape is not None else (size, size, size)
    run = _gemm_fn(m, k, n)
    with S.single_thread_blas() if single_thread else contextlib.nullcontext():
        run(2)
        best = min(_timed(run, min_time, 10**6)[0] for _ in range(rounds))
    return 2.0 * m * k * n / best


def _gemm_fn(m: int, k: Optional[int] = None, n: Optional[int] = None):
    """``run(reps)``: ``reps`` products ``(m x k) @ (k x n)`` into a preallocated output (default square)."""
    k = m if k is None else k
    n = m if n is None else n
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k))
    B = rng.standard_normal((k, n))
    C = np.empty((m, n))

    def run(reps):
        for _ in range(reps):
            np.dot(A, B, out=C)

    return run


def numpy_materialised_rnn(prior: Prior, X, n: int, reps: int, key: int) -> np.ndarray:
    """Plain NumPy RNN sampler with materialised weights (the bench's comparison baseline).

    Per realization r (stream ``realization_generator(key, r)``): ``W`` (n x n),
    ``W_in`` (n x n_in), ``W_out`` (n_out x n) and the biases are drawn, then
    ``h^(0) = g0/sqrt(n_in) W_in x + b^(0)``, ``h^(a) = g/sqrt(n) W phi(h^(a-1)) + b^(a)``
    (inputs only at a = 0), ``y = g_out/sqrt(n) W_out phi(h^(A)) + b_out``, all
    P patterns at once with BLAS.  Only relu (``np.maximum``) and uncorrelated bias.

    Parameters
    ----------
    prior : theory.Prior
        RNN prior with relu activation and uncorrelated bias.
    X : ndarray of float64, shape (P, n_in)
    n, reps, key : int

    Returns
    -------
    ndarray of float64, shape (P, n_out)
        The outputs of the last realization.
    """
    P, n_in = X.shape
    g2, sig = prior.g2_layers, prior.sigma2_layers
    A = prior.depth
    y = None
    for r in range(reps):
        rng = realization_generator(key, r)
        W = rng.standard_normal((n, n))
        Win = rng.standard_normal((n, n_in))
        h = math.sqrt(g2[0] / n_in) * (X @ Win.T) + math.sqrt(sig[0]) * rng.standard_normal(n)
        for a in range(1, A + 1):
            h = math.sqrt(g2[1] / n) * (np.maximum(h, 0.0) @ W.T) + math.sqrt(sig[a]) * rng.standard_normal(n)
        Wout = rng.standard_normal((prior.n_out, n))
        y = (math.sqrt(g2[A + 1] / n) * (np.maximum(h, 0.0) @ Wout.T)
             + math.sqrt(sig[A + 1]) * rng.standard_normal(prior.n_out))
    return y


def _gemm_sequence_fn(n: int, A: int, P: int):
    """The BLAS calls of one projected RNN realization with the kernel's shapes, on random data.

    Per step with basis size ``k`` and ``r`` new directions (as in
    :func:`mcsim.sampler.rnn_projection_flops`): the two Gram-Schmidt GEMMs, the
    residual Gram, ``V = Tf Y``, the measurement ``Q V^T``, the Cholesky-QR Gram and ``T2 V``, the update
    ``coef^T WQ`` and the two P x P Grams of the observables.  Its time is the
    time of these flops at the GEMM rates BLAS reaches for these (thin) shapes.
    """
    rng = np.random.default_rng(0)
    kmax = max(1, min(A * P, n))
    Q = rng.standard_normal((kmax, n)) / math.sqrt(n)
    WQ = rng.standard_normal((kmax, n))
    Y = rng.standard_normal((P, n)) / math.sqrt(n)
    V = np.empty((P, n))
    tmp = np.empty((P, n))
    cn = rng.standard_normal((kmax, P)) / math.sqrt(kmax)
    c2 = np.empty((kmax, P))
    G = np.empty((P, P))
    T2 = 0.5 * np.eye(P)

    def run(reps):
        for _ in range(reps):
            for a in range(A):
                k = min(a * P, n)
                r = min(P, n - k)
                if k:
                    np.dot(Q[:k], Y.T, c2[:k])
                    np.dot(c2[:k].T, Q[:k], tmp)
                np.dot(Y, Y.T, G)
                if r:
                    np.dot(T2[:r], Y, V[:r])
                    if k:
                        np.dot(Q[:k], V[:r].T)
                    np.dot(V[:r], V[:r].T, G[:r, :r])
                    np.dot(T2[:r, :r], V[:r], tmp[:r])
                np.dot(cn[: k + r].T, WQ[: k + r], tmp)
                np.dot(Y, Y.T, G)
                np.dot(Y, Y.T, G)

    return run


def _floor_fn(N: int, key: int):
    buf = np.empty(N)

    def run(reps):
        for r in range(reps):
            realization_generator(key, r).standard_normal(out=buf)

    return run


def bench_config(arch: str, n: int, A: int, P: int, min_time: float, max_direct: int,
                 observables, gemm_flops_per_s: float, skip_direct: bool = False, rounds: int = 3) -> dict:
    """Measure one configuration; returns a dict of rates (realizations/s), floor and memory.

    The GEMM rate of the floor is the best of ``gemm_flops_per_s`` and the rate
    measured again in each of the interleaved rounds (the rate varies with the
    load on the other core, so it is measured next to the sampler).
    """
    prior = _prior(arch, A)
    X = _inputs(P)
    seq = S.check_inputs(prior, X)
    setup = S._Setup(prior, seq, n)
    if prior.shared:
        _, rank_in = S._rnn_L_in(setup, S.K)
        flops = S.rnn_projection_flops(n, A, P)
    else:
        rank_in = 0
        flops = 0.0
    N = S._normals_projected(prior, setup.widths, P, rank_in)
    out = {"arch": arch, "n": n, "A": A, "P": P, "normals": N, "flops": flops}

    def proj(reps):
        S.sample(prior, X, n, reps, method="projected", observables=observables)

    proj(1)  # JIT warm-up
    tracemalloc.start()
    S.sample(prior, X, n, 1, method="projected", observables=observables)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scratch = 8 * n * (2 * min(A * P, n) + 8 * P) if prior.shared else 8 * n * 4 * P
    out["proj_peak_MB"] = (peak + scratch) / 2**20
    key = stream_key(0, "bench")
    floor = _floor_fn(N, key)
    tp, tf = np.inf, np.inf
    gemm = _gemm_fn(GEMM_SIZE)
    for _ in range(rounds):  # interleaved, best of `rounds`: robust against load from other processes
        t, reps = _timed(proj, min_time / rounds, 100000)
        tp = min(tp, t)
        t, _ = _timed(floor, min_time / rounds, 100000)
        tf = min(tf, t)
        with S.single_thread_blas():
            t, _ = _timed(gemm, 0.1, 10000)
        gemm_flops_per_s = max(gemm_flops_per_s, 2.0 * GEMM_SIZE**3 / t)
    out["gemm_rate"] = gemm_flops_per_s
    out["projected"] = 1.0 / tp
    out["proj_reps"] = reps
    out["normals_s"] = tf
    out["floor"] = 1.0 / (tf + flops / gemm_flops_per_s)
    if prior.shared:
        seq_fn = _gemm_sequence_fn(n, A, P)
        with S.single_thread_blas():
            seq_fn(1)
            tg = min(_timed(seq_fn, min_time / rounds, 100000)[0] for _ in range(rounds))
        out["floor_shapes"] = 1.0 / (tf + tg)
    if prior.shared:
        def plain(reps):
            with S.single_thread_blas():
                numpy_materialised_rnn(prior, X, n, reps, key)

        plain(1)
        t, reps = _timed(plain, min_time, max(max_direct, 1))
        out["numpy"] = 1.0 / t
    if not skip_direct:
        def direct(reps):
            S.sample(prior, X, n, reps, method="direct", observables=observables)

        S.sample(_prior(arch, 1), X, 8, 1, method="direct", observables=observables)  # warm-up JIT
        t, reps = _timed(direct, min_time, max_direct)
        out["direct"] = 1.0 / t
        out["direct_reps"] = reps
    return out


def _fmt_rate(v):
    if v is None:
        return "          -"
    return f"{v:11.4g}"


def _configs(archs, shapes, widths, targets: str):
    """(arch, n, A, P) to measure: the grid and/or the target configurations (no duplicates)."""
    grid = [(arch, n, *SHAPES[shape]) for arch in archs for shape in shapes for n in widths]
    tgt = [t for t in TARGETS if t[0] in archs]
    chosen = {"no": grid, "only": tgt, "also": grid + tgt}[targets]
    seen, out = set(), []
    for c in chosen:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


COST_CONFIGS = (  # (experiment, arch, n, A, P, input dim, g2, sigma2): the workflow's experiments (config.yaml)
    ("fig1", "dnn", 2000, 30, 1, 1000, 1.6, 0.2), ("fig1", "rnn", 2000, 30, 1, 1000, 1.6, 0.2),
    ("fig2w", "dnn", 10, 15, 10, 4, 1.6, 0.2), ("fig2w", "rnn", 10, 15, 10, 4, 1.6, 0.2),
    ("fig2w", "dnn", 200, 15, 10, 4, 1.6, 0.2), ("fig2w", "rnn", 200, 15, 10, 4, 1.6, 0.2),
    ("fig2w", "dnn", 1000, 15, 10, 4, 1.6, 0.2), ("fig2w", "rnn", 1000, 15, 10, 4, 1.6, 0.2),
    ("fig2d", "dnn", 500, 1, 10, 4, 1.6, 0.2), ("fig2d", "rnn", 500, 1, 10, 4, 1.6, 0.2),
    ("fig2d", "dnn", 500, 40, 10, 4, 1.6, 0.2), ("fig2d", "rnn", 500, 40, 10, 4, 1.6, 0.2),
    ("fig3", "dnn", 100, 15, 1, 4, 1.2, 0.2), ("fig3", "rnn", 100, 15, 1, 4, 1.2, 0.2),
    ("fig3", "dnn", 2000, 15, 1, 4, 1.2, 0.2), ("fig3", "rnn", 2000, 15, 1, 4, 1.2, 0.2),
    ("fig4", "rnn", 1000, 40, 1, 1000, 1.73, 0.0), ("fig4", "rnn", 10000, 40, 1, 1000, 1.73, 0.0),
)
"""Configurations of ``--cost-model``: every experiment's extreme widths and depths."""


def bench_cost_model(config, min_time: float, rounds: int, observables) -> dict:
    """Measured vs predicted (:func:`mcsim.sampler._cost`) seconds per realization of both samplers.

    Each sampler is timed in ``rounds`` rounds interleaved with the time per
    standard normal (the best of each kept); the measured time is then
    rescaled to the cost model's normal rate (``sampler._NS_PER_NORMAL``), so
    load from other processes, which slows both alike, cancels in the ratio.

    Parameters
    ----------
    config : tuple
        ``(experiment, arch, n, A, P, input dim, g2, sigma2)`` (see :data:`COST_CONFIGS`).
    min_time : float
        Seconds per measurement.
    rounds : int
    observables : sequence of str

    Returns
    -------
    dict
        ``measured_<method>`` and ``predicted_<method>`` (ns per realization,
        measured rescaled), ``ns_per_normal_<method>`` (measured next to it),
        ``auto`` (what ``method="auto"`` resolves to) and ``fastest``.
    """
    _, arch, n, A, P, dim, g2, sigma2 = config
    prior = Prior(arch, A, "relu", g2, sigma2, g2, bias="uncorrelated")
    X = np.random.default_rng(0).normal(1.0 if dim > 4 else 0.0, 1.0, size=(P, dim))
    pred = S._cost(prior, S.check_inputs(prior, X), n)
    normals = _floor_fn(100000, stream_key(0, "bench"))
    out = {"auto": S.resolve_method(prior, X, n)}
    for m in ("projected", "direct"):
        def run(reps, m=m):
            S.sample(prior, X, n, reps, method=m, observables=observables)

        run(1)  # JIT warm-up
        t = tn = np.inf
        for _ in range(rounds):
            t = min(t, _timed(run, min_time / rounds, 100000)[0])
            tn = min(tn, _timed(normals, min(0.1, min_time / rounds), 100000)[0] / 100000)
        out[f"ns_per_normal_{m}"] = tn * 1e9
        out[f"measured_{m}"] = t * 1e9 * S._NS_PER_NORMAL / (tn * 1e9)
        out[f"predicted_{m}"] = float(pred[m])
    out["fastest"] = min(("projected", "direct"), key=lambda m: out[f"measured_{m}"])
    return out


def _cost_model_table(configs, min_time: float, rounds: int, observables) -> None:
    print(f"# mcsim bench --cost-model: ms per realization on one core, measured (rescaled to the cost model's "
          f"{S._NS_PER_NORMAL:g} ns per normal by the normal rate measured next to it) and predicted/measured")
    print(f"{'exp':6} {'arch':4} {'n':>5} {'A':>3} {'P':>3} {'proj ms':>9} {'pred/m':>6} {'direct ms':>10} "
          f"{'pred/m':>6} {'ns/N':>5} {'auto':>9} {'fastest':>9}")
    for c in configs:
        r = bench_cost_model(c, min_time, rounds, observables)
        mp, md = r["measured_projected"], r["measured_direct"]
        print(f"{c[0]:6} {c[1]:4} {c[2]:5d} {c[3]:3d} {c[4]:3d} {mp / 1e6:9.4g} {r['predicted_projected'] / mp:6.2f} "
              f"{md / 1e6:10.4g} {r['predicted_direct'] / md:6.2f} {r['ns_per_normal_projected']:5.1f} "
              f"{r['auto']:>9} {r['fastest']:>9}", flush=True)


def _posterior(parser, args, argv) -> int:
    """``--posterior``: run :func:`mcsim.bench_posterior.main` with the options that apply to it."""
    from . import bench_posterior

    if args.n is not None and len(args.n) != 1:
        parser.error("n: --posterior takes one width")
    sub = ["--rounds", str(args.rounds)]
    if args.n is not None:
        sub += ["--n", str(args.n[0])]
    if args.depth is not None:
        sub += ["--depth", str(args.depth)]
    if args.patterns is not None:
        sub += ["--patterns", str(args.patterns)]
    if args.quick:
        sub.append("--quick")
    if args.min_time != parser.get_default("min_time"):  # bench_posterior has its own default (and --quick)
        sub += ["--min-time", str(args.min_time)]
    return bench_posterior.main(sub)


def main(argv=None) -> int:
    """Entry point of ``python -m mcsim bench``; prints a table (``--posterior``: the posterior tables), returns 0."""
    p = argparse.ArgumentParser(prog="python -m mcsim bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--arch", choices=("dnn", "rnn", "both"), default="both")
    p.add_argument("--n", type=int, nargs="+", default=None, help="widths (default 500 2000 8000)")
    p.add_argument("--shape", choices=tuple(SHAPES) + ("both",), default="both",
                   help="A30P1: depth 30, one input; A15P10: depth 15, ten inputs")
    p.add_argument("--targets", choices=("also", "only", "no"), default="also",
                   help="the target configurations of issue 8: also (default), only, or no")
    p.add_argument("--quick", action="store_true", help="n = 500 only, short timings, no targets")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement (default 1)")
    p.add_argument("--max-direct", type=int, default=20,
                   help="max realizations for direct and numpy (default 20)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved projected/floor rounds, best taken (default 3)")
    p.add_argument("--no-direct", action="store_true", help="skip the direct sampler")
    p.add_argument("--observables", nargs="+", default=list(DEFAULT_OBSERVABLES),
                   help=f"observables computed (default: {' '.join(DEFAULT_OBSERVABLES)})")
    p.add_argument("--posterior", action="store_true",
                   help="run the posterior-sampling benchmark instead (mcsim.bench_posterior: HMC gradients/s "
                        "vs a GEMM floor, importance-weighted samples/s); uses --n (one width), --quick, "
                        "--min-time, --rounds, --depth, --patterns")
    p.add_argument("--depth", type=int, default=None, help="with --posterior: A (default 10)")
    p.add_argument("--patterns", type=int, default=None, help="with --posterior: P (default 50)")
    p.add_argument("--cost-model", action="store_true",
                   help="check the cost model (mcsim.sampler._cost, used by method='auto', the campaign dispatcher "
                        "and job sizing): measured vs predicted time per realization on the workflow's "
                        "configurations (COST_CONFIGS); uses --min-time, --rounds, --observables")
    args = p.parse_args(argv)
    if args.posterior:
        return _posterior(p, args, argv)
    if args.cost_model:
        _cost_model_table(COST_CONFIGS, args.min_time, max(1, args.rounds), tuple(args.observables))
        return 0
    if args.depth is not None or args.patterns is not None:
        p.error("--depth and --patterns go with --posterior")
    for o in args.observables:
        if o not in S.OBSERVABLES:
            p.error(f"observables: unknown observable {o!r}")
    widths = args.n or ((500,) if args.quick else WIDTHS)
    if any(w < 1 for w in widths):
        p.error("n: widths must be positive")
    min_time = 0.3 if args.quick and args.min_time == 1.0 else args.min_time
    archs = ("dnn", "rnn") if args.arch == "both" else (args.arch,)
    shapes = tuple(SHAPES) if args.shape == "both" else (args.shape,)
    targets = "no" if args.quick and args.targets == "also" else args.targets
    configs = _configs(archs, shapes, widths, targets)
    rate = gemm_rate()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# mcsim bench: realizations/s on one core; relu, g2=1.6, sigma2=0.2; observables {args.observables}")
    print(f"# single-core GEMM rate at start {rate / 1e9:.1f} GFLOP/s ({GEMM_SIZE}^3); load average at start {load:.2f} "
          f"on {os.cpu_count()} cores; min time per measurement {min_time} s; direct/numpy <= {args.max_direct} "
          "realizations")
    print(f"{'arch':4} {'n':>5} {'A':>3} {'P':>3} {'projected':>11} {'direct':>11} {'numpy':>11} {'floor':>11} "
          f"{'proj/floor':>10} {'proj/fl_sh':>10} {'numpy/proj':>10} {'normals':>9} {'MFLOP':>8} {'GFLOP/s':>7} "
          f"{'projMB':>8}")
    for arch, n, A, P in configs:
        r = bench_config(arch, n, A, P, min_time, args.max_direct, tuple(args.observables), rate,
                         skip_direct=args.no_direct, rounds=max(1, args.rounds))
        npy = r.get("numpy")
        speed = f"{r['projected'] / npy:10.1f}" if npy else "         -"
        fsh = f"{r['floor_shapes'] / r['projected']:10.2f}" if "floor_shapes" in r else "         -"
        print(f"{arch:4} {n:5d} {A:3d} {P:3d} {_fmt_rate(r['projected'])} {_fmt_rate(r.get('direct'))} "
              f"{_fmt_rate(npy)} {_fmt_rate(r['floor'])} {r['floor'] / r['projected']:10.2f} {fsh} {speed} "
              f"{r['normals']:9d} {r['flops'] / 1e6:8.1f} {r['gemm_rate'] / 1e9:7.1f} {r['proj_peak_MB']:8.1f}",
              flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# process peak RSS {rss:.0f} MB (includes the n x n weight buffers); load average at end {load:.2f}")
    print("# proj/floor = projected time / (normals time + Gram-Schmidt and update flops at the GEMM rate); "
          "proj/fl_sh = the same with the measured time of the kernel's GEMM calls at their (thin) shapes "
          "instead of the flops at the GEMM rate; numpy/proj = NumPy materialised-weight time / projected time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
