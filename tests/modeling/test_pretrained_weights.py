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


STEM_NAMES = {
    "stem.conv1.weight": "conv1_w",
    "stem.conv1.norm.weight": "res_conv1_bn_s",
    "stem.conv1.norm.bias": "res_conv1_bn_b",
}


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


RESNET_PARAMETER = re.compile(r"(stem|res\d)\..*")


def resnet_parameters(model) -> dict:
    """Model parameter name -> its ResNet name (`res5.0.conv1.weight`), for the ResNet's parameters
    and scale/bias buffers (frozen BN: MSRA stores scale and bias only)."""
    names = {}
    for name in model.state_dict():
        match = RESNET_PARAMETER.search(name)
        if match and not name.endswith(("running_mean", "running_var")):
            names[name] = match.group(0)
    return names


@pytest.fixture(scope="module")
def msra_r50_in_cache(tmp_path_factory):
    """An MSRA-format R-50.pkl at the place iopath caches detectron2://ImageNetPretrained/MSRA/R-50.pkl.

    Written once: iopath remembers a URL's cached file for the whole process."""
    cfg = build_config(
        os.path.join(CONFIGS_DIR, "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN.yaml"), ["MODEL.DEVICE", "cpu"]
    )
    model = build_model(cfg)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(0)
    blobs = {
        caffe2_name(resnet_name): torch.randn(state[name].shape, generator=generator).numpy()
        for name, resnet_name in resnet_parameters(model).items()
    }
    blobs["fc1000_w"] = np.zeros((1000, 2048), dtype=np.float32)  # an ImageNet classifier, unused
    cache = tmp_path_factory.mktemp("fvcore_cache")
    cached = cache / CACHED_URL_PATH
    cached.parent.mkdir(parents=True)
    with open(cached, "wb") as f:
        pickle.dump(blobs, f)
    return cache, blobs


@pytest.mark.parametrize("config_name", ["mask_rcnn_R_50_C4.yaml", "mask_rcnn_R_50_FPN.yaml"])
def test_imagenet_weights_load_into_backbone_and_res5_head(config_name, msra_r50_in_cache, monkeypatch):
    cache, blobs = msra_r50_in_cache
    monkeypatch.setenv("FVCORE_CACHE", str(cache))
    cfg = build_config(os.path.join(CONFIGS_DIR, "COCO-InstanceSegmentation", config_name), ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    model = build_model(cfg)
    names = resnet_parameters(model)
    assert any(name.startswith("roi_heads.res5.") for name in names) == ("C4" in config_name)  # C4: res5 in the head

    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    state = model.state_dict()
    assert {resnet_name.split(".")[0] for resnet_name in names.values()} == {"stem", "res2", "res3", "res4", "res5"}
    for name, resnet_name in names.items():
        assert torch.equal(state[name], torch.from_numpy(blobs[caffe2_name(resnet_name)])), name
