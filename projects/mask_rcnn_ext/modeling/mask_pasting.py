"""Paste RoI masks into the image: detectron2's `paste_masks_in_image`, bit for bit, with fewer
calls on the CPU.

On the CPU detectron2 pastes one mask at a time, each into its box widened by a pixel (clamped
to the image): a grid of sampling points over that region, `grid_sample` (bilinear), threshold.
That keeps the work to the boxes' pixels, but at 100 detections an image it is 100 rounds of a
dozen small tensor operations. `paste_masks` sorts the masks by region area and pastes a group of
similar sizes in one `grid_sample` call over the group's largest region, each mask's grid starting
at its own region's corner. A pixel's sampling point is computed from that pixel and the mask's
box alone, by the same float32 operations, so every pixel of a mask's own region gets the value
detectron2 gives it; the padding beyond the region is dropped. A group grows while its padded
area stays within `MAX_PADDING` times the masks' own and its grid within `MAX_GROUP_PIXELS`.
On CUDA detectron2 already pastes all masks of an image in one call; `paste_masks` uses it there.

`PastedROIMasks` is detectron2's `ROIMasks` pasted by `paste_masks`; `MaskRCNN`
(`meta_arch.py`) hands it to detectron2's `detector_postprocess`.
"""

from typing import Union

import torch
from detectron2.layers import paste_masks_in_image
from detectron2.structures import BitMasks, Boxes, ROIMasks
from detectron2.utils.memory import retry_if_cuda_oom
from torch.nn import functional as F

MAX_PADDING = 1.5  # padded pixels of a group / pixels of its masks' own regions
MAX_GROUP_PIXELS = 1 << 22  # a group's sampling grid: 32 MiB of float32 (x, y) pairs


def paste_masks(
    masks: torch.Tensor, boxes: Union[torch.Tensor, Boxes], image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Full-image masks from RoI masks: detectron2's `paste_masks_in_image` for threshold >= 0.

    Args:
        masks: (N, M, M) mask probabilities in [0, 1].
        boxes: (N, 4) boxes (x0, y0, x1, y1) in image pixels, within the image.
        image_shape: (height, width) of the image.
        threshold: a pixel is in the mask when its interpolated value is >= threshold.

    Returns:
        (N, height, width) bool.
    """
    boxes = boxes.tensor if isinstance(boxes, Boxes) else boxes
    if masks.device.type != "cpu" or threshold < 0 or len(masks) == 0:
        return paste_masks_in_image(masks, boxes, image_shape, threshold)
    height, width = image_shape
    pasted = torch.zeros(len(masks), height, width, dtype=torch.bool)
    masks = (masks if masks.dtype.is_floating_point else masks.float())[:, None]  # as detectron2 samples
    regions = _pasting_regions(boxes, height, width)
    for group in _similar_size_groups(regions):
        group_pasted = _paste_group(masks[group], boxes[group], regions[group], threshold)
        for index, mask, (x0, y0, x1, y1) in zip(group.tolist(), group_pasted, regions[group].tolist()):
            pasted[index, y0:y1, x0:x1] = mask[: y1 - y0, : x1 - x0]
    return pasted


def _pasting_regions(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 4) int64 x0, y0, x1, y1: each box widened by a pixel and clamped to the image, as
    detectron2 bounds a single mask's pasting."""
    low = (boxes[:, :2].floor() - 1).clamp(min=0)
    high = torch.stack([(boxes[:, 2].ceil() + 1).clamp(max=width), (boxes[:, 3].ceil() + 1).clamp(max=height)], dim=1)
    return torch.cat([low, high], dim=1).long()


def _similar_size_groups(regions: torch.Tensor) -> list[torch.Tensor]:
    """Indices of masks pasted together: by increasing region area, a group closes when adding
    the next mask would pad beyond MAX_PADDING or grow the grid beyond MAX_GROUP_PIXELS."""
    sizes = (regions[:, 2:] - regions[:, :2]).clamp(min=0)
    order = (sizes[:, 0] * sizes[:, 1]).argsort()
    groups, current = [], []
    group_width = group_height = own_area = 0
    for index, (mask_width, mask_height) in zip(order.tolist(), sizes[order].tolist()):
        width, height = max(group_width, mask_width), max(group_height, mask_height)
        padded_area = width * height * (len(current) + 1)
        new_own_area = own_area + mask_width * mask_height
        if current and (padded_area > MAX_PADDING * new_own_area or padded_area > MAX_GROUP_PIXELS):
            groups.append(current)
            current, width, height, new_own_area = [], mask_width, mask_height, mask_width * mask_height
        current.append(index)
        group_width, group_height, own_area = width, height, new_own_area
    groups.append(current)
    return [torch.tensor(group) for group in groups]


def _paste_group(masks: torch.Tensor, boxes: torch.Tensor, regions: torch.Tensor, threshold: float) -> torch.Tensor:
    """(n, 1, M, M) masks, (n, 4) boxes and int regions -> (n, h, w) bool over each region's
    top-left h x w pixels, (h, w) the group's largest region."""
    height = int((regions[:, 3] - regions[:, 1]).max())
    width = int((regions[:, 2] - regions[:, 0]).max())
    x0, y0, x1, y1 = boxes.split(1, dim=1)
    # pixel centres as detectron2 computes them: arange over the region (whole numbers, exact) + 0.5
    pixel_y = torch.arange(height, dtype=torch.float32) + regions[:, 1:2].float() + 0.5
    pixel_x = torch.arange(width, dtype=torch.float32) + regions[:, 0:1].float() + 0.5
    grid_y = (pixel_y - y0) / (y1 - y0) * 2 - 1
    grid_x = (pixel_x - x0) / (x1 - x0) * 2 - 1
    count = len(masks)
    grid = torch.stack(
        [grid_x[:, None, :].expand(count, height, width), grid_y[:, :, None].expand(count, height, width)], dim=3
    )
    return F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)[:, 0] >= threshold


class PastedROIMasks(ROIMasks):
    """detectron2's ROIMasks, pasted into the image by `paste_masks`."""

    def to(self, device: torch.device) -> "PastedROIMasks":
        return PastedROIMasks(self.tensor.to(device))

    def __getitem__(self, item) -> "PastedROIMasks":
        return PastedROIMasks(super().__getitem__(item).tensor)

    def to_bitmasks(
        self, boxes: Union[torch.Tensor, Boxes], height: int, width: int, threshold: float = 0.5
    ) -> BitMasks:
        paste = retry_if_cuda_oom(paste_masks)  # as detectron2's ROIMasks pastes
        return BitMasks(paste(self.tensor, boxes, (height, width), threshold))
