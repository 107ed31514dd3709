"""The paper's mask heads, in detectron2's ROI_MASK_HEAD_REGISTRY.

`BaseMaskHead` owns the loss and inference, chosen by `MASK_RCNN_EXT.MASK_HEAD.LOSS`
(`mask_losses.py`); a concrete head only maps RoI features to mask logits. To write your own,
subclass `BaseMaskHead` and implement `layers` (size the last layer with `num_mask_channels`), or
subclass one of ours and override `loss` or `inference` alone.

* `FCNMaskHead`: the paper's FCN head (Figure 4): MODEL.ROI_MASK_HEAD.NUM_CONV x conv3x3 of
  CONV_DIM channels (NORM), deconv 2x2 stride 2, 1x1 predictor: (R, C_in, S, S) -> (R, C, 2S, 2S).
  It is detectron2's MaskRCNNConvUpsampleHead (same modules, names, initialisation), so
  detectron2 checkpoints load into it. With NUM_CONV 0 it is the C4 head (res5 features, deconv,
  predictor: 7x7 -> 14x14).
* `MLPMaskHead`: Table 2(e): fully connected layers of MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS on the
  flattened RoI features, then one fc predicting every class's mask at twice the pooled
  resolution (28x28 from 14x14, the FCN head's output size).
"""

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import ROI_MASK_HEAD_REGISTRY
from detectron2.modeling.roi_heads.mask_head import BaseMaskRCNNHead, MaskRCNNConvUpsampleHead
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from torch import nn

from .mask_losses import MASK_LOSSES, mask_targets


def num_mask_channels(cfg) -> int:
    """C, the channels a mask head predicts per pixel under `cfg`'s loss and class-agnostic setting."""
    return MASK_LOSSES[cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS].num_channels(
        cfg.MODEL.ROI_HEADS.NUM_CLASSES, cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK
    )


class BaseMaskHead(BaseMaskRCNNHead):
    """A mask head whose loss and mask read-out are those of MASK_RCNN_EXT.MASK_HEAD.LOSS.

    Subclasses implement `layers(x)`: RoI features (R, C_in, S, S) -> mask logits (R, C, M, M)
    with C = `num_mask_channels(cfg)` (BaseMaskRCNNHead declares it; a mixin's `layers` must come
    after this class in the bases, as in FCNMaskHead).
    Training returns `{"loss_mask": loss * loss_weight}` (MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT);
    inference sets `pred_masks` (R, 1, M, M), the predicted class's soft mask (see
    `mask_losses.py`), as detectron2's heads do.
    """

    @configurable
    def __init__(self, *, loss_name: str = "sigmoid", **kwargs):
        """
        Args:
            loss_name: a key of `MASK_LOSSES`.
            kwargs: for BaseMaskRCNNHead (loss_weight, vis_period) and the subclass's layers.
        """
        super().__init__(**kwargs)
        self.loss_name = loss_name
        self.mask_loss = MASK_LOSSES[loss_name]

    @classmethod
    def from_config(cls, cfg, input_shape):
        return dict(
            super().from_config(cfg, input_shape),
            loss_name=cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS,
            loss_weight=cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT,
        )

    def forward(self, x, instances: list[Instances]):
        # float32 whatever precision the layers ran in (autocast): the loss and read-out compare
        # and threshold probabilities
        logits = self.layers(x).float()
        if self.training:
            return {"loss_mask": self.loss(logits, instances) * self.loss_weight}
        self.inference(logits, instances)
        return instances

    def loss(self, mask_logits: torch.Tensor, instances: list[Instances]) -> torch.Tensor:
        """Scalar loss of `mask_logits` (R, C, M, M) against the foreground proposals' ground truth.

        Logs detectron2's mask_rcnn/accuracy, false_positive and false_negative (the gt class's
        soft mask binarized at 0.5); zero, still connected to the graph, without proposals.
        """
        gt_classes, gt_masks = mask_targets(instances, mask_logits.shape[-1], mask_logits.device)
        if gt_masks.shape[0] == 0:
            return mask_logits.sum() * 0
        with torch.no_grad():
            probabilities = self.mask_loss.probabilities(mask_logits, gt_classes)[:, 0]
        self._log_training_statistics(probabilities, gt_masks)
        return self.mask_loss.loss(mask_logits, gt_classes, gt_masks)

    def inference(self, mask_logits: torch.Tensor, instances: list[Instances]) -> None:
        """Set `pred_masks` (R_i, 1, M, M) on each image's instances (which have `pred_classes`)."""
        classes = torch.cat([i.pred_classes for i in instances]) if instances else mask_logits.new_zeros(0).long()
        probabilities = self.mask_loss.probabilities(mask_logits, classes)
        for per_image, masks in zip(instances, probabilities.split([len(i) for i in instances])):
            per_image.pred_masks = masks

    def _log_training_statistics(self, probabilities: torch.Tensor, gt_masks: torch.Tensor) -> None:
        incorrect = (probabilities > 0.5) != gt_masks
        num_positive = gt_masks.sum().item()
        storage = get_event_storage()
        storage.put_scalar("mask_rcnn/accuracy", 1 - incorrect.sum().item() / max(incorrect.numel(), 1.0))
        storage.put_scalar(
            "mask_rcnn/false_positive", (incorrect & ~gt_masks).sum().item() / max(gt_masks.numel() - num_positive, 1.0)
        )
        storage.put_scalar("mask_rcnn/false_negative", (incorrect & gt_masks).sum().item() / max(num_positive, 1.0))
        if self.vis_period > 0 and storage.iter % self.vis_period == 0:
            for index, pair in enumerate(torch.cat([probabilities, gt_masks.to(probabilities.dtype)], dim=2)):
                storage.put_image(f"Left: mask prediction;   Right: mask GT ({index})", pair[None].expand(3, -1, -1))


