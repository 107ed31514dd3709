"""Chooses the evaluators of a dataset from its metadata (`evaluator_type`)."""

import importlib.util
from typing import Optional

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators

from ..data.coco_keypoints import resolve_oks_sigmas
from ..evaluation import CityscapesInstanceEvaluator, KeypointDiagnosticsEvaluator


def has_detectron2_extension() -> bool:
    """Whether detectron2 was built with its C++/CUDA extension (needed by its fast COCOeval)."""
    return importlib.util.find_spec("detectron2._C") is not None


def use_fast_coco_eval(backend: str) -> bool:
    """Resolve `cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND` to COCOEvaluator's `use_fast_impl`."""
    if backend == "auto":
        return has_detectron2_extension()
    if backend == "detectron2_fast" and not has_detectron2_extension():
        raise ValueError(
            "MASK_RCNN_EXT.EVAL.COCO_BACKEND='detectron2_fast' needs detectron2's C++ extension, "
            "which this detectron2 lacks; use 'pycocotools' or 'auto', or install a full build "
            "(docs/install.md)."
        )
    if backend not in ("pycocotools", "detectron2_fast"):
        raise ValueError(f"MASK_RCNN_EXT.EVAL.COCO_BACKEND={backend!r}: expected auto, pycocotools or detectron2_fast")
    return backend == "detectron2_fast"


def keypoint_oks_sigmas(cfg: CfgNode, dataset_name: str) -> list[float]:
    """(K,) OKS sigmas for `dataset_name`: its metadata's `keypoint_oks_sigmas`, else
    TEST.KEYPOINT_OKS_SIGMAS, else COCO's 17 person sigmas (`resolve_oks_sigmas`).

    Raises ValueError when the metadata's and the config's disagree, or when the sigmas taken from
    the config or COCO do not number the dataset's keypoint_names. The start-up config checks call
    this, so both fail before training rather than at the first evaluation.
    """
    meta = MetadataCatalog.get(dataset_name)
    from_metadata = meta.get("keypoint_oks_sigmas", None)
    from_cfg = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if from_metadata is not None:
        if from_cfg and list(from_metadata) != from_cfg:
            raise ValueError(
                f"TEST.KEYPOINT_OKS_SIGMAS={from_cfg} disagrees with the keypoint_oks_sigmas of dataset "
                f"'{dataset_name}' ({list(from_metadata)}); leave TEST.KEYPOINT_OKS_SIGMAS empty to use the dataset's."
            )
        return resolve_oks_sigmas(meta)  # their count is checked with the dataset's other keypoint metadata
    sigmas = resolve_oks_sigmas(meta, from_cfg)
    names = meta.get("keypoint_names", None)
    if names is not None and len(sigmas) != len(names):
        used = (
            f"the {len(from_cfg)} TEST.KEYPOINT_OKS_SIGMAS"
            if from_cfg
            else f"COCO's {len(sigmas)} person sigmas (it has no keypoint_oks_sigmas and "
            f"TEST.KEYPOINT_OKS_SIGMAS is empty)"
        )
        raise ValueError(
            f"Dataset '{dataset_name}' has {len(names)} keypoint_names but its keypoint AP would use {used}"
        )
    return sigmas


def build_coco_evaluator(cfg: CfgNode, dataset_name: str, output_dir: Optional[str]) -> DatasetEvaluator:
    """COCO box / mask / keypoint AP; with keypoints, also the per-keypoint diagnostics."""
    sigmas = keypoint_oks_sigmas(cfg, dataset_name) if cfg.MODEL.KEYPOINT_ON else ()
    coco = COCOEvaluator(
        dataset_name,
        output_dir=output_dir,
        use_fast_impl=use_fast_coco_eval(cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND),
        kpt_oks_sigmas=sigmas,
    )
    if not cfg.MODEL.KEYPOINT_ON:
        return coco
    return DatasetEvaluators([coco, KeypointDiagnosticsEvaluator(dataset_name, output_dir, oks_sigmas=sigmas)])


def build_cityscapes_evaluator(cfg: CfgNode, dataset_name: str, output_dir: Optional[str]) -> DatasetEvaluator:
    """Cityscapes AP ("cityscapes_segm", the official definition) and COCO box and mask AP ("bbox",
    "segm") of the same predictions: papers report the first, COCO-trained users compare with the second."""
    coco = COCOEvaluator(
        dataset_name, output_dir=output_dir, use_fast_impl=use_fast_coco_eval(cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND)
    )
    if not cfg.MODEL.MASK_ON:
        return coco
    return DatasetEvaluators([CityscapesInstanceEvaluator(dataset_name, output_dir), coco])


# evaluator_type (dataset metadata) -> builder(cfg, dataset_name, output_dir)
EVALUATOR_BUILDERS = {
    "coco": build_coco_evaluator,
    "cityscapes_instance": build_cityscapes_evaluator,
}


def build_evaluator(cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator for `dataset_name`, chosen by its metadata's `evaluator_type`."""
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    if evaluator_type not in EVALUATOR_BUILDERS:
        raise ValueError(
            f"Dataset '{dataset_name}' has evaluator_type={evaluator_type!r} in its metadata; "
            f"mask_rcnn_ext evaluates {sorted(EVALUATOR_BUILDERS)}."
        )
    return EVALUATOR_BUILDERS[evaluator_type](cfg, dataset_name, output_dir)
