"""mask_rcnn_ext: Mask R-CNN (He et al., ICCV 2017) and beyond, as a Detectron2 plugin.

Importing this package registers all its components (datasets, backbones; later heads) in
detectron2's registries and catalogs.
"""

from . import data, modeling  # noqa: F401  (register the synthetic datasets and model components)
from .config import add_mask_rcnn_ext_config
from .config_files import get_config_file
from .engine import Trainer, build_config

__all__ = ["Trainer", "add_mask_rcnn_ext_config", "build_config", "get_config_file"]
