"""Speed and accuracy benchmark of :func:`theory.kernel` (``python -m theory.bench``).

Prints the wall time of the full RNN kernel for A = 30, P = 10 inputs,
ReLU (closed form; target < 50 ms on one core) and tanh (automatic quadrature
to the default relative tolerance 1e-9, or ``--quad-order N`` for
Gauss-Hermite of order N; target < 1 s), best of several repeats.  Every
repeat starts cold (memoised Hermite coefficients are cleared).  For tanh it
also prints the largest quadrature error estimate and, with ``--check``, the
largest deviation from an order-200 Gauss-Hermite reference (slow).

The benchmark runs on one core: unless ``--all-threads`` is given it restarts
itself with ``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1`` and
pinned to one CPU (where the platform allows it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from . import gaussian
from .kernel import kernel
from .prior import Prior


def _best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        gaussian.clear_caches()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    """Run the benchmark and print the figures; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m theory.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=30, help="A (default 30)")
    parser.add_argument("--patterns", type=int, default=10, help="P (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, best time reported (default 5)")
    parser.add_argument("--quad-order", type=int, default=None,
                        help="Gauss-Hermite order for tanh (default: automatic, tolerance 1e-9)")
    parser.add_argument("--check", action="store_true", help="compare tanh with an order-200 Gauss-Hermite reference")
    parser.add_argument("--all-threads", action="store_true",
                        help="do not restrict BLAS to one thread and the process to one CPU")
    args = parser.parse_args(argv)
    if not args.all_threads and os.environ.get("_THEORY_BENCH_ONE_CORE") != "1":
        env = dict(os.environ, _THEORY_BENCH_ONE_CORE="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        args_list = list(sys.argv[1:] if argv is None else argv)
        os.execve(sys.executable, [sys.executable, "-m", "theory.bench", *args_list], env)
    X = np.random.default_rng(0).standard_normal((args.patterns, 4))
    where = "all threads" if args.all_threads else "one core, BLAS single-threaded"
    print(f"theory.kernel benchmark: RNN, A = {args.depth}, P = {args.patterns}, n_in = 4, best of {args.repeats} "
          f"({where})")
    for act, target, order in (("relu", 0.05, None), ("tanh", 1.0, args.quad_order)):
        prior = Prior("rnn", args.depth, act, 1.6, 0.2, 1.6)
        kernel(prior, X, order)  # warm-up (imports, Hermite grid cache)
        t = _best_time(lambda: kernel(prior, X, order), args.repeats)
        if act == "relu":
            how = "closed form"
        elif order is None:
            how = "auto quadrature, tol 1e-9"
        else:
            how = f"Gauss-Hermite order {order}"
        status = "OK" if t < target else "SLOWER THAN TARGET"
        print(f"  {act:5s} ({how}): {1e3 * t:9.2f} ms   target < {1e3 * target:.0f} ms   {status}")
        if act == "tanh":
            gaussian.clear_caches()
            with gaussian.quadrature_diagnostics() as diag:
                K = kernel(prior, X, order)
            print(f"        largest error estimate (relative to the integrand scale): {diag.max_rel_error:.2e} "
                  f"({diag.integrals} integrals, finest step {diag.finest_step:g})")
            if args.check:
                ref = kernel(prior, X, 200)
                dev = float(np.max(np.abs(K - ref)) / np.max(np.abs(ref)))
                print(f"        max |K - K_GH200| / max |K_GH200| = {dev:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
