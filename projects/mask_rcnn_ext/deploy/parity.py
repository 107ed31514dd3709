"""How far an exported model's detections are from the PyTorch model's on one image: each reference
detection paired with the exported one of its class nearest to its box (detections of equal scores
may come in either order), and the largest differences of the pairs against `TOLERANCES`."""

import dataclasses

import torch
from detectron2.structures import Instances

# What "the same detections" means: box corners and keypoints in pixels, scores, per-detection mask IoU.
TOLERANCES = {"box_px": 0.01, "score": 1e-4, "mask_iou": 0.995, "keypoint_px": 0.05}


@dataclasses.dataclass(frozen=True)
class ParityReport:
    detections: int  # the reference's
    unmatched: int  # reference detections without an exported one of their class (and count mismatch)
    box_px: float = 0.0  # largest difference of a box corner
    score: float = 0.0
    mask_iou: float = 1.0  # smallest IoU of a pair's masks
    keypoint_px: float = 0.0  # largest difference of a keypoint coordinate

    @property
    def passed(self) -> bool:
        return (
            self.unmatched == 0
            and self.box_px <= TOLERANCES["box_px"]
            and self.score <= TOLERANCES["score"]
            and self.mask_iou >= TOLERANCES["mask_iou"]
            and self.keypoint_px <= TOLERANCES["keypoint_px"]
        )

    def __str__(self) -> str:
        return (
            f"{self.detections} detections, {self.unmatched} unmatched; largest differences: "
            f"boxes {self.box_px:.3g} px, scores {self.score:.3g}, keypoints {self.keypoint_px:.3g} px; "
            f"smallest mask IoU {self.mask_iou:.4f} "
            f"({'within' if self.passed else 'OUTSIDE'} the tolerances {TOLERANCES})"
        )


def compare_instances(exported: Instances, reference: Instances) -> ParityReport:
    """The ParityReport of `exported` against `reference` (both on the CPU, at the image's size)."""
    count = len(reference)
    if count == 0 or len(exported) == 0:
        return ParityReport(count, max(count, len(exported)))
    ref_boxes, exp_boxes = reference.pred_boxes.tensor, exported.pred_boxes.tensor
    distance = (ref_boxes[:, None, :] - exp_boxes[None, :, :]).abs().amax(dim=2)
    distance[reference.pred_classes[:, None] != exported.pred_classes[None, :]] = float("inf")
    pairs = []
    for i in range(count):  # greedily, in the reference's (score) order
        j = int(distance[i].argmin())
        if torch.isfinite(distance[i, j]):
            pairs.append((i, j))
            distance[:, j] = float("inf")
    unmatched = count - len(pairs) + abs(len(exported) - count)
    if not pairs:
        return ParityReport(count, unmatched)
    ref_index, exp_index = (torch.tensor(index) for index in zip(*pairs))
    report = {
        "box_px": (ref_boxes[ref_index] - exp_boxes[exp_index]).abs().max().item(),
        "score": (reference.scores[ref_index] - exported.scores[exp_index]).abs().max().item(),
    }
    if reference.has("pred_masks"):
        a, b = reference.pred_masks[ref_index], exported.pred_masks[exp_index]
        intersection, union = (a & b).flatten(1).sum(1), (a | b).flatten(1).sum(1)
        iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union, dtype=torch.float))
        report["mask_iou"] = iou.min().item()
    if reference.has("pred_keypoints"):
        differences = reference.pred_keypoints[ref_index, :, :2] - exported.pred_keypoints[exp_index, :, :2]
        report["keypoint_px"] = differences.abs().max().item()
    return ParityReport(count, unmatched, **report)
