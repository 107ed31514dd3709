"""The training data loader: a resumable stream (`data_stream.TrainStream`: detectron2's sampler and
batching, saved and restored positions) over records checked first (`data.checks`), with a mapper
whose errors name the image they happened on."""

import logging

from detectron2.config import CfgNode
from detectron2.data import get_detection_dataset_dicts
from detectron2.data.build import filter_images_with_only_crowd_annotations  # the same in v0.6 and main
from detectron2.utils import comm

from ..data.dataset_mapper import ImageModeDatasetMapper
from .data_stream import TrainStream
from .dataset_checks import checked_records, load_checked

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
    """DATASETS.TRAIN's records as detectron2 prepares them, checked (`dataset_checks`): their
    loading, their annotation files as written, the config against their metadata, the records
    against the model. ValueError listing every error; skipped parts logged with counts."""
    names = list(cfg.DATASETS.TRAIN)
    records = load_checked(
        "DATASETS.TRAIN",
        names,
        lambda: get_detection_dataset_dicts(
            names,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
            proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
        ),
    )
    records = checked_records(cfg, "DATASETS.TRAIN", names, records)
    if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS:  # skipped objects may have emptied an image: filter again
        records = filter_images_with_only_crowd_annotations(records)
    return records


def build_checked_train_loader(cfg: CfgNode) -> TrainStream:
    """This rank's training batches: a TrainStream (detectron2's sampler, aspect-ratio grouping and
    loader workers from cfg) over `checked_training_records`, mapping with a FileNamingMapper around
    its DatasetMapper (whose images are read as `data.images` reads them: `ImageModeDatasetMapper`)."""
    world_size = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be a multiple of the number of processes "
            f"({world_size}): each takes an equal share of a batch"
        )
    return TrainStream(
        checked_training_records(cfg),
        FileNamingMapper(ImageModeDatasetMapper(cfg, is_train=True)),
        cfg,
        batch_size=cfg.SOLVER.IMS_PER_BATCH // world_size,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
