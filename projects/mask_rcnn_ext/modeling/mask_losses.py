"""Mask targets, the paper's two mask losses, and masks read back from logits: plain tensors.

`MASK_LOSSES` maps `MASK_RCNN_EXT.MASK_HEAD.LOSS` to a `MaskLoss`:

* "sigmoid" (the paper's default): one binary mask per class, trained with the average binary
  cross-entropy of the ground-truth class's mask only, so classes never compete. With
  `MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK` there is one mask for all classes (paper: 29.7 vs 30.3).
* "softmax" (Table 2(b), "multinomial"): a per-pixel softmax over the K classes plus background
  (channel K, last, as in detectron2's box classifier), the cross-entropy FCN uses for semantic
  segmentation: the target is the ground-truth class inside the object's mask and background
  outside. Masks of different classes compete.

Inference reads the predicted class's mask as a soft score `(R, 1, M, M)`, which is pasted into
the image and binarized at 0.5 (`mask_pasting.py`): the sigmoid of the class's logit, or for the softmax
the class against its strongest rival, above 0.5 where the class wins the pixel's argmax.
"""

from dataclasses import dataclass
from typing import Callable

import torch
from detectron2.structures import BitMasks, Instances
from torch.nn import functional as F

# Proposals whose ground-truth bitmasks are cropped at once. detectron2's BitMasks.crop_and_resize
# makes a float32 copy of every proposal's full-image mask at once (256 foreground proposals at
# 800x1333: 256 x 800 x 1333 float32), which would set a training step's peak memory. In chunks,
# the copy is that of 16; each proposal's crop is computed alone, so the result is the same bit for bit.
BITMASK_CROP_CHUNK = 16


def mask_targets(instances: list[Instances], mask_side: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ground truth of each foreground proposal, in the order the mask head sees them.

    Args:
        instances: per image, the sampled foreground proposals with `proposal_boxes`,
            `gt_classes` and `gt_masks` (BitMasks or PolygonMasks).
        mask_side: M, the side of the predicted masks.
        device: where the returned tensors go (the logits').

    Returns:
        gt_classes (R,) int64 and gt_masks (R, M, M) bool: the ground-truth mask cropped to the
        proposal box and resized to M x M (detectron2's `crop_and_resize`; a soft result is
        binarized at 0.5), as detectron2's `mask_rcnn_loss` computes them.
    """
    gt_classes, gt_masks = [], []
    for per_image in instances:
        if len(per_image) == 0:
            continue
        gt_classes.append(per_image.gt_classes.to(dtype=torch.int64))
        gt_masks.append(
            _cropped_gt_masks(per_image.gt_masks, per_image.proposal_boxes.tensor, mask_side).to(device=device)
        )
    if not gt_masks:
        return torch.zeros(0, dtype=torch.int64, device=device), torch.zeros(
            0, mask_side, mask_side, dtype=torch.bool, device=device
        )
    gt_masks = torch.cat(gt_masks)
    return torch.cat(gt_classes).to(device=device), gt_masks if gt_masks.dtype == torch.bool else gt_masks > 0.5


def _cropped_gt_masks(gt_masks, boxes: torch.Tensor, mask_side: int) -> torch.Tensor:
    """gt_masks (R, H, W) BitMasks or PolygonMasks, boxes (R, 4) -> (R, M, M): detectron2's
    `crop_and_resize`, on bitmasks in chunks of BITMASK_CROP_CHUNK proposals."""
    if not isinstance(gt_masks, BitMasks):
        return gt_masks.crop_and_resize(boxes, mask_side)
    chunks = range(0, len(boxes), BITMASK_CROP_CHUNK)
    return torch.cat(
        [
            gt_masks[i : i + BITMASK_CROP_CHUNK].crop_and_resize(boxes[i : i + BITMASK_CROP_CHUNK], mask_side)
            for i in chunks
        ]
    )


def _class_channels(mask_logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(R, M, M): each row's channel `classes[r]`, or channel 0 for class-agnostic (1-channel) logits."""
    if mask_logits.shape[1] == 1:
        return mask_logits[:, 0]
    return mask_logits[torch.arange(mask_logits.shape[0], device=mask_logits.device), classes]


def sigmoid_mask_loss(mask_logits: torch.Tensor, gt_classes: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Average binary cross-entropy of the ground-truth class's mask.

    Args:
        mask_logits: (R, K, M, M), or (R, 1, M, M) for class-agnostic masks.
        gt_classes: (R,) in [0, K).
        gt_masks: (R, M, M) bool.
    """
    return F.binary_cross_entropy_with_logits(
        _class_channels(mask_logits, gt_classes), gt_masks.to(torch.float32), reduction="mean"
    )


def sigmoid_mask_probabilities(mask_logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(R, 1, M, M) sigmoid of each row's class channel (channel 0 when class-agnostic)."""
    return _class_channels(mask_logits, classes)[:, None].sigmoid()


def softmax_mask_loss(mask_logits: torch.Tensor, gt_classes: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel K+1-way cross-entropy, averaged over all R * M * M pixels.

    Args:
        mask_logits: (R, K + 1, M, M); channel K is background.
        gt_classes: (R,) in [0, K).
        gt_masks: (R, M, M) bool: pixels labelled `gt_classes[r]`; the others are background.
    """
    background = mask_logits.shape[1] - 1
    targets = torch.where(gt_masks, gt_classes[:, None, None], torch.full_like(gt_classes, background)[:, None, None])
    return F.cross_entropy(mask_logits, targets, reduction="mean")


def softmax_mask_probabilities(mask_logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(R, 1, M, M): each row's class against its strongest rival (another class or background),
    sigmoid(z_c - max_{k != c} z_k) = p_c / (p_c + max_{k != c} p_k).

    Above 0.5 exactly where the class wins the pixel's argmax, the label a multinomial (FCN)
    model gives the pixel; thresholding p_c itself at 0.5 would ask for more than winning.
    """
    own = _class_channels(mask_logits, classes)
    rivals = mask_logits.clone()
    rivals[torch.arange(mask_logits.shape[0], device=mask_logits.device), classes] = float("-inf")
    return (own - rivals.amax(dim=1)).sigmoid()[:, None]


@dataclass(frozen=True)
class MaskLoss:
    """How mask logits are trained and read back.

    Attributes:
        loss: (mask_logits (R, C, M, M), gt_classes (R,), gt_masks (R, M, M) bool) -> scalar.
        probabilities: (mask_logits, classes (R,)) -> (R, 1, M, M) soft mask of each row's class,
            binarized at 0.5.
        background_channels: channels beyond the per-class (or single agnostic) masks.
        allows_class_agnostic: whether one mask for all classes makes sense with this loss.
    """

    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    probabilities: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    background_channels: int
    allows_class_agnostic: bool

    def num_channels(self, num_classes: int, class_agnostic: bool) -> int:
        """C, the channels a head predicts per pixel."""
        return (1 if class_agnostic else num_classes) + self.background_channels


MASK_LOSSES: dict[str, MaskLoss] = {
    "sigmoid": MaskLoss(
        sigmoid_mask_loss, sigmoid_mask_probabilities, background_channels=0, allows_class_agnostic=True
    ),
    "softmax": MaskLoss(
        softmax_mask_loss, softmax_mask_probabilities, background_channels=1, allows_class_agnostic=False
    ),
}
