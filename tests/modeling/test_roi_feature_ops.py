"""The RoI feature ops of Table 2(c): detectron2's and torchvision's where the definitions coincide,
a slow reference written out here where they have no counterpart, and gradcheck in float64."""

import math

import pytest
import torch
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes
from torchvision.ops import roi_align, roi_pool

from mask_rcnn_ext.modeling import ROI_FEATURE_OP_REGISTRY, RoIFeaturePooler, roi_align_max

SCALE = 1 / 16
OUTPUT_SIZE = (5, 4)


def random_inputs(num_rois=30, dtype=torch.float64, seed=0, channels=3, height=11, width=13):
    """Features (2, C, H, W) at stride 16 and RoIs of any size, some reaching past the borders."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, channels, height, width, generator=generator, dtype=dtype)
    image_size = torch.tensor([width, height], dtype=dtype) / SCALE
    corner = torch.rand(num_rois, 2, generator=generator, dtype=dtype) * (image_size + 60) - 30
    size = torch.rand(num_rois, 2, generator=generator, dtype=dtype) * image_size * 0.7
    batch = torch.randint(0, 2, (num_rois, 1), generator=generator).to(dtype)
    return features, torch.cat([batch, corner, corner + size], dim=1)


def op(name, sampling_ratio=2, output_size=OUTPUT_SIZE):
    return ROI_FEATURE_OP_REGISTRY.get(name)(output_size, SCALE, sampling_ratio)


# ---- a slow reference: one RoI, one bin, one sample at a time ----------------------------------


def bilinear(feature_map, y, x):
    """torchvision roi_align's bilinear rule at (y, x) of a (C, H, W) map."""
    height, width = feature_map.shape[-2:]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(feature_map.shape[0], dtype=feature_map.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    return (
        (1 - ly) * (1 - lx) * feature_map[:, y_low, x_low]
        + (1 - ly) * lx * feature_map[:, y_low, x_high]
        + ly * (1 - lx) * feature_map[:, y_high, x_low]
        + ly * lx * feature_map[:, y_high, x_high]
    )


def reference_roi_op(features, rois, output_size, scale, sampling_ratio, *, aligned, round_rois, aggregate):
    out_h, out_w = output_size
    output = torch.zeros(len(rois), features.shape[1], out_h, out_w, dtype=features.dtype)
    offset = 0.5 if aligned else 0.0
    for k, (batch, *corners) in enumerate(rois.tolist()):
        if round_rois:  # C's round(): half away from zero
            corners = [
                math.floor(c * scale + 0.5) / scale if c >= 0 else math.ceil(c * scale - 0.5) / scale for c in corners
            ]
        x0, y0, x1, y1 = (c * scale - offset for c in corners)
        width, height = x1 - x0, y1 - y0
        if not aligned:
            width, height = max(width, 1.0), max(height, 1.0)
        bin_h, bin_w = height / out_h, width / out_w
        for ph in range(out_h):
            for pw in range(out_w):
                samples = torch.stack(
                    [
                        bilinear(
                            features[int(batch)],
                            y0 + ph * bin_h + (iy + 0.5) * bin_h / sampling_ratio,
                            x0 + pw * bin_w + (ix + 0.5) * bin_w / sampling_ratio,
                        )
                        for iy in range(sampling_ratio)
                        for ix in range(sampling_ratio)
                    ]
                )
                output[k, :, ph, pw] = samples.max(0).values if aggregate == "max" else samples.mean(0)
    return output


def test_reference_is_torchvision_roi_align_where_both_average():
    features, rois = random_inputs()
    for aligned in (False, True):
        expected = roi_align(features, rois, OUTPUT_SIZE, SCALE, 2, aligned)
        actual = reference_roi_op(
            features, rois, OUTPUT_SIZE, SCALE, 2, aligned=aligned, round_rois=False, aggregate="avg"
        )
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12)


# ---- detectron2's and torchvision's ops where ours has their definition ------------------------


@pytest.mark.parametrize("name, aligned", [("ROIAlign", False), ("ROIAlignV2", True)])
def test_roialign_is_torchvision_roi_align(name, aligned):
    features, rois = random_inputs(dtype=torch.float32)
    assert torch.equal(op(name)(features, rois), roi_align(features, rois, OUTPUT_SIZE, SCALE, 2, aligned))
    assert torch.equal(op(name, 0)(features, rois), roi_align(features, rois, OUTPUT_SIZE, SCALE, 0, aligned))


def test_roipool_is_torchvision_roi_pool():
    features, rois = random_inputs(dtype=torch.float32)
    assert torch.equal(op("ROIPool")(features, rois), roi_pool(features, rois, OUTPUT_SIZE, SCALE))


