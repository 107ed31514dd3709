"""ResNets of any width for models small enough to train on a CPU, and the res5 stage that C4
models run per RoI.

detectron2's `build_resnet_backbone` fixes the base width of basic-block ResNets at 64 channels.
With `MODEL.RESNETS.STEM_OUT_CHANNELS` and `RES2_OUT_CHANNELS` at 64, `build_narrow_resnet` gives
exactly detectron2's R18/R34 (same modules, same parameter names, same initialisation), so
`build_narrow_resnet_fpn_backbone` is its R18/R34-FPN; at 32 it costs about a quarter of the FLOPs.
"""

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock
from torch import nn

BASIC_BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
RES5_INDEX = 3  # res2..res5 are stages 0..3; stage i has RES2_OUT_CHANNELS * 2**i channels
RES5_BOTTLENECK_BLOCKS = 3  # in every bottleneck ResNet (50, 101, 152)


def _basic_block_stage(resnets: CfgNode, index: int, in_channels: int, first_stride: int) -> list:
    """Stage `index` (0 = res2) of a basic-block ResNet of depth resnets.DEPTH."""
    num_blocks = BASIC_BLOCKS_PER_STAGE[resnets.DEPTH][index]
    return ResNet.make_stage(
        BasicBlock,
        num_blocks,
        stride_per_block=[first_stride] + [1] * (num_blocks - 1),
        in_channels=in_channels,
        out_channels=resnets.RES2_OUT_CHANNELS * 2**index,
        norm=resnets.NORM,
    )


def build_narrow_resnet(cfg, input_shape: ShapeSpec) -> ResNet:
    """Basic-block ResNet whose stage i has RES2_OUT_CHANNELS * 2**i channels, up to the last of
    RESNETS.OUT_FEATURES (detectron2's ResNet drops the stages after it)."""
    resnets = cfg.MODEL.RESNETS
    if resnets.DEPTH not in BASIC_BLOCKS_PER_STAGE:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH={resnets.DEPTH}: the narrow ResNet builders build the basic-block "
            f"ResNets {sorted(BASIC_BLOCKS_PER_STAGE)}; use detectron2's build_resnet_backbone or "
            "build_resnet_fpn_backbone for deeper ones"
        )
    if resnets.RES5_DILATION != 1 or resnets.NUM_GROUPS != 1 or any(resnets.DEFORM_ON_PER_STAGE):
        raise ValueError(
            "MODEL.RESNETS.RES5_DILATION, NUM_GROUPS and DEFORM_ON_PER_STAGE apply to bottleneck "
            "ResNets only; leave them at 1, 1 and all False"
        )
    stem = BasicStem(in_channels=input_shape.channels, out_channels=resnets.STEM_OUT_CHANNELS, norm=resnets.NORM)
    stages, in_channels = [], resnets.STEM_OUT_CHANNELS
    for index in range(RES5_INDEX + 1):
        first_stride = 1 if index == 0 else 2  # res2 keeps the stem's stride 4
        stages.append(_basic_block_stage(resnets, index, in_channels, first_stride))
        in_channels = resnets.RES2_OUT_CHANNELS * 2**index
    return ResNet(stem, stages, out_features=resnets.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_narrow_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """`build_narrow_resnet` alone: single-level features for C4 (OUT_FEATURES ["res4"]) and C5 models."""
    return build_narrow_resnet(cfg, input_shape)


@BACKBONE_REGISTRY.register()
def build_narrow_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """FPN (P2-P6, MODEL.FPN.* as detectron2's build_resnet_fpn_backbone) on `build_narrow_resnet`."""
    return FPN(
        bottom_up=build_narrow_resnet(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def build_res5_stage(cfg, first_stride: int) -> tuple[nn.Sequential, int]:
    """The res5 stage of MODEL.RESNETS, to run on pooled RoI features (a C4 model's ROI head).

    Args:
        first_stride: stride of the first block: 2 as in detectron2 (14x14 RoIs -> 7x7), 1 as in
            the paper's Figure 4 (7x7 RoIs stay 7x7).

    Returns:
        (res5 blocks, their output channels). For bottleneck depths with `first_stride` 2 these
        are the blocks detectron2's Res5ROIHeads builds (same modules, names and initialisation);
        for depths 18 and 34, the res5 of `build_narrow_resnet`.
    """
    resnets = cfg.MODEL.RESNETS
    out_channels = resnets.RES2_OUT_CHANNELS * 2**RES5_INDEX
    if resnets.DEPTH in BASIC_BLOCKS_PER_STAGE:
        blocks = _basic_block_stage(resnets, RES5_INDEX, out_channels // 2, first_stride)
    else:
        if resnets.DEFORM_ON_PER_STAGE[RES5_INDEX]:
            raise ValueError(
                "MODEL.RESNETS.DEFORM_ON_PER_STAGE: deformable convolution is not supported in a res5 ROI head"
            )
        blocks = ResNet.make_stage(
            BottleneckBlock,
            RES5_BOTTLENECK_BLOCKS,
            stride_per_block=[first_stride] + [1] * (RES5_BOTTLENECK_BLOCKS - 1),
            in_channels=out_channels // 2,
            bottleneck_channels=resnets.NUM_GROUPS * resnets.WIDTH_PER_GROUP * 2**RES5_INDEX,
            out_channels=out_channels,
            num_groups=resnets.NUM_GROUPS,
            norm=resnets.NORM,
            stride_in_1x1=resnets.STRIDE_IN_1X1,
        )
    return nn.Sequential(*blocks), out_channels
