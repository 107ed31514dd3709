"""Our mask pasting returns exactly detectron2's: `paste_masks` against `paste_masks_in_image`
(boxes of every size, at the image's borders, below a pixel, groups split by padding and by
grid size), `PastedROIMasks` through detectron2's own `detector_postprocess`, and the `MaskRCNN`
meta-architecture against GeneralizedRCNN with the same weights."""

import pytest
import torch
from detectron2.layers import paste_masks_in_image
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.modeling import MaskRCNN, PastedROIMasks, mask_pasting, paste_masks


def random_masks(count: int, image_shape, seed: int, largest: float = 0.6):
    """(N, 28, 28) probabilities and (N, 4) boxes inside the image, from below a pixel to
    `largest` of the image's sides; a few touch the image's borders."""
    generator = torch.Generator().manual_seed(seed)
    height, width = image_shape
    scale = torch.tensor([width, height], dtype=torch.float32)
    sizes = torch.rand(count, 2, generator=generator) ** 2 * largest * scale + 0.2
    corners = torch.rand(count, 2, generator=generator) * (scale - sizes)
    corners[:3] = 0.0  # top-left corner of the image
    corners[3:5] = scale - sizes[3:5]  # bottom-right
    boxes = torch.cat([corners, corners + sizes], dim=1)
    return torch.rand(count, 28, 28, generator=generator), boxes


@pytest.mark.parametrize(
    "image_shape, count", [((800, 1333), 100), ((128, 160), 100), ((1024, 2048), 30), ((64, 64), 1)]
)
@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_paste_masks_equals_detectron2(image_shape, count, threshold):
    masks, boxes = random_masks(count, image_shape, seed=count + image_shape[0])
    expected = paste_masks_in_image(masks, boxes, image_shape, threshold)
    actual = paste_masks(masks, Boxes(boxes), image_shape, threshold)
    assert actual.dtype == torch.bool and actual.shape == (count,) + image_shape
    assert torch.equal(actual, expected)


def test_groups_split_by_padding_and_by_grid_size_still_equal_detectron2(monkeypatch):
    masks, boxes = random_masks(100, (800, 1333), seed=3)
    regions = mask_pasting._pasting_regions(boxes, 800, 1333)
    by_padding = mask_pasting._similar_size_groups(regions)
    assert 1 < len(by_padding) < 100
    assert sorted(torch.cat(by_padding).tolist()) == list(range(100))
    monkeypatch.setattr(mask_pasting, "MAX_GROUP_PIXELS", 5000)
    assert len(mask_pasting._similar_size_groups(regions)) > len(by_padding)
    assert torch.equal(paste_masks(masks, boxes, (800, 1333)), paste_masks_in_image(masks, boxes, (800, 1333)))


def test_no_masks_and_negative_threshold_are_detectron2s():
    assert torch.equal(
        paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (30, 40)),
        paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (30, 40)),
    )
    masks, boxes = random_masks(5, (50, 60), seed=0)
    assert torch.equal(paste_masks(masks, boxes, (50, 60), -1), paste_masks_in_image(masks, boxes, (50, 60), -1))


def test_detector_postprocess_pastes_pasted_roi_masks_as_detectron2_pastes_tensors():
    masks, boxes = random_masks(40, (200, 300), seed=5)
    results = []
    for pred_masks in (masks[:, None], PastedROIMasks(masks)):
        instances = Instances((100, 150), pred_boxes=Boxes(boxes / 2), pred_masks=pred_masks)
        results.append(detector_postprocess(instances, 200, 300).pred_masks)
    assert isinstance(PastedROIMasks(masks)[torch.arange(40) % 2 == 0], PastedROIMasks)  # survives filtering
    assert torch.equal(results[1], results[0])


@pytest.mark.parametrize(
    "config_name", ["Synthetic/mask_keypoint_rcnn_R18_GN_FPN.yaml", "Synthetic/Ablation/mask_rcnn_R18_C4.yaml"]
)
def test_mask_rcnn_predicts_what_generalized_rcnn_predicts(config_name):
    cfg = build_config(
        get_config_file(config_name), ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    )
    assert cfg.MODEL.META_ARCHITECTURE == "MaskRCNN"
    torch.manual_seed(0)
    ours = build_model(cfg).eval()
    assert isinstance(ours, MaskRCNN)
    cfg.defrost()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    reference = build_model(cfg).eval()
    assert type(reference) is GeneralizedRCNN
    reference.load_state_dict(ours.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(1)
    inputs = [
        {"image": torch.randint(0, 256, (3, 96, 128), generator=generator).float(), "height": 150, "width": 200}
        for _ in range(2)
    ]
    with torch.no_grad():
        expected, actual = reference(inputs), ours(inputs)
        unprocessed = ours.inference(inputs, do_postprocess=False)
    assert unprocessed[0].pred_masks.dim() == 4  # without post-processing: the heads' (R, 1, M, M)
    for e, a in zip(expected, actual):
        e, a = e["instances"], a["instances"]
        assert len(a) > 0 and a.image_size == (150, 200)
        assert a.get_fields().keys() == e.get_fields().keys()
        for name, value in e.get_fields().items():
            value, ours_value = (value.tensor, a.get(name).tensor) if isinstance(value, Boxes) else (value, a.get(name))
            assert torch.equal(ours_value, value), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_paste_masks_equals_detectron2_on_cuda():
    masks, boxes = random_masks(100, (800, 1333), seed=2)
    masks, boxes = masks.cuda(), boxes.cuda()
    assert torch.equal(paste_masks(masks, boxes, (800, 1333)), paste_masks_in_image(masks, boxes, (800, 1333)))
