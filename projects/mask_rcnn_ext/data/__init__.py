"""Datasets: the built-in synthetic splits (registered on import) and their generator, and
`register_coco_keypoints` for a COCO-format keypoint json with any keypoint set."""
from . import builtin  # noqa: F401  (registers the datasets)
from .builtin import SYNTHETIC_SPLITS, register_synthetic_split, synthetic_metadata
from .coco_keypoints import DEFAULT_OKS_SIGMA, register_coco_keypoints
from .synthetic import SyntheticSpec

__all__ = [
    "DEFAULT_OKS_SIGMA",
    "SYNTHETIC_SPLITS",
    "SyntheticSpec",
    "register_coco_keypoints",
    "register_synthetic_split",
    "synthetic_metadata",
]
