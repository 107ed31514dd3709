"""Chooses the evaluators of a dataset from its metadata (`evaluator_type`)."""
import importlib.util
from typing import Optional, Sequence

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator


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
            "(README, 'Install routes')."
        )
    if backend not in ("pycocotools", "detectron2_fast"):
        raise ValueError(f"MASK_RCNN_EXT.EVAL.COCO_BACKEND={backend!r}: expected auto, pycocotools or detectron2_fast")
    return backend == "detectron2_fast"


def keypoint_oks_sigmas(cfg: CfgNode, dataset_name: str) -> Sequence[float]:
    """OKS sigmas for `dataset_name`: its metadata's `keypoint_oks_sigmas`, else TEST.KEYPOINT_OKS_SIGMAS.

    Returns an empty sequence when neither is set; COCOEvaluator then uses COCO's person sigmas.
    """
    from_metadata = MetadataCatalog.get(dataset_name).get("keypoint_oks_sigmas", None)
    from_cfg = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if from_metadata is not None and from_cfg and list(from_metadata) != from_cfg:
        raise ValueError(
            f"TEST.KEYPOINT_OKS_SIGMAS={from_cfg} disagrees with the keypoint_oks_sigmas of dataset "
            f"'{dataset_name}' ({list(from_metadata)}); leave TEST.KEYPOINT_OKS_SIGMAS empty to use the dataset's."
        )
    return list(from_metadata) if from_metadata is not None else from_cfg


def build_coco_evaluator(cfg: CfgNode, dataset_name: str, output_dir: Optional[str]) -> DatasetEvaluator:
    return COCOEvaluator(
        dataset_name,
        output_dir=output_dir,
        use_fast_impl=use_fast_coco_eval(cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND),
        kpt_oks_sigmas=keypoint_oks_sigmas(cfg, dataset_name) if cfg.MODEL.KEYPOINT_ON else (),
    )


# evaluator_type (dataset metadata) -> builder(cfg, dataset_name, output_dir)
EVALUATOR_BUILDERS = {
    "coco": build_coco_evaluator,
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
