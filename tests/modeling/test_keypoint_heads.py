"""Keypoint head and loss: KeypointMaskHead with UP_SCALE 2 is detectron2's
KRCNNConvDeconvUpsampleHead bit for bit; the loss equals a hand computation; keypoints are read
from heatmaps as a slow reference says; empty batches train; in a full model the head sees only
foreground proposals with a visible keypoint, and each task's loss weight scales its loss."""

import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import build_keypoint_head
from detectron2.modeling.roi_heads.keypoint_head import KRCNNConvDeconvUpsampleHead
from detectron2.structures import BitMasks, Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage
from torch.nn import functional as F

from mask_rcnn_ext import add_mask_rcnn_ext_config, build_config
from mask_rcnn_ext.engine import config_errors
from mask_rcnn_ext.modeling import KeypointMaskHead, keypoint_loss_normalizer, keypoint_softmax_loss, keypoint_targets

from conftest import SYNTHETIC_CONFIG

IMAGE_SIZE = (80, 96)
POOLED = ShapeSpec(channels=8, height=14, width=14)


def keypoint_cfg(num_keypoints=17, **overrides):
    cfg = get_cfg()
    add_mask_rcnn_ext_config(cfg)
    cfg.MODEL.ROI_KEYPOINT_HEAD.NAME = "KeypointMaskHead"
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = num_keypoints
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (16, 16)
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def random_boxes(n, generator):
    """(n, 4) boxes with non-integer corners inside IMAGE_SIZE."""
    corner = torch.rand(n, 2, generator=generator) * 40
    return torch.cat([corner, corner + 8 + torch.rand(n, 2, generator=generator) * 40], 1)


def foreground_proposals(num_keypoints, num_per_image=(3, 4), seed=0):
    """Per image, proposals with their matched gt_keypoints (what ROI heads give a keypoint head):
    keypoints in and around the boxes, of every COCO visibility, the first on the box's
    bottom-right corner (which detectron2 puts in the last heatmap pixel, not outside)."""
    generator = torch.Generator().manual_seed(seed)
    instances = []
    for n in num_per_image:
        per_image = Instances(IMAGE_SIZE)
        boxes = random_boxes(n, generator)
        per_image.proposal_boxes = Boxes(boxes)
        size = boxes[:, None, 2:] - boxes[:, None, :2]
        xy = boxes[:, None, :2] - 0.2 * size + torch.rand(n, num_keypoints, 2, generator=generator) * 1.4 * size
        visibility = torch.randint(0, 3, (n, num_keypoints, 1), generator=generator).float()
        keypoints = torch.cat([xy, visibility], 2)
        keypoints[:, 0] = torch.cat([boxes[:, 2:], torch.full((n, 1), 2.0)], 1)
        per_image.gt_keypoints = Keypoints(keypoints)
        instances.append(per_image)
    return instances


def detections(num_per_image=(3, 4), seed=0):
    generator = torch.Generator().manual_seed(seed)
    instances = []
    for n in num_per_image:
        per_image = Instances(IMAGE_SIZE)
        per_image.pred_boxes = Boxes(random_boxes(n, generator))
        instances.append(per_image)
    return instances


def run_training_step(head, features, instances):
    """loss and the gradients of every parameter and of the features."""
    head.train()
    features = features.clone().requires_grad_(True)
    with EventStorage():
        loss = head(features, instances)["loss_keypoint"]
    loss.backward()
    return loss, {n: p.grad for n, p in head.named_parameters()} | {"features": features.grad}


@pytest.mark.parametrize("by_visible", [True, False], ids=["normalize_by_visible", "normalize_per_image"])
@pytest.mark.parametrize("num_keypoints", [17, 5])
def test_keypoint_mask_head_is_detectron2_head(num_keypoints, by_visible):
    cfg = keypoint_cfg(
        num_keypoints,
        **{
            "MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS": by_visible,
            "MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT": 2.5,
        },
    )
    torch.manual_seed(0)
    ours = build_keypoint_head(cfg, POOLED)
    assert isinstance(ours, KeypointMaskHead)
    torch.manual_seed(0)
    reference = KRCNNConvDeconvUpsampleHead(cfg, POOLED)
    assert list(ours.state_dict()) == list(reference.state_dict())
    for name, value in reference.state_dict().items():  # same initialisation
        assert torch.equal(ours.state_dict()[name], value), name
    torch.manual_seed(1)
    reference = KRCNNConvDeconvUpsampleHead(cfg, POOLED)
    ours.load_state_dict(reference.state_dict(), strict=True)  # a detectron2 checkpoint

    features = torch.randn(7, 8, 14, 14)
    assert torch.equal(ours.layers(features), reference.layers(features))
    assert ours.layers(features).shape == (7, num_keypoints, 56, 56)
    expected = run_training_step(reference, features, foreground_proposals(num_keypoints))
    actual = run_training_step(ours, features, foreground_proposals(num_keypoints))
    assert expected[0] > 0 and torch.equal(actual[0], expected[0])
    assert actual[1].keys() == expected[1].keys()
    for name in expected[1]:
        assert torch.equal(actual[1][name], expected[1][name]), name

    reference.eval(), ours.eval()
    with torch.no_grad():
        expected_instances = reference(features, detections())
        actual_instances = ours(features, detections())
    for e, a in zip(expected_instances, actual_instances):
        assert a.pred_keypoints.shape == (len(e), num_keypoints, 3)
        assert torch.equal(a.pred_keypoints, e.pred_keypoints)
        assert torch.equal(a.pred_keypoint_heatmaps, e.pred_keypoint_heatmaps)


