"""Importing mask_rcnn_ext registers its datasets and config keys, and nothing outside its node."""

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_FLIP_MAP, COCO_PERSON_KEYPOINT_NAMES
from pycocotools.cocoeval import Params

import mask_rcnn_ext
from mask_rcnn_ext.data import SYNTHETIC_SPLITS


def test_config_keys_live_under_our_node_only():
    cfg = get_cfg()
    before = set(cfg.keys())
    mask_rcnn_ext.add_mask_rcnn_ext_config(cfg)
    assert set(cfg.keys()) - before == {"MASK_RCNN_EXT"}
    assert cfg.MASK_RCNN_EXT.EVAL.COCO_BACKEND == "auto"


def test_synthetic_datasets_registered_with_coco_keypoint_metadata():
    for name in SYNTHETIC_SPLITS:
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "coco"
        assert meta.thing_classes[0] == "person" and len(meta.thing_classes) == 7
        # the COCO person keypoints exactly, so COCO keypoint configs and flip augmentation apply
        assert tuple(meta.keypoint_names) == COCO_PERSON_KEYPOINT_NAMES
        assert {frozenset(p) for p in meta.keypoint_flip_map} == {frozenset(p) for p in COCO_PERSON_KEYPOINT_FLIP_MAP}
        assert meta.keypoint_oks_sigmas == [float(s) for s in Params(iouType="keypoints").kpt_oks_sigmas]
        assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(7)}
