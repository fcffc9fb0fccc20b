"""The cost model in seconds (mcsim.cost): consistent with the sampler's own model and monotone."""

import pytest

from mcsim.cost import estimate_seconds, seconds_per_realization
from mcsim.sampler import _cost
from theory.prior import check_inputs
from theory.spec import parse_point_spec


def _spec(arch="rnn", width=200, depth=5, count=3, realizations=100):
    return {
        "prior": {"arch": arch, "depth": depth, "activation": "relu", "g2": 1.6, "g2_in": 1.6,
                  "sigma2": 0.2, "bias": "uncorrelated"},
        "inputs": {"kind": "gaussian", "count": count, "dim": 4, "mean": 0.0, "std": 1.0, "seed": 1},
        "width": width, "realizations": realizations, "seed": 1,
    }


def test_seconds_match_the_sampler_cost_model_of_the_resolved_method():
    spec = parse_point_spec(_spec())
    ns = _cost(spec.prior, check_inputs(spec.prior, spec.X), spec.width)[spec.resolved_method()]
    assert seconds_per_realization(spec) == pytest.approx(ns * 1e-9, rel=1e-12)
    assert estimate_seconds(spec) == pytest.approx(100 * ns * 1e-9, rel=1e-12)
    assert estimate_seconds(_spec(), realizations=300) == pytest.approx(3 * estimate_seconds(_spec()), rel=1e-12)


@pytest.mark.parametrize("arch", ["dnn", "rnn"])
def test_cost_grows_with_width_depth_and_patterns(arch):
    base = seconds_per_realization(_spec(arch))
    assert seconds_per_realization(_spec(arch, width=400)) > base
    assert seconds_per_realization(_spec(arch, depth=10)) > base
    assert seconds_per_realization(_spec(arch, count=6)) > base


def test_bad_spec_is_rejected_with_the_key():
    bad = _spec()
    bad["width"] = 0
    with pytest.raises(ValueError, match="width"):
        estimate_seconds(bad)
