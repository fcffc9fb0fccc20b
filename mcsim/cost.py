"""Predicted sampling cost of a point: the one cost model used for scheduling and job sizing.

The model itself (ns per Gaussian draw and per flop of each sampler) lives with
the samplers (:func:`mcsim.sampler._cost`), which also use it to resolve
``method="auto"``.  This module turns it into seconds for a point spec, for

* the campaign dispatcher (most expensive (point, block) work units first), and
* the workflow (grouping points into jobs of a target wall time, and the SLURM
  ``runtime`` of each job).

The absolute scale is approximate (a single-core rate of this class of
machine); ratios between points are what scheduling relies on.
"""

from __future__ import annotations

from typing import Optional, Union

from theory.spec import PointSpec, parse_point_spec

from theory.prior import check_inputs

from .sampler import _cost

__all__ = ["seconds_per_realization", "estimate_seconds"]


def seconds_per_realization(spec: Union[PointSpec, dict]) -> float:
    """Predicted single-core seconds per realization of one point.

    Parameters
    ----------
    spec : theory.PointSpec or dict
        A validated spec, or a point-spec dict (validated here).

    Returns
    -------
    float
        Seconds per realization with the resolved sampling method.
    """
    if not isinstance(spec, PointSpec):
        spec = parse_point_spec(spec)
    seq = check_inputs(spec.prior, spec.X)
    return _cost(spec.prior, seq, spec.width)[spec.resolved_method()] * 1e-9


def estimate_seconds(spec: Union[PointSpec, dict], realizations: Optional[int] = None) -> float:
    """Predicted single-core seconds to sample ``realizations`` (default: the spec's) of one point.

    Parameters
    ----------
    spec : theory.PointSpec or dict
    realizations : int, optional

    Returns
    -------
    float
    """
    if not isinstance(spec, PointSpec):
        spec = parse_point_spec(spec)
    R = spec.realizations if realizations is None else int(realizations)
    return seconds_per_realization(spec) * R
