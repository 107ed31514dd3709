"""A built Mask / Keypoint R-CNN's inference as one function of tensors, which `torch.export` and the
ONNX exporter can trace: `DeployableRCNN`.

It computes what `MaskRCNN.inference` followed by detectron2's `detector_postprocess` computes for
one image, in float32, with no Python decision on a data-dependent value (the number of proposals
or detections): detectron2's filters that it applies only "when needed" (non-finite boxes, empty
boxes) are applied always, which keeps the same rows; batched NMS is `nms.batched_nms_top_k`, an op
that each export writes in the form its runtime runs fastest. The image arrives resized to the test size
(`runtime.resize_for_model`); normalising, padding and pasting the masks at the original size
are in the graph. Keypoints leave the graph as heatmaps: detectron2 decodes each at its box's size
in pixels, a per-detection resize that no exporter puts in a graph, so they are decoded after it by
`decode_keypoint_heatmaps` (`runtime.instances_from_outputs`), the same for every runtime.

Outputs, N detections (0 to TEST.DETECTIONS_PER_IMAGE), in the original image's pixels:
    boxes (N, 4) float32, scores (N,) float32, classes (N,) int64,
    masks (N, H, W) bool (mask models), keypoint_heatmaps (N, K, M, M) float32 and
    keypoint_boxes (N, 4) float32, the boxes in the resized image that decode them (keypoint models).
"""

import torch
from detectron2.layers.mask_ops import _do_paste_mask
from detectron2.modeling.poolers import assign_boxes_to_levels
from torch import nn
from torch.nn import functional as F

from ..modeling.keypoint_heads import BaseKeypointHead
from ..modeling.mask_heads import BaseMaskHead
from ..modeling.roi_feature_ops import ROIAlign, ROIAlignV2, ROIWarp
from ..modeling.roi_heads import AnyPoolerROIHeads
from .nms import ALL, batched_nms_top_k

# An image side's range for the exported graph, after the test resize. Below 128 pixels the stride-64
# level would be a single cell, which the traced graph does not cover.
MIN_SIDE, MAX_SIDE = 128, 8192
MASK_THRESHOLD = 0.5  # detectron2's paste_masks_in_image / ROIMasks.to_bitmasks default
INPUT_NAMES = ("image", "original_size", "score_threshold")  # forward's arguments, in order
OUTPUT_NAMES = ("boxes", "scores", "classes", "masks", "keypoint_heatmaps", "keypoint_boxes")
# RoI feature ops that export (torchvision's roi_align, which ONNX's RoiAlign computes). Not ROIPool:
# torch's ONNX exporter has no translation of torchvision's roi_pool; nor the max-aggregating ops,
# whose sampling asks each RoI's size while tracing.
EXPORTABLE_ROI_OPS = (ROIAlign, ROIAlignV2, ROIWarp)


def export_errors(cfg) -> list[str]:
    """Why the model `cfg` builds cannot be exported, each naming its config key, as far as the config
    tells ([] when it can); `DeployableRCNN` checks the classes of the built model's heads."""
    errors = []
    if cfg.MODEL.META_ARCHITECTURE != "MaskRCNN":
        errors.append(f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}: only MaskRCNN exports")
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN":
        errors.append(f"MODEL.PROPOSAL_GENERATOR.NAME={cfg.MODEL.PROPOSAL_GENERATOR.NAME!r}: only RPN exports")
    exportable = {op.__name__ for op in EXPORTABLE_ROI_OPS}
    heads = [("ROI_BOX_HEAD", True), ("ROI_MASK_HEAD", cfg.MODEL.MASK_ON), ("ROI_KEYPOINT_HEAD", cfg.MODEL.KEYPOINT_ON)]
    for head, used in heads:
        pooler_type = cfg.MODEL[head].POOLER_TYPE
        if used and pooler_type not in exportable:
            errors.append(
                f"MODEL.{head}.POOLER_TYPE={pooler_type!r}: exports with {', '.join(sorted(exportable))} only "
                "(torch's ONNX exporter does not translate ROIPool's kernel, and the max-aggregating ops ask each "
                "RoI's size while they are traced)"
            )
    return errors


