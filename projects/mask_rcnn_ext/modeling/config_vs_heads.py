"""Checks, before a model is built, that the config's keys agree with the ROI heads, poolers, mask
and keypoint heads (and their losses) it names, and that its precision keys are valid.

Without them a POOLER_TYPE of ours under detectron2's ROI heads fails deep inside ROIPooler
("Unknown pooler type"), and MASK_RCNN_EXT.MASK_HEAD.LOSS (or LOSS_WEIGHT, or
MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE) under a stock head is ignored without a word.
"""

from detectron2.config import CfgNode
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import ROI_KEYPOINT_HEAD_REGISTRY, ROI_MASK_HEAD_REGISTRY, Res5ROIHeads

from .keypoint_heads import KeypointMaskHead
from .mask_heads import BaseMaskHead, MLPMaskHead
from .mask_losses import MASK_LOSSES
from .precision import precision_config_errors
from .roi_feature_ops import ROI_FEATURE_OP_REGISTRY
from .roi_heads import AnyPoolerRes5ROIHeads, AnyPoolerROIHeads, res5_roi_heads_config_errors

# What detectron2's own ROIPooler accepts.
DETECTRON2_POOLER_TYPES = ("ROIAlign", "ROIAlignV2", "ROIPool", "ROIAlignRotated")


def _registered(registry, name: str):
    return registry.get(name) if name in registry else None


def _pooler_errors(cfg: CfgNode, roi_heads_class) -> list[str]:
    c4 = issubclass(roi_heads_class, Res5ROIHeads)
    heads = [("MODEL.ROI_BOX_HEAD", cfg.MODEL.ROI_BOX_HEAD, True)]  # a C4 model's only pooler
    if not c4:
        heads += [
            ("MODEL.ROI_MASK_HEAD", cfg.MODEL.ROI_MASK_HEAD, cfg.MODEL.MASK_ON),
            ("MODEL.ROI_KEYPOINT_HEAD", cfg.MODEL.ROI_KEYPOINT_HEAD, cfg.MODEL.KEYPOINT_ON),
        ]
    ours = issubclass(roi_heads_class, (AnyPoolerROIHeads, AnyPoolerRes5ROIHeads))
    known = sorted(name for name, _ in ROI_FEATURE_OP_REGISTRY)
    errors = []
    for key, node, used in heads:
        pooler_type = node.POOLER_TYPE
        if not used:
            continue
        if not pooler_type:  # mask and keypoint heads may pool for themselves; C4's case is res5's check
            if key == "MODEL.ROI_BOX_HEAD" and not c4:
                errors.append("MODEL.ROI_BOX_HEAD.POOLER_TYPE is empty; the box head needs a pooler")
            continue
        if not ours:
            if pooler_type in ROI_FEATURE_OP_REGISTRY and pooler_type not in DETECTRON2_POOLER_TYPES:
                errors.append(
                    f"{key}.POOLER_TYPE='{pooler_type}' needs MODEL.ROI_HEADS.NAME 'AnyPoolerROIHeads' (or "
                    f"'AnyPoolerRes5ROIHeads' for C4); '{cfg.MODEL.ROI_HEADS.NAME}' knows only "
                    f"{list(DETECTRON2_POOLER_TYPES)}"
                )
            continue
        op = _registered(ROI_FEATURE_OP_REGISTRY, pooler_type)
        if op is None:
            errors.append(f"{key}.POOLER_TYPE='{pooler_type}' is not a registered RoI feature op; known: {known}")
        elif op.needs_positive_sampling_ratio and node.POOLER_SAMPLING_RATIO <= 0:
            errors.append(
                f"{key}.POOLER_TYPE='{pooler_type}' needs {key}.POOLER_SAMPLING_RATIO > 0 (samples per bin "
                f"and axis; the paper uses 2), got {node.POOLER_SAMPLING_RATIO}"
            )
    return errors


