"""``python -m mcsim posterior --spec FILE --out FILE.h5``: the CLI twin of :func:`mcsim.posterior`.

Posterior spec (JSON)::

    {"prior": {"arch": "rnn", "depth": 2, "activation": "tanh", "g2": 1.5, "sigma2": 0.1, "g2_in": 1.0},
     "data": {"kind": "linear_teacher", "count": 8, "dim": 3, "train": 6, "seed": 0, "noise": 0.05},
     "width": 20, "draws": 1000, "kappa": 0.05, "gamma0": 1.0,
     "method": "hmc", "chains": 4, "seed": 0,
     "hmc": {"warmup": 300, "n_leapfrog": 10},
     "observables": ["chat", "caux", "predictor", "train_error", "test_error"]}

``data`` is either generator arguments (:func:`mcsim.datasets.make_dataset`:
``kind`` in linear_teacher, xor, sequence; ``count``, ``dim``, ``train``,
optional ``seed``, ``noise``, ``jitter``) or ``{"file": "data.npz"}`` (arrays
``X``, ``y``, ``train``).  ``kappa`` may be the string ``"inf"``.  Optional:
``gamma0`` (1), ``method`` (importance), ``chains`` (4), ``seed`` (0), ``hmc``,
``observables``, ``sample_method`` (auto), ``min_ess``, ``on_collapse``.

With ``--store STORE`` (method hmc only) the chains are work units scheduled
over the MPI ranks (``mpiexec -n R python -m mcsim posterior --spec F --store
STORE --out F.h5``) and checkpointed into STORE every ``--checkpoint-every``
iterations (:mod:`mcsim.chain_worker`, :mod:`mcsim.posterior_store`): a killed
run resumes bit-identically, more draws extend the stored chains, and the
final file does not depend on the number of ranks.  ``--store`` is required
under MPI (more than one rank); without it the run is in-process.

Exit codes: 0 success; 1 runtime failure (collapsed importance weights); 2 bad
input.  Errors are one line on stderr: ``error: <key>: <what>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from theory.prior import Prior

from .datasets import dataset_from_spec
from .posterior_sampling import (DEFAULT_POSTERIOR_OBSERVABLES, ImportanceCollapseError, posterior,
                                 prepare_posterior, write_posterior)
from .posterior_store import DEFAULT_CHECKPOINT_EVERY

REQUIRED = ("prior", "data", "width", "draws", "kappa")
OPTIONAL = ("gamma0", "method", "chains", "seed", "hmc", "observables", "sample_method", "min_ess", "on_collapse")


def load_posterior_spec(path) -> dict:
    """Read and check the keys of a posterior spec; returns the keyword arguments of :func:`mcsim.posterior`.

    Raises
    ------
    ValueError
        ``spec: ...`` or ``<key>: ...``.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise ValueError(f"spec: cannot read {p}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"spec: {p} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"spec: {p} must hold a JSON object")
    unknown = set(doc) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"spec: unknown keys {sorted(unknown)}; allowed: {sorted(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise ValueError(f"spec: missing keys {missing}")
    if not isinstance(doc["prior"], dict):
        raise ValueError("prior: must be an object (see theory.Prior.to_dict)")
    prior = Prior.from_dict(doc["prior"])
    X, y, train = dataset_from_spec(doc["data"], prior)
    kw = {k: doc[k] for k in OPTIONAL if k in doc}
    kw.setdefault("observables", DEFAULT_POSTERIOR_OBSERVABLES)
    kappa = doc["kappa"]
    if kappa == "inf":
        kappa = float("inf")
    elif isinstance(kappa, bool) or not isinstance(kappa, (int, float)):
        raise ValueError(f"kappa: must be a number >= 0 or \"inf\", got {kappa!r}")
    return dict(prior=prior, X=X, y=y, train=train, width=doc["width"], draws=doc["draws"], kappa=kappa, **kw)


def main(argv=None) -> int:
    """Run ``python -m mcsim posterior``; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m mcsim posterior",
                                description="Posterior Monte Carlo (importance weighting or HMC) of one network and "
                                            "data set; writes a self-describing HDF5 file.",
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, help="posterior spec JSON file")
    p.add_argument("--out", required=True, help="output .h5 file (written atomically; its directory must exist)")
    p.add_argument("--store", default=None,
                   help="chain store directory (hmc only; required under mpiexec): chains are distributed over the "
                        "MPI ranks, checkpointed and resumed")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="with --store: iterations between chain checkpoints (default "
                        f"{DEFAULT_CHECKPOINT_EVERY}; does not change the result)")
    p.add_argument("--quiet", action="store_true", help="with --store: only errors and warnings on stderr")
    p.add_argument("--test-hooks", default=None, help=argparse.SUPPRESS)  # see mcsim.fault_hooks
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    try:
        kw = load_posterior_spec(args.spec)
        if not Path(args.out).parent.is_dir():
            raise ValueError(f"out: directory does not exist: {Path(args.out).parent}")
        if args.store is not None or args.checkpoint_every is not None or args.test_hooks is not None:
            return _store_run(kw, args)
        ranks = _launcher_ranks()
        if ranks > 1:
            raise ValueError(f"store: running on {ranks} MPI ranks needs --store STORE (the chains are distributed "
                             "through the chain store); without --store the run is in-process on one rank")
        res = posterior(**kw)
        write_posterior(res, args.out)
    except ImportanceCollapseError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    print(summary_line(res, args.out))
    return 0


def summary_line(res, out) -> str:
    """The one-line summary ``python -m mcsim posterior`` prints on stdout for a result written to ``out``."""
    d = res.diagnostics
    if res.method == "importance":
        return f"importance: ESS {d['ess']:.1f} of {d['draws']} prior samples -> {out}"
    return (f"hmc: max R-hat {d['max_rhat']:.3f}, min bulk/tail ESS {d['min_ess_bulk']:.0f}/{d['min_ess_tail']:.0f}, "
            f"divergences {int(d['divergences'].sum())}, acceptance {d['accept_rate'].mean():.2f} -> {out}")


#: environment variables by which MPI launchers (MPICH/hydra, Open MPI, SLURM) announce the number of ranks
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")


def _launcher_ranks() -> int:
    """Number of MPI ranks the launcher started (1 when not under mpiexec/srun), without initialising MPI."""
    import os

    for var in _LAUNCHER_SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit():
            return int(v)
    return 1


def _store_run(kw: dict, args) -> int:
    """``--store``: validate (ValueError for bad input), then the collective chain run."""
    from .fault_hooks import NO_HOOKS, FaultHooks

    if args.store is None:
        raise ValueError("store: --checkpoint-every and --test-hooks need --store STORE")
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    if every < 1:
        raise ValueError(f"checkpoint-every: must be an integer >= 1, got {every}")
    try:
        hooks = NO_HOOKS if args.test_hooks is None else FaultHooks.from_json(args.test_hooks)
    except ValueError as exc:
        raise ValueError(f"test-hooks: {exc}") from None
    run = prepare_posterior(**kw)
    if run.method != "hmc":
        raise ValueError(f"store: --store holds HMC chains; method {run.method!r} runs without --store "
                         "(importance weighting of a stored prior run: mcsim.importance_weight)")
    from .chain_worker import run_chains

    return run_chains(run, args.store, args.out, every, hooks, quiet=args.quiet)
