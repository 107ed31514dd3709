"""A config that disagrees with its datasets is refused up front, naming the keys and the dataset."""

import os

import pytest

from mask_rcnn_ext import build_config
from mask_rcnn_ext.engine import build_evaluator, config_errors
from mask_rcnn_ext.engine.evaluators import keypoint_oks_sigmas, use_fast_coco_eval

from conftest import CONFIGS_DIR, SYNTHETIC_CONFIG


def test_synthetic_config_is_consistent():
    assert config_errors(build_config(SYNTHETIC_CONFIG, freeze=False)) == []


@pytest.mark.parametrize(
    "opts, message",
    [
        (
            ["MODEL.ROI_HEADS.NUM_CLASSES", "80"],
            r"MODEL.ROI_HEADS.NUM_CLASSES=80 but DATASETS.TRAIN dataset 'synthetic_train' has 7 thing_classes",
        ),
        (
            ["MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "14"],
            r"NUM_KEYPOINTS=14 but DATASETS.TEST dataset 'synthetic_val' has 17 keypoint_names",
        ),
        (["DATASETS.TEST", "('no_such_dataset',)"], r"DATASETS.TEST: dataset 'no_such_dataset' is not registered"),
        (
            ["DATASETS.TRAIN", "('coco_2017_train',)"],
            r"MODEL.KEYPOINT_ON=True but DATASETS.TRAIN dataset 'coco_2017_train' has no keypoint_names",
        ),
        (
            ["MASK_RCNN_EXT.DISTRIBUTED.EVAL_TIMEOUT_MINUTES", "-1.0"],
            r"MASK_RCNN_EXT.DISTRIBUTED.EVAL_TIMEOUT_MINUTES must be > 0 \(got -1.0\)",
        ),
    ],
)
def test_mismatched_config_is_refused(opts, message):
    with pytest.raises(ValueError, match=message):
        build_config(SYNTHETIC_CONFIG, opts)


def test_cityscapes_rle_masks_need_bitmask_format():
    cityscapes = os.path.join(CONFIGS_DIR, "Cityscapes", "mask_rcnn_R_50_FPN_fine.yaml")
    assert config_errors(build_config(cityscapes, freeze=False)) == []
    with pytest.raises(
        ValueError,
        match=r"INPUT.MASK_FORMAT='polygon' but DATASETS.TRAIN dataset "
        r"'cityscapes_instances_fine_train' has RLE masks",
    ):
        build_config(cityscapes, ["INPUT.MASK_FORMAT", "polygon"])


def test_oks_sigmas_come_from_dataset_metadata():
    cfg = build_config(SYNTHETIC_CONFIG)
    assert keypoint_oks_sigmas(cfg, "synthetic_val")[:3] == pytest.approx([0.026, 0.025, 0.025])
    # Evaluation would refuse the disagreement; the start-up checks already do.
    with pytest.raises(
        ValueError,
        match="TEST.KEYPOINT_OKS_SIGMAS=.* disagrees with the keypoint_oks_sigmas of dataset 'synthetic_val'",
    ):
        build_config(SYNTHETIC_CONFIG, ["TEST.KEYPOINT_OKS_SIGMAS", str([0.1] * 17)])


FIVE = ["head", "left_fin", "right_fin", "back", "tail"]
SOUND_FIVE = dict(keypoint_names=FIVE, keypoint_flip_map=[("left_fin", "right_fin")], keypoint_oks_sigmas=[0.05] * 5)


def _keypoint_dataset(name: str, **metadata) -> str:
    """`name` registered with no images and the given metadata: the config checks read only that."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, list)
        MetadataCatalog.get(name).set(**metadata)
    return name


def _five_keypoint_opts(train: str, test: str) -> list:
    return [
        "DATASETS.TRAIN",
        f"('{train}',)",
        "DATASETS.TEST",
        f"('{test}',)",
        "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS",
        "5",
    ]


def test_a_sound_five_keypoint_set_passes():
    name = _keypoint_dataset("kp_sound", **SOUND_FIVE)
    assert config_errors(build_config(SYNTHETIC_CONFIG, _five_keypoint_opts(name, name), freeze=False)) == []


@pytest.mark.parametrize(
    "name, metadata, message",
    [
        (
            "kp_repeats",
            dict(keypoint_names=FIVE[:4] + ["back"]),
            r"DATASETS.TRAIN dataset 'kp_repeats': keypoint_names repeats \['back'\]",
        ),
        (
            "kp_flip_unknown",
            dict(keypoint_flip_map=[("left_fin", "left_wing")]),
            r"DATASETS.TRAIN dataset 'kp_flip_unknown': keypoint_flip_map names unknown keypoints \['left_wing'\]",
        ),
        (
            "kp_flip_twice",
            dict(keypoint_flip_map=[("left_fin", "right_fin"), ("left_fin", "tail")]),
            r"DATASETS.TRAIN dataset 'kp_flip_twice': keypoint_flip_map puts 'left_fin' in 2 pairs",
        ),
        (
            "kp_flip_self",
            dict(keypoint_flip_map=[("tail", "tail")]),
            r"DATASETS.TRAIN dataset 'kp_flip_self': keypoint_flip_map pairs 'tail' with itself",
        ),
        (
            "kp_no_flip_map",
            dict(keypoint_flip_map=None),
            r"DATASETS.TRAIN dataset 'kp_no_flip_map' has no keypoint_flip_map",
        ),
        (
            "kp_sigma_count",
            dict(keypoint_oks_sigmas=[0.05] * 4),
            r"DATASETS.TEST dataset 'kp_sigma_count': 4 keypoint_oks_sigmas for 5 keypoint_names",
        ),
        (
            "kp_sigma_sign",
            dict(keypoint_oks_sigmas=[0.05] * 4 + [0]),
            r"DATASETS.TEST dataset 'kp_sigma_sign': keypoint_oks_sigmas must be positive",
        ),
        (
            "kp_no_sigmas",
            dict(keypoint_oks_sigmas=None),
            r"Dataset 'kp_no_sigmas' has 5 keypoint_names but its keypoint AP would use COCO's 17 person sigmas",
        ),
    ],
)
def test_inconsistent_keypoint_metadata_is_refused(name, metadata, message):
    metadata = {k: v for k, v in {**SOUND_FIVE, **metadata}.items() if v is not None}
    name = _keypoint_dataset(name, **metadata)
    with pytest.raises(ValueError, match=message):
        build_config(SYNTHETIC_CONFIG, _five_keypoint_opts(name, name))


def test_config_oks_sigmas_must_number_the_keypoints():
    name = _keypoint_dataset("kp_cfg_sigmas", keypoint_names=FIVE, keypoint_flip_map=[])
    with pytest.raises(
        ValueError,
        match=r"Dataset 'kp_cfg_sigmas' has 5 keypoint_names "
        r"but its keypoint AP would use the 3 TEST.KEYPOINT_OKS_SIGMAS",
    ):
        build_config(
            SYNTHETIC_CONFIG, _five_keypoint_opts(name, name) + ["TEST.KEYPOINT_OKS_SIGMAS", "[0.1, 0.1, 0.1]"]
        )
    assert (
        config_errors(
            build_config(
                SYNTHETIC_CONFIG,
                _five_keypoint_opts(name, name) + ["TEST.KEYPOINT_OKS_SIGMAS", str([0.1] * 5)],
                freeze=False,
            )
        )
        == []
    )


def test_training_and_test_sets_must_name_the_same_keypoints():
    train = _keypoint_dataset("kp_train_fish", **SOUND_FIVE)
    test = _keypoint_dataset(
        "kp_test_fish", **dict(SOUND_FIVE, keypoint_names=["head", "right_fin", "left_fin", "back", "tail"])
    )
    with pytest.raises(
        ValueError,
        match=r"DATASETS.TEST dataset 'kp_test_fish' has keypoint_names \['head', 'right_fin', .*\] "
        r"but DATASETS.TRAIN dataset 'kp_train_fish' has \['head', 'left_fin', ",
    ):
        build_config(SYNTHETIC_CONFIG, _five_keypoint_opts(train, test))


def test_keypoints_in_the_data_are_fine_for_a_model_without_keypoints():
    name = _keypoint_dataset("kp_unused", **SOUND_FIVE)
    other = _keypoint_dataset("kp_unused_other", keypoint_names=["a"], keypoint_flip_map=[])
    opts = _five_keypoint_opts(name, other) + [
        "MODEL.KEYPOINT_ON",
        "False",
        "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS",
        "17",
    ]
    assert config_errors(build_config(SYNTHETIC_CONFIG, opts, freeze=False)) == []


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
        (
            SYNTHETIC_CONFIG,
            ["MODEL.ROI_HEADS.NAME", "StandardROIHeads", "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "ROIWarp"],
            r"MODEL.ROI_MASK_HEAD.POOLER_TYPE='ROIWarp' needs MODEL.ROI_HEADS.NAME 'AnyPoolerROIHeads'",
        ),
        (
            SYNTHETIC_CONFIG,
            ["MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIBogus"],
            r"MODEL.ROI_BOX_HEAD.POOLER_TYPE='ROIBogus' is not a registered RoI feature op; known: \['ROIAlign', ",
        ),
        (
            SYNTHETIC_CONFIG,
            [
                "MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE",
                "ROIAlignMax",
                "MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO",
                "0",
            ],
            r"MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE='ROIAlignMax' "
            r"needs MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO > 0",
        ),
        (
            ABLATION_FPN,
            ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "dice"],
            r"MASK_RCNN_EXT.MASK_HEAD.LOSS='dice': expected one of \['sigmoid', 'softmax'\]",
        ),
        (
            ABLATION_FPN,
            ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax", "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "True"],
            r"CLS_AGNOSTIC_MASK=True with MASK_RCNN_EXT.MASK_HEAD.LOSS='softmax'",
        ),
        (
            ABLATION_FPN,
            ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
            r"MODEL.ROI_MASK_HEAD.NAME='MaskRCNNConvUpsampleHead' would train with a sigmoid loss instead",
        ),
        (
            ABLATION_FPN,
            ["MODEL.ROI_MASK_HEAD.NAME", "MLPMaskHead", "MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[]"],
            r"MLP_FC_DIMS is empty",
        ),
        (
            ABLATION_C4,
            ["MODEL.ROI_HEADS.IN_FEATURES", "['res3', 'res4']", "MASK_RCNN_EXT.RES5_HEAD.STRIDE", "3"],
            r"a C4 model pools from one feature map\n  - MASK_RCNN_EXT.RES5_HEAD.STRIDE=3",
        ),
        (
            ABLATION_C4,
            ["MODEL.ROI_HEADS.NAME", "NoSuchROIHeads"],
            r"MODEL.ROI_HEADS.NAME='NoSuchROIHeads' is not registered",
        ),
        (
            ABLATION_C4,
            ["MODEL.ROI_HEADS.NAME", "Res5ROIHeads", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
            r"MASK_RCNN_EXT.RES5_HEAD.STRIDE=1 is read by AnyPoolerRes5ROIHeads only",
        ),
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
