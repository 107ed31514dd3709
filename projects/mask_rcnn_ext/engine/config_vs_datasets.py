"""Checks, before any data is loaded or model built, that a config agrees with the datasets it
names and that the model keys make sense together (`modeling/config_vs_heads.py`).

A mismatch (say NUM_CLASSES or NUM_KEYPOINTS against the dataset's classes and keypoints) would
otherwise surface as a shape error or silently wrong numbers hours into training.
"""

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.coco_keypoints import keypoint_set_errors
from ..modeling.config_vs_heads import model_config_errors
from .evaluators import keypoint_oks_sigmas, use_fast_coco_eval


def config_errors(cfg: CfgNode) -> list[str]:
    """Every inconsistency among `cfg`'s model keys and every disagreement between `cfg` and the
    metadata of its DATASETS.TRAIN/TEST, as messages."""
    errors, registered = model_config_errors(cfg), []
    try:  # checked without test datasets too: a later --eval-only reads it
        use_fast_coco_eval(cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND)
    except ValueError as error:
        errors.append(str(error))
    for key in ("TIMEOUT_MINUTES", "EVAL_TIMEOUT_MINUTES"):
        if not cfg.MASK_RCNN_EXT.DISTRIBUTED[key] > 0:
            errors.append(f"MASK_RCNN_EXT.DISTRIBUTED.{key} must be > 0 (got {cfg.MASK_RCNN_EXT.DISTRIBUTED[key]})")
    for key, names in (("DATASETS.TRAIN", cfg.DATASETS.TRAIN), ("DATASETS.TEST", cfg.DATASETS.TEST)):
        for name in names:
            if name not in DatasetCatalog.list():
                errors.append(f"{key}: dataset '{name}' is not registered (is its module imported?)")
                continue
            errors += _dataset_errors(cfg, key, name, MetadataCatalog.get(name))
            registered.append((key, name))
    if cfg.MODEL.KEYPOINT_ON:
        errors += _keypoint_set_mismatches(registered)
    return errors


def _dataset_errors(cfg: CfgNode, key: str, name: str, meta) -> list[str]:
    errors = []
    classes = meta.get("thing_classes", None)
    if classes is not None and len(classes) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        errors.append(
            f"MODEL.ROI_HEADS.NUM_CLASSES={cfg.MODEL.ROI_HEADS.NUM_CLASSES} but {key} dataset '{name}' "
            f"has {len(classes)} thing_classes"
        )
    mask_format = meta.get("mask_format", None)  # set by datasets whose records hold RLE masks
    if key == "DATASETS.TRAIN" and cfg.MODEL.MASK_ON and mask_format and cfg.INPUT.MASK_FORMAT != mask_format:
        errors.append(
            f"INPUT.MASK_FORMAT={cfg.INPUT.MASK_FORMAT!r} but {key} dataset '{name}' has RLE masks, which "
            f"detectron2 reads only as INPUT.MASK_FORMAT={mask_format!r}"
        )
    if not cfg.MODEL.KEYPOINT_ON:
        return errors
    names = meta.get("keypoint_names", None)
    if names is None:
        return errors + [f"MODEL.KEYPOINT_ON=True but {key} dataset '{name}' has no keypoint_names"]
    num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    if len(names) != num_keypoints:
        errors.append(
            f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS={num_keypoints} but {key} dataset '{name}' "
            f"has {len(names)} keypoint_names"
        )
    errors += [
        f"{key} dataset '{name}': {error}"
        for error in keypoint_set_errors(
            names, meta.get("keypoint_flip_map", ()), meta.get("keypoint_oks_sigmas", None)
        )
    ]
    if key == "DATASETS.TRAIN" and meta.get("keypoint_flip_map", None) is None:
        errors.append(
            f"{key} dataset '{name}' has no keypoint_flip_map, which detectron2's training data loader "
            f"reads; set it to [] if no keypoints swap under a horizontal flip"
        )
    if key == "DATASETS.TEST":  # only evaluation reads OKS sigmas
        try:
            keypoint_oks_sigmas(cfg, name)
        except ValueError as e:
            errors.append(str(e))
    return errors


def _keypoint_set_mismatches(datasets: list[tuple[str, str]]) -> list[str]:
    """A model predicts one keypoint set: each (key, dataset) it trains or is tested on must list
    the keypoint_names of the first, in the same order."""
    named = [(key, name, MetadataCatalog.get(name).get("keypoint_names", None)) for key, name in datasets]
    named = [(key, name, list(kps)) for key, name, kps in named if kps is not None]  # absent: reported per dataset
    return [
        f"{key} dataset '{name}' has keypoint_names {kps} but {named[0][0]} dataset '{named[0][1]}' has {named[0][2]}"
        for key, name, kps in named[1:]
        if kps != named[0][2]
    ]


def check_config(cfg: CfgNode) -> None:
    """Raise ValueError listing every problem `config_errors` finds."""
    errors = config_errors(cfg)
    if errors:
        raise ValueError("The config is inconsistent:\n  - " + "\n  - ".join(errors))
