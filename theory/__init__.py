"""Infinite-width mean-field theory of DNNs and weight-shared RNNs (Segadlo et al. 2022).

Public API
----------
Prior, kernel, gp_predict, nlo_variance and the stability helpers; see the
individual modules for details.
"""

from .prior import Prior, activation_function, check_inputs
from .inputs import make_inputs

__all__ = ["Prior", "activation_function", "check_inputs", "make_inputs"]
__version__ = "0.1.0"

from .spec import PointSpec, parse_point_spec  # noqa: E402

__all__ += ["PointSpec", "parse_point_spec"]
