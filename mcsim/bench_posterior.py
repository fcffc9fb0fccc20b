"""Benchmark of posterior sampling: HMC gradient evaluations/s vs a GEMM floor; importance-weighted samples/s.

Usage::

    OPENBLAS_NUM_THREADS=1 python -m mcsim.bench_posterior [--quick] [--n 500] [--depth 10] [--patterns 50]

Measured in one run, for DNN and RNN (tanh, g^2 = 1.5, sigma^2 = 0.1, single
Gaussian inputs, n_in = 20, all P patterns training patterns, kappa = 0.1):

``grad/s``      evaluations/s of :meth:`mcsim.backprop.PosteriorPotential.value_and_grad`
                (forward pass, Cholesky likelihood, back-propagation);
``GEMM GF/s``   the rate of ``(P x n) @ (n x n)`` float64 products (the shape of
                the dominant products), measured here;
``floor/s``     1 / (flops of one forward plus backward pass / GEMM rate), with
                flops = forward ``2 P (sum_a n_a n_{a-1} + n_0 n_in)``, backward
                twice that, readout ``4 P^2 n_A``;
``ratio``       floor time / measured time per gradient (1 = at the floor; the
                issue's target is a ratio within 2, i.e. <= 2 here);
``imp/s``       importance-weighted posterior samples/s of :func:`mcsim.posterior`
                (``method="importance"``, observables ``caux_readout``, ``predictor``);
``prior/s``     :func:`mcsim.sample` realizations/s of the same prior samples
                (``caux_readout``), and their ratio.

Interleaved rounds, the best of each kept (robust against load from other
processes).  Hook into ``python -m mcsim bench`` by calling :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from theory.prior import Prior

from .backprop import ExplicitNetwork, PosteriorPotential
from .bench import _timed
from .bench import gemm_rate as _gemm_rate


def _problem(arch: str, n: int, A: int, P: int):
    prior = Prior(arch, A, "tanh", 1.5, 0.1, 1.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, 20))
    y = rng.standard_normal((P, 1))
    return prior, X, y


def gradient_flops(net: ExplicitNetwork) -> float:
    """Flops of one forward plus backward pass on all patterns (GEMMs and the readout Gram)."""
    n = [int(v) for v in net.widths]
    P = net.P
    mac = sum(n[a] * n[a - 1] for a in range(1, net.A1)) + sum(n[a] * net.n_in for a in range(net.A1) if net.xnz[a])
    return 2.0 * P * mac * 3 + 4.0 * P * P * n[-1]


def gemm_rate(n: int, P: int, min_time: float) -> float:
    """Measured flops/s of ``(P x n) @ (n x n)`` float64 products (BLAS threads as the environment sets them)."""
    return _gemm_rate(shape=(P, n, n), min_time=min_time, rounds=1, single_thread=False)


def bench_gradient(arch: str, n: int, A: int, P: int, min_time: float, rounds: int) -> dict:
    """Gradient evaluations/s and the ratio to the GEMM floor, measured in interleaved rounds."""
    prior, X, y = _problem(arch, n, A, P)
    net = ExplicitNetwork(prior, X, n)
    pot = PosteriorPotential(net, y, np.arange(P), 0.1)
    z = net.prior_draw(np.random.default_rng(2))
    pot.value_and_grad(z)

    def run(reps):
        for _ in range(reps):
            pot.value_and_grad(z)

    tg, rate = np.inf, 0.0
    for _ in range(rounds):
        t, _ = _timed(run, min_time / rounds, 10**6)
        tg = min(tg, t)
        rate = max(rate, gemm_rate(n, P, min_time / rounds))
    floor_t = gradient_flops(net) / rate
    return {"arch": arch, "n": n, "A": A, "P": P, "grad_per_s": 1.0 / tg, "gemm_gflops": rate / 1e9,
            "floor_per_s": 1.0 / floor_t, "ratio": tg / floor_t}


def bench_importance(arch: str, n: int, A: int, P: int, min_time: float, rounds: int) -> dict:
    """Importance-weighted samples/s of mcsim.posterior vs mcsim.sample realizations/s (same prior samples)."""
    from .posterior_sampling import posterior
    from .sampler import sample

    prior, X, y = _problem(arch, n, A, P)
    train = np.arange(P // 2 + 1)
    R = 64

    def imp(reps):
        for _ in range(reps):
            posterior(prior, X, y, train, n, R, 10.0, method="importance", observables=("caux_readout", "predictor"),
                      min_ess=0, sample_method="projected")

    def prior_only(reps):
        for _ in range(reps):
            sample(prior, X, n, R, method="projected", observables=("caux_readout",))

    imp(1)
    prior_only(1)
    ti, tp = np.inf, np.inf
    for _ in range(rounds):
        ti = min(ti, _timed(imp, min_time / rounds, 10**6)[0])
        tp = min(tp, _timed(prior_only, min_time / rounds, 10**6)[0])
    return {"arch": arch, "n": n, "A": A, "P": P, "imp_per_s": R / ti, "prior_per_s": R / tp, "imp_over_prior": tp / ti}


def main(argv=None) -> int:
    """Print the posterior benchmark tables; returns 0."""
    p = argparse.ArgumentParser(prog="python -m mcsim.bench_posterior", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--n", type=int, default=500, help="width (default 500)")
    p.add_argument("--depth", type=int, default=10, help="A (default 10)")
    p.add_argument("--patterns", type=int, default=50, help="P (default 50)")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept (default 3)")
    p.add_argument("--quick", action="store_true", help="short timings")
    args = p.parse_args(argv)
    if min(args.n, args.patterns) < 1 or args.depth < 0:
        p.error("n, patterns must be >= 1 and depth >= 0")
    mt = 0.5 if args.quick else args.min_time
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    print(f"# mcsim posterior bench: tanh, g2=1.5, sigma2=0.1, kappa=0.1; threads {threads}")
    print(f"{'arch':4} {'n':>5} {'A':>3} {'P':>3} {'grad/s':>9} {'GEMM GF/s':>9} {'floor/s':>9} {'ratio':>6}")
    for arch in ("dnn", "rnn"):
        r = bench_gradient(arch, args.n, args.depth, args.patterns, mt, max(1, args.rounds))
        print(f"{arch:4} {r['n']:5d} {r['A']:3d} {r['P']:3d} {r['grad_per_s']:9.1f} {r['gemm_gflops']:9.2f} "
              f"{r['floor_per_s']:9.1f} {r['ratio']:6.2f}", flush=True)
    print("# ratio = measured time per gradient / (forward+backward flops / measured GEMM rate)")
    print(f"{'arch':4} {'n':>5} {'A':>3} {'P':>3} {'imp/s':>9} {'prior/s':>9} {'imp/prior':>9}")
    for arch in ("dnn", "rnn"):
        r = bench_importance(arch, args.n, args.depth, args.patterns, mt, max(1, args.rounds))
        print(f"{arch:4} {r['n']:5d} {r['A']:3d} {r['P']:3d} {r['imp_per_s']:9.1f} {r['prior_per_s']:9.1f} "
              f"{r['imp_over_prior']:9.2f}", flush=True)
    print("# imp/prior = importance-weighted samples/s / prior realizations/s (caux_readout only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
