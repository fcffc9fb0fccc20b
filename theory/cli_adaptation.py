"""``python -m theory adaptation --spec POINT.json --task TASK.json --out FILE.h5`` (first-order kernel adaptation).

The point spec gives the prior, all patterns ``X`` (training and test) and the
width (see :mod:`theory.spec`).  The task file is JSON with the keys

``y``       targets of all patterns, a list of ``P`` numbers or of ``P`` lists of ``n_out`` numbers;
``train``   list of training pattern indices (the others are test patterns);
``kappa``   observation noise ``>= 0``;
``gamma0``  output scale ``> 0`` (optional, default 1);
``seed``    RQMC seed (optional, default 0).

Datasets (see :class:`theory.adaptation.Adaptation`): ``caux_shift``, ``chat_shift``,
``caux_se``, ``chat_se`` (A+2, A+2, P, P); ``predictor_shift``, ``predictor_se``,
``predictor_prior``, ``predictor_fluctuation`` (P, n_out); ``G`` (P_D, P_D);
``kernel`` (P, P); ``train``.  Root attributes: the errors and their shifts,
``expansion_parameter``, ``method``, ``kappa``, ``gamma0``, ``width``,
``spec_json``, ``task_json``, the prior parameters and ``theory_version``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_TASK_KEYS = {"y", "train", "kappa", "gamma0", "seed"}

_INFO = {
    "caux_shift": ("first-order posterior shift Delta[Caux^(a,b)_{alpha beta}]", "a, b, alpha, beta"),
    "chat_shift": ("first-order posterior shift Delta[Chat^(a,b)_{alpha beta}]", "a, b, alpha, beta"),
    "caux_se": ("RQMC standard error of caux_shift (0: exact)", "a, b, alpha, beta"),
    "chat_se": ("RQMC standard error of chat_shift (0: exact)", "a, b, alpha, beta"),
    "predictor_shift": ("Delta of the per-realisation posterior-mean predictor", "pattern, output"),
    "predictor_se": ("RQMC standard error of predictor_shift", "pattern, output"),
    "predictor_prior": ("NNGP prediction m(Kbar)", "pattern, output"),
    "predictor_fluctuation": ("(1/2) E_prior[d^2 m]: O(1/n) prior-mean shift of m", "pattern, output"),
    "G": ("dl/dK at Kbar on the training patterns", "train, train"),
    "kernel": ("Kbar = C^(A+1,A+1) / gamma0", "pattern, pattern"),
    "train": ("training pattern indices", "train"),
}


def read_task(path) -> dict:
    """Read and check a task JSON file (``ValueError`` naming the key).

    Returns
    -------
    dict
        ``y`` (ndarray float64), ``train`` (ndarray int), ``kappa``, ``gamma0``, ``seed``.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"task: {path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"task: must be a JSON object with keys {sorted(_TASK_KEYS)}")
    unknown = sorted(set(raw) - _TASK_KEYS)
    if unknown:
        raise ValueError(f"task: unknown key(s) {unknown}; allowed: {sorted(_TASK_KEYS)}")
    for key in ("y", "train", "kappa"):
        if key not in raw:
            raise ValueError(f"task: missing key {key!r}")
    try:
        y = np.asarray(raw["y"], dtype=float)
    except (TypeError, ValueError):
        raise ValueError("y: must be a list of numbers or of lists of numbers") from None
    train = np.asarray(raw["train"])
    return {"y": y, "train": train, "kappa": raw["kappa"], "gamma0": raw.get("gamma0", 1.0),
            "seed": raw.get("seed", 0), "json": json.dumps(raw, sort_keys=True)}


def cmd_adaptation(args) -> int:
    from . import __version__
    from .adaptation import adaptation
    from .cli import _prior_attrs, _write_h5_atomic
    from .spec import parse_point_spec

    spec = parse_point_spec(args.spec)
    task = read_task(args.task)
    prior = spec.prior
    prior.act.validated()
    r = adaptation(prior, spec.X, task["y"], task["train"], task["kappa"], spec.width, gamma0=task["gamma0"],
                   seed=task["seed"])
    datasets = {
        "caux_shift": r.caux, "chat_shift": r.chat, "caux_se": r.caux_se, "chat_se": r.chat_se,
        "predictor_shift": r.predictor, "predictor_se": r.predictor_se, "predictor_prior": r.predictor_prior,
        "predictor_fluctuation": r.predictor_fluctuation, "G": r.G, "kernel": r.kernel, "train": r.train,
    }
    attrs = {"spec_json": spec.canonical_json(), "task_json": task["json"], "width": r.width, "kappa": r.kappa,
             "gamma0": r.gamma0, "method": r.method, "expansion_parameter": r.expansion_parameter,
             "theory_version": __version__}
    for name in ("train_error", "test_error"):
        for suffix in ("", "_se", "_prior"):
            attrs[name + suffix] = float(getattr(r, name + suffix))
    attrs.update(_prior_attrs(prior))
    _write_h5_atomic(Path(args.out), datasets, attrs, _INFO)
    print(f"wrote {args.out}")
    return 0


def add_parser(sub, epilog: str) -> None:
    """Register the ``adaptation`` subcommand on the ``python -m theory`` subparsers."""
    p = sub.add_parser(
        "adaptation",
        help="first-order finite-width kernel adaptation to a task (theory notes Sec. 9.3)",
        description="Write the first-order posterior shifts of Caux/Chat (all layer pairs), of the "
        "posterior-mean predictor and of the errors for one point spec and a task file to HDF5 "
        "(see theory.cli_adaptation).",
        epilog=epilog,
    )
    p.add_argument("--spec", required=True, help="point spec JSON file (prior, all patterns X, width)")
    p.add_argument("--task", required=True, help="task JSON file: y, train, kappa[, gamma0, seed]")
    p.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    p.set_defaults(func=cmd_adaptation)