def test_loss_by_hand():
    """m = 4, K = 2, three RoIs in two images; four of the six keypoints count."""
    image_a, image_b = Instances(IMAGE_SIZE), Instances(IMAGE_SIZE)
    image_a.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))  # 2 px per heatmap pixel
    image_a.gt_keypoints = Keypoints([[[3.0, 5.0, 2], [8.0, 1.0, 2]]])
    image_b.proposal_boxes = Boxes(torch.tensor([[10.0, 20.0, 14.0, 28.0], [0.0, 0.0, 4.0, 4.0]]))
    image_b.gt_keypoints = Keypoints([[[11.5, 27.0, 1], [9.0, 22.0, 2]], [[2.0, 2.0, 0], [0.5, 3.9, 2]]])
    targets, valid = keypoint_targets([image_a, image_b], 4)
    # RoI 0: (3, 5) -> pixel (x 1, y 2) = 9; (8, 1) on the right edge -> last column (3, 0) = 3.
    # RoI 1 (1 x 0.5 heatmap pixels per px): (11.5, 27), labelled but not visible, still counts ->
    # (1, 3) = 13; (9, 22) is left of the box. RoI 2: (2, 2) is unlabelled; (0.5, 3.9) -> (0, 3) = 12.
    assert valid.tolist() == [True, True, True, False, False, True]
    assert targets[valid].tolist() == [9, 3, 13, 12]

    logits = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))

    def nll(heatmap, target):
        values = heatmap.flatten().tolist()
        return -(values[target] - math.log(sum(math.exp(v) for v in values)))

    summed = nll(logits[0, 0], 9) + nll(logits[0, 1], 3) + nll(logits[1, 0], 13) + nll(logits[2, 1], 12)
    visible = keypoint_loss_normalizer("visible", 2, valid)
    per_image = keypoint_loss_normalizer(2 * 4 * 0.5, 2, valid)  # K * BATCH_SIZE_PER_IMAGE * POSITIVE_FRACTION
    assert (visible, per_image) == (4, 8.0)
    assert keypoint_softmax_loss(logits, targets, valid, visible).item() == pytest.approx(summed / 4, rel=1e-6)
    assert keypoint_softmax_loss(logits, targets, valid, per_image).item() == pytest.approx(summed / 8, rel=1e-6)


def slow_keypoints(heatmaps, box):
    """(K, 3) for one RoI: each keypoint at the centre of its heatmap's maximal pixel once the
    heatmap is resized bicubically to the box's size in whole pixels (COCO's pixel centres at +0.5),
    scored by that pixel's softmax probability normalised over the M x M heatmap."""
    x0, y0, x1, y1 = box.tolist()
    width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    columns, rows = math.ceil(width), math.ceil(height)
    resized = F.interpolate(heatmaps[None], size=(rows, columns), mode="bicubic", align_corners=False)[0]
    keypoints = []
    for full, pooled in zip(resized, heatmaps):
        row, column = divmod(int(full.argmax()), columns)
        peak = full[row, column].item()
        score = 1 / sum(math.exp(v - peak) for v in pooled.flatten().tolist())
        keypoints.append([x0 + (column + 0.5) * width / columns, y0 + (row + 0.5) * height / rows, score])
    return torch.tensor(keypoints, dtype=torch.float64)


