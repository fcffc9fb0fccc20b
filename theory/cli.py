"""Command-line interface ``python -m theory`` (predict, phase-diagram).

``predict --spec POINT.json --out THEORY.h5``
    Mean-field kernel and 1/n predictions for one point spec.  Datasets:
    ``kernel`` (A+2, A+2, P, P), ``nlo_variance`` (P, A+2),
    ``nlo_covariance`` (P, A+2, A+2), ``input_propagation`` (P, A+2),
    ``fourth_cumulant`` (P,), ``inputs`` (X).  The per-pattern NLO datasets
    treat each pattern as a single input at a = 0; for sequence inputs they
    are skipped and the root attribute ``nlo_note`` says so.  Root attrs:
    ``spec_json``, every prior parameter, ``width``, ``theory_version``.

``phase-diagram --activation tanh --g2 MIN MAX N --sigma2 MIN MAX N --out FILE.h5``
    Fixed point and depth scales on a grid (see :func:`theory.phase_diagram`).

HDF5 files are written atomically (temporary file in the target directory,
then ``os.replace``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

_DATASET_INFO = {
    "kernel": ("mean-field covariance C^(a,b)_{alpha beta} (theory-notes Sec. 3)", "a, b, alpha, beta"),
    "nlo_variance": ("O(1/n) variance of Caux^(a,a) per pattern as a single input at a=0 (Eq. 44/68)", "pattern, a"),
    "nlo_covariance": ("O(1/n) covariance of Caux^(a,a) and Caux^(b,b) per pattern", "pattern, a, b"),
    "input_propagation": ("prod_{k<a} F_k: propagation of an input-kernel perturbation (Eq. 42)", "pattern, a"),
    "fourth_cumulant": ("fourth cumulant of a scalar output, 3 Var[Caux^(A+1,A+1)]", "pattern"),
    "inputs": ("network inputs X as given in the spec", "pattern, [a,] input dim"),
}


def _write_h5_atomic(path: Path, datasets: dict, attrs: dict, info: dict) -> None:
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, val in attrs.items():
                f.attrs[key] = val
            for name, arr in datasets.items():
                ds = f.create_dataset(name, data=np.asarray(arr))
                desc, axes = info.get(name, ("", ""))
                ds.attrs["description"] = desc
                ds.attrs["axes"] = axes
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _prior_attrs(prior) -> dict:
    out = {}
    for key, val in prior.to_dict().items():
        out[key] = np.asarray(val) if isinstance(val, list) else val
    return out


def cmd_predict(args) -> int:
    from . import __version__
    from .kernel import kernel
    from .nlo import input_propagation, nlo_covariance
    from .spec import parse_point_spec

    spec = parse_point_spec(args.spec)
    prior, X, width = spec.prior, spec.X, spec.width
    datasets = {"kernel": kernel(prior, X, args.quad_order), "inputs": X}
    attrs = {"spec_json": spec.canonical_json(), "width": width, "theory_version": __version__}
    attrs.update(_prior_attrs(prior))
    if X.ndim == 2:
        cov = np.stack([nlo_covariance(prior, x, width, args.quad_order) for x in X])
        var = np.diagonal(cov, axis1=1, axis2=2).copy()
        datasets["nlo_covariance"] = cov
        datasets["nlo_variance"] = var
        datasets["input_propagation"] = np.stack([input_propagation(prior, x, args.quad_order) for x in X])
        datasets["fourth_cumulant"] = 3.0 * var[:, -1]
        attrs["nlo_note"] = "each pattern treated as a single input at a = 0"
    else:
        attrs["nlo_note"] = "skipped: NLO predictions are defined for single inputs at a = 0, got sequence inputs"
    _write_h5_atomic(Path(args.out), datasets, attrs, _DATASET_INFO)
    print(f"wrote {args.out}")
    return 0


def _grid(name: str, triple) -> np.ndarray:
    lo, hi, n = triple
    try:
        lo, hi, n_int = float(lo), float(hi), int(n)
    except ValueError:
        raise ValueError(f"{name}: expected MIN MAX N, got {triple}") from None
    if n_int < 1 or float(n) != n_int:
        raise ValueError(f"{name}: N must be a positive integer, got {n}")
    return np.linspace(lo, hi, n_int)


def cmd_phase_diagram(args) -> int:
    from . import __version__
    from .stability import phase_diagram

    g2 = _grid("g2", args.g2)
    s2 = _grid("sigma2", args.sigma2)
    res = phase_diagram(args.activation, g2, s2, args.quad_order)
    info = {
        "g2": ("weight variance g^2 (meshgrid)", "g2, sigma2"),
        "sigma2": ("bias variance sigma^2 (meshgrid)", "g2, sigma2"),
        "q_star": ("stable fixed point of the diagonal recursion; NaN where none exists", "g2, sigma2"),
        "chi1": ("g^2 <phi'(h)^2> at q*", "g2, sigma2"),
        "F": ("g^2 d<phi^2>/dc at q*", "g2, sigma2"),
        "c_star": ("correlation coefficient of the stable correlation fixed point", "g2, sigma2"),
        "chi_c": ("g^2 <phi'(u) phi'(v)> at (q*, c*)", "g2, sigma2"),
        "tau": ("correlation depth scale xi_c = -1/ln chi_c; NaN where diverging or undefined", "g2, sigma2"),
        "tau_F": ("depth scale -1/ln F (paper's tau, xi_q); NaN where diverging or undefined", "g2, sigma2"),
    }
    attrs = {"activation": args.activation, "theory_version": __version__}
    _write_h5_atomic(Path(args.out), res, attrs, info)
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``python -m theory``."""
    parser = argparse.ArgumentParser(
        prog="python -m theory",
        description="Mean-field theory of deep (DNN) and recurrent (RNN) networks: kernels, 1/n "
        "fluctuations and depth scales (Segadlo et al. 2022).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="kernel and 1/n predictions for a point spec",
        description="Write the mean-field kernel and NLO predictions of one point spec to HDF5. "
        "Datasets: kernel (A+2,A+2,P,P), nlo_variance (P,A+2), nlo_covariance (P,A+2,A+2), "
        "input_propagation (P,A+2), fourth_cumulant (P,), inputs; NLO datasets are skipped for sequence inputs.",
    )
    p.add_argument("--spec", required=True, help="point spec JSON file (see theory.spec)")
    p.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    p.add_argument("--quad-order", type=int, default=None, help="Gauss-Hermite order (default 40)")
    p.set_defaults(func=cmd_predict)
    d = sub.add_parser(
        "phase-diagram",
        help="fixed point and depth scales on a (g2, sigma2) grid",
        description="Datasets q_star, chi1, F, c_star, chi_c, tau (correlation depth scale), tau_F "
        "(-1/ln F), each of shape (N_g2, N_sigma2).",
    )
    d.add_argument("--activation", required=True,
                   help="relu, erf, linear, tanh, or an import path 'module:function' of a vectorised function")
    d.add_argument("--g2", nargs=3, required=True, metavar=("MIN", "MAX", "N"), help="g^2 grid (linspace)")
    d.add_argument("--sigma2", nargs=3, required=True, metavar=("MIN", "MAX", "N"), help="sigma^2 grid (linspace)")
    d.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    d.add_argument("--quad-order", type=int, default=None, help="Gauss-Hermite order (default 40)")
    d.set_defaults(func=cmd_phase_diagram)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 with a message on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
