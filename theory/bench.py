"""Speed benchmark of :func:`theory.kernel` (``python -m theory.bench``).

Prints the wall time of the full RNN kernel for A = 30, P = 10 inputs,
ReLU (closed form; target < 50 ms on one core) and tanh (Gauss-Hermite
quadrature of the default order; target < 1 s), best of several repeats.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .gaussian import DEFAULT_QUAD_ORDER
from .kernel import kernel
from .prior import Prior


def _best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    """Run the benchmark and print the figures; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m theory.bench", description=__doc__)
    parser.add_argument("--depth", type=int, default=30, help="A (default 30)")
    parser.add_argument("--patterns", type=int, default=10, help="P (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, best time reported (default 5)")
    parser.add_argument("--quad-order", type=int, default=DEFAULT_QUAD_ORDER, help="Gauss-Hermite order for tanh")
    args = parser.parse_args(argv)
    X = np.random.default_rng(0).standard_normal((args.patterns, 4))
    print(f"theory.kernel benchmark: RNN, A = {args.depth}, P = {args.patterns}, n_in = 4, best of {args.repeats}")
    for act, target, order in (("relu", 0.05, None), ("tanh", 1.0, args.quad_order)):
        prior = Prior("rnn", args.depth, act, 1.6, 0.2, 1.6)
        kernel(prior, X, order)  # warm-up (Hermite grid cache)
        t = _best_time(lambda: kernel(prior, X, order), args.repeats)
        how = "closed form" if order is None else f"quadrature order {order}"
        status = "OK" if t < target else "SLOWER THAN TARGET"
        print(f"  {act:5s} ({how}): {1e3 * t:9.2f} ms   target < {1e3 * target:.0f} ms   {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