@pytest.mark.parametrize("pooler_type", ["ROIAlign", "ROIAlignV2", "ROIPool"])
def test_pooler_with_detectron2_types_is_detectron2_roipooler(pooler_type):
    """Four FPN levels, boxes of every size: same level assignment, same values, bit for bit."""
    generator = torch.Generator().manual_seed(1)
    features = [torch.randn(2, 8, 64 // 2**i, 96 // 2**i, generator=generator) for i in range(4)]
    boxes = []
    for _ in range(2):
        corner = torch.rand(40, 2, generator=generator) * 300
        boxes.append(Boxes(torch.cat([corner, corner + 4 + torch.rand(40, 2, generator=generator) * 300], 1)))
    args = dict(output_size=7, scales=(1 / 4, 1 / 8, 1 / 16, 1 / 32), sampling_ratio=2, pooler_type=pooler_type)
    expected = ROIPooler(**args)(features, boxes)
    assert torch.equal(RoIFeaturePooler(**args)(features, boxes), expected)


def test_max_with_one_sample_per_bin_is_average():
    """With one sample a bin, max and mean of it coincide: ROIAlignMax == torchvision's roi_align."""
    features, rois = random_inputs(dtype=torch.float32)
    for aligned in (False, True):
        expected = roi_align(features, rois, OUTPUT_SIZE, SCALE, 1, aligned)
        torch.testing.assert_close(
            roi_align_max(features, rois, OUTPUT_SIZE, SCALE, 1, aligned), expected, rtol=0, atol=1e-5
        )


def test_roiwarp_is_roialign_for_rois_on_the_feature_grid():
    features, rois = random_inputs(dtype=torch.float32)
    rois[:, 1:] = torch.round(rois[:, 1:] * SCALE) / SCALE
    assert torch.equal(op("ROIWarp")(features, rois), op("ROIAlign")(features, rois))
    assert torch.equal(op("ROIWarpMax")(features, rois), op("ROIAlignMax")(features, rois))


# ---- ops with no counterpart: against the slow reference ---------------------------------------


@pytest.mark.parametrize(
    "name, aligned, round_rois, aggregate",
    [
        ("ROIAlignMax", False, False, "max"),
        ("ROIAlignV2Max", True, False, "max"),
        ("ROIWarp", False, True, "avg"),
        ("ROIWarpMax", False, True, "max"),
    ],
)
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_op_matches_slow_reference(name, aligned, round_rois, aggregate, sampling_ratio):
    features, rois = random_inputs(seed=sampling_ratio)
    expected = reference_roi_op(
        features, rois, OUTPUT_SIZE, SCALE, sampling_ratio, aligned=aligned, round_rois=round_rois, aggregate=aggregate
    )
    torch.testing.assert_close(op(name, sampling_ratio)(features, rois), expected, rtol=0, atol=1e-12)


def test_rounding_moves_rois_like_roipool():
    """RoIWarp's RoI is RoIPool's: a half-cell coordinate rounds away from zero, as C's round()."""
    features = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 8.0, 8.0, 40.0, 40.0]])  # x0 = y0 = 0.5 cell -> 1, x1 = y1 = 2.5 cells -> 3
    warped = op("ROIWarp", sampling_ratio=1, output_size=(1, 1))(features, rois)
    assert warped.item() == bilinear(features[0], 2.0, 2.0).item() == 10.0  # the centre of cells 1..3


@pytest.mark.parametrize("name", ["ROIAlignMax", "ROIAlignV2Max", "ROIWarpMax"])
def test_max_ops_refuse_adaptive_sampling(name):
    with pytest.raises(ValueError, match=f"{name} needs a positive sampling ratio"):
        op(name, sampling_ratio=0)


@pytest.mark.parametrize("name", sorted(name for name, _ in ROI_FEATURE_OP_REGISTRY))
def test_gradcheck_float64(name):
    features, rois = random_inputs(num_rois=8, channels=2, height=5, width=6)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: op(name, output_size=(3, 2))(f, rois), (features,))


@pytest.mark.parametrize("name", sorted(name for name, _ in ROI_FEATURE_OP_REGISTRY))
def test_no_rois_gives_an_empty_result_that_backpropagates(name):
    features = torch.randn(2, 3, 11, 13, requires_grad=True)
    pooled = op(name)(features, torch.zeros(0, 5))
    assert pooled.shape == (0, 3, *OUTPUT_SIZE)
    pooled.sum().backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(name for name, _ in ROI_FEATURE_OP_REGISTRY))
def test_cuda_equals_cpu(name):
    features, rois = random_inputs(dtype=torch.float32)
    features.requires_grad_(True)
    on_cpu = op(name)(features, rois)
    on_cpu.square().sum().backward()
    features_cuda = features.detach().cuda().requires_grad_(True)
    on_cuda = op(name)(features_cuda, rois.cuda())
    on_cuda.square().sum().backward()
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features_cuda.grad.cpu(), features.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["ROIAlignMax", "ROIWarpMax"])
def test_cuda_autocast_samples_where_float32_does(name):
    """Under AMP the features are float16; sample positions must still be computed in float32."""
    features, rois = random_inputs(dtype=torch.float32, height=50, width=76)  # P2-like extent: 1216 px wide
    features, rois = features.cuda(), rois.cuda()
    expected = op(name)(features.half().float(), rois)
    with torch.autocast("cuda", dtype=torch.float16):
        actual = op(name)(features.half(), rois)
    torch.testing.assert_close(actual.float(), expected, rtol=0, atol=2e-2)