def _mask_head_errors(cfg: CfgNode) -> list[str]:
    if not cfg.MODEL.MASK_ON:
        return []
    loss_name = cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS
    if loss_name not in MASK_LOSSES:
        return [f"MASK_RCNN_EXT.MASK_HEAD.LOSS='{loss_name}': expected one of {sorted(MASK_LOSSES)}"]
    errors = []
    if cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK and not MASK_LOSSES[loss_name].allows_class_agnostic:
        errors.append(
            f"MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK=True with MASK_RCNN_EXT.MASK_HEAD.LOSS='{loss_name}': "
            "a softmax across classes needs a mask per class"
        )
    head_name = cfg.MODEL.ROI_MASK_HEAD.NAME
    head_class = _registered(ROI_MASK_HEAD_REGISTRY, head_name)
    if head_class is None:
        errors.append(f"MODEL.ROI_MASK_HEAD.NAME='{head_name}' is not registered (is its module imported?)")
    elif loss_name != "sigmoid" and not issubclass(head_class, BaseMaskHead):
        errors.append(
            f"MASK_RCNN_EXT.MASK_HEAD.LOSS='{loss_name}' is read by mask_rcnn_ext's mask heads (subclasses of "
            f"BaseMaskHead); MODEL.ROI_MASK_HEAD.NAME='{head_name}' would train with a sigmoid loss instead"
        )
    elif issubclass(head_class, MLPMaskHead) and not cfg.MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS:
        errors.append("MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS is empty; MLPMaskHead needs at least one hidden fc layer")
    loss_weight = cfg.MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT
    if loss_weight != 1.0 and head_class is not None and not issubclass(head_class, BaseMaskHead):
        errors.append(
            f"MASK_RCNN_EXT.MASK_HEAD.LOSS_WEIGHT={loss_weight} is read by mask_rcnn_ext's mask heads (subclasses of "
            f"BaseMaskHead); MODEL.ROI_MASK_HEAD.NAME='{head_name}' would weight loss_mask by 1 instead"
        )
    return errors


def _keypoint_head_errors(cfg: CfgNode) -> list[str]:
    if not cfg.MODEL.KEYPOINT_ON:
        return []
    errors = []
    up_scale = cfg.MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE
    if up_scale < 1:
        errors.append(f"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE={up_scale}: expected >= 1 (the paper and detectron2: 2)")
    head_name = cfg.MODEL.ROI_KEYPOINT_HEAD.NAME
    head_class = _registered(ROI_KEYPOINT_HEAD_REGISTRY, head_name)
    if head_class is None:
        errors.append(f"MODEL.ROI_KEYPOINT_HEAD.NAME='{head_name}' is not registered (is its module imported?)")
    elif up_scale != 2 and not issubclass(head_class, KeypointMaskHead):
        errors.append(
            f"MASK_RCNN_EXT.KEYPOINT_HEAD.UP_SCALE={up_scale} is read by KeypointMaskHead (and its subclasses); "
            f"MODEL.ROI_KEYPOINT_HEAD.NAME='{head_name}' would ignore it"
        )
    return errors


def model_config_errors(cfg: CfgNode) -> list[str]:
    """Every inconsistency among the keys of the ROI heads, poolers, mask and keypoint heads, as messages."""
    roi_heads_class = _registered(ROI_HEADS_REGISTRY, cfg.MODEL.ROI_HEADS.NAME)
    if roi_heads_class is None:
        return [f"MODEL.ROI_HEADS.NAME='{cfg.MODEL.ROI_HEADS.NAME}' is not registered (is its module imported?)"]
    errors = _pooler_errors(cfg, roi_heads_class) + _mask_head_errors(cfg) + _keypoint_head_errors(cfg)
    errors += precision_config_errors(cfg)
    if issubclass(roi_heads_class, AnyPoolerRes5ROIHeads):
        errors += res5_roi_heads_config_errors(cfg)
    elif cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE != 2 and issubclass(roi_heads_class, Res5ROIHeads):
        errors.append(
            f"MASK_RCNN_EXT.RES5_HEAD.STRIDE={cfg.MASK_RCNN_EXT.RES5_HEAD.STRIDE} is read by "
            "AnyPoolerRes5ROIHeads only; "
            f"MODEL.ROI_HEADS.NAME='{cfg.MODEL.ROI_HEADS.NAME}' builds its res5 with stride 2"
        )
    return errors
