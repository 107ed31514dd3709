"""Mask heads and losses: the FCN head + sigmoid loss is detectron2's MaskRCNNConvUpsampleHead bit
for bit; the softmax and class-agnostic losses equal a hand computation; empty batches train."""

import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import build_mask_head
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from benchmarks.measure import peak_memory_MiB
from mask_rcnn_ext import add_mask_rcnn_ext_config
from mask_rcnn_ext.modeling import FCNMaskHead, MLPMaskHead
from mask_rcnn_ext.modeling.mask_losses import (
    BITMASK_CROP_CHUNK,
    mask_targets,
    sigmoid_mask_loss,
    softmax_mask_loss,
    softmax_mask_probabilities,
)

NUM_CLASSES = 5
POOLED = ShapeSpec(channels=8, height=14, width=14)


def mask_cfg(**overrides):
    cfg = get_cfg()
    add_mask_rcnn_ext_config(cfg)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32  # GN needs a multiple of 32
    cfg.MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS = [32, 32]
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def foreground_proposals(num_per_image=(3, 4), polygons=False, seed=0):
    """Per image, proposals with their matched ground truth (what ROI heads give a mask head)."""
    generator = torch.Generator().manual_seed(seed)
    instances = []
    for n in num_per_image:
        per_image = Instances((80, 96))
        corner = torch.rand(n, 2, generator=generator) * 40
        per_image.proposal_boxes = Boxes(
            torch.cat([corner, corner + 8 + torch.rand(n, 2, generator=generator) * 40], 1)
        )
        per_image.gt_classes = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
        if polygons:
            per_image.gt_masks = PolygonMasks([[[10.0 + i, 5.0, 60.0, 20.0 + i, 30.0, 70.0]] for i in range(n)])
        else:
            per_image.gt_masks = BitMasks(torch.rand(n, 80, 96, generator=generator) > 0.6)
        instances.append(per_image)
    return instances


def detections(num_per_image=(3, 4), seed=0):
    generator = torch.Generator().manual_seed(seed)
    instances = []
    for n in num_per_image:
        per_image = Instances((80, 96))
        per_image.pred_classes = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
        instances.append(per_image)
    return instances


def run_training_step(head, features, instances):
    """loss, gradients of every parameter and of the features, and what was logged."""
    head.train()
    features = features.clone().requires_grad_(True)
    with EventStorage() as storage:
        loss = head(features, instances)["loss_mask"]
        loss.backward()
        logged = {k: v for k, (v, _) in storage.latest().items()}
    return loss, {n: p.grad for n, p in head.named_parameters()} | {"features": features.grad}, logged


@pytest.mark.parametrize("agnostic", [False, True], ids=["class_specific", "class_agnostic"])
@pytest.mark.parametrize("polygons", [False, True], ids=["bitmasks", "polygons"])
def test_fcn_head_with_sigmoid_loss_is_detectron2_head(agnostic, polygons):
    cfg = mask_cfg(**{"MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK": agnostic, "MODEL.ROI_MASK_HEAD.NORM": "GN"})
    torch.manual_seed(0)
    reference = MaskRCNNConvUpsampleHead(cfg, POOLED)
    torch.manual_seed(0)
    ours = FCNMaskHead(cfg, POOLED)
    assert list(ours.state_dict()) == list(reference.state_dict())
    for name, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name

    features = torch.randn(7, 8, 14, 14)
    expected = run_training_step(reference, features, foreground_proposals(polygons=polygons))
    actual = run_training_step(ours, features, foreground_proposals(polygons=polygons))
    assert torch.equal(actual[0], expected[0])
    assert actual[1].keys() == expected[1].keys()
    for name in expected[1]:
        assert torch.equal(actual[1][name], expected[1][name]), name
    assert actual[2] == expected[2]  # mask_rcnn/accuracy, false_positive, false_negative

    reference.eval(), ours.eval()
    with torch.no_grad():
        expected_instances = reference(features, detections())
        actual_instances = ours(features, detections())
    for e, a in zip(expected_instances, actual_instances):
        assert torch.equal(a.pred_masks, e.pred_masks)


