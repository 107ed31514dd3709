"""Every config under configs/ loads through our config path and builds its model on CPU; every
paper config states the table row and the AP it should reach."""

import glob
import os
import re

import pytest
import torch
from detectron2.modeling import build_model

from mask_rcnn_ext import build_config

from conftest import CONFIGS_DIR

CONFIG_FILES = sorted(glob.glob(os.path.join(CONFIGS_DIR, "**", "*.yaml"), recursive=True))
# Base-*.yaml hold what their leaves share (a recipe, an architecture) and need not be whole
# models; every one of them is built through its leaves.
LEAF_CONFIGS = [f for f in CONFIG_FILES if not os.path.basename(f).startswith("Base-")]
PAPER_CONFIGS = [
    f
    for folder in ("COCO-InstanceSegmentation", "COCO-Keypoints", "Cityscapes")
    for f in sorted(glob.glob(os.path.join(CONFIGS_DIR, folder, "*.yaml")))
    if not os.path.basename(f).startswith("Base-")
]


def test_configs_are_found():
    assert len(LEAF_CONFIGS) >= 20
    bases = {os.path.normpath(f) for f in CONFIG_FILES} - {os.path.normpath(f) for f in LEAF_CONFIGS}
    used = set()
    for leaf in CONFIG_FILES:
        with open(leaf) as f:
            match = re.search(r'^_BASE_: "(.*)"', f.read(), re.M)
        if match:
            used.add(os.path.normpath(os.path.join(os.path.dirname(leaf), match.group(1))))
    assert bases <= used, f"base configs no config builds on: {sorted(bases - used)}"


@pytest.mark.parametrize("config_file", LEAF_CONFIGS, ids=lambda p: os.path.relpath(p, CONFIGS_DIR))
def test_config_builds_a_model_on_cpu(config_file):
    # build_config checks the config against its datasets' metadata only, never their files,
    # so configs naming COCO build here without the data.
    cfg = build_config(config_file, ["MODEL.DEVICE", "cpu"])
    # Seeded: an untrained model's outputs depend on its random weights.
    torch.manual_seed(0)
    model = build_model(cfg)
    assert next(model.parameters()).device == torch.device("cpu")
    assert model.roi_heads.mask_on == cfg.MODEL.MASK_ON
    assert getattr(model.roi_heads, "keypoint_on", False) == cfg.MODEL.KEYPOINT_ON
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": torch.zeros(3, 64, 96), "height": 64, "width": 96}])
    assert len(outputs) == 1 and outputs[0]["instances"].image_size == (64, 96)


@pytest.mark.parametrize("config_file", PAPER_CONFIGS, ids=os.path.basename)
def test_paper_config_states_what_it_should_reach(config_file):
    with open(config_file) as f:
        header = "".join(line for line in f if line.startswith("#"))
    assert re.search(r"Table \d|detectron2 reports|Sec\. \d", header), header
    assert re.search(r"\bAP\b", header) and re.search(r"\b\d\d\.\d\b", header), header
