"""The RoI feature ops of the paper's Table 2(c), registered by name in `ROI_FEATURE_OP_REGISTRY`.

A head picks one with its `POOLER_TYPE` key (`MODEL.ROI_BOX_HEAD`, `ROI_MASK_HEAD`,
`ROI_KEYPOINT_HEAD`) when the model's ROI heads are `AnyPoolerROIHeads` or
`AnyPoolerRes5ROIHeads`. Every op is an `nn.Module` built as
`op(output_size, spatial_scale, sampling_ratio)` whose forward maps features `(N, C, H, W)` and
RoIs `(K, 5)` (batch index, x0, y0, x1, y1 in input-image pixels) to `(K, C, out_h, out_w)`.

| name          | RoI rounded to the feature grid | values in a bin              | bin aggregate |
|---------------|---------------------------------|------------------------------|---------------|
| ROIPool       | yes (and the bins too)          | every feature cell           | max           |
| ROIWarp       | yes                             | bilinear, sampling_ratio^2 * | average       |
| ROIWarpMax    | yes                             | bilinear, sampling_ratio^2   | max           |
| ROIAlign      | no                              | bilinear, sampling_ratio^2 * | average       |
| ROIAlignMax   | no                              | bilinear, sampling_ratio^2   | max           |
| ROIAlignV2    | no (half-pixel aligned samples) | bilinear, sampling_ratio^2 * | average       |
| ROIAlignV2Max | no (half-pixel aligned samples) | bilinear, sampling_ratio^2   | max           |

* sampling_ratio 0: as many samples as the RoI has feature pixels per bin (torchvision's
adaptive count); the max ops need a fixed positive count.

ROIAlign (Detectron's, the paper's), ROIAlignV2 and ROIPool are detectron2's ops of those names:
the same torchvision kernels. RoIWarp (Dai et al., MNC) rounds the RoI to the feature grid as
RoIPool does, then samples it bilinearly: torchvision's `roi_align` on the rounded RoI. The
max-aggregating ops have no torchvision kernel; `roi_align_max` computes them in PyTorch (CPU and
CUDA, with autograd) at the sample points and with the bilinear rule of torchvision's
`roi_align`, so ROIAlignMax differs from ROIAlign only in max versus mean over a bin's samples.
"""

import torch
from detectron2.utils.registry import Registry
from torch import nn
from torch.nn import functional as F
from torchvision.ops import roi_align, roi_pool

ROI_FEATURE_OP_REGISTRY = Registry("ROI_FEATURE_OP")
ROI_FEATURE_OP_REGISTRY.__doc__ = """
RoI feature ops, chosen by a head's POOLER_TYPE. Called as `op(output_size, spatial_scale,
sampling_ratio)`; the module maps (features (N, C, H, W), rois (K, 5)) to (K, C, *output_size).
An op whose class has `needs_positive_sampling_ratio = True` refuses POOLER_SAMPLING_RATIO 0
(detectron2's "adaptive" count, which varies per RoI).
"""


def round_rois_to_feature_grid(rois: torch.Tensor, spatial_scale: float) -> torch.Tensor:
    """RoIs `(K, 5)` whose corners are moved to the nearest feature cell, as RoIPool quantizes them.

    Rounds half away from zero (C's `round`, which RoIPool's kernels use). Returns image
    coordinates again, so the result goes to any op built with the same `spatial_scale`.
    """
    scaled = rois[:, 1:] * spatial_scale
    rounded = torch.where(scaled >= 0, torch.floor(scaled + 0.5), torch.ceil(scaled - 0.5))
    return torch.cat([rois[:, :1], rounded / spatial_scale], dim=1)


def _sample_coordinates(start: torch.Tensor, length: torch.Tensor, bins: int, sampling_ratio: int) -> torch.Tensor:
    """(K, bins * sampling_ratio) sample positions along one axis, in feature pixels.

    Sample `i` of bin `b` sits at `start + b * bin + (i + 0.5) * bin / sampling_ratio`, evaluated
    in the order torchvision's roi_align kernel evaluates it.
    """
    bin_size = (length / bins)[:, None]
    bin_index = torch.arange(bins, device=start.device, dtype=start.dtype).repeat_interleave(sampling_ratio)
    sample_index = torch.arange(sampling_ratio, device=start.device, dtype=start.dtype).repeat(bins)
    return start[:, None] + bin_index * bin_size + (sample_index + 0.5) * bin_size / sampling_ratio