def test_bitmask_targets_are_detectron2s_crops_made_in_chunks_of_a_fraction_of_its_memory():
    generator = torch.Generator().manual_seed(2)
    count, height, width = 2 * BITMASK_CROP_CHUNK + 5, 400, 480
    proposals = Instances((height, width))
    corner = torch.rand(count, 2, generator=generator) * 300
    proposals.proposal_boxes = Boxes(
        torch.cat([corner, corner + 4 + torch.rand(count, 2, generator=generator) * 150], 1)
    )
    proposals.gt_classes = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
    proposals.gt_masks = BitMasks(torch.rand(count, height, width, generator=generator) > 0.5)
    boxes = proposals.proposal_boxes.tensor
    expected = proposals.gt_masks.crop_and_resize(boxes, 28)
    assert torch.equal(mask_targets([proposals], 28, torch.device("cpu"))[1], expected)

    one_float_mask_MiB = height * width * 4 / 2**20
    detectron2_MiB = peak_memory_MiB("cpu", lambda: None, lambda: proposals.gt_masks.crop_and_resize(boxes, 28))
    ours_MiB = peak_memory_MiB("cpu", lambda: None, lambda: mask_targets([proposals], 28, torch.device("cpu")))
    assert detectron2_MiB >= count * one_float_mask_MiB  # every proposal's mask as float32 at once
    assert ours_MiB < (BITMASK_CROP_CHUNK + 1) * one_float_mask_MiB


def test_softmax_loss_by_hand():
    """One RoI, classes {0, 1} plus background (channel 2), a 2x2 mask of class 1 on the diagonal."""
    logits = torch.tensor([[[[0.5, 1.0], [0.0, -2.0]], [[2.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [3.0, 1.0]]]])
    gt_masks = torch.tensor([[[True, False], [False, True]]])

    def nll(scores, target):
        return -math.log(math.exp(scores[target]) / sum(math.exp(s) for s in scores))

    expected = (
        nll([0.5, 2.0, -1.0], 1) + nll([1.0, 0.0, 0.0], 2) + nll([0.0, 0.0, 3.0], 2) + nll([-2.0, 1.0, 1.0], 1)
    ) / 4
    assert softmax_mask_loss(logits, torch.tensor([1]), gt_masks).item() == pytest.approx(expected, rel=1e-6)


def test_class_agnostic_loss_by_hand():
    """One mask for all classes: the class is ignored, channel 0 is trained."""
    logits = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])
    gt_masks = torch.tensor([[[True, False], [True, False]]])

    def sigmoid(v):
        return 1 / (1 + math.exp(-v))

    expected = (
        -(math.log(sigmoid(1.0)) + math.log(1 - sigmoid(-1.0)) + math.log(sigmoid(0.0)) + math.log(1 - sigmoid(2.0)))
        / 4
    )
    for gt_class in (0, 3):
        assert sigmoid_mask_loss(logits, torch.tensor([gt_class]), gt_masks).item() == pytest.approx(expected, rel=1e-6)


def test_softmax_read_out_by_hand():
    """A pixel's soft mask for class c is c against its strongest rival: above 0.5 where c wins."""
    logits = torch.tensor([[[[1.0, 0.5]], [[2.0, 0.0]], [[0.0, 3.0]]]])  # (1 RoI, class 0, class 1, background, 1x2)

    def sigmoid(v):
        return 1 / (1 + math.exp(-v))

    read_out = softmax_mask_probabilities(logits.expand(2, -1, -1, -1), torch.tensor([1, 0]))
    expected = [
        [sigmoid(2.0 - 1.0), sigmoid(0.0 - 3.0)],  # class 1: wins pixel 0, loses pixel 1 to background
        [sigmoid(1.0 - 2.0), sigmoid(0.5 - 3.0)],
    ]  # class 0: loses pixel 0 to class 1
    torch.testing.assert_close(read_out[:, 0, 0], torch.tensor(expected), rtol=1e-6, atol=0)
    # p_c of the winner is only e^2 / (e^1 + e^2 + e^0) = 0.67: the argmax, not p_c > 0.5, decides
    assert (read_out[:, 0, 0] > 0.5).tolist() == [[True, False], [False, False]]


