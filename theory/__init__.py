"""Infinite-width mean-field theory of DNNs and weight-shared RNNs (Segadlo et al. 2022).

Public API
----------
Prior, kernel, gp_predict, nlo_variance and the stability helpers; see the
individual modules for details.
"""

from .prior import Prior, activation_function, check_inputs, register_activation
from .activations import Activation, get_activation
from .inputs import make_inputs

__all__ = ["Prior", "Activation", "activation_function", "get_activation", "check_inputs", "make_inputs",
           "register_activation"]
__version__ = "0.1.0"

from .spec import PointSpec, parse_point_spec  # noqa: E402

__all__ += ["PointSpec", "parse_point_spec"]

from .gaussian import (  # noqa: E402
    DEFAULT_QUAD_ORDER,
    DEFAULT_QUAD_TOL,
    QuadratureDiagnostics,
    QuadratureWarning,
    quadrature_diagnostics,
)
from .kernel import NonFiniteTheoryError, kernel, nested_readout, readout_kernels  # noqa: E402
from .gp import gp_predict  # noqa: E402
from .nlo import (  # noqa: E402
    input_propagation,
    nlo_covariance,
    nlo_variance,
    output_fourth_cumulant,
    response,
)
from .stability import chi1, depth_scale, fixed_point, phase_diagram  # noqa: E402

__all__ += [
    "DEFAULT_QUAD_ORDER",
    "DEFAULT_QUAD_TOL",
    "QuadratureDiagnostics",
    "QuadratureWarning",
    "quadrature_diagnostics",
    "NonFiniteTheoryError",
    "kernel",
    "nested_readout",
    "readout_kernels",
    "gp_predict",
    "nlo_variance",
    "nlo_covariance",
    "response",
    "input_propagation",
    "output_fourth_cumulant",
    "fixed_point",
    "depth_scale",
    "chi1",
    "phase_diagram",
]

from .nlo_multi import NLOCrossCovariance, nlo_cross_covariance, readout_targets  # noqa: E402
from .adaptation import Adaptation, adaptation, readout_gradient  # noqa: E402
from .proportional import (  # noqa: E402
    ConvergenceError,
    exact_predictor,
    li_sompolinsky,
    map_kernels,
)

__all__ += [
    "NLOCrossCovariance",
    "nlo_cross_covariance",
    "readout_targets",
    "Adaptation",
    "adaptation",
    "readout_gradient",
    "ConvergenceError",
    "map_kernels",
    "li_sompolinsky",
    "exact_predictor",
]
