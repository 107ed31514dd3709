"""Model components, registered in detectron2's registries on import."""
from .backbone import build_narrow_resnet, build_narrow_resnet_fpn_backbone

__all__ = ["build_narrow_resnet", "build_narrow_resnet_fpn_backbone"]
