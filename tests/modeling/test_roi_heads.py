"""AnyPoolerROIHeads / AnyPoolerRes5ROIHeads: with detectron2's settings they are detectron2's
StandardROIHeads / Res5ROIHeads (same modules, losses, gradients and detections); with ours they
use the pooler and res5 they are asked for; sampled proposals share their ground-truth bitmasks
instead of copying one per proposal."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import BitMasks, Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage

from mask_rcnn_ext import add_mask_rcnn_ext_config
from mask_rcnn_ext.modeling import ROI_FEATURE_OP_REGISTRY, AnyPoolerRes5ROIHeads, AnyPoolerROIHeads
from mask_rcnn_ext.modeling.proposal_masks import ProposalBitMasks

IMAGE_SIZE = (96, 128)
FPN_SHAPES = {f"p{i}": ShapeSpec(channels=32, stride=2**i) for i in range(2, 6)}
RES4_SHAPE = {"res4": ShapeSpec(channels=1024, stride=16)}


def fpn_cfg(roi_heads_name):
    cfg = get_cfg()
    add_mask_rcnn_ext_config(cfg)
    cfg.MODEL.MASK_ON = cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_HEADS.NAME = roi_heads_name
    cfg.MODEL.ROI_HEADS.IN_FEATURES = list(FPN_SHAPES)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC, cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 2, 64
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV, cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 2, 32
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 4
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (32, 32)
    cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE = 0
    for head in (cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_MASK_HEAD, cfg.MODEL.ROI_KEYPOINT_HEAD):
        head.POOLER_TYPE, head.POOLER_SAMPLING_RATIO = "ROIAlignV2", 2
    return cfg


def c4_cfg(roi_heads_name, depth=50):
    cfg = get_cfg()
    add_mask_rcnn_ext_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.ROI_HEADS.NAME = roi_heads_name
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 8
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead" if roi_heads_name == "Res5ROIHeads" else "FCNMaskHead"
    cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
    return cfg


def features(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(
            2, shape.channels, IMAGE_SIZE[0] // shape.stride, IMAGE_SIZE[1] // shape.stride, generator=generator
        )
        for name, shape in shapes.items()
    }


def proposals_and_targets(seed=0):
    generator = torch.Generator().manual_seed(seed)
    proposals, targets = [], []
    for _ in range(2):
        p = Instances(IMAGE_SIZE)
        corner = torch.rand(20, 2, generator=generator) * 60
        p.proposal_boxes = Boxes(torch.cat([corner, corner + 8 + torch.rand(20, 2, generator=generator) * 60], 1))
        p.objectness_logits = torch.randn(20, generator=generator)
        proposals.append(p)
        t = Instances(IMAGE_SIZE)
        t.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 50.0, 70.0], [30.0, 20.0, 90.0, 60.0]]))
        t.gt_classes = torch.tensor([0, 2])
        t.gt_masks = BitMasks(torch.rand(2, *IMAGE_SIZE, generator=generator) > 0.5)
        keypoints = torch.rand(2, 4, 3, generator=generator) * torch.tensor([128.0, 96.0, 0.0]) + torch.tensor(
            [0.0, 0.0, 2.0]
        )
        t.gt_keypoints = Keypoints(keypoints)
        targets.append(t)
    return proposals, targets


def train_and_infer(heads, feature_maps):
    """Losses and parameter gradients of one training step, then the detections in eval mode."""
    proposals, targets = proposals_and_targets()
    heads.train()
    torch.manual_seed(1)  # proposal sampling draws random numbers
    with EventStorage():
        _, losses = heads(None, feature_maps, proposals, targets)
    sum(losses.values()).backward()
    gradients = {n: p.grad.clone() for n, p in heads.named_parameters() if p.grad is not None}
    heads.eval()
    with torch.no_grad():
        detections, _ = heads(None, feature_maps, proposals_and_targets()[0])
    return losses, gradients, detections


def assert_same_heads(reference, ours, feature_maps):
    assert list(ours.state_dict()) == list(reference.state_dict())
    for name, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    expected, actual = train_and_infer(reference, feature_maps), train_and_infer(ours, feature_maps)
    assert actual[0].keys() == expected[0].keys()
    for name in expected[0]:
        assert torch.equal(actual[0][name], expected[0][name]), name
    assert actual[1].keys() == expected[1].keys()
    for name in expected[1]:
        assert torch.equal(actual[1][name], expected[1][name]), name
    for e, a in zip(expected[2], actual[2]):
        assert len(e) > 0 and e.get_fields().keys() == a.get_fields().keys()
        for field, value in e.get_fields().items():
            value = value.tensor if hasattr(value, "tensor") else value
            other = a.get(field).tensor if hasattr(a.get(field), "tensor") else a.get(field)
            assert torch.equal(other, value), field


@pytest.mark.parametrize(
    "reference_cfg, our_cfg, shapes, our_class",
    [
        (fpn_cfg("StandardROIHeads"), fpn_cfg("AnyPoolerROIHeads"), FPN_SHAPES, AnyPoolerROIHeads),
        # R-50 res5 with stride 2 on 14x14 RoIs: detectron2's C4 head; our FCN head with
        # NUM_CONV 0 is its mask head
        (c4_cfg("Res5ROIHeads"), c4_cfg("AnyPoolerRes5ROIHeads"), RES4_SHAPE, AnyPoolerRes5ROIHeads),
    ],
    ids=["StandardROIHeads", "Res5ROIHeads"],
)
def test_our_roi_heads_are_detectron2s_with_detectron2_settings(reference_cfg, our_cfg, shapes, our_class):
    torch.manual_seed(0)
    reference = build_roi_heads(reference_cfg, shapes)
    torch.manual_seed(0)
    ours = build_roi_heads(our_cfg, shapes)
    assert isinstance(ours, our_class)
    assert_same_heads(reference, ours, features(shapes))


def test_each_head_uses_the_pooler_it_names():
    cfg = fpn_cfg("AnyPoolerROIHeads")
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIPool"
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIWarpMax"
    cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE = "ROIAlign"
    heads = build_roi_heads(cfg, FPN_SHAPES)
    assert [type(op).__name__ for op in heads.box_pooler.level_poolers] == ["ROIPool"] * 4
    assert all(
        isinstance(op, ROI_FEATURE_OP_REGISTRY.get("ROIWarpMax")) and op.sampling_ratio == 2
        for op in heads.mask_pooler.level_poolers
    )
    assert [op.spatial_scale for op in heads.keypoint_pooler.level_poolers] == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    losses, _, detections = train_and_infer(heads, features(FPN_SHAPES))
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_keypoint"}
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("depth, res5_channels", [(18, 256), (50, 2048)])
def test_papers_c4_head_pools_7x7_and_predicts_14x14_masks(depth, res5_channels):
    """Figure 4 (left): 7x7 RoIs, res5 with a stride-1 first block (7x7 out), deconv to 14x14."""
    cfg = c4_cfg("AnyPoolerRes5ROIHeads", depth)
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 32 if depth == 18 else 256
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE = 1
    shapes = {"res4": ShapeSpec(channels=res5_channels // 2, stride=16)}
    heads = build_roi_heads(cfg, shapes).eval()
    pooled = torch.randn(3, res5_channels // 2, 7, 7)
    assert heads.res5(pooled).shape == (3, res5_channels, 7, 7)
    with torch.no_grad():
        detections, _ = heads(None, features(shapes), proposals_and_targets()[0])
    assert detections[0].pred_masks.shape[1:] == (1, 14, 14)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("MODEL.KEYPOINT_ON", True, "predicts no keypoints"),
        ("MODEL.ROI_HEADS.IN_FEATURES", ["res3", "res4"], "pools from one feature map"),
        ("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "", "POOLER_TYPE is empty"),
    ],
)
def test_res5_heads_refuse_what_they_cannot_build_without_config_checks(key, value, message):
    """Built straight from a config (as DefaultPredictor does), not through build_config's checks."""
    cfg = c4_cfg("AnyPoolerRes5ROIHeads")
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=message):
        build_roi_heads(cfg, {"res3": ShapeSpec(channels=512, stride=8), **RES4_SHAPE})


