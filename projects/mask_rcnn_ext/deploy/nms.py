"""Batched NMS in the exported graph: `batched_nms_top_k`, the first k indices torchvision's
`batched_nms` keeps, as an op of its own (`mask_rcnn_ext::batched_nms_top_k`) that each export writes in
the form its runtime runs fastest:

  * eagerly, torchvision's `batched_nms` itself (as detectron2 calls it);
  * in ONNX (`export.py`), torchvision's coordinate trick (each group's boxes moved apart by the group
    index times the largest coordinate + 1) and one NonMaxSuppression told to keep at most k boxes,
    which then stops once it has kept them;
  * in the .pt2 program, `batched_nms_top_k_per_group`: torchvision's per-group loop over every group
    the graph can have (their count is fixed: the FPN levels, the classes), in torch and torchvision
    ops alone.

One NMS over every group's boxes compares each candidate with every box kept so far, and at score
threshold 0 a COCO model brings up to 80,000 class-box candidates: without k, and in torch without the
per-group loop, NMS took most of an image's time (docs/deploy.md#the-graph).
"""

import torch
import torchvision

ALL = 2**62  # k that keeps every box (an int64 for ONNX, below SymInt's limit)


@torch.library.custom_op("mask_rcnn_ext::batched_nms_top_k", mutates_args=())
def batched_nms_top_k(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float, num_groups: int, k: int
) -> torch.Tensor:
    """(min(k, kept),) int64: the first `k` indices, by decreasing score, that NMS keeps of `boxes`
    (N, 4) with `scores` (N,), boxes of different `groups` (N,) int64 in [0, num_groups) never
    suppressing each other."""
    return torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)[:k]


@batched_nms_top_k.register_fake
def _batched_nms_top_k_shape(boxes, scores, groups, iou_threshold, num_groups, k):
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(max=k),), dtype=torch.int64)


def batched_nms_top_k_per_group(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float, num_groups: int, k: int
) -> torch.Tensor:
    """`batched_nms_top_k` as torchvision computes it for large inputs, one NMS per group, written for a
    tracer: a loop over all `num_groups` groups rather than over those present."""
    kept = torch.zeros_like(scores, dtype=torch.bool)
    for group in range(num_groups):  # out of place: the program is traced again, functionally
        indices = torch.nonzero(groups == group).squeeze(1)
        kept_indices = indices[torchvision.ops.nms(boxes[indices], scores[indices], iou_threshold)]
        kept = kept.index_put((kept_indices,), torch.ones_like(kept_indices, dtype=torch.bool))
    indices = torch.nonzero(kept).squeeze(1)
    return indices[scores[indices].sort(descending=True)[1]][:k]


# torchvision's fake nms (what tracers run for it) says that NMS keeps at least 2 boxes (the default
# min of the `create_unbacked_symint` it calls), which a traced program then asserts at run time: the
# .pt2 program failed on images with fewer than 2 detections. NMS keeps 0 boxes or more.
@torch.library.register_fake("torchvision::nms", allow_override=True)
def _nms_shape(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.int64)