def roi_align_max(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """RoIAlign with the maximum, not the mean, of each bin's `sampling_ratio`^2 bilinear samples.

    Args:
        features: (N, C, H, W).
        rois: (K, 5), batch index then x0, y0, x1, y1 in input-image pixels.
        output_size: (out_h, out_w) bins.
        spatial_scale: feature pixels per image pixel (1 / stride).
        sampling_ratio: samples per bin along each axis; must be positive.
        aligned: shift samples by half a feature pixel, as torchvision's `aligned=True`.

    Returns:
        (K, C, out_h, out_w). Sample points and bilinear weights are those of torchvision's
        roi_align: a sample outside [-1, H] x [-1, W] reads 0, one in the border band reads the
        nearest edge. Gradients flow to `features`.
    """
    if sampling_ratio <= 0:
        raise ValueError(f"roi_align_max needs a positive sampling_ratio, got {sampling_ratio}")
    out_h, out_w = output_size
    num_rois, channels = rois.shape[0], features.shape[1]
    if num_rois == 0:  # still part of the graph, as torchvision's ops keep it: backward gives zeros
        return features.new_zeros((0, channels, out_h, out_w)) + features.sum() * 0
    height, width = features.shape[-2:]
    # Sample positions and sampling in at least float32: in float16 (AMP) positions on a large
    # feature map would be off by a fraction of a pixel.
    dtype = torch.promote_types(features.dtype, torch.float32)
    offset = 0.5 if aligned else 0.0
    x0, y0, x1, y1 = (rois[:, i].to(dtype) * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x1 - x0, y1 - y0
    if not aligned:  # Detectron's RoIAlign gives every RoI at least one feature pixel
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    ys = _sample_coordinates(y0, roi_h, out_h, sampling_ratio)  # (K, Py)
    xs = _sample_coordinates(x0, roi_w, out_w, sampling_ratio)  # (K, Px)
    inside = ((ys >= -1) & (ys <= height))[:, :, None] & ((xs >= -1) & (xs <= width))[:, None, :]
    # grid_sample with border padding clamps to [0, size - 1] exactly as torchvision's bilinear
    # rule does; the `inside` mask adds its zero outside the band.
    grid_y = (2 * ys + 1) / height - 1
    grid_x = (2 * xs + 1) / width - 1
    grid = torch.stack(
        [grid_x[:, None, :].expand(-1, ys.shape[1], -1), grid_y[:, :, None].expand(-1, -1, xs.shape[1])], dim=-1
    )  # (K, Py, Px, 2)
    batch_index = rois[:, 0].long()
    order = torch.argsort(batch_index, stable=True)  # each image's RoIs together
    images, counts = torch.unique_consecutive(batch_index[order], return_counts=True)
    pooled = []
    for image, selected in zip(images.tolist(), order.split(counts.tolist())):
        image_grid = grid[selected].reshape(1, selected.numel() * ys.shape[1], xs.shape[1], 2)
        samples = F.grid_sample(
            features[image : image + 1].to(dtype),
            image_grid,
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )  # (1, C, K_image * Py, Px)
        samples = samples.reshape(channels, selected.numel(), ys.shape[1], xs.shape[1]).transpose(0, 1)
        pooled.append(F.max_pool2d(samples * inside[selected, None].to(dtype), sampling_ratio))
    return torch.cat(pooled)[torch.argsort(order)].to(features.dtype)  # back into the RoIs' order


class RoIFeatureOp(nn.Module):
    """Base of the registered ops: holds what detectron2's ROIPooler passes to each level's op."""

    needs_positive_sampling_ratio = False

    def __init__(self, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int):
        super().__init__()
        if self.needs_positive_sampling_ratio and sampling_ratio <= 0:
            raise ValueError(
                f"{type(self).__name__} needs a positive sampling ratio (samples per bin and axis; "
                f"the paper uses 2), got {sampling_ratio}"
            )
        self.output_size = tuple(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}"
        )


@ROI_FEATURE_OP_REGISTRY.register()
class ROIPool(RoIFeatureOp):
    """Fast R-CNN's RoIPool: RoI and bins rounded to the feature grid, max over each bin's cells."""

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_pool(features, rois.to(dtype=features.dtype), self.output_size, self.spatial_scale)


class _BilinearRoIFeatureOp(RoIFeatureOp):
    """RoIAlign family: `sampling_ratio`^2 bilinear samples per bin, averaged. Subclasses set
    whether the RoI is first rounded to the feature grid (`round_rois`) and whether the samples
    are shifted by half a feature pixel (`aligned`)."""

    round_rois = False
    aligned = False

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """features (N, C, H, W), rois (K, 5) -> (K, C, out_h, out_w)."""
        if self.round_rois:
            rois = round_rois_to_feature_grid(rois, self.spatial_scale)
        return self._pool_bins(features, rois)

    def _pool_bins(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        # torchvision's kernel takes RoIs of the features' dtype, as detectron2's ROIAlign gives them
        rois = rois.to(dtype=features.dtype)
        return roi_align(features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)


class _MaxBilinearRoIFeatureOp(_BilinearRoIFeatureOp):
    """The same samples, max-pooled per bin (`roi_align_max`): a max over an adaptive sample count
    that varies per RoI has no kernel, hence a fixed positive `sampling_ratio`."""

    needs_positive_sampling_ratio = True

    def _pool_bins(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        # samples in at least float32, whatever the features' dtype (AMP)
        return roi_align_max(features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)


@ROI_FEATURE_OP_REGISTRY.register()
class ROIAlign(_BilinearRoIFeatureOp):
    """The paper's RoIAlign (Detectron's pixel model, detectron2's 'ROIAlign'): average of bilinear samples."""


@ROI_FEATURE_OP_REGISTRY.register()
class ROIAlignMax(_MaxBilinearRoIFeatureOp):
    """The paper's RoIAlign with max aggregation (Table 2(c), 'RoIAlign max')."""


@ROI_FEATURE_OP_REGISTRY.register()
class ROIAlignV2(_BilinearRoIFeatureOp):
    """detectron2's default ROIAlignV2: samples shifted by half a pixel, averaged."""

    aligned = True


@ROI_FEATURE_OP_REGISTRY.register()
class ROIAlignV2Max(_MaxBilinearRoIFeatureOp):
    """ROIAlignV2's half-pixel-aligned samples, max-aggregated."""

    aligned = True


@ROI_FEATURE_OP_REGISTRY.register()
class ROIWarp(_BilinearRoIFeatureOp):
    """RoIWarp (Table 2(c), 'ave'): the RoI rounded to the feature grid, then sampled bilinearly."""

    round_rois = True


@ROI_FEATURE_OP_REGISTRY.register()
class ROIWarpMax(_MaxBilinearRoIFeatureOp):
    """RoIWarp with max aggregation (Table 2(c), 'RoIWarp max')."""

    round_rois = True
