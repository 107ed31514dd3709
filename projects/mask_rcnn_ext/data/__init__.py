"""Datasets: the built-in synthetic splits and Cityscapes (registered on import), the generators,
`register_coco_keypoints` for a COCO-format keypoint json with any keypoint set, and
`register_cityscapes_instances` for any tree in the Cityscapes layout."""

from . import builtin  # noqa: F401  (registers the datasets)
from .builtin import SYNTHETIC_SPLITS, register_synthetic_split, synthetic_metadata
from .cityscapes import CityscapesTree, load_cityscapes_instances, register_cityscapes_instances
from .coco_keypoints import DEFAULT_OKS_SIGMA, register_coco_keypoints
from .synthetic import SyntheticSpec

__all__ = [
    "CityscapesTree",
    "DEFAULT_OKS_SIGMA",
    "SYNTHETIC_SPLITS",
    "SyntheticSpec",
    "load_cityscapes_instances",
    "register_cityscapes_instances",
    "register_coco_keypoints",
    "register_synthetic_split",
    "synthetic_metadata",
]
