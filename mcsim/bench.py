"""Benchmark: realizations per second per core, direct vs projected sampler.

Usage::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m mcsim bench [options]
    python -m mcsim.bench [options]

For every configuration (architecture DNN / RNN; width n in {500, 2000,
8000}; depth/patterns (A, P) in {(30, 1), (15, 10)}; single ReLU inputs,
g^2 = 1.6, sigma^2 = 0.2) it measures, in the same run:

``projected``  realizations/s of ``mcsim.sample(method="projected")``;
``direct``     realizations/s of ``mcsim.sample(method="direct")`` (materialised
               weights).  Direct is slow at large n, so it runs only as many
               realizations as fit into ``--min-time`` (at least one, at most
               ``--max-direct``); its rate is realizations / elapsed time, i.e. the
               time per realization extrapolated to a rate;
``floor``      the Gaussian-draw floor: realizations/s of only drawing the
               normals the projected sampler consumes (per-realization Philox
               generator + ``standard_normal`` of that size), nothing else;
plus the ratios direct/projected time ("speedup") and projected/floor time
(projected and floor are measured in ``--rounds`` interleaved rounds and the
best of each is kept, so load from other processes affects both alike),
and the peak memory traced by ``tracemalloc`` during the projected run
(NumPy buffers; Numba kernel scratch of O(n A P) floats is added as an
estimate) and the process peak RSS at the end.

Everything is single-threaded by construction (serial Numba loops, no BLAS
in the hot paths); set the thread variables above anyway so library
initialisation does not spawn idle threads.  JIT compilation is excluded
(each sampler is warmed up on the same configuration first).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from theory.prior import Prior
from theory.spec import DEFAULT_OBSERVABLES

from . import sampler as S
from ._rng import realization_generator, stream_key

WIDTHS = (500, 2000, 8000)
SHAPES = {"A30P1": (30, 1), "A15P10": (15, 10)}


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


def _floor_fn(N: int, key: int):
    buf = np.empty(N)

    def run(reps):
        for r in range(reps):
            realization_generator(key, r).standard_normal(out=buf)

    return run


def bench_config(arch: str, n: int, A: int, P: int, min_time: float, max_direct: int,
                 observables, skip_direct: bool = False, rounds: int = 3) -> dict:
    """Measure one configuration; returns a dict of rates (realizations/s) and memory."""
    prior = _prior(arch, A)
    X = _inputs(P)
    seq = S.check_inputs(prior, X)
    setup = S._Setup(prior, seq, n)
    if prior.shared:
        _, rank_in = S._rnn_L_in(setup, S.K)
    else:
        rank_in = 0
    N = S._normals_projected(prior, setup.widths, P, rank_in)
    out = {"arch": arch, "n": n, "A": A, "P": P, "normals": N}

    def proj(reps):
        S.sample(prior, X, n, reps, method="projected", observables=observables)

    proj(1)  # JIT warm-up
    tracemalloc.start()
    S.sample(prior, X, n, 1, method="projected", observables=observables)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scratch = 8 * n * (2 * min(A * P, n) + 6 * P) if prior.shared else 8 * n * 4 * P
    out["proj_peak_MB"] = (peak + scratch) / 2**20
    key = stream_key(0, "bench")
    floor = _floor_fn(N, key)
    tp, tf = np.inf, np.inf
    for _ in range(rounds):  # interleaved, best of `rounds`: robust against load from other processes
        t, reps = _timed(proj, min_time / rounds, 100000)
        tp = min(tp, t)
        t, _ = _timed(floor, min_time / rounds, 100000)
        tf = min(tf, t)
    out["projected"] = 1.0 / tp
    out["proj_reps"] = reps
    out["floor"] = 1.0 / tf
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
        return "      -"
    return f"{v:11.4g}"


def main(argv=None) -> int:
    """Entry point of ``python -m mcsim bench``; prints a table, returns 0."""
    p = argparse.ArgumentParser(prog="python -m mcsim bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--arch", choices=("dnn", "rnn", "both"), default="both")
    p.add_argument("--n", type=int, nargs="+", default=None, help="widths (default 500 2000 8000)")
    p.add_argument("--shape", choices=tuple(SHAPES) + ("both",), default="both",
                   help="A30P1: depth 30, one input; A15P10: depth 15, ten inputs")
    p.add_argument("--quick", action="store_true", help="n = 500 only, short timings")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement (default 1)")
    p.add_argument("--max-direct", type=int, default=20, help="max realizations for direct (default 20)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved projected/floor rounds, best taken (default 3)")
    p.add_argument("--no-direct", action="store_true", help="skip the direct sampler")
    p.add_argument("--observables", nargs="+", default=list(DEFAULT_OBSERVABLES),
                   help=f"observables computed (default: {' '.join(DEFAULT_OBSERVABLES)})")
    args = p.parse_args(argv)
    for o in args.observables:
        if o not in S.OBSERVABLES:
            p.error(f"observables: unknown observable {o!r}")
    widths = args.n or ((500,) if args.quick else WIDTHS)
    if any(w < 1 for w in widths):
        p.error("n: widths must be positive")
    min_time = 0.3 if args.quick and args.min_time == 1.0 else args.min_time
    archs = ("dnn", "rnn") if args.arch == "both" else (args.arch,)
    shapes = tuple(SHAPES) if args.shape == "both" else (args.shape,)
    threads = {k: os.environ.get(k, "unset") for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    print(f"# mcsim bench: realizations/s on one core; relu, g2=1.6, sigma2=0.2; observables {args.observables}")
    print(f"# threads: {threads}; min time per measurement {min_time} s; direct <= {args.max_direct} realizations")
    print(f"{'arch':4} {'n':>5} {'A':>3} {'P':>3} {'projected':>11} {'direct':>11} {'floor':>11} "
          f"{'speedup':>9} {'proj/floor':>10} {'normals':>9} {'projMB':>8} {'dir_reps':>8}")
    rows = []
    for arch in archs:
        for shape in shapes:
            A, P = SHAPES[shape]
            for n in widths:
                r = bench_config(arch, n, A, P, min_time, args.max_direct, tuple(args.observables),
                                 skip_direct=args.no_direct, rounds=max(1, args.rounds))
                rows.append(r)
                d = r.get("direct")
                speed = f"{r['projected'] / d:9.1f}" if d else "        -"
                print(f"{arch:4} {n:5d} {A:3d} {P:3d} {_fmt_rate(r['projected'])} {_fmt_rate(d)} "
                      f"{_fmt_rate(r['floor'])} {speed} {r['floor'] / r['projected']:10.2f} "
                      f"{r['normals']:9d} {r['proj_peak_MB']:8.1f} {r.get('direct_reps', 0):8d}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# process peak RSS {rss:.0f} MB (includes direct's n x n weight buffers)")
    print("# speedup = direct time / projected time; proj/floor = projected time / draw-floor time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
