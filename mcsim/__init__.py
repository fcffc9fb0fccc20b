"""Finite-width Monte Carlo sampling of DNNs and weight-shared RNNs."""

__version__ = "0.1.0"
