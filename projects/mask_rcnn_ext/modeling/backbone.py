"""A ResNet-18/34 + FPN backbone of any width, for models small enough to train on a CPU.

detectron2's `build_resnet_backbone` fixes the base width of basic-block ResNets at 64 channels.
With `MODEL.RESNETS.STEM_OUT_CHANNELS` and `RES2_OUT_CHANNELS` at 64 this builder gives exactly
detectron2's R18/R34-FPN (same modules, same parameter names, same initialisation); at 32 it
costs about a quarter of the FLOPs.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

BASIC_BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def build_narrow_resnet(cfg, input_shape: ShapeSpec) -> ResNet:
    """Basic-block ResNet (res2..res5) whose stage i has RES2_OUT_CHANNELS * 2**i channels."""
    resnets = cfg.MODEL.RESNETS
    if resnets.DEPTH not in BASIC_BLOCKS_PER_STAGE:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH={resnets.DEPTH}: build_narrow_resnet_fpn_backbone builds the basic-block "
            f"ResNets {sorted(BASIC_BLOCKS_PER_STAGE)}; use build_resnet_fpn_backbone for deeper ones"
        )
    if resnets.RES5_DILATION != 1 or resnets.NUM_GROUPS != 1 or any(resnets.DEFORM_ON_PER_STAGE):
        raise ValueError(
            "MODEL.RESNETS.RES5_DILATION, NUM_GROUPS and DEFORM_ON_PER_STAGE apply to bottleneck "
            "ResNets only; leave them at 1, 1 and all False"
        )
    stem = BasicStem(in_channels=input_shape.channels, out_channels=resnets.STEM_OUT_CHANNELS, norm=resnets.NORM)
    stages, in_channels = [], resnets.STEM_OUT_CHANNELS
    for i, num_blocks in enumerate(BASIC_BLOCKS_PER_STAGE[resnets.DEPTH]):
        out_channels = resnets.RES2_OUT_CHANNELS * 2**i
        first_stride = 1 if i == 0 else 2  # res2 keeps the stem's stride 4
        stages.append(
            ResNet.make_stage(
                BasicBlock,
                num_blocks,
                stride_per_block=[first_stride] + [1] * (num_blocks - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                norm=resnets.NORM,
            )
        )
        in_channels = out_channels
    return ResNet(stem, stages, out_features=resnets.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


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
