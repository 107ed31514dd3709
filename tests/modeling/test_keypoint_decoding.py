"""`decode_keypoint_heatmaps` returns exactly what detectron2's `heatmaps_to_keypoints` returns:
COCO-sized heatmaps, boxes from sub-pixel to large with fractional corners, flat heatmaps (ties
go to the first pixel), no RoIs at all, and on CUDA."""

import pytest
import torch
from detectron2.structures import heatmaps_to_keypoints

from mask_rcnn_ext.modeling.keypoint_decoding import decode_keypoint_heatmaps


def random_rois(num_rois: int, num_keypoints: int, side: int, seed: int):
    """(R, K, M, M) logits spread like a trained head's, and (R, 4) boxes 0.3 to 400 px wide."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_rois, num_keypoints, side, side, generator=generator) * 4
    corners = torch.rand(num_rois, 2, generator=generator) * 700
    sizes = torch.rand(num_rois, 2, generator=generator) * 400
    sizes[: num_rois // 4] = torch.rand(num_rois // 4, 2, generator=generator)  # below one pixel
    return logits, torch.cat([corners, corners + sizes], dim=1)


@pytest.mark.parametrize("num_rois, num_keypoints, side", [(60, 17, 56), (25, 3, 28), (1, 17, 56)])
def test_equals_detectron2(num_rois, num_keypoints, side):
    logits, boxes = random_rois(num_rois, num_keypoints, side, seed=num_rois)
    expected = heatmaps_to_keypoints(logits, boxes)
    actual = decode_keypoint_heatmaps(logits, boxes)
    assert actual.shape == (num_rois, num_keypoints, 4)
    assert torch.equal(actual, expected)


def test_flat_heatmaps_equal_detectron2_first_pixel_wins():
    logits = torch.zeros(3, 4, 56, 56)
    logits[1, 2] = 5.0
    boxes = torch.tensor([[10.0, 20.0, 50.0, 90.0], [0.0, 0.0, 3.5, 2.25], [7.0, 7.0, 7.2, 7.9]])
    actual = decode_keypoint_heatmaps(logits, boxes)
    assert torch.equal(actual, heatmaps_to_keypoints(logits, boxes))
    assert torch.equal(actual[0, :, :2], torch.tensor([[10.5, 20.5]] * 4))  # pixel (0, 0)'s centre


def test_no_rois_give_detectron2s_empty_result():
    logits, boxes = torch.zeros(0, 17, 56, 56), torch.zeros(0, 4)
    actual = decode_keypoint_heatmaps(logits, boxes)
    assert actual.shape == (0, 17, 4) and torch.equal(actual, heatmaps_to_keypoints(logits, boxes))


def test_result_is_detached_from_the_graph():
    logits, boxes = random_rois(4, 3, 28, seed=0)
    assert not decode_keypoint_heatmaps(logits.requires_grad_(), boxes.requires_grad_()).requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_equals_detectron2_on_cuda():
    logits, boxes = random_rois(60, 17, 56, seed=1)
    logits, boxes = logits.cuda(), boxes.cuda()
    assert torch.equal(decode_keypoint_heatmaps(logits, boxes), heatmaps_to_keypoints(logits, boxes))
