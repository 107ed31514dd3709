"""Datasets: the built-in synthetic splits (registered on import) and their generator."""
from . import builtin  # noqa: F401  (registers the datasets)
from .builtin import SYNTHETIC_SPLITS, register_synthetic_split, synthetic_metadata
from .synthetic import SyntheticSpec

__all__ = ["SYNTHETIC_SPLITS", "SyntheticSpec", "register_synthetic_split", "synthetic_metadata"]
