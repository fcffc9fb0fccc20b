"""Command line interface: ``python -m mcsim {run,campaign,finalize,info,bench}``.

Exit codes (the same convention as ``python -m theory``):

0  success;
1  runtime failure: a failed rank, missing, corrupt or stale shards, a
   corrupt final file (``info --verify``);
2  bad input: an invalid spec value, file or command-line argument
   (argparse usage errors included).

Errors print one line ``error: <key>: <what>`` on stderr (the key is a spec
key such as ``inputs.count``, a command-line argument, ``store`` or the file
concerned), without a traceback.  A failed rank also prints its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

DESCRIPTION = """\
Finite-width Monte Carlo sampling of DNNs and weight-shared RNNs.

commands:
  run       sample the missing realization blocks of a point into a store
            (under 'mpiexec -n K' or 'srun' the blocks are scheduled dynamically
            over all ranks) and write the final point file. Re-running resumes
            after a kill; raising 'realizations' samples only the new ones.
  campaign  sample many points in one (MPI) job: the blocks of all points are
            handed out most expensive first; each point is finalised as soon as
            its last block is written; up-to-date outputs are skipped.
  finalize  merge the stored blocks of a point into the final point file; fails
            naming every missing or corrupt realization range.
  info      summarise a final point file, a point directory or a store root
            (parameters, realizations present/missing, observables and shapes,
            overflow count).
  bench     micro-benchmarks of the samplers (see 'python -m mcsim bench --help').
  posterior posterior Monte Carlo of one network and data set (see 'python -m mcsim posterior --help').
  scaling   predicted strong scaling (a model): the measured block times of finished
            points replayed under the dispatcher's policy for several rank counts.

examples:
  mpiexec -n 4 python -m mcsim run --spec point.json --store results/store --out point.h5
  mpiexec -n 4 python -m mcsim campaign --specs chunk.json --store results/store
  python -m mcsim info point.h5 --verify
  python -m mcsim info results/store --spec point.json
  python -m mcsim scaling results/fig2_width/sim --ranks 1 2 8 64 512

exit codes: 0 success; 1 runtime failure (a failed rank, missing, corrupt or stale
shards, a corrupt final file); 2 bad input (invalid spec value, file or argument).
Errors are one line on stderr: 'error: <key>: <what>'.
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are a single line plus the usage hint."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _positive(name):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
        return v

    return conv


