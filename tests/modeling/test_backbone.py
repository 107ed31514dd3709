"""build_narrow_resnet_fpn_backbone: detectron2's R18/R34-FPN exactly at width 64, narrower below."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_backbone

import mask_rcnn_ext  # noqa: F401  (registers the backbone)


def resnet_fpn_cfg(backbone_name, depth=18, width=64):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = backbone_name
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = width
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = width
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 64
    cfg.MODEL.FPN.NORM = "GN"
    return cfg


@pytest.mark.parametrize("depth", [18, 34])
def test_width_64_is_detectron2_resnet_fpn(depth):
    torch.manual_seed(0)
    reference = build_backbone(resnet_fpn_cfg("build_resnet_fpn_backbone", depth)).eval()
    torch.manual_seed(0)
    ours = build_backbone(resnet_fpn_cfg("build_narrow_resnet_fpn_backbone", depth)).eval()
    ref_state, our_state = reference.state_dict(), ours.state_dict()
    assert list(our_state) == list(ref_state)
    for name in ref_state:  # same modules built in the same order: same initial weights
        assert torch.equal(our_state[name], ref_state[name]), name
    image = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected, actual = reference(image), ours(image)
    assert ours.output_shape() == reference.output_shape()
    for level in expected:
        assert torch.equal(actual[level], expected[level]), level


def test_half_width_channels_and_strides():
    backbone = build_backbone(resnet_fpn_cfg("build_narrow_resnet_fpn_backbone", width=32))
    bottom_up = backbone.bottom_up.output_shape()
    assert {k: (v.channels, v.stride) for k, v in bottom_up.items()} == {
        "res2": (32, 4),
        "res3": (64, 8),
        "res4": (128, 16),
        "res5": (256, 32),
    }
    assert [s.stride for s in backbone.output_shape().values()] == [4, 8, 16, 32, 64]


def test_bottleneck_depth_is_refused_with_the_key():
    with pytest.raises(ValueError, match="MODEL.RESNETS.DEPTH=50"):
        build_backbone(resnet_fpn_cfg("build_narrow_resnet_fpn_backbone", depth=50))
