"""Command-line interface ``python -m theory`` (predict, phase-diagram).

``predict --spec POINT.json --out THEORY.h5``
    Mean-field kernel and 1/n predictions for one point spec.  Datasets:
    ``kernel`` (A+2, A+2, P, P), ``nlo_variance`` (P, A+2),
    ``nlo_covariance`` (P, A+2, A+2), ``input_propagation`` (P, A+2),
    ``fourth_cumulant`` (P,), ``inputs`` (X).  The per-pattern NLO datasets
    treat each pattern as a single input at a = 0; for sequence inputs they
    are skipped and the root attribute ``nlo_note`` says so.  Root attrs:
    ``spec_json``, every prior parameter, ``width``, ``theory_version``.

``predict-many --specs CHUNK.json``
    ``predict`` for every point of a chunk file
    ``{"points": [{"name": ..., "spec": {...}, "out": "THEORY.h5"}, ...]}`` in
    one process; points whose file is already current (same spec, theory
    version and quadrature request) are skipped, a failing point is named and
    the others are still computed (exit status 1).

``phase-diagram --activation tanh --g2 MIN MAX N --sigma2 MIN MAX N --out FILE.h5``
    Fixed point and depth scales on a grid (see :func:`theory.phase_diagram`).

``adaptation --spec POINT.json --task TASK.json --out FILE.h5``
    First-order kernel adaptation to a task (see :mod:`theory.cli_adaptation`).

HDF5 files are written atomically (temporary file in the target directory,
then ``os.replace``).

Exit status: 0 success; 1 runtime failure (a non-finite theory result, an
I/O error); 2 bad input (invalid spec, arguments or parameters).  Failures
print one line ``error: <key>: <what>`` on stderr (argparse usage errors keep
argparse's own format and also exit 2).
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


def _predict_point(spec, out: Path, args) -> None:
    """Compute the predictions of one validated :class:`theory.spec.PointSpec` and write ``out`` atomically."""
    from . import __version__
    from .gaussian import quadrature_diagnostics
    from .kernel import kernel
    from .nlo import input_propagation, nlo_covariance

    prior, X, width = spec.prior, spec.X, spec.width
    q = dict(quad_order=args.quad_order, quad_tol=args.quad_tol)
    with quadrature_diagnostics() as diag:
        datasets = {"kernel": kernel(prior, X, **q), "inputs": X}
        attrs = {"spec_json": spec.canonical_json(), "width": width, "theory_version": __version__,
                 "quadrature_request": _quadrature_request(args)}
        attrs.update(_prior_attrs(prior))
        if X.ndim == 2:
            cov = np.stack([nlo_covariance(prior, x, width, **q) for x in X])
            var = np.diagonal(cov, axis1=1, axis2=2).copy()
            datasets["nlo_covariance"] = cov
            datasets["nlo_variance"] = var
            datasets["input_propagation"] = np.stack([input_propagation(prior, x, **q) for x in X])
            datasets["fourth_cumulant"] = 3.0 * var[:, -1]
            attrs["nlo_note"] = "each pattern treated as a single input at a = 0"
        else:
            attrs["nlo_note"] = "skipped: NLO predictions are defined for single inputs at a = 0, got sequence inputs"
    attrs.update(_quadrature_attrs(diag, args))
    _write_h5_atomic(Path(out), datasets, attrs, _DATASET_INFO)


def _quadrature_request(args) -> str:
    """Canonical text of the requested quadrature options (part of what makes a theory file current)."""
    return json.dumps({"quad_order": args.quad_order, "quad_tol": args.quad_tol}, sort_keys=True)


def theory_file_is_current(path, spec, args) -> bool:
    """True if ``path`` is a complete theory file of ``spec`` from this theory version and quadrature request.

    Parameters
    ----------
    path : path-like
        Theory HDF5 file (written atomically by ``predict``: it is complete or absent).
    spec : theory.spec.PointSpec
    args : argparse.Namespace
        With ``quad_order`` and ``quad_tol``.

    Returns
    -------
    bool
        False if the file is missing, unreadable, or written for another spec
        (root attribute ``spec_json``), theory version or quadrature request.
    """
    import h5py

    from . import __version__

    if not os.path.isfile(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            return ("kernel" in f and attrs.get("spec_json") == spec.canonical_json()
                    and attrs.get("theory_version") == __version__
                    and attrs.get("quadrature_request") == _quadrature_request(args))
    except OSError:
        return False


def cmd_predict(args) -> int:
    from .spec import parse_point_spec

    spec = parse_point_spec(args.spec)
    spec.prior.act.validated()  # a custom activation must be vectorised: bad input, before any work
    _predict_point(spec, Path(args.out), args)
    print(f"wrote {args.out}")
    return 0


def cmd_predict_many(args) -> int:
    """Predictions for every point of a chunk file; points whose file is current are skipped."""
    from .kernel import NonFiniteTheoryError

    from .spec import read_chunk

    points = read_chunk(args.specs)  # every point is validated before any work
    failed, done, skipped = [], 0, 0
    for name, spec, out in ((p.name, p.spec, p.out) for p in points):
        if theory_file_is_current(out, spec, args):
            skipped += 1
            continue
        try:
            _predict_point(spec, out, args)
        except (NonFiniteTheoryError, OSError) as exc:
            failed.append(name)
            print(f"error: {name}: {_one_line(exc)}", file=sys.stderr, flush=True)
            continue
        done += 1
        print(f"wrote {out}", flush=True)
    print(f"predict-many: {done} computed, {skipped} already current, {len(failed)} failed of {len(points)}", flush=True)
    if failed:
        print(f"error: {len(failed)} point(s) failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


def _quadrature_attrs(diag, args) -> dict:
    """Root attributes describing the quadrature (see :mod:`theory.gaussian`)."""
    if diag.integrals == 0:
        method = "closed form (no quadrature)"
    elif args.quad_order is not None:
        method = f"Gauss-Hermite order {args.quad_order} (no error estimate)"
    else:
        method = f"automatic, relative tolerance {args.quad_tol:g}"
    return {"quadrature": method, "quadrature_max_rel_error": float(diag.max_rel_error) if diag.integrals else 0.0}


def _grid(name: str, triple) -> np.ndarray:
    lo, hi, n = triple
    try:
        lo, hi, n_int = float(lo), float(hi), int(n)
    except ValueError:
        raise ValueError(f"{name}: expected MIN MAX N, got {' '.join(map(str, triple))}") from None
    if n_int < 1 or float(n) != n_int:
        raise ValueError(f"{name}: N must be a positive integer, got {n}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name}: MIN and MAX must be finite, got {lo} {hi}")
    return np.linspace(lo, hi, n_int)


def cmd_phase_diagram(args) -> int:
    from . import __version__
    from .stability import phase_diagram

    from .gaussian import quadrature_diagnostics

    from .gaussian import get_activation

    get_activation(args.activation)  # resolve and validate first: a bad activation is bad input
    g2 = _grid("g2", args.g2)
    s2 = _grid("sigma2", args.sigma2)
    with quadrature_diagnostics() as diag:
        res = phase_diagram(args.activation, g2, s2, args.quad_order, args.quad_tol)
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
    attrs.update(_quadrature_attrs(diag, args))
    _write_h5_atomic(Path(args.out), res, attrs, info)
    print(f"wrote {args.out}")
    return 0


EXIT_CODES = (
    "exit status: 0 success; 1 runtime failure (e.g. a non-finite theory result in the unstable regime, "
    "an I/O error); 2 bad input (invalid spec, arguments or parameters). Errors are one line on stderr: "
    "'error: <key>: <what>'."
)

QUAD_HELP = (
    "quadrature for activations without closed form (tanh, custom): automatic to a relative "
    "tolerance (--quad-tol, default 1e-9) unless --quad-order N forces Gauss-Hermite of order N "
    "(no error estimate); the achieved estimate is stored in the root attribute quadrature_max_rel_error."
)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text!r}") from None
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text!r}")
    return v


def _tolerance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [1e-14, 1e-2], got {text!r}") from None
    if not (1e-14 <= v <= 1e-2):
        raise argparse.ArgumentTypeError(f"expected a number in [1e-14, 1e-2], got {text!r}")
    return v


def _quad_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quad-order", type=_positive_int, default=None, metavar="N",
                   help="force Gauss-Hermite quadrature of order N (default: automatic with error control)")
    p.add_argument("--quad-tol", type=_tolerance, default=1e-9, metavar="TOL",
                   help="relative tolerance of the automatic quadrature (default 1e-9)")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``python -m theory``."""
    parser = argparse.ArgumentParser(
        prog="python -m theory",
        description="Mean-field theory of deep (DNN) and recurrent (RNN) networks: kernels, 1/n "
        "fluctuations and depth scales (Segadlo et al. 2022).",
        epilog=EXIT_CODES,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="kernel and 1/n predictions for a point spec",
        description="Write the mean-field kernel and NLO predictions of one point spec to HDF5. "
        "Datasets: kernel (A+2,A+2,P,P), nlo_variance (P,A+2), nlo_covariance (P,A+2,A+2), "
        "input_propagation (P,A+2), fourth_cumulant (P,), inputs; NLO datasets are skipped for sequence inputs. "
        "A kernel or NLO result that is not finite (overflow in the unstable regime) is an error naming the "
        "parameter point and the first non-finite layer (exit status 1); no file is written. " + QUAD_HELP,
        epilog=EXIT_CODES,
    )
    p.add_argument("--spec", required=True, help="point spec JSON file (see theory.spec)")
    p.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    _quad_args(p)
    p.set_defaults(func=cmd_predict)
    m = sub.add_parser(
        "predict-many",
        help="predictions for every point of a chunk file (one process for many points)",
        description="As predict, for each point of a chunk file {\"points\": [{\"name\": ..., \"spec\": {...}, "
        "\"out\": \"THEORY.h5\"}, ...]}. Every spec is validated first (bad input: exit status 2, no work done). "
        "A point whose out file is already a complete file of the same spec, theory version and quadrature "
        "request is skipped. A point that fails (e.g. non-finite theory) is named on stderr and the others are "
        "still computed; the exit status is then 1. " + QUAD_HELP,
        epilog=EXIT_CODES,
    )
    m.add_argument("--specs", required=True, help="chunk JSON file with the points (name, spec, out)")
    _quad_args(m)
    m.set_defaults(func=cmd_predict_many)
    d = sub.add_parser(
        "phase-diagram",
        help="fixed point and depth scales on a (g2, sigma2) grid",
        description="Datasets q_star, chi1, F, c_star, chi_c, tau (correlation depth scale), tau_F "
        "(-1/ln F), each of shape (N_g2, N_sigma2). " + QUAD_HELP,
        epilog=EXIT_CODES,
    )
    d.add_argument("--activation", required=True,
                   help="relu, erf, linear, tanh, or an import path 'module:function' of a vectorised function")
    d.add_argument("--g2", nargs=3, required=True, metavar=("MIN", "MAX", "N"), help="g^2 grid (linspace)")
    d.add_argument("--sigma2", nargs=3, required=True, metavar=("MIN", "MAX", "N"), help="sigma^2 grid (linspace)")
    d.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    _quad_args(d)
    d.set_defaults(func=cmd_phase_diagram)
    from .cli_adaptation import add_parser as add_adaptation_parser

    add_adaptation_parser(sub, EXIT_CODES)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None) -> int:
    """Entry point; returns the exit status.

    0 success; 1 runtime failure (:class:`theory.kernel.NonFiniteTheoryError`,
    ``OSError``); 2 bad input (``ValueError``; argparse errors also exit 2).
    The message is one line ``error: <key>: <what>`` on stderr.
    """
    from .kernel import NonFiniteTheoryError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except NonFiniteTheoryError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        key = "out" if getattr(exc, "filename", None) is not None else "io"
        print(f"error: {key}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
