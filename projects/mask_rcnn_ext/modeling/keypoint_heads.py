"""The paper's keypoint head (Section 5), in detectron2's ROI_KEYPOINT_HEAD_REGISTRY.

`BaseKeypointHead` owns the loss (`keypoint_losses.py`) and the read-out of keypoints; a concrete
head only maps RoI features to K heatmaps of logits. To write your own, subclass `BaseKeypointHead`
and implement `layers`, or subclass ours and override `loss` or `inference` alone.

* `KeypointMaskHead`: the paper's head: MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS x conv3x3 + ReLU (the
  paper: 8 x 512), deconv 4x4 stride 2 to K channels, bilinear upsampling by
  MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE: (R, C, S, S) -> (R, K, M, M), M = 2 * UP_SCALE * S (the
  paper: 14 -> 56). It is built by detectron2's KRCNNConvDeconvUpsampleHead (same modules, names
  and initialisation, so detectron2 keypoint checkpoints load); with UP_SCALE 2, detectron2's
  fixed factor, it computes exactly what that head computes.
"""

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_KEYPOINT_HEAD_REGISTRY
from detectron2.modeling.roi_heads.keypoint_head import BaseKeypointRCNNHead, KRCNNConvDeconvUpsampleHead
from detectron2.structures import Instances

from .keypoint_decoding import decode_keypoint_heatmaps
from .keypoint_losses import keypoint_loss_normalizer, keypoint_softmax_loss, keypoint_targets


class BaseKeypointHead(BaseKeypointRCNNHead):
    """A keypoint head with the paper's loss and detectron2's keypoint read-out.

    Subclasses implement `layers(x)`: RoI features (R, C, S, S) -> heatmap logits (R, K, M, M).
    BaseKeypointRCNNHead's constructor and from_config give `num_keypoints`, `loss_weight`
    (MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT) and `loss_normalizer` ("visible", or the per-image
    normalizer; see `keypoint_loss_normalizer`), read from the keys detectron2 reads.
    Training returns `{"loss_keypoint": loss * loss_weight}`; inference sets `pred_keypoints` and
    `pred_keypoint_heatmaps`, as detectron2's heads do.
    """

    def forward(self, x, instances: list[Instances]):
        # float32 whatever precision the layers ran in (autocast): the loss's softmax and the
        # decoding's resize and maximum are read at sub-pixel precision
        logits = self.layers(x).float()
        if self.training:
            return {"loss_keypoint": self.loss(logits, instances) * self.loss_weight}
        self.inference(logits, instances)
        return instances

    def loss(self, logits: torch.Tensor, instances: list[Instances]) -> torch.Tensor:
        """Scalar loss of `logits` (R, K, M, M) against the foreground proposals' `gt_keypoints`;
        zero, still connected to the graph, without proposals or valid keypoints."""
        targets, valid = keypoint_targets(instances, logits.shape[-1])
        normalizer = keypoint_loss_normalizer(self.loss_normalizer, len(instances), valid)
        return keypoint_softmax_loss(logits, targets, valid, normalizer)

    def inference(self, logits: torch.Tensor, instances: list[Instances]) -> None:
        """Set, on each image's instances (which have `pred_boxes`), `pred_keypoints` (R_i, K, 3):
        (x, y, score) in image coordinates, and `pred_keypoint_heatmaps` (R_i, K, M, M): the logits.

        Each heatmap is resized bicubically to its box's size in pixels; a keypoint is the centre
        of the maximal pixel, its score that pixel's softmax probability normalised over the M x M
        heatmap: detectron2's `heatmaps_to_keypoints`, computed by `decode_keypoint_heatmaps`.
        """
        logits = logits.detach()
        boxes = torch.cat([i.pred_boxes.tensor for i in instances])
        keypoints = decode_keypoint_heatmaps(logits, boxes)[:, :, [0, 1, 3]]  # drop the raw logit
        num_per_image = [len(i) for i in instances]
        for per_image, image_keypoints, heatmaps in zip(
            instances, keypoints.split(num_per_image), logits.split(num_per_image)
        ):
            per_image.pred_keypoints = image_keypoints
            per_image.pred_keypoint_heatmaps = heatmaps


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class KeypointMaskHead(BaseKeypointHead, KRCNNConvDeconvUpsampleHead):
    """The paper's keypoint head: detectron2's KRCNNConvDeconvUpsampleHead layers with a
    configurable upsampling factor, and our loss and read-out."""

    @configurable
    def __init__(self, input_shape, *, up_scale: int, **kwargs):
        """
        Args:
            input_shape: the pooled RoI features (ShapeSpec).
            up_scale: the bilinear upsampling factor after the deconv, >= 1.
            kwargs: for KRCNNConvDeconvUpsampleHead (conv_dims) and BaseKeypointRCNNHead.
        """
        if up_scale < 1:
            raise ValueError(f"KeypointMaskHead: MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE={up_scale}, expected >= 1")
        super().__init__(input_shape=input_shape, **kwargs)
        # detectron2 fixes its factor at 2.0 ("this can be made an option"); its `layers` reads it here
        self.up_scale = float(up_scale)

    @classmethod
    def from_config(cls, cfg, input_shape):
        return dict(super().from_config(cfg, input_shape), up_scale=cfg.MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE)
