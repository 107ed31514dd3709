"""The paper configs' ImageNet weights load through detectron2's real path, offline.

`detectron2://ImageNetPretrained/MSRA/R-50.pkl` resolves to a dl.fbaipublicfiles.com URL that
iopath caches under $FVCORE_CACHE; the test writes a checkpoint in MSRA's Caffe2 format at that
cached place, so nothing is downloaded and everything after the download is the real code: the
URL handlers, the .pkl reader, Caffe2 name conversion and suffix matching into our models (the
backbone and, for C4, the res5 in our ROI head).
"""
import os
import pickle
import re

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from mask_rcnn_ext import build_config

from conftest import CONFIGS_DIR

CACHED_URL_PATH = "detectron2/ImageNetPretrained/MSRA/R-50.pkl"  # under $FVCORE_CACHE


STEM_NAMES = {"stem.conv1.weight": "conv1_w", "stem.conv1.norm.weight": "res_conv1_bn_s", "stem.conv1.norm.bias": "res_conv1_bn_b"}


def caffe2_name(resnet_name: str) -> str:
    """The MSRA Caffe2 blob name of a detectron2 ResNet parameter (inverse of detectron2's conversion)."""
    if resnet_name in STEM_NAMES:
        return STEM_NAMES[resnet_name]
    name = resnet_name.replace(".shortcut.", ".branch1.")
    for conv, branch in (("conv1", "branch2a"), ("conv2", "branch2b"), ("conv3", "branch2c")):
        name = name.replace(f".{conv}.", f".{branch}.")
    name = re.sub(r"\.norm\.weight$", "_bn_s", name)
    name = re.sub(r"\.norm\.bias$", "_bn_b", name)
    name = re.sub(r"\.weight$", "_w", name)
    return name.replace(".", "_")


@pytest.mark.parametrize(
    "config_name, resnet_prefixes",
    [
        ("mask_rcnn_R_50_C4.yaml", ("backbone.", "roi_heads.")),
        ("mask_rcnn_R_50_FPN.yaml", ("backbone.bottom_up.",)),
    ],
)
def test_imagenet_weights_load_into_backbone_and_res5_head(config_name, resnet_prefixes, tmp_path, monkeypatch):
    cfg = build_config(os.path.join(CONFIGS_DIR, "COCO-InstanceSegmentation", config_name), ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    model = build_model(cfg)
    resnet_parameters = {
        name: value for name, value in model.state_dict().items()
        if name.startswith(resnet_prefixes) and re.search(r"(stem|res\d)\.", name)
        and not name.endswith(("running_mean", "running_var"))  # frozen BN: MSRA stores scale and bias only
    }  # fmt: skip
    assert any(".res5." in name for name in resnet_parameters)
    generator = torch.Generator().manual_seed(0)
    blobs, expected = {}, {}
    for name, value in resnet_parameters.items():
        resnet_name = name[name.index(re.search(r"(stem|res\d)\.", name).group(0)):]
        blobs[caffe2_name(resnet_name)] = torch.randn(value.shape, generator=generator).numpy()
        expected[name] = torch.from_numpy(blobs[caffe2_name(resnet_name)])
    blobs["fc1000_w"] = np.zeros((1000, 2048), dtype=np.float32)  # an ImageNet classifier, unused
    cached = tmp_path / CACHED_URL_PATH
    cached.parent.mkdir(parents=True)
    with open(cached, "wb") as f:
        pickle.dump(blobs, f)
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path))

    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    state = model.state_dict()
    for name, value in expected.items():
        assert torch.equal(state[name], value), name
