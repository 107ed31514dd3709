"""Small splits for the tests' short runs, registered in any process that imports this module: the
test process (conftest imports it) and the tools the tests run (`--import mini_datasets`; run_tool
puts tests/ on their PYTHONPATH)."""

import dataclasses
import os

from mask_rcnn_ext.data.builtin import SYNTHETIC_SPLITS, register_synthetic_split

# The demo's validation data (`synthetic_val`'s spec) at 10 images: an evaluation in seconds.
SYNTHETIC_VAL_MINI = "synthetic_val_mini"

register_synthetic_split(
    SYNTHETIC_VAL_MINI,
    dataclasses.replace(SYNTHETIC_SPLITS["synthetic_val"], num_images=10),
    os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "synthetic"),
)
