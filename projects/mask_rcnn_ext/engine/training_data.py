"""The training data loader: detectron2's, over records checked first (`data.checks`), with a
mapper whose errors name the image they happened on."""

import logging

from detectron2.config import CfgNode
from detectron2.data import DatasetMapper, build_detection_train_loader, get_detection_dataset_dicts
from detectron2.data.build import filter_images_with_only_crowd_annotations  # the same in v0.6 and main

from ..data.checks import check_records

logger = logging.getLogger(__name__)


class FileNamingMapper:
    """Wraps a dataset mapper: an error while mapping a record (an unreadable image met mid-training,
    say) is raised again naming the record's image file."""

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, record: dict) -> dict:
        try:
            return self.mapper(record)
        except Exception as error:
            raise RuntimeError(f"Cannot load the training image '{record.get('file_name')}': {error!r}") from error


def checked_training_records(cfg: CfgNode) -> list[dict]:
    """DATASETS.TRAIN's records as detectron2 prepares them, checked against the model's classes and
    keypoints: ValueError listing every error (missing image files, wrong category, RLE size or
    keypoint count), skipped parts logged with counts (see `data.checks`)."""
    records = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN,
        filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
    )
    num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS if cfg.MODEL.KEYPOINT_ON else None
    records, report = check_records(records, cfg.MODEL.ROI_HEADS.NUM_CLASSES, num_keypoints)
    if report.errors:
        raise ValueError(f"DATASETS.TRAIN {list(cfg.DATASETS.TRAIN)} cannot be trained on:\n{report.summary()}")
    if report.skipped:
        logger.warning(f"DATASETS.TRAIN {list(cfg.DATASETS.TRAIN)}: {report.summary()}")
    if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS:  # skipped objects may have emptied an image: filter again
        records = filter_images_with_only_crowd_annotations(records)
    return records


def build_checked_train_loader(cfg: CfgNode):
    """detectron2's training loader (its sampler, batching and augmentation from cfg) over
    `checked_training_records`, mapping with a FileNamingMapper around its DatasetMapper."""
    return build_detection_train_loader(
        cfg, dataset=checked_training_records(cfg), mapper=FileNamingMapper(DatasetMapper(cfg, is_train=True))
    )
