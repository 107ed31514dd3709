"""A small split for the tests' trained run, registered in any process that imports this module: the
test process (conftest imports it) and the tools the tests run (`--import mini_datasets`; run_tool
puts tests/ on their PYTHONPATH)."""

import dataclasses
import os

from mask_rcnn_ext.data.builtin import SYNTHETIC_SPLITS, register_synthetic_split

# The demo's validation data (`synthetic_val`'s spec) at 50 images, half the evaluation of the whole
# split (the trained run). The 10-image one (the short run) is built in: synthetic_val_mini.
SYNTHETIC_VAL_HALF = "synthetic_val_half"

register_synthetic_split(
    SYNTHETIC_VAL_HALF,
    dataclasses.replace(SYNTHETIC_SPLITS["synthetic_val"], num_images=50),
    os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "synthetic"),
)
