"""The paper's keypoint targets and loss (Section 5), on plain tensors.

Each of the K keypoints of a RoI is a one-hot m x m mask: the one pixel the ground-truth keypoint
falls in. The head predicts K heatmaps of logits per RoI and is trained with an m^2-way softmax
cross-entropy per keypoint, which makes the keypoint's pixels compete for a single location.
Targets and losses equal detectron2's `keypoint_rcnn_loss`.
"""

from typing import Union

import torch
from detectron2.structures import Instances
from torch.nn import functional as F


def keypoint_targets(instances: list[Instances], heatmap_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target pixel of each (RoI, keypoint), in the order the keypoint head sees them.

    Args:
        instances: per image, the sampled foreground proposals with `proposal_boxes` and
            `gt_keypoints` (Keypoints, (R_i, K, 3): x, y, COCO visibility v).
        heatmap_side: m, the side of the predicted heatmaps.

    Returns:
        targets (R * K,) int64 and valid (R * K,) bool, RoI-major as `logits.flatten(0, 1)`:
        the index y * m + x of the heatmap pixel each keypoint falls in (detectron2's
        `Keypoints.to_heatmap`), and whether it is labelled (v > 0) and inside its proposal.
    """
    targets, valid = [], []
    for per_image in instances:
        if len(per_image) == 0:  # an image without foreground may lack the gt fields
            continue
        image_targets, image_valid = per_image.gt_keypoints.to_heatmap(per_image.proposal_boxes.tensor, heatmap_side)
        targets.append(image_targets.flatten())
        valid.append(image_valid.flatten().bool())
    if not targets:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
    return torch.cat(targets), torch.cat(valid)


def keypoint_loss_normalizer(loss_normalizer: Union[str, float], num_images: int, valid: torch.Tensor) -> float:
    """What the summed keypoint loss of a batch is divided by.

    Args:
        loss_normalizer: "visible" for the number of valid keypoints in the batch, or a float for
            that many keypoints per image (detectron2's NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS=False:
            NUM_KEYPOINTS * BATCH_SIZE_PER_IMAGE * POSITIVE_FRACTION), the same for every batch.
        num_images: images in the batch.
        valid: (R * K,) bool, from `keypoint_targets`.
    """
    return int(valid.sum()) if loss_normalizer == "visible" else num_images * loss_normalizer


def keypoint_softmax_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, normalizer: float
) -> torch.Tensor:
    """Sum over valid keypoints of the m^2-way softmax cross-entropy, divided by `normalizer`.

    Args:
        logits: (R, K, m, m) heatmap logits.
        targets: (R * K,) int64 in [0, m^2), from `keypoint_targets`.
        valid: (R * K,) bool: which keypoints count.
        normalizer: from `keypoint_loss_normalizer`.

    Returns:
        A scalar; zero, still connected to the graph, when no keypoint is valid.
    """
    if not valid.any():
        return logits.sum() * 0
    return F.cross_entropy(logits.flatten(2).flatten(0, 1)[valid], targets[valid], reduction="sum") / normalizer
