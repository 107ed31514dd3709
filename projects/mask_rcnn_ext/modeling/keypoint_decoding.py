"""Read keypoints out of predicted heatmaps: detectron2's `heatmaps_to_keypoints`, bit for bit,
with less work per RoI.

detectron2 resizes each RoI's K heatmaps bicubically to its box's size in pixels and takes, per
keypoint, the maximal pixel; the score is that pixel's softmax probability, normalised over the
M x M heatmap rather than the resized one. Per RoI it also exponentiates and divides the whole
resized map, reduces it three times (max, argmax, and an assert) and reads each box size from the
device twice (`int(tensor)`, a host-device synchronisation per RoI on a GPU).

Here the loop keeps only what needs the resized map, its bicubic resize and one max with its
index; the rest runs once on all RoIs:
* the score at the maximum is exp(0) / sum(exp(heatmap - max)) = 1 / sum(...), the same float
  division detectron2 computes there, so the normaliser alone is needed, for all RoIs at once;
* coordinates are the same elementwise float32 operations, on (R, K) tensors;
* box sizes come to the host in one `tolist()`.
The result equals detectron2's exactly (`tests/modeling/test_keypoint_decoding.py`);
`benchmarks/heads.py` times the two side by side.
"""

import torch
from torch.nn import functional as F


def decode_keypoint_heatmaps(logits: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Keypoints of each RoI from its heatmaps of logits.

    Args:
        logits: (R, K, M, M) heatmap logits.
        boxes: (R, 4) the RoIs' boxes (x0, y0, x1, y1) in image pixels.

    Returns:
        (R, K, 4): x, y (image coordinates of the maximal resized pixel's centre, Heckbert's
        c = d + 0.5 as in `Keypoints.to_heatmap`), that pixel's logit, and its score.
    """
    logits, boxes = logits.detach(), boxes.detach()
    num_rois, num_keypoints = logits.shape[:2]
    widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=1)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()

    peak_logits = logits.new_empty(num_rois, num_keypoints)
    peak_indices = torch.empty(num_rois, num_keypoints, dtype=torch.int64, device=logits.device)
    resized_sizes = torch.stack([heights_ceil, widths_ceil], dim=1).long().tolist()
    for roi, (height, width) in enumerate(resized_sizes):
        resized = F.interpolate(logits[roi : roi + 1], size=(height, width), mode="bicubic", align_corners=False)
        torch.max(resized.view(num_keypoints, -1), dim=1, out=(peak_logits[roi], peak_indices[roi]))

    resized_widths = widths_ceil.long()[:, None]
    x_pixel = peak_indices % resized_widths
    y_pixel = (peak_indices - x_pixel) // resized_widths
    x = (x_pixel.float() + 0.5) * (widths / widths_ceil)[:, None] + boxes[:, 0:1]
    y = (y_pixel.float() + 0.5) * (heights / heights_ceil)[:, None] + boxes[:, 1:2]
    scores = 1.0 / (logits - peak_logits[:, :, None, None]).exp().sum(dim=(2, 3))
    return torch.stack([x, y, peak_logits, scores], dim=2)
