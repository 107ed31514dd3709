"""Small splits for the tests' short runs, registered in any process that imports this module: the
test process (conftest imports it) and the tools the tests run (`--import mini_datasets`; run_tool
puts tests/ on their PYTHONPATH)."""

import dataclasses
import os

from mask_rcnn_ext.data.builtin import SYNTHETIC_SPLITS, register_synthetic_split

# The demo's validation data (`synthetic_val`'s spec) at 10 images, an evaluation in seconds (the short
# run), and at 50, half the evaluation of the whole split (the trained run).
SYNTHETIC_VAL_MINI = "synthetic_val_mini"
SYNTHETIC_VAL_HALF = "synthetic_val_half"

for name, num_images in ((SYNTHETIC_VAL_MINI, 10), (SYNTHETIC_VAL_HALF, 50)):
    register_synthetic_split(
        name,
        dataclasses.replace(SYNTHETIC_SPLITS["synthetic_val"], num_images=num_images),
        os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "synthetic"),
    )
