"""Command line interface: ``python -m mcsim {run,finalize,info,bench}``.

User errors (bad arguments, invalid spec values, missing files, missing or
corrupt shards) print one line ``mcsim <command>: error: ...`` on stderr and
exit with status 1 (argparse usage errors: status 2); no traceback.
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
  finalize  merge the stored blocks of a point into the final point file; fails
            naming every missing or corrupt realization range.
  info      summarise a final point file, a point directory or a store root
            (parameters, realizations present/missing, observables and shapes,
            overflow count).
  bench     micro-benchmarks of the samplers (see 'python -m mcsim bench --help').

examples:
  mpiexec -n 4 python -m mcsim run --spec point.json --store results/store --out point.h5
  python -m mcsim info point.h5
  python -m mcsim info results/store --spec point.json
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are a single line plus the usage hint."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive(name):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: must be an integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name}: must be >= 1, got {v}")
        return v

    return conv


RUN_EPILOG = """\
point spec (JSON; full reference in theory/spec.py):
  {"prior": {"arch": "rnn", "depth": 10, "activation": "relu", "g2": 1.6, "sigma2": 0.2,
             "g2_in": 1.6, "bias": "uncorrelated"},
   "inputs": {"kind": "gaussian", "count": 3, "dim": 4, "seed": 0},
   "width": 500, "realizations": 1000, "block_size": 16, "seed": 0, "method": "auto",
   "observables": ["y", "caux_diag", "chat_diag"]}
  activation: relu, erf, linear, tanh, or an import path "module:function" of a vectorised,
  numba-jittable function (the module must be importable: installed or on PYTHONPATH).
  observables: y, caux, chat, caux_diag, chat_diag, caux_readout, chat_readout.

exit codes: 0 success; 1 bad input, missing/corrupt data or a failed rank (the message names it;
finished blocks stay in the store, rerun the same command to resume); 2 bad command line.
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mcsim", description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="{run,finalize,info,bench}", parser_class=_Parser)

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
    i.add_argument("--verify", action="store_true", help="verify shard checksums (reads all data)")

    sub.add_parser("bench", help="sampler benchmarks (delegates to mcsim.bench)", add_help=False)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from mcsim import bench

        return int(bench.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2

    from . import driver
    from . import store

    cmd = {"finalise": "finalize"}.get(args.command, args.command)
    try:
        if cmd == "run":
            return driver.run(args.spec, args.store, args.out, block_size=args.block_size,
                              realizations=args.realizations, progress=not args.no_progress,
                              progress_interval=args.progress_interval)
        if cmd == "finalize":
            return driver.finalize(args.spec, args.store, args.out, realizations=args.realizations)
        if cmd == "info":
            spec = None
            if args.spec is not None:
                import theory

                try:
                    spec = theory.parse_point_spec(args.spec)
                except ValueError as exc:
                    raise driver.UserError(str(exc)) from None
            print(store.describe_path(args.path, spec=spec, verify=args.verify))
            return 0
    except (driver.UserError, store.StoreError) as exc:
        sys.stderr.write(f"mcsim {cmd}: error: {exc}\n")
        return 1
    except BrokenPipeError:  # e.g. 'info ... | head'
        return 1
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