@pytest.mark.parametrize("item", [3, -1, slice(2, 7), "bool", "indices"])
def test_proposal_bitmasks_index_as_bitmasks_do(item):
    generator = torch.Generator().manual_seed(0)
    image_masks = torch.rand(5, 12, 16, generator=generator) > 0.5
    proposal_indices = torch.tensor([4, 0, 0, 2, 3, 1, 4, 2])
    expected, ours = BitMasks(image_masks[proposal_indices]), ProposalBitMasks(image_masks, proposal_indices)
    if item == "bool":
        item = torch.arange(8) % 3 == 0
    elif item == "indices":
        item = torch.tensor([7, 1, 1, 5])
    assert len(ours) == 8 and torch.equal(ours.tensor, expected.tensor)
    assert isinstance(ours[item], ProposalBitMasks)
    assert torch.equal(ours[item].tensor, expected[item].tensor)
    assert torch.equal(BitMasks.cat([ours[item], ours]).tensor, BitMasks.cat([expected[item], expected]).tensor)
    boxes = torch.tensor([[1.0, 2.0, 9.0, 11.0]]).repeat(8, 1)
    assert torch.equal(ours.crop_and_resize(boxes, 7), expected.crop_and_resize(boxes, 7))


def test_sampled_proposals_share_the_images_masks_and_hold_detectron2s():
    """What detectron2's sampling gives each proposal, without a copy per proposal; the targets
    passed in keep their own BitMasks."""
    sampled = {}
    for name in ("StandardROIHeads", "AnyPoolerROIHeads"):
        heads = build_roi_heads(fpn_cfg(name), FPN_SHAPES)
        proposals, targets = proposals_and_targets()
        torch.manual_seed(1)
        with EventStorage():  # the sampling logs its foreground fraction
            sampled[name] = heads.label_and_sample_proposals(proposals, targets)
        assert all(type(t.gt_masks) is BitMasks for t in targets)
    for expected, ours, image_targets in zip(sampled["StandardROIHeads"], sampled["AnyPoolerROIHeads"], targets):
        assert isinstance(ours.gt_masks, ProposalBitMasks) and len(ours) == len(expected) == 16
        assert ours.gt_masks.image_masks.data_ptr() == image_targets.gt_masks.tensor.data_ptr()
        assert torch.equal(ours.gt_masks.tensor, expected.gt_masks.tensor)