class DeployableRCNN(nn.Module):
    """`model`'s inference on one resized image (see the module's docstring).

    Args:
        model: a MaskRCNN built from a config that `export_errors` accepts, in eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        roi_heads = model.roi_heads
        if not isinstance(roi_heads, AnyPoolerROIHeads):
            raise ValueError(
                f"MODEL.ROI_HEADS.NAME: {type(roi_heads).__name__} is not AnyPoolerROIHeads (the FPN heads); "
                "the C4 heads' res5 stage runs per RoI batch in Python"
            )
        if roi_heads.mask_on and not isinstance(roi_heads.mask_head, BaseMaskHead):
            raise ValueError(
                f"MODEL.ROI_MASK_HEAD.NAME: {type(roi_heads.mask_head).__name__} is not a mask_rcnn_ext mask head "
                "(BaseMaskHead), whose layers and read-out the export calls"
            )
        if roi_heads.keypoint_on and not isinstance(roi_heads.keypoint_head, BaseKeypointHead):
            raise ValueError(
                f"MODEL.ROI_KEYPOINT_HEAD.NAME: {type(roi_heads.keypoint_head).__name__} is not a mask_rcnn_ext "
                "keypoint head (BaseKeypointHead), whose layers the export calls"
            )
        self.model = model
        self.mask_on = roi_heads.mask_on
        self.keypoint_on = roi_heads.keypoint_on

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names of `forward`'s outputs, in their order."""
        tasks = {"masks": self.mask_on, "keypoint_heatmaps": self.keypoint_on, "keypoint_boxes": self.keypoint_on}
        return tuple(name for name in OUTPUT_NAMES if tasks.get(name, True))

    def forward(
        self, image: torch.Tensor, original_size: torch.Tensor, score_threshold: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            image: (3, h, w) uint8, the image resized to the test size, in the config's INPUT.FORMAT.
            original_size: (2,) int64, the image's (H, W) before resizing.
            score_threshold: () float32, the score a detection must exceed (the config's
                MODEL.ROI_HEADS.SCORE_THRESH_TEST, chosen at run time).

        Returns:
            {name: tensor} for the OUTPUT_NAMES of the model's tasks.
        """
        model, roi_heads = self.model, self.model.roi_heads
        height, width = image.shape[-2:]
        features = model.backbone(self._normalized_padded(image))
        proposals = self._proposals(features, height, width)

        box_features = self._head_on_rois(
            roi_heads.box_pooler, roi_heads.box_in_features, features, proposals, roi_heads.box_head
        )
        predictions = roi_heads.box_predictor(box_features)
        boxes, scores, classes = self._detections(predictions, proposals, score_threshold, height, width)

        # detector_postprocess: to the original size, clipped there, and empty boxes dropped
        original_height, original_width = original_size[0], original_size[1]
        scale = torch.stack([original_width / width, original_height / height] * 2).float()
        output_boxes = self._clipped(boxes * scale, original_height.float(), original_width.float())
        kept = self._nonempty(output_boxes)
        outputs = {"boxes": output_boxes[kept], "scores": scores[kept], "classes": classes[kept]}
        boxes = boxes[kept]
        if self.mask_on:
            mask_head = roi_heads.mask_head
            in_features = roi_heads.mask_in_features
            logits = self._head_on_rois(roi_heads.mask_pooler, in_features, features, boxes, mask_head.layers)
            probabilities = mask_head.mask_loss.probabilities(logits.float(), outputs["classes"])
            # detectron2's pasting over the whole image (its GPU path; its CPU path restricts the same
            # computation to each box's region, which is zero elsewhere), thresholded as it thresholds
            pasted, _ = _do_paste_mask(
                probabilities, outputs["boxes"], original_height, original_width, skip_empty=False
            )
            outputs["masks"] = pasted >= MASK_THRESHOLD
        if self.keypoint_on:
            in_features, layers = roi_heads.keypoint_in_features, roi_heads.keypoint_head.layers
            heatmaps = self._head_on_rois(roi_heads.keypoint_pooler, in_features, features, boxes, layers)
            outputs["keypoint_heatmaps"] = heatmaps.float()
            outputs["keypoint_boxes"] = boxes
        return outputs

    def _normalized_padded(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, h', w'): GeneralizedRCNN.preprocess_image's normalised image, zero-padded at the
        bottom and right to the backbone's size_divisibility."""
        model = self.model
        x = (image.float() - model.pixel_mean) / model.pixel_std
        divisor = model.backbone.size_divisibility
        height, width = x.shape[-2:]
        if divisor > 1:  # padded sizes written as multiples of the divisor, which the tracer then knows them for
            padded_height, padded_width = (
                (height + divisor - 1) // divisor * divisor,
                (width + divisor - 1) // divisor * divisor,
            )
            x = F.pad(x, (0, padded_width - width, 0, padded_height - height))
        return x[None]

    def _proposals(self, features: dict[str, torch.Tensor], height, width) -> torch.Tensor:
        """(P, 4) the RPN's proposals for the image (detectron2's `find_top_rpn_proposals` at test)."""
        rpn = self.model.proposal_generator
        level_features = [features[f] for f in rpn.in_features]
        anchors = rpn.anchor_generator(level_features)
        logits, deltas = rpn.rpn_head(level_features)
        boxes, scores, levels = [], [], []
        for level, (anchors_i, logits_i, deltas_i) in enumerate(zip(anchors, logits, deltas)):
            logits_i = logits_i[0].permute(1, 2, 0).flatten()  # (Hi * Wi * A,)
            deltas_i = deltas_i[0].view(-1, 4, *deltas_i.shape[-2:]).permute(2, 3, 0, 1).reshape(-1, 4)
            proposals_i = rpn.box2box_transform.apply_deltas(deltas_i, anchors_i.tensor)
            count = torch.sym_min(logits_i.shape[0], rpn.pre_nms_topk[False])
            logits_i, order = logits_i.sort(descending=True)
            boxes.append(proposals_i[order[:count]])
            scores.append(logits_i[:count])
            levels.append(torch.full_like(order[:count], level))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes = self._clipped(boxes, height, width)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        nonempty = (widths > rpn.min_box_size) & (heights > rpn.min_box_size)
        boxes, scores, levels = boxes[nonempty], scores[nonempty], levels[nonempty]
        keep = batched_nms_top_k(boxes, scores, levels, rpn.nms_thresh, len(level_features), rpn.post_nms_topk[False])
        return boxes[keep]

    def _head_on_rois(self, pooler, in_features: list[str], features: dict[str, torch.Tensor], boxes, head):
        """`head`'s output (R, ...) on `pooler`'s features of `boxes` (R, 4), for R = 0 too: exported,
        a GroupNorm reshapes its input to (R, groups, -1), which ONNX cannot do for 0 rows, so the
        head runs on one spare box more, whose output is dropped."""
        spare = torch.cat([boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=boxes.device)])
        return head(self._pool(pooler, in_features, features, spare))[:-1]

    def _pool(self, pooler, in_features: list[str], features: dict[str, torch.Tensor], boxes: torch.Tensor):
        """(R, C, S, S): `pooler`'s features of `boxes` (R, 4), each from its FPN level (ROIPooler)."""
        rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
        level_features = [features[f] for f in in_features]
        if len(level_features) == 1:
            return pooler.level_poolers[0](level_features[0], rois)
        levels = assign_boxes_to_levels(
            [_BoxList(boxes)], pooler.min_level, pooler.max_level, pooler.canonical_box_size, pooler.canonical_level
        )
        output = boxes.new_zeros(boxes.shape[0], level_features[0].shape[1], *pooler.output_size)
        for level, (x, op) in enumerate(zip(level_features, pooler.level_poolers)):
            indices = torch.nonzero(levels == level).squeeze(1)
            output = output.index_put((indices,), op(x, rois[indices]))
        return output

    def _detections(self, predictions, proposals: torch.Tensor, score_threshold: torch.Tensor, height, width):
        """(boxes (N, 4), scores (N,), classes (N,)) in the resized image: detectron2's
        `FastRCNNOutputLayers.inference` and `fast_rcnn_inference_single_image`."""
        predictor = self.model.roi_heads.box_predictor
        class_logits, deltas = predictions
        boxes = predictor.box2box_transform.apply_deltas(deltas, proposals)  # (P, 4 * classes or 4)
        scores = F.softmax(class_logits, dim=-1)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = boxes[valid], scores[valid][:, :-1]
        boxes = self._clipped(boxes.reshape(-1, 4), height, width).view(boxes.shape[0], -1, 4)
        candidates = scores > score_threshold
        indices = candidates.nonzero()  # (candidate, 2): proposal, class
        boxes = boxes[indices[:, 0], 0] if boxes.shape[1] == 1 else boxes[candidates]
        scores = scores[candidates]
        topk = predictor.test_topk_per_image  # all detections when negative, as detectron2 reads it
        nms_threshold, classes = predictor.test_nms_thresh, predictor.num_classes
        keep = batched_nms_top_k(boxes, scores, indices[:, 1], nms_threshold, classes, topk if topk >= 0 else ALL)
        return boxes[keep], scores[keep], indices[keep, 1]

    @staticmethod
    def _clipped(boxes: torch.Tensor, height, width) -> torch.Tensor:
        """Boxes.clip: x within [0, width], y within [0, height] (sizes as numbers or 0-dim tensors)."""
        limits = (width, height, width, height)
        return torch.stack(
            [torch.clamp_max(side.clamp(min=0), limit) for side, limit in zip(boxes.unbind(dim=1), limits)], dim=1
        )

    @staticmethod
    def _nonempty(boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
        """Boxes.nonempty: width and height above `threshold`."""
        return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


class _BoxList:
    """What `assign_boxes_to_levels` reads of a Boxes, its `area()` (detectron2's Boxes asks at
    construction whether it is empty, which the tracer cannot answer)."""

    def __init__(self, boxes: torch.Tensor):
        self.tensor = boxes

    def area(self) -> torch.Tensor:
        return (self.tensor[:, 2] - self.tensor[:, 0]) * (self.tensor[:, 3] - self.tensor[:, 1])