def _fault_hooks(text):
    """``--test-hooks JSON`` (hidden, test-suite only) -> :class:`mcsim.fault_hooks.FaultHooks`."""
    from .fault_hooks import FaultHooks

    try:
        return FaultHooks.from_json(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


RUN_EPILOG = """\
point spec (JSON; full reference in theory/spec.py):
  {"prior": {"arch": "rnn", "depth": 10, "activation": "relu", "g2": 1.6, "sigma2": 0.2,
             "g2_in": 1.6, "bias": "uncorrelated"},
   "inputs": {"kind": "gaussian", "count": 3, "dim": 4, "seed": 0},
   "width": 500, "realizations": 1000, "block_size": 16, "seed": 0, "method": "auto",
   "observables": ["y", "caux_diag", "chat_diag"]}
  activation: relu, erf, linear, tanh, or an import path "module:function" of a vectorised,
  numba-jittable function (the module must be importable: installed or on PYTHONPATH).
  observables: y, caux, chat, caux_diag, chat_diag, caux_readout, chat_readout, y_steps.

  Validation is strict: integers must be JSON integers (2.0 and true are rejected), seeds
  satisfy 0 <= seed < 2**63, explicit inputs.values must agree with inputs.count/dim.

store: realizations are shared by specs of the same point that differ only in observables
  (only missing observables are sampled); concurrent runs of one point wait for each other
  (lock per point directory). A point directory written by another sampler stream version
  (mcsim.SAMPLER_STREAM_VERSION) is refused: delete it or use a new --store.
memory: the peak memory of a block is estimated before sampling and a block that does not fit
  (MemAvailable, cgroup limit, or MCSIM_MEMORY_LIMIT, e.g. 8G) is refused; lower --block-size.

exit codes: 0 success; 1 runtime failure: a failed rank, missing/corrupt/stale shards (finished
blocks stay in the store: rerun the same command to resume); 2 bad input: invalid spec value, file
or argument. Errors are one line on stderr: 'error: <key>: <what>'.
"""


CAMPAIGN_EPILOG = """\
chunk file (JSON): one entry per point; 'spec' is the point spec 'mcsim run --spec' reads
(see 'python -m mcsim run --help'), 'out' its final file (its directory must exist):
  {"points": [
     {"name": "depth/g2=1.6/A=10",
      "spec": {"prior": {"arch": "rnn", "depth": 10, "activation": "relu", "g2": 1.6, "sigma2": 0.2},
               "inputs": {"kind": "gaussian", "count": 3, "dim": 4, "seed": 0},
               "width": 500, "realizations": 1000, "block_size": 16, "seed": 0},
      "out": "results/sim/depth_A10.h5"},
     {"name": "depth/g2=1.6/A=20", "spec": {...}, "out": "results/sim/depth_A20.h5"}]}
  Names and outputs must be unique. Two entries of the same point need the same spec (sampled once).

scheduling: work units are (point, block); rank 0 hands them out most expensive first (cost model
  mcsim.cost), a static first round then on request. A point whose 'out' already is a complete final
  file of exactly its spec (point key, realizations, observables) is skipped without sampling; other
  points reuse their stored blocks (resume after a kill, raising 'realizations' samples only the new
  blocks). Each point is finalised as soon as its last block is written.

progress: one line per campaign on stderr: points done/total, blocks, realizations done/total over
  all points, rate, and an ETA weighted by the cost model (calibrated on the blocks done). In a log
  file a new line at most every --progress-interval seconds and a final one; on a terminal the line
  is redrawn in place (at most twice a second). --quiet prints only errors and warnings.

exit codes: 0 every point finalised or skipped; 1 a point failed (one line 'error: <name>: <what>' per
  failed point; every other point is still finalised and finished blocks stay in the store: rerun the
  same command to resume); 2 bad input (bad JSON, duplicate names or outputs, an invalid spec:
  'error: <name>: <key>: <what>').
"""


def _interval(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mcsim", description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="{run,campaign,finalize,info,scaling,bench,posterior}", parser_class=_Parser)

    r = sub.add_parser("run", help="sample missing blocks (MPI-parallel) and write the final point file",
                       description="Sample the missing realization blocks of a point into STORE/<point_key>/blocks "
                                   "(atomic per-block HDF5 shards) and finalise OUT. Works alone or under "
                                   "mpiexec/srun; blocks are distributed dynamically over ranks.",
                       epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--spec", required=True, help="point spec JSON file (see theory.spec)")
    r.add_argument("--store", required=True, help="store root directory (created if missing)")
    r.add_argument("--out", required=True, help="final point file (.h5); its directory must exist")
    r.add_argument("--block-size", type=_positive("block-size"), default=None,
                   help="realizations per block (overrides the spec's block_size)")
    r.add_argument("--realizations", type=_positive("realizations"), default=None,
                   help="number of realizations R (overrides the spec)")
    r.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    r.add_argument("--progress-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between progress lines when stderr is not a terminal (default 30)")
    r.add_argument("--test-hooks", type=_fault_hooks, default=None, help=argparse.SUPPRESS)  # see mcsim.fault_hooks

    c = sub.add_parser("campaign", help="sample many points in one (MPI) job and write their final files",
                       description="Sample the missing blocks of every point of CHUNK.json into STORE (one "
                                   "directory per point, as 'run') and finalise each point's 'out'. Works alone or "
                                   "under mpiexec/srun; (point, block) units are distributed over ranks, most "
                                   "expensive first.",
                       epilog=CAMPAIGN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--specs", required=True, metavar="CHUNK.json", help="chunk file: the points (see below)")
    c.add_argument("--store", required=True, help="store root directory (created if missing)")
    c.add_argument("--progress-interval", type=_interval, default=None, metavar="SECONDS",
                   help="seconds between progress lines when stderr is not a terminal (default 10)")
    c.add_argument("--quiet", action="store_true", help="only errors and warnings on stderr")
    c.add_argument("--test-hooks", type=_fault_hooks, default=None, help=argparse.SUPPRESS)  # see mcsim.fault_hooks

    f = sub.add_parser("finalize", aliases=["finalise"], help="merge stored blocks into the final point file",
                       description="Merge the shards of a point into OUT (single process). Fails loudly, naming "
                                   "every missing or corrupt realization range; never writes fill values.")
    f.add_argument("--spec", required=True, help="point spec JSON file")
    f.add_argument("--store", required=True, help="store root directory")
    f.add_argument("--out", required=True, help="final point file (.h5); its directory must exist")
    f.add_argument("--realizations", type=_positive("realizations"), default=None,
                   help="number of realizations R (overrides the spec)")

    i = sub.add_parser("info", help="summarise a point file, point directory or store",
                       description="Summarise a final point file, a point directory STORE/<point_key> or a store "
                                   "root: point parameters, realizations present/missing, observables and "
                                   "shapes, overflow count.")
    i.add_argument("path", help="final point file, point directory or store root")
    i.add_argument("--spec", default=None, help="point spec JSON: report missing ranges w.r.t. its realizations")
    i.add_argument("--verify", action="store_true",
                   help="verify checksums of shards or of every dataset of a final file (reads all data); "
                        "a mismatch exits 1 naming the dataset and file")

    sc = sub.add_parser("scaling", help="predicted strong scaling from measured block times (a model)",
                        description="Replay the measured block times (attribute block_timings) of final point "
                                    "files under the campaign dispatcher's policy (most expensive first by the cost "
                                    "model, then on request) for each rank count, as if all their points were one "
                                    "campaign job. A model: start-up, MPI messages and finalisation are not "
                                    "included; measure 1 vs 2 ranks for real to check it.")
    sc.add_argument("paths", nargs="+", metavar="PATH", help="final point files (.h5) or directories searched for them")
    sc.add_argument("--ranks", type=_positive("ranks"), nargs="+", default=[1, 2, 8, 64, 512],
                    help="rank counts to replay (default 1 2 8 64 512)")

    sub.add_parser("bench", help="sampler benchmarks (delegates to mcsim.bench)", add_help=False)
    sub.add_parser("posterior", help="posterior sampling (delegates to mcsim.posterior_cli)", add_help=False)
    return p


def _scaling_table(paths, ranks) -> str:
    """Text table of :func:`mcsim.scheduler.strong_scaling` over the final point files under ``paths``."""
    from pathlib import Path

    from .campaign import measured_unit_costs
    from .driver import UserError
    from .scheduler import strong_scaling

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.h5")))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"path: no such file or directory: {p}")
    if not files:
        raise UserError(f"path: no final point files (*.h5) under {', '.join(map(str, paths))}")
    measured, predicted = measured_unit_costs(files)
    rows = strong_scaling(measured, ranks, priority=predicted)
    head = (f"{len(files)} points, {len(measured)} blocks, {sum(measured):.1f} s measured on one rank "
            f"(largest block {rows[0]['bound']:.2f} s); replay of the dispatcher (a model: no start-up, "
            "messages or finalisation)")
    lines = [head, f"{'ranks':>7} {'makespan_s':>12} {'speedup':>9} {'efficiency':>11}"]
    lines += [f"{r['ranks']:>7d} {r['makespan']:>12.2f} {r['speedup']:>9.2f} {r['efficiency']:>11.3f}" for r in rows]
    return "\n".join(lines)


def driver_exit_usage() -> int:
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from mcsim import bench

        return int(bench.main(argv[1:]) or 0)
    if argv and argv[0] == "posterior":
        from mcsim import posterior_cli

        return int(posterior_cli.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return driver_exit_usage()

    from . import driver
    from . import store

    cmd = {"finalise": "finalize"}.get(args.command, args.command)
    try:
        if cmd == "run":
            return driver.run(args.spec, args.store, args.out, block_size=args.block_size,
                              realizations=args.realizations, progress=not args.no_progress,
                              progress_interval=args.progress_interval, hooks=args.test_hooks)
        if cmd == "campaign":
            from . import campaign

            interval = campaign.DEFAULT_PROGRESS_INTERVAL if args.progress_interval is None else args.progress_interval
            return campaign.run_campaign(lambda: campaign.load_chunk(args.specs), args.store,
                                         progress_interval=interval, quiet=args.quiet, hooks=args.test_hooks)
        if cmd == "finalize":
            return driver.finalize(args.spec, args.store, args.out, realizations=args.realizations)
        if cmd == "info":
            spec = driver.load_spec(args.spec) if args.spec is not None else None
            from pathlib import Path

            if not Path(args.path).exists():
                raise driver.UserError(f"path: no such file or directory: {args.path}")
            print(store.describe_path(args.path, spec=spec, verify=args.verify))
            return driver.EXIT_OK
        if cmd == "scaling":
            print(_scaling_table(args.paths, args.ranks))
            return driver.EXIT_OK
    except driver.UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return driver.EXIT_USAGE
    except store.StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return driver.EXIT_FAILURE
    except BrokenPipeError:  # e.g. 'info ... | head'
        return 1
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
