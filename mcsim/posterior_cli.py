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
from .posterior_sampling import DEFAULT_POSTERIOR_OBSERVABLES, ImportanceCollapseError, posterior, write_posterior

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
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    try:
        kw = load_posterior_spec(args.spec)
        if not Path(args.out).parent.is_dir():
            raise ValueError(f"out: directory does not exist: {Path(args.out).parent}")
        res = posterior(**kw)
        write_posterior(res, args.out)
    except ImportanceCollapseError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    d = res.diagnostics
    if res.method == "importance":
        print(f"importance: ESS {d['ess']:.1f} of {d['draws']} prior samples -> {args.out}")
    else:
        print(f"hmc: max R-hat {d['max_rhat']:.3f}, min bulk/tail ESS {d['min_ess_bulk']:.0f}/{d['min_ess_tail']:.0f}, "
              f"divergences {int(d['divergences'].sum())}, acceptance {d['accept_rate'].mean():.2f} -> {args.out}")
    return 0
