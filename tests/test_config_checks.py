"""A config that disagrees with its datasets is refused up front, naming the keys and the dataset."""
import pytest

from mask_rcnn_ext import build_config
from mask_rcnn_ext.engine import build_evaluator, config_errors
from mask_rcnn_ext.engine.evaluators import keypoint_oks_sigmas, use_fast_coco_eval

from conftest import SYNTHETIC_CONFIG


def test_synthetic_config_is_consistent():
    assert config_errors(build_config(SYNTHETIC_CONFIG, freeze=False)) == []


@pytest.mark.parametrize(
    "opts, message",
    [
        (["MODEL.ROI_HEADS.NUM_CLASSES", "80"],
         r"MODEL.ROI_HEADS.NUM_CLASSES=80 but DATASETS.TRAIN dataset 'synthetic_train' has 7 thing_classes"),
        (["MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "14"],
         r"NUM_KEYPOINTS=14 but DATASETS.TEST dataset 'synthetic_val' has 17 keypoint_names"),
        (["DATASETS.TEST", "('no_such_dataset',)"], r"DATASETS.TEST: dataset 'no_such_dataset' is not registered"),
        (["DATASETS.TRAIN", "('coco_2017_train',)"], r"MODEL.KEYPOINT_ON=True but DATASETS.TRAIN dataset 'coco_2017_train' has no keypoint_names"),
    ],
)
def test_mismatched_config_is_refused(opts, message):
    with pytest.raises(ValueError, match=message):
        build_config(SYNTHETIC_CONFIG, opts)


def test_oks_sigmas_come_from_dataset_metadata():
    cfg = build_config(SYNTHETIC_CONFIG)
    assert keypoint_oks_sigmas(cfg, "synthetic_val")[:3] == pytest.approx([0.026, 0.025, 0.025])
    cfg_conflict = build_config(SYNTHETIC_CONFIG, ["TEST.KEYPOINT_OKS_SIGMAS", str([0.1] * 17)])
    with pytest.raises(ValueError, match="TEST.KEYPOINT_OKS_SIGMAS=.* disagrees with the keypoint_oks_sigmas of dataset 'synthetic_val'"):
        keypoint_oks_sigmas(cfg_conflict, "synthetic_val")


def test_unknown_evaluator_type_is_named():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    DatasetCatalog.register("test_sem_seg_only", lambda: [])
    MetadataCatalog.get("test_sem_seg_only").set(evaluator_type="sem_seg")
    with pytest.raises(ValueError, match=r"Dataset 'test_sem_seg_only' has evaluator_type='sem_seg'"):
        build_evaluator(build_config(SYNTHETIC_CONFIG), "test_sem_seg_only")


def test_coco_backend_choice():
    from mask_rcnn_ext.engine.evaluators import has_detectron2_extension

    assert use_fast_coco_eval("pycocotools") is False
    assert use_fast_coco_eval("auto") is has_detectron2_extension()
    with pytest.raises(ValueError, match="COCO_BACKEND='nope'"):
        use_fast_coco_eval("nope")
