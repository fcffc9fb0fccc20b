"""I/O helpers shared by the workflow scripts (no numerics here).

Scripts run via Snakemake's ``script:`` directive from a temporary copy, so
they put ``snakemake.scriptdir`` on ``sys.path`` before importing this module.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from theory.comparison import z_score  # noqa: F401  (re-exported for the compare scripts)


def setup_logging(smk) -> logging.Logger:
    """Send this script's log records, warnings and uncaught errors to the rule's log file."""
    log_path = smk.log[0]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logger = logging.getLogger(Path(sys.argv[0]).stem)

    def _excepthook(exc_type, exc, tb):
        logger.error("uncaught exception", exc_info=(exc_type, exc, tb))
        sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = _excepthook
    return logger


def read_h5(path) -> tuple[dict, dict]:
    """Read every root dataset and root attribute of an HDF5 file.

    Returns
    -------
    data : dict of str -> ndarray
    attrs : dict of str -> python scalars/str
    """
    data, attrs = {}, {}
    with h5py.File(path, "r") as fh:
        for name, obj in fh.items():
            if isinstance(obj, h5py.Dataset):
                data[name] = obj[()]
        for key, value in fh.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            attrs[key] = value
    return data, attrs


def read_sim(path) -> tuple[dict, dict]:
    """Read a finalised simulation point file, verifying every dataset's SHA-256.

    Thin wrapper of :func:`mcsim.read_point`: a corrupt, truncated or
    incomplete file is an error naming the file and dataset, never a number.

    Returns
    -------
    data : dict of str -> ndarray
    attrs : dict
    """
    from mcsim import read_point

    return read_point(path)


def valid_realizations(data: dict) -> np.ndarray:
    """Boolean mask (R,) of realizations without overflow (all True if not recorded)."""
    any_obs = next(v for k, v in data.items() if k not in ("inputs", "overflow"))
    if "overflow" in data:
        return ~np.asarray(data["overflow"], dtype=bool)
    return np.ones(any_obs.shape[0], dtype=bool)


THEORY_SE_DESCRIPTION = ("RQMC standard error of theory: the spread over the RQMC replicates of this very "
                         "combination of kernel entries (theory.adaptation.Adaptation.combination_se); 0: exact "
                         "(linear)")
"""Column description of ``theory_se`` in the posterior comparison tables (one definition)."""


def step_readout_masks(y_steps, depths) -> dict:
    """Realizations usable at each readout depth of a nested simulation (``y_steps``).

    The point file's ``overflow`` flag covers the whole (deepest) simulation;
    dropping a realization that overflowed at step 30 from its depth-5 readout
    would condition the shallow rows on the future.  A separate depth-a
    simulation drops a realization only if it overflowed up to step a, i.e.
    when its readout after step a is not finite; these masks do the same.

    Parameters
    ----------
    y_steps : ndarray, float64, shape (R, A+1, P[, n_out])
        Per-step readouts of the point file.
    depths : iterable of int
        Readout depths a (0 <= a <= A).

    Returns
    -------
    dict of int -> ndarray of bool, shape (R,)
        ``a -> all readouts after step a are finite``.
    """
    Y = np.asarray(y_steps)
    axes = tuple(range(1, Y.ndim - 1))
    return {int(a): np.isfinite(Y[:, int(a)]).all(axis=axes) for a in depths}


def _clean(value):
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_table(csv_path, meta_path, rows: list[dict], columns: dict, description: str, experiment: dict, extra=None):
    """Write a tidy CSV table and a JSON sidecar describing its columns and parameters.

    Parameters
    ----------
    csv_path, meta_path : path-like
    rows : list of dict
        One dict per row; keys must be exactly ``columns``.
    columns : dict of str -> str
        Column name -> description (with units where meaningful).
    description : str
        What the table contains.
    experiment : dict
        Experiment configuration (recorded verbatim).
    extra : dict, optional
        Further metadata (package versions, comparison options, ...).
    """
    names = list(columns)
    for row in rows:
        if set(row) != set(names):
            raise ValueError(f"rows: columns {sorted(row)} do not match {sorted(names)}")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _clean(v) for k, v in row.items()})
    meta = {
        "table": str(Path(csv_path).name),
        "description": description,
        "columns": [{"name": name, "description": text} for name, text in columns.items()],  # CSV column order
        "experiment": experiment,
    }
    if extra:
        meta.update(extra)
    with open(meta_path, "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")


def read_table(csv_path) -> list[dict]:
    """Read a table written by :func:`write_table`; numeric-looking cells become float/int."""

    def conv(text):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text

    with open(csv_path, newline="") as fh:
        return [{k: conv(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def package_versions() -> dict:
    """Versions of the project packages used by a script."""
    out = {}
    for name in ("theory", "mcsim", "numpy", "h5py"):
        try:
            out[name] = getattr(__import__(name), "__version__", "unknown")
        except ImportError:
            out[name] = "not installed"
    return out


def point_columns() -> dict:
    """Descriptions of the per-point parameter columns shared by all tables."""
    return {
        "point": "parameter point name (results/<exp>/sim/<point>.h5)",
        "arch": "architecture: dnn or rnn",
        "bias": "bias mode: uncorrelated or static",
        "activation": "activation function phi",
        "width": "layer width n (units)",
        "depth": "depth A (hidden layers / time steps a = 0..A)",
        "g2": "weight variance g^2",
        "sigma2": "bias variance sigma^2",
        "g2_in": "input weight variance g_0^2 (scaled by 1/n_in)",
        "input_set": "index of the input draw (input seed = inputs.seed + input_set)",
        "realizations": "weight realizations used (overflowed ones excluded)",
        "overflowed": "realizations dropped because they overflowed (inf/nan)",
    }


def point_row(point: str, params: dict, used: int, overflowed: int) -> dict:
    """The parameter columns of one row (see :func:`point_columns`)."""
    return {
        "point": point,
        **{k: params[k] for k in ("arch", "bias", "activation", "width", "depth", "g2", "sigma2", "g2_in", "input_set")},
        "realizations": int(used),
        "overflowed": int(overflowed),
    }


INPUT_SET_GROUP_KEYS = ("arch", "bias", "activation", "width", "depth", "g2", "sigma2", "g2_in")
"""Parameter columns that identify a point up to its input draw (points equal in these form one group)."""


def input_set_group_columns() -> dict:
    """Descriptions of the :data:`INPUT_SET_GROUP_KEYS` columns (subset of :func:`point_columns`)."""
    columns = point_columns()
    return {k: columns[k] for k in INPUT_SET_GROUP_KEYS}


def iter_compared_points(smk, points: dict):
    """Load each (simulation, theory) file pair of a compare rule, in input order.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The script object; ``smk.input.sim`` and ``smk.input.theory`` are
        equal-length lists of HDF5 paths matched by position (same point name).
    points : dict of str -> dict
        Point name -> point parameters (the rule's ``params.points`` JSON).

    Yields
    ------
    point : str
        Point name (file stem).
    data : dict of str -> ndarray
        Root datasets of the simulation file (see :func:`read_sim`).
    theory : dict of str -> ndarray
        Root datasets of the theory file.
    ok : ndarray of bool, shape (R,)
        Realizations without overflow (:func:`valid_realizations`).
    base : dict
        Parameter columns of the point's table rows (:func:`point_row`), with
        the counts of used and overflowed realizations.

    Raises
    ------
    ValueError
        If a simulation and a theory file are not the same point.
    """
    for sim_path, theory_path in zip(smk.input.sim, smk.input.theory):
        point = point_name(sim_path, theory_path)
        data, _ = read_sim(sim_path)
        theory, _ = read_h5(theory_path)
        ok = valid_realizations(data)
        yield point, data, theory, ok, point_row(point, points[point], ok.sum(), (~ok).sum())


def theory_cache_key(params: dict, *extra, exclude=("width", "realizations")) -> tuple:
    """Hashable key of a width-independent theory result: the point parameters without ``exclude``.

    The posterior comparisons evaluate the first-order theory once per curve
    (n Delta does not depend on the width) and look it up by this key.  Values
    may be lists or dicts (e.g. an mmd point's ``depths``, a nested point's
    ``prior``): they are converted recursively to tuples / frozensets, so equal
    parameters give equal keys and different parameters different keys.

    Parameters
    ----------
    params : dict of str -> scalar, list or dict
        Point parameters (one value of the rule's ``params.points`` JSON).
    *extra : hashable or list/dict
        Further key components (e.g. gamma_0 or the task kind).
    exclude : tuple of str
        Parameters the theory does not depend on (default: width, realizations).

    Returns
    -------
    tuple
        ``(((name, value), ...), extra)``: the kept parameters sorted by name, then the extra components.

    Raises
    ------
    TypeError
        If a value cannot be made hashable (naming the parameter).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params: must be a dict of point parameters, got {type(params).__name__}")
    kept = []
    for name in sorted(params):
        if name not in exclude:
            kept.append((name, _frozen(params[name], f"params[{name!r}]")))
    return tuple(kept), tuple(_frozen(v, f"extra[{i}]") for i, v in enumerate(extra))


def _frozen(value, where: str):
    """Recursively hashable copy of a JSON-like value (dict -> frozenset of items, list/array -> tuple)."""
    if isinstance(value, dict):
        return frozenset((k, _frozen(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, np.generic):
        return value.item()
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"{where}: cannot key a theory cache on a {type(value).__name__} value") from None
    return value


class PosteriorPoint(NamedTuple):
    """One point of a posterior comparison (see :func:`iter_posterior_points`).

    Attributes
    ----------
    name : str
        Point name (file stem).
    params : dict
        Point parameters (the rule's ``params.points`` entry).
    data : dict of str -> ndarray
        Datasets of the simulation file (prior realizations; :func:`read_sim`).
    mean_field : dict of str -> ndarray
        Datasets of the theory file (e.g. ``kernel``, shape (A+2, A+2, P, P) or (A+2, P, P)).
    spec : theory.spec.PointSpec
        The theory file's parsed point spec (``spec.prior``, inputs ``spec.X`` of shape (P, n_in)).
    targets : dict of str -> ndarray of float64, shape (P,)
        Task kind -> targets on all patterns (``theory.adaptation_comparison.make_targets``).
    """

    name: str
    params: dict
    data: dict
    mean_field: dict
    spec: object
    targets: dict


def start_posterior_compare(smk):
    """Common start of a posterior compare script: log, experiment, task, training indices.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The script object (``smk.params.experiment`` holds the experiment JSON with its ``task``).

    Returns
    -------
    log : logging.Logger
    experiment : dict
    task : dict
        ``experiment["task"]``.
    train : ndarray of int, shape (task["train"],)
        Indices of the training patterns (the first ``task["train"]``).
    """
    log = setup_logging(smk)
    experiment = json.loads(smk.params.experiment)
    task = experiment["task"]
    return log, experiment, task, np.arange(task["train"])


def iter_posterior_points(smk, task: dict, kinds):
    """Load each (simulation, theory) point of a posterior compare rule, in input order.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The script object: ``smk.input.sim`` and ``smk.input.theory`` (HDF5
        paths matched by position) and ``smk.params.points`` (point JSON).
    task : dict
        The experiment's task (``seed`` of the targets).
    kinds : sequence of str
        Task kinds whose targets each record carries.

    Yields
    ------
    PosteriorPoint

    Raises
    ------
    ValueError
        If a simulation and a theory file are not the same point.
    """
    from theory.adaptation_comparison import make_targets
    from theory.spec import parse_point_spec

    points = json.loads(smk.params.points)
    for sim_path, theory_path in zip(smk.input.sim, smk.input.theory):
        name = point_name(sim_path, theory_path)
        data, _ = read_sim(sim_path)
        mean_field, attrs = read_h5(theory_path)
        spec = parse_point_spec(json.loads(attrs["spec_json"]))
        targets = {kind: make_targets(spec.X, kind, task["seed"]) for kind in kinds}
        yield PosteriorPoint(name, points[name], data, mean_field, spec, targets)


def start_plot(smk, table: str = "table"):
    """Common start of a plot script: log to the rule's log file, read its table and experiment.

    Parameters
    ----------
    smk : snakemake.script.Snakemake
        The script object; ``smk.input[table]`` is a CSV written by
        :func:`write_table` and ``smk.params.experiment`` the experiment JSON.
    table : str
        Name of the input holding the table (``"table"`` or ``"summary"``).

    Returns
    -------
    log : logging.Logger
    rows : list of dict
        Table rows (:func:`read_table`).
    experiment : dict
        The experiment configuration.
    """
    log = setup_logging(smk)
    rows = read_table(smk.input[table])
    return log, rows, json.loads(smk.params.experiment)


def finish_figure(fig, smk, log, title: str):
    """Common end of a plot script: suptitle, tight layout, save to every output, log the paths.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    smk : snakemake.script.Snakemake
        The script object (``smk.output.figures``, ``smk.params.dpi``).
    log : logging.Logger
    title : str
        Figure suptitle.
    """
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, smk.output.figures, smk.params.dpi)
    log.info("wrote %s", list(smk.output.figures))


def experiment_title(experiment: dict) -> str:
    """Figure suptitle of a simulation experiment: its title (or name) and :func:`prior_title`."""
    return f"{experiment.get('title') or experiment['name']}: {prior_title(experiment)}"


def plot_mc_and_theory(ax, x, rows, *, marker, color, label, theory_label, theory_style="-", ms=4, capsize=2.0,
                       mc="mc", mc_se="mc_se", **errorbar_kw):
    """Draw Monte Carlo points with error bars and the theory curve of the same table rows.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x : ndarray of float, shape (k,)
        Abscissa, one value per row.
    rows : list of dict, length k
        Table rows with columns ``mc``, ``mc_se`` (names configurable) and ``theory``.
    marker, color : str
        Marker (``fmt``) of the MC points and colour of both.
    label, theory_label : str
        Legend labels of the MC points and of the theory line.
    theory_style : str
        Line style of the theory curve.
    ms, capsize : float
        Marker size and error-bar cap size.
    mc, mc_se : str
        Columns of the MC estimate and its standard error.
    **errorbar_kw
        Further keyword arguments of ``ax.errorbar`` (e.g. ``alpha``).
    """
    ax.errorbar(x, column(rows, mc), yerr=column(rows, mc_se), fmt=marker, color=color, ms=ms, capsize=capsize,
                label=label, **errorbar_kw)
    ax.plot(x, column(rows, "theory"), theory_style, color=color, lw=1.2, label=theory_label)


def save_figure(fig, outputs, dpi: int):
    """Save one matplotlib figure to every output path (format from the suffix)."""
    for path in outputs:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def prior_title(experiment: dict) -> str:
    """Short text of the experiment-wide parameters for figure titles."""
    grid, prior = experiment.get("grid", {}), experiment.get("prior", {})
    parts = []
    for label, values in (("phi", grid.get("activation")), ("g^2", grid.get("g2"))):
        if values and len(values) == 1:
            parts.append(f"{label}={values[0]}")
    if "sigma2" in prior:
        parts.append(f"sigma^2={prior['sigma2']}")
    if "g2_in" in prior:
        parts.append(f"g_0^2={prior['g2_in']}")
    for label, key in (("n", "width"), ("A", "depth")):
        values = grid.get(key)
        if values and len(values) == 1:
            parts.append(f"{label}={values[0]}")
    if "realizations" in experiment:
        parts.append(f"R={experiment['realizations']}")
    if experiment.get("input_sets", 1) > 1:
        parts.append(f"{experiment['input_sets']} input sets")
    return ", ".join(parts)


ARCH_COLORS = {"dnn": "tab:orange", "rnn": "tab:blue"}
ARCH_MARKERS = {"dnn": "o", "rnn": "s"}
BIAS_STYLES = {"uncorrelated": "-", "static": "--"}


def new_figure(nrows: int, ncols: int, width: float = 4.2, height: float = 3.2):
    """Create a figure with an (nrows, ncols) array of axes (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def select(rows, **conditions):
    """Rows whose columns equal the given values."""
    return [r for r in rows if all(r[k] == v for k, v in conditions.items())]


def unique(rows, key):
    """Sorted distinct values of a column."""
    return sorted({r[key] for r in rows})


def column(rows, key):
    """One column as a float array."""
    return np.array([float(r[key]) for r in rows])


def point_name(sim_path, theory_path) -> str:
    """Point name of a (sim, theory) file pair; they must belong to the same point."""
    name = Path(sim_path).stem
    if Path(theory_path).stem != name:
        raise ValueError(f"input: sim file {sim_path} and theory file {theory_path} are not the same point")
    return name


def set_log_ticks(ax, values):
    """Log x axis with major ticks labelled exactly at the given values (no overlapping minor labels)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(list(values))
    ax.set_xticklabels([f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())
