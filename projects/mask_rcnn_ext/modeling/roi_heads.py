"""detectron2's ROI heads with every head's RoI features from any registered RoI feature op.

`AnyPoolerROIHeads` is detectron2's StandardROIHeads (FPN and single-level models, box, mask and
keypoint heads) and `AnyPoolerRes5ROIHeads` its Res5ROIHeads (C4 models); each head's
POOLER_TYPE may name any op of `ROI_FEATURE_OP_REGISTRY` (RoIPool, RoIWarp, RoIAlign with max or
average bins, ...). With detectron2's pooler types they build the same modules as detectron2's
classes, so they compute the same thing. Both keep sampled proposals' ground-truth bitmasks
without a copy per proposal (`proposal_masks.py`).
"""

from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads import (
    FastRCNNOutputLayers,
    Res5ROIHeads,
    ROIHeads,
    build_box_head,
    build_keypoint_head,
    build_mask_head,
)

from .backbone import build_res5_stage
from .poolers import build_roi_pooler
from .proposal_masks import ProposalMasksSampling


@ROI_HEADS_REGISTRY.register()
class AnyPoolerROIHeads(ProposalMasksSampling, StandardROIHeads):
    """StandardROIHeads whose box, mask and keypoint poolers may be any registered RoI feature op."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler, pooled_shape = build_roi_pooler(cfg.MODEL.ROI_BOX_HEAD, in_features, input_shape)
        if pooler is None:
            raise ValueError("MODEL.ROI_BOX_HEAD.POOLER_TYPE is empty; the box head needs a pooler")
        box_head = build_box_head(cfg, pooled_shape)
        return {
            "box_in_features": in_features,
            "box_pooler": pooler,
            "box_head": box_head,
            "box_predictor": FastRCNNOutputLayers(cfg, box_head.output_shape),
        }

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        if not cfg.MODEL.MASK_ON:
            return {}
        return _pooled_head_arguments("mask", cfg, cfg.MODEL.ROI_MASK_HEAD, build_mask_head, input_shape)

    @classmethod
    def _init_keypoint_head(cls, cfg, input_shape):
        if not cfg.MODEL.KEYPOINT_ON:
            return {}
        return _pooled_head_arguments("keypoint", cfg, cfg.MODEL.ROI_KEYPOINT_HEAD, build_keypoint_head, input_shape)


@ROI_HEADS_REGISTRY.register()
class AnyPoolerRes5ROIHeads(ProposalMasksSampling, Res5ROIHeads):
    """Res5ROIHeads (C4: one pooler, res5 per RoI shared by the box and mask heads) whose pooler may
    be any registered RoI feature op, whose res5 may be a narrow basic-block one, and whose res5
    stride is `MASK_RCNN_EXT.RES5_HEAD.STRIDE`: 2 as detectron2 (pool 14x14), 1 as the paper's
    Figure 4 (pool 7x7). Predicts no keypoints, as detectron2's."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        errors = res5_roi_heads_config_errors(cfg)
        if errors:
            raise ValueError("AnyPoolerRes5ROIHeads: " + "; ".join(errors))
        ret = ROIHeads.from_config(cfg)  # the proposal sampling; Res5ROIHeads' own part is redone here
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        pooler, pooled_shape = build_roi_pooler(cfg.MODEL.ROI_BOX_HEAD, in_features, input_shape)
        stride = cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE
        res5, out_channels = build_res5_stage(cfg, first_stride=stride)
        ret.update(
            in_features=in_features,
            pooler=pooler,
            res5=res5,
            box_predictor=FastRCNNOutputLayers(cfg, ShapeSpec(channels=out_channels, height=1, width=1)),
        )
        if cfg.MODEL.MASK_ON:
            side = -(-pooled_shape.height // stride)  # what res5 outputs
            ret["mask_head"] = build_mask_head(cfg, ShapeSpec(channels=out_channels, height=side, width=side))
        return ret


def _pooled_head_arguments(name: str, cfg, head_cfg, build_head, input_shape) -> dict:
    """StandardROIHeads' `{name}_in_features`, `{name}_pooler` and `{name}_head` for a mask or
    keypoint head whose pooler `head_cfg` (its config node) describes."""
    in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
    pooler, pooled_shape = build_roi_pooler(head_cfg, in_features, input_shape)
    return {f"{name}_in_features": in_features, f"{name}_pooler": pooler, f"{name}_head": build_head(cfg, pooled_shape)}


def res5_roi_heads_config_errors(cfg) -> list[str]:
    """What AnyPoolerRes5ROIHeads cannot build, as messages naming the keys."""
    errors = []
    if cfg.MODEL.KEYPOINT_ON:
        errors.append("MODEL.KEYPOINT_ON=True: AnyPoolerRes5ROIHeads (C4) predicts no keypoints; use AnyPoolerROIHeads")
    if len(cfg.MODEL.ROI_HEADS.IN_FEATURES) != 1:
        errors.append(
            f"MODEL.ROI_HEADS.IN_FEATURES={list(cfg.MODEL.ROI_HEADS.IN_FEATURES)}: "
            "a C4 model pools from one feature map"
        )
    if not cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE:
        errors.append("MODEL.ROI_BOX_HEAD.POOLER_TYPE is empty: a C4 model's box and mask heads share its pooler")
    if cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE not in (1, 2):
        errors.append(
            f"MASK_RCNN_EXT.RES5_HEAD.STRIDE={cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE}: "
            "expected 1 (the paper) or 2 (detectron2)"
        )
    return errors
