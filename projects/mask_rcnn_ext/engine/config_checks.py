"""Checks, before any data is loaded or model built, that a config agrees with the datasets it
names and that the model keys make sense together (`modeling/config_checks.py`).

A mismatch (say NUM_CLASSES or NUM_KEYPOINTS against the dataset's classes and keypoints) would
otherwise surface as a shape error or silently wrong numbers hours into training.
"""
from typing import List

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..modeling.config_checks import model_config_errors


def config_errors(cfg: CfgNode) -> List[str]:
    """Every inconsistency among `cfg`'s model keys and every disagreement between `cfg` and the
    metadata of its DATASETS.TRAIN/TEST, as messages."""
    errors = model_config_errors(cfg)
    for key, names in (("DATASETS.TRAIN", cfg.DATASETS.TRAIN), ("DATASETS.TEST", cfg.DATASETS.TEST)):
        for name in names:
            if name not in DatasetCatalog.list():
                errors.append(f"{key}: dataset '{name}' is not registered (is its module imported?)")
                continue
            errors += _dataset_errors(cfg, key, name, MetadataCatalog.get(name))
    return errors


def _dataset_errors(cfg: CfgNode, key: str, name: str, meta) -> List[str]:
    errors = []
    classes = meta.get("thing_classes", None)
    if classes is not None and len(classes) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        errors.append(
            f"MODEL.ROI_HEADS.NUM_CLASSES={cfg.MODEL.ROI_HEADS.NUM_CLASSES} but {key} dataset '{name}' "
            f"has {len(classes)} thing_classes"
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
    flipped = {k for pair in meta.get("keypoint_flip_map", ()) for k in pair}
    if flipped - set(names):
        errors.append(f"{key} dataset '{name}': keypoint_flip_map names unknown keypoints {sorted(flipped - set(names))}")
    sigmas = meta.get("keypoint_oks_sigmas", None) or cfg.TEST.KEYPOINT_OKS_SIGMAS
    if sigmas and len(sigmas) != len(names):
        errors.append(
            f"{key} dataset '{name}': {len(sigmas)} OKS sigmas (keypoint_oks_sigmas or "
            f"TEST.KEYPOINT_OKS_SIGMAS) for {len(names)} keypoint_names"
        )
    return errors


def check_config(cfg: CfgNode) -> None:
    """Raise ValueError listing every problem `config_errors` finds."""
    errors = config_errors(cfg)
    if errors:
        raise ValueError("The config is inconsistent:\n  - " + "\n  - ".join(errors))
