"""Every config under configs/ loads through our config path and builds its model on CPU."""
import glob
import os

import pytest
import torch
from detectron2.modeling import build_model

from mask_rcnn_ext import build_config

from conftest import CONFIGS_DIR

CONFIG_FILES = sorted(glob.glob(os.path.join(CONFIGS_DIR, "**", "*.yaml"), recursive=True))


def test_configs_are_found():
    assert len(CONFIG_FILES) >= 2


@pytest.mark.parametrize("config_file", CONFIG_FILES, ids=lambda p: os.path.relpath(p, CONFIGS_DIR))
def test_config_builds_a_model_on_cpu(config_file):
    # build_config checks the config against its datasets' metadata only, never their files,
    # so configs naming COCO build here without the data.
    cfg = build_config(config_file, ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    assert next(model.parameters()).device == torch.device("cpu")
    assert model.roi_heads.mask_on == cfg.MODEL.MASK_ON
    assert model.roi_heads.keypoint_on == cfg.MODEL.KEYPOINT_ON
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": torch.zeros(3, 64, 96), "height": 64, "width": 96}])
    assert len(outputs) == 1 and outputs[0]["instances"].image_size == (64, 96)
