"""Datasets: the built-in synthetic splits and Cityscapes (registered on import), the generators,
`register_coco_keypoints` for a COCO-format keypoint json with any keypoint set, and
`register_cityscapes_instances` for any tree in the Cityscapes layout; `read_image` and
`ImageModeDatasetMapper`: detectron2's, but 16-bit gray images read right and modes without an
8-bit reading refused by name."""

from . import builtin  # noqa: F401  (registers the datasets)
from .builtin import SYNTHETIC_SPLITS, register_synthetic_split, synthetic_metadata
from .cityscapes import CityscapesTree, load_cityscapes_instances, register_cityscapes_instances
from .coco_keypoints import DEFAULT_OKS_SIGMA, register_coco_keypoints
from .dataset_mapper import ImageModeDatasetMapper
from .images import read_image
from .synthetic import SyntheticSpec

__all__ = [
    "CityscapesTree",
    "DEFAULT_OKS_SIGMA",
    "ImageModeDatasetMapper",
    "SYNTHETIC_SPLITS",
    "SyntheticSpec",
    "load_cityscapes_instances",
    "read_image",
    "register_cityscapes_instances",
    "register_coco_keypoints",
    "register_synthetic_split",
    "synthetic_metadata",
]