def test_keypoints_are_read_from_heatmaps_as_the_slow_reference():
    generator = torch.Generator().manual_seed(0)
    head = build_keypoint_head(keypoint_cfg(5), POOLED).eval()
    instances = detections((4, 3), seed=1)
    instances[1].pred_boxes.tensor[0, 2:] = instances[1].pred_boxes.tensor[0, :2] + 0.6  # smaller than a pixel
    logits = torch.randn(7, 5, 8, 8, generator=generator) * 3
    head.inference(logits, instances)
    boxes = torch.cat([i.pred_boxes.tensor for i in instances])
    expected = torch.stack([slow_keypoints(heatmaps, box) for heatmaps, box in zip(logits, boxes)])
    actual = torch.cat([i.pred_keypoints for i in instances])
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat([i.pred_keypoint_heatmaps for i in instances]), logits)


@pytest.mark.parametrize("by_visible", [True, False], ids=["normalize_by_visible", "normalize_per_image"])
@pytest.mark.parametrize("case", ["no_foreground", "no_valid_keypoint"])
def test_nothing_to_learn_gives_zero_loss_that_backpropagates(case, by_visible):
    torch.manual_seed(0)
    head = build_keypoint_head(
        keypoint_cfg(5, **{"MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS": by_visible}), POOLED
    )
    if case == "no_foreground":
        features, instances = torch.randn(0, 8, 14, 14), foreground_proposals(5, (0, 0))
    else:
        features, instances = torch.randn(7, 8, 14, 14), foreground_proposals(5)
        for per_image in instances:  # unlabelled, or labelled outside the box
            per_image.gt_keypoints.tensor[:, ::2, 2] = 0
            per_image.gt_keypoints.tensor[:, 1::2, :2] = -1
    loss, gradients = run_training_step(head, features, instances)
    assert loss.item() == 0.0
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in gradients.values())


@pytest.mark.parametrize("up_scale, side", [(1, 14), (2, 28), (4, 56)])
def test_up_scale_sets_the_heatmap_side_and_trains(up_scale, side):
    pooled = ShapeSpec(channels=8, height=7, width=7)
    torch.manual_seed(0)
    head = build_keypoint_head(keypoint_cfg(5, **{"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE": up_scale}), pooled)
    features = torch.randn(7, 8, 7, 7)
    assert head.layers(features).shape == (7, 5, side, side)
    loss, gradients = run_training_step(head, features, foreground_proposals(5))
    assert torch.isfinite(loss) and loss > 0
    assert all(torch.isfinite(g).all() and torch.count_nonzero(g) > 0 for g in gradients.values())


def test_up_scale_below_one_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE=0, expected >= 1"):
        build_keypoint_head(keypoint_cfg(5, **{"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE": 0}), POOLED)