HEAD_VARIANTS = {
    "fcn_sigmoid": ("FCNMaskHead", {}),
    "fcn_softmax": ("FCNMaskHead", {"MASK_RCNN_EXT.MASK_HEAD.LOSS": "softmax"}),
    "fcn_agnostic": ("FCNMaskHead", {"MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK": True}),
    "mlp_sigmoid": ("MLPMaskHead", {}),
    "mlp_softmax": ("MLPMaskHead", {"MASK_RCNN_EXT.MASK_HEAD.LOSS": "softmax"}),
}


def build_head(variant):
    name, overrides = HEAD_VARIANTS[variant]
    torch.manual_seed(0)
    return build_mask_head(mask_cfg(**{"MODEL.ROI_MASK_HEAD.NAME": name, **overrides}), POOLED)


@pytest.mark.parametrize("variant", sorted(HEAD_VARIANTS))
def test_no_foreground_proposals_give_zero_loss_that_backpropagates(variant):
    head = build_head(variant)
    loss, gradients, _ = run_training_step(head, torch.randn(0, 8, 14, 14), foreground_proposals((0, 0)))
    assert loss.item() == 0.0
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in gradients.values())


@pytest.mark.parametrize("variant", sorted(HEAD_VARIANTS))
def test_output_channels_and_size(variant):
    head = build_head(variant)
    expected_channels = {"fcn_softmax": NUM_CLASSES + 1, "mlp_softmax": NUM_CLASSES + 1, "fcn_agnostic": 1}
    assert head.layers(torch.randn(3, 8, 14, 14)).shape == (3, expected_channels.get(variant, NUM_CLASSES), 28, 28)


@pytest.mark.parametrize("variant", sorted(HEAD_VARIANTS))
def test_inference_gives_the_predicted_class_soft_mask(variant):
    head = build_head(variant).eval()
    features = torch.randn(7, 8, 14, 14)
    instances = detections()
    with torch.no_grad():
        logits = head.layers(features)
        head(features, instances)
    classes = torch.cat([i.pred_classes for i in instances])
    if head.loss_name == "softmax":
        own = logits[torch.arange(7), classes]
        rivals = torch.stack([torch.cat([lg[:c], lg[c + 1 :]]).amax(0) for lg, c in zip(logits, classes)])
        expected = (own - rivals).sigmoid()
    else:
        expected = logits[torch.arange(7), 0 if logits.shape[1] == 1 else classes].sigmoid()
    pred_masks = torch.cat([i.pred_masks for i in instances])
    assert pred_masks.shape == (7, 1, 28, 28)
    assert torch.equal(pred_masks[:, 0], expected)


def test_mlp_head_has_the_papers_layers():
    cfg = mask_cfg(
        **{"MODEL.ROI_MASK_HEAD.NAME": "MLPMaskHead", "MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS": [1024, 1024, 1024]}
    )
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    head = build_mask_head(cfg, ShapeSpec(channels=256, height=14, width=14))
    assert isinstance(head, MLPMaskHead)
    assert [(fc.in_features, fc.out_features) for fc in head.fcs] == [(256 * 14 * 14, 1024), (1024, 1024), (1024, 1024)]
    assert (head.predictor.in_features, head.predictor.out_features) == (1024, 80 * 28 * 28)


def test_a_subclass_can_change_only_the_loss():
    class HalvedLossHead(FCNMaskHead):
        def loss(self, mask_logits, instances):
            return super().loss(mask_logits, instances) / 2

    cfg = mask_cfg(**{"MASK_RCNN_EXT.MASK_HEAD.LOSS": "softmax"})
    torch.manual_seed(0)
    ours = FCNMaskHead(cfg, POOLED)
    torch.manual_seed(0)
    halved = HalvedLossHead(cfg, POOLED)
    features = torch.randn(7, 8, 14, 14)
    full_loss = run_training_step(ours, features, foreground_proposals())[0]
    assert run_training_step(halved, features, foreground_proposals())[0].item() == pytest.approx(full_loss.item() / 2)
