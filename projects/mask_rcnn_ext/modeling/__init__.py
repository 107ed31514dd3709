"""Model components, registered in detectron2's registries on import: the meta-architecture,
backbones, RoI feature ops and their pooler, ROI heads, mask heads and keypoint heads."""

from .backbone import (
    build_narrow_resnet,
    build_narrow_resnet_backbone,
    build_narrow_resnet_fpn_backbone,
    build_res5_stage,
)
from .keypoint_decoding import decode_keypoint_heatmaps
from .keypoint_heads import BaseKeypointHead, KeypointMaskHead
from .keypoint_losses import keypoint_loss_normalizer, keypoint_softmax_loss, keypoint_targets
from .mask_heads import BaseMaskHead, FCNMaskHead, MLPMaskHead, num_mask_channels
from .mask_losses import MASK_LOSSES, MaskLoss, mask_targets
from .mask_pasting import PastedROIMasks, paste_masks
from .meta_arch import MaskRCNN
from .poolers import RoIFeaturePooler, build_roi_pooler
from .roi_feature_ops import ROI_FEATURE_OP_REGISTRY, RoIFeatureOp, roi_align_max, round_rois_to_feature_grid
from .roi_heads import AnyPoolerRes5ROIHeads, AnyPoolerROIHeads

__all__ = [
    "AnyPoolerROIHeads",
    "AnyPoolerRes5ROIHeads",
    "BaseKeypointHead",
    "BaseMaskHead",
    "FCNMaskHead",
    "KeypointMaskHead",
    "MASK_LOSSES",
    "MLPMaskHead",
    "MaskLoss",
    "MaskRCNN",
    "PastedROIMasks",
    "ROI_FEATURE_OP_REGISTRY",
    "RoIFeatureOp",
    "RoIFeaturePooler",
    "build_narrow_resnet",
    "build_narrow_resnet_backbone",
    "build_narrow_resnet_fpn_backbone",
    "build_res5_stage",
    "build_roi_pooler",
    "decode_keypoint_heatmaps",
    "keypoint_loss_normalizer",
    "keypoint_softmax_loss",
    "keypoint_targets",
    "mask_targets",
    "num_mask_channels",
    "paste_masks",
    "roi_align_max",
    "round_rois_to_feature_grid",
]