def joint_model_inputs():
    """Two images, each with a person whose visible keypoints sit in its box's top-left quarter
    (so some of its foreground proposals miss them all), a person with no labelled keypoint and
    an object of another class (no keypoints at all)."""
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for _ in range(2):
        height, width = 128, 160
        instances = Instances((height, width))
        boxes = torch.tensor([[10.0, 12.0, 90.0, 110.0], [70.0, 20.0, 150.0, 80.0], [20.0, 60.0, 60.0, 120.0]])
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = torch.tensor([0, 0, 3])
        masks = torch.zeros(3, height, width, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
            mask[y0:y1, x0:x1] = True
        instances.gt_masks = BitMasks(masks)
        keypoints = torch.zeros(3, 17, 3)
        keypoints[0, :, :2] = boxes[0, :2] + torch.rand(17, 2, generator=generator) * 30
        keypoints[0, :, 2] = torch.randint(0, 3, (17,), generator=generator).float()
        instances.gt_keypoints = Keypoints(keypoints)
        image = torch.rand(3, height, width, generator=generator) * 255
        inputs.append({"image": image, "height": height, "width": width, "instances": instances})
    return inputs


def train_joint_model(opts=()):
    """Losses of one training step of the synthetic joint model with our keypoint head, and what
    the mask and keypoint heads received."""
    cfg = build_config(
        SYNTHETIC_CONFIG, ["MODEL.DEVICE", "cpu", "MODEL.ROI_KEYPOINT_HEAD.NAME", "KeypointMaskHead", *opts]
    )
    torch.manual_seed(0)
    model = build_model(cfg).train()
    received = {}
    for name in ("mask_head", "keypoint_head"):
        getattr(model.roi_heads, name).register_forward_pre_hook(
            lambda _, args, name=name: received.update({name: args})
        )
    torch.manual_seed(1)  # proposal sampling draws random numbers
    with EventStorage():
        losses = model(joint_model_inputs())
    return losses, received


def test_joint_model_trains_keypoints_on_foreground_proposals_with_a_visible_keypoint():
    losses, received = train_joint_model()
    assert set(losses) >= {"loss_mask", "loss_keypoint"} and all(torch.isfinite(v) for v in losses.values())
    mask_instances = received["mask_head"][1]  # every foreground proposal, with its gt
    features, keypoint_instances = received["keypoint_head"]
    expected_boxes, foreground = [], 0
    for per_image in mask_instances:
        keypoints, boxes = per_image.gt_keypoints.tensor, per_image.proposal_boxes.tensor[:, None]
        inside = (keypoints[..., 0] >= boxes[..., 0]) & (keypoints[..., 0] <= boxes[..., 2])
        inside &= (keypoints[..., 1] >= boxes[..., 1]) & (keypoints[..., 1] <= boxes[..., 3])
        expected_boxes.append(per_image.proposal_boxes.tensor[((keypoints[..., 2] >= 1) & inside).any(1)])
        foreground += len(per_image)
    expected = sum(len(b) for b in expected_boxes)
    assert 0 < expected < foreground  # the selection drops foreground proposals
    assert features.shape[0] == expected
    for per_image, boxes in zip(keypoint_instances, expected_boxes):
        assert torch.equal(per_image.proposal_boxes.tensor, boxes)


def test_mask_and_keypoint_loss_weights_scale_their_losses():
    unweighted, _ = train_joint_model()
    weighted, _ = train_joint_model(
        ["MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT", "2.0", "MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT", "2.0"]
    )
    assert weighted.keys() == unweighted.keys()
    for name, loss in unweighted.items():
        assert loss > 0
        assert torch.equal(weighted[name], 2 * loss if name in ("loss_mask", "loss_keypoint") else loss), name


@pytest.mark.parametrize(
    "opts, message",
    [
        (
            ["MODEL.ROI_KEYPOINT_HEAD.NAME", "KeypointMaskHead", "MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE", "0"],
            r"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE=0: expected >= 1",
        ),
        (
            [
                "MODEL.ROI_KEYPOINT_HEAD.NAME",
                "KRCNNConvDeconvUpsampleHead",
                "MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE",
                "4",
            ],
            r"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE=4 is read by KeypointMaskHead .*; "
            r"MODEL.ROI_KEYPOINT_HEAD.NAME='KRCNNConvDeconvUpsampleHead' would ignore it",
        ),
        (
            ["MODEL.ROI_KEYPOINT_HEAD.NAME", "NoSuchKeypointHead"],
            r"MODEL.ROI_KEYPOINT_HEAD.NAME='NoSuchKeypointHead' is not registered",
        ),
        (
            ["MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead", "MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT", "2.0"],
            r"MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT=2.0 is read by .*; "
            r"MODEL.ROI_MASK_HEAD.NAME='MaskRCNNConvUpsampleHead' would weight loss_mask by 1 instead",
        ),
    ],
)
def test_config_checks_name_the_keypoint_and_loss_weight_keys(opts, message):
    with pytest.raises(ValueError, match=message):
        build_config(SYNTHETIC_CONFIG, opts)


def test_config_checks_accept_our_heads_with_our_keys():
    opts = [
        "MODEL.ROI_KEYPOINT_HEAD.NAME",
        "KeypointMaskHead",
        "MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE",
        "4",
        "MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT",
        "2.0",
    ]
    assert config_errors(build_config(SYNTHETIC_CONFIG, opts, freeze=False)) == []


def _on(device, instances):
    return [i.to(device) for i in instances]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    """The head trains and reads keypoints out on CUDA as on the CPU (other kernels: close, not equal)."""
    torch.manual_seed(0)
    head = build_keypoint_head(keypoint_cfg(), POOLED)
    features = torch.randn(7, 8, 14, 14)
    on_cpu = run_training_step(head, features, foreground_proposals(17))
    head.zero_grad(set_to_none=True)
    head.cuda()
    on_cuda = run_training_step(head, features.cuda(), _on("cuda", foreground_proposals(17)))
    torch.testing.assert_close(on_cuda[0].cpu(), on_cpu[0], rtol=1e-4, atol=1e-5)
    for name in on_cpu[1]:
        torch.testing.assert_close(on_cuda[1][name].cpu(), on_cpu[1][name], rtol=1e-3, atol=1e-5, msg=name)
    head.eval()
    with torch.no_grad():
        cuda_instances = head(features.cuda(), _on("cuda", detections()))
        cpu_instances = head.cpu()(features, detections())
    for c, g in zip(cpu_instances, cuda_instances):
        torch.testing.assert_close(g.pred_keypoint_heatmaps.cpu(), c.pred_keypoint_heatmaps, rtol=1e-4, atol=1e-4)
        # where the maximal pixel is unambiguous the decoded positions agree to float precision
        torch.testing.assert_close(g.pred_keypoints.cpu(), c.pred_keypoints, rtol=1e-3, atol=1e-2)