@ROI_MASK_HEAD_REGISTRY.register()
class FCNMaskHead(BaseMaskHead, MaskRCNNConvUpsampleHead):
    """The paper's FCN mask head: detectron2's MaskRCNNConvUpsampleHead layers with our losses."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        return dict(super().from_config(cfg, input_shape), num_classes=num_mask_channels(cfg))


@ROI_MASK_HEAD_REGISTRY.register()
class MLPMaskHead(BaseMaskHead):
    """Table 2(e): fc layers on the flattened RoI features, then an fc to C masks of `mask_side`^2.

    (R, C_in, S, S) -> (R, C, 2S, 2S) with the default `mask_side`.
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_channels: int, fc_dims: list[int], mask_side: int, **kwargs):
        """
        Args:
            input_shape: the pooled RoI features.
            num_channels: C, masks predicted per RoI (`num_mask_channels`).
            fc_dims: widths of the hidden fc layers (the paper: [1024, 1024] or [1024, 1024, 1024]).
            mask_side: M.
        """
        super().__init__(**kwargs)
        if not fc_dims:
            raise ValueError("MLPMaskHead needs at least one hidden fc layer (MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS)")
        self.num_channels, self.mask_side = num_channels, mask_side
        widths = [input_shape.channels * input_shape.height * input_shape.width] + list(fc_dims)
        self.fcs = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths, widths[1:]))
        self.predictor = nn.Linear(widths[-1], num_channels * mask_side * mask_side)
        for fc in self.fcs:
            weight_init.c2_xavier_fill(fc)  # as detectron2's fc box head
        nn.init.normal_(self.predictor.weight, std=0.001)  # as the FCN head's predictor
        nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape):
        return dict(
            super().from_config(cfg, input_shape),
            input_shape=input_shape,
            num_channels=num_mask_channels(cfg),
            fc_dims=list(cfg.MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS),
            mask_side=2 * input_shape.height,
        )

    def layers(self, x):
        x = x.flatten(1)
        for fc in self.fcs:
            x = torch.relu(fc(x))
        return self.predictor(x).view(-1, self.num_channels, self.mask_side, self.mask_side)
