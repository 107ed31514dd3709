"""detectron2's ROIPooler with its per-level op taken from `ROI_FEATURE_OP_REGISTRY` by name."""

from typing import Optional, Union

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from torch import nn

from .roi_feature_ops import ROI_FEATURE_OP_REGISTRY


class RoIFeaturePooler(ROIPooler):
    """ROIPooler (same FPN level assignment, same forward) whose `pooler_type` may name any
    registered RoI feature op (`roi_feature_ops.py`), not only detectron2's four.

    With "ROIAlign", "ROIAlignV2" or "ROIPool" it computes exactly what detectron2's ROIPooler
    computes: the same torchvision kernels with the same arguments.
    """

    def __init__(
        self, output_size, scales, sampling_ratio: int, pooler_type: str, canonical_box_size=224, canonical_level=4
    ):
        op = ROI_FEATURE_OP_REGISTRY.get(pooler_type)
        # ROIPooler's constructor checks the scales and derives the pyramid levels, but only knows
        # its own four ops: let it build ROIAlignV2 ones, then put the requested op in their place.
        super().__init__(output_size, scales, sampling_ratio, "ROIAlignV2", canonical_box_size, canonical_level)
        self.level_poolers = nn.ModuleList(op(self.output_size, scale, sampling_ratio) for scale in scales)


def build_roi_pooler(
    head_cfg: CfgNode, in_features: list[str], input_shape: dict[str, ShapeSpec]
) -> tuple[Optional[RoIFeaturePooler], Union[ShapeSpec, dict[str, ShapeSpec]]]:
    """The pooler a head's config node asks for, and the shape of what the head then receives.

    Args:
        head_cfg: `cfg.MODEL.ROI_{BOX,MASK,KEYPOINT}_HEAD`; reads POOLER_TYPE, POOLER_RESOLUTION
            and POOLER_SAMPLING_RATIO.
        in_features: the feature maps RoIs are pooled from (`ROI_HEADS.IN_FEATURES`).
        input_shape: the backbone's output shapes.

    Returns:
        (pooler, ShapeSpec(channels, POOLER_RESOLUTION, POOLER_RESOLUTION)); or, when POOLER_TYPE
        is empty (a head that pools for itself, as detectron2 allows), (None, the input shapes).
    """
    if not head_cfg.POOLER_TYPE:
        return None, {f: input_shape[f] for f in in_features}
    channels = {input_shape[f].channels for f in in_features}
    if len(channels) != 1:  # one head serves every level, so every level must have its width
        raise ValueError(f"ROI_HEADS.IN_FEATURES {in_features} have different channel counts {sorted(channels)}")
    resolution = head_cfg.POOLER_RESOLUTION
    pooler = RoIFeaturePooler(
        output_size=resolution,
        scales=tuple(1.0 / input_shape[f].stride for f in in_features),
        sampling_ratio=head_cfg.POOLER_SAMPLING_RATIO,
        pooler_type=head_cfg.POOLER_TYPE,
    )
    return pooler, ShapeSpec(channels=channels.pop(), height=resolution, width=resolution)
