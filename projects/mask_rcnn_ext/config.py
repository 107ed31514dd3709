"""The config keys mask_rcnn_ext adds to detectron2's: all under `cfg.MASK_RCNN_EXT`."""
from detectron2.config import CfgNode as CN

COCO_EVAL_BACKENDS = ("auto", "pycocotools", "detectron2_fast")


def add_mask_rcnn_ext_config(cfg: CN) -> None:
    """Add mask_rcnn_ext's keys, with their defaults, to `cfg` (a detectron2 CfgNode) in place."""
    cfg.MASK_RCNN_EXT = CN()
    cfg.MASK_RCNN_EXT.EVAL = CN()
    # Which COCOeval runs COCO box/mask/keypoint evaluation: "pycocotools" (the reference),
    # "detectron2_fast" (detectron2's C++ COCOeval; needs a detectron2 built with its extension),
    # or "auto": the fast one when the extension is there, else pycocotools. Same numbers.
    cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND = "auto"
