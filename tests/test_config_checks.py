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


ABLATION_FPN = SYNTHETIC_CONFIG.replace("mask_keypoint_rcnn_R18_GN_FPN.yaml", "Ablation/mask_rcnn_R18_FPN.yaml")
ABLATION_C4 = SYNTHETIC_CONFIG.replace("mask_keypoint_rcnn_R18_GN_FPN.yaml", "Ablation/mask_rcnn_R18_C4.yaml")


@pytest.mark.parametrize(
    "config, opts, message",
    [
        (SYNTHETIC_CONFIG, ["MODEL.ROI_HEADS.NAME", "StandardROIHeads", "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "ROIWarp"],
         r"MODEL.ROI_MASK_HEAD.POOLER_TYPE='ROIWarp' needs MODEL.ROI_HEADS.NAME 'AnyPoolerROIHeads'"),
        (SYNTHETIC_CONFIG, ["MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIBogus"],
         r"MODEL.ROI_BOX_HEAD.POOLER_TYPE='ROIBogus' is not a registered RoI feature op; known: \['ROIAlign', "),
        (SYNTHETIC_CONFIG, ["MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE", "ROIAlignMax", "MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO", "0"],
         r"MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE='ROIAlignMax' needs MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO > 0"),
        (ABLATION_FPN, ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "dice"], r"MASK_RCNN_EXT.MASK_HEAD.LOSS='dice': expected one of \['sigmoid', 'softmax'\]"),
        (ABLATION_FPN, ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax", "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "True"],
         r"CLS_AGNOSTIC_MASK=True with MASK_RCNN_EXT.MASK_HEAD.LOSS='softmax'"),
        (ABLATION_FPN, ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
         r"MODEL.ROI_MASK_HEAD.NAME='MaskRCNNConvUpsampleHead' would train with a sigmoid loss instead"),
        (ABLATION_FPN, ["MODEL.ROI_MASK_HEAD.NAME", "MLPMaskHead", "MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[]"],
         r"MLP_FC_DIMS is empty"),
        (ABLATION_C4, ["MODEL.ROI_HEADS.IN_FEATURES", "['res3', 'res4']", "MASK_RCNN_EXT.RES5_HEAD.STRIDE", "3"],
         r"a C4 model pools from one feature map\n  - MASK_RCNN_EXT.RES5_HEAD.STRIDE=3"),
        (ABLATION_C4, ["MODEL.ROI_HEADS.NAME", "NoSuchROIHeads"], r"MODEL.ROI_HEADS.NAME='NoSuchROIHeads' is not registered"),
        (ABLATION_C4, ["MODEL.ROI_HEADS.NAME", "Res5ROIHeads", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
         r"MASK_RCNN_EXT.RES5_HEAD.STRIDE=1 is read by AnyPoolerRes5ROIHeads only"),
    ],
)
def test_inconsistent_model_keys_are_refused_before_building(config, opts, message):
    with pytest.raises(ValueError, match=message):
        build_config(config, opts)


@pytest.mark.parametrize("config", [SYNTHETIC_CONFIG, ABLATION_FPN, ABLATION_C4])
def test_refused_keys_are_all_listed_at_once(config):
    cfg = build_config(config, freeze=False)
    assert config_errors(cfg) == []
    cfg.merge_from_list(["MASK_RCNN_EXT.MASK_HEAD.LOSS", "dice", "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIBogus"])
    assert len(config_errors(cfg)) == 2
