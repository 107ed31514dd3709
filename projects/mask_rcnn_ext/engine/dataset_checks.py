"""The datasets a run reads, checked when it starts: DATASETS.TRAIN before the first iteration,
DATASETS.TEST too (else a broken test set fails the evaluation at the end of training).

For each dataset: its loading (an error of the loader is raised again naming the dataset and its
file), then its COCO json as written (`data.coco_json_checks`), then the config against the
metadata the loading filled in (datasets registered with `register_coco_instances(name, {}, ...)`
get their classes only then), then its records (`data.checks`). Errors stop the run, listed;
what is skipped is logged with counts and examples.
"""

import functools
import logging
from collections.abc import Sequence
from typing import Callable

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..data.checks import CheckReport, check_records
from ..data.coco_json_checks import check_coco_json
from .config_vs_datasets import check_config

logger = logging.getLogger(__name__)


def _sources(names: Sequence[str]) -> str:
    files = [MetadataCatalog.get(name).get("json_file", None) for name in names]
    return ", ".join(f"'{name}'" + (f" ({file})" if file else "") for name, file in zip(names, files))


def annotation_file_report(names: Sequence[str]) -> CheckReport:
    """The faults of the json of each of `names` that has one (metadata `json_file`), as written."""
    report = CheckReport()
    for name in names:
        json_file = MetadataCatalog.get(name).get("json_file", None)
        if json_file:
            check_coco_json(json_file, report)
    return report


def load_named(key: str, names: Sequence[str], load: Callable[[], list]) -> list:
    """`load()` the datasets `names` (under config `key`). When it fails: ValueError naming the
    datasets and files, with their json's faults where there are some (detectron2's loader names
    neither the file nor the annotation)."""
    try:
        return load()
    except Exception as error:  # a loader's errors (a missing key, a bad file) often name neither
        report = annotation_file_report(names)
        if report.errors:
            raise ValueError(f"{key} {_sources(names)} cannot be loaded:\n{report.summary()}") from error
        raise ValueError(f"{key} {_sources(names)} cannot be loaded: {type(error).__name__}: {error}") from error


def load_checked(key: str, names: Sequence[str], load: Callable[[], list]) -> list:
    """`load_named`, then the datasets' json files checked as written: ValueError listing their
    errors, skipped parts logged. (The json is read after loading: some loaders write it.)"""
    records = load_named(key, names, load)
    _raise_or_log(key, names, annotation_file_report(names))
    return records


def _raise_or_log(key: str, names: Sequence[str], report: CheckReport) -> None:
    if report.errors:
        raise ValueError(f"{key} {_sources(names)} cannot be used:\n{report.summary()}")
    if report.skipped:
        logger.warning(f"{key} {_sources(names)}: {report.summary()}")


def checked_records(cfg: CfgNode, key: str, names: Sequence[str], records: list[dict]) -> list[dict]:
    """`records` of datasets `names` (under config `key`) checked against cfg's model: the config
    against the metadata loading filled in, then `check_records`. ValueError listing the errors;
    the records with skipped parts removed otherwise, the skipped counted in a warning."""
    check_config(cfg)
    num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS if cfg.MODEL.KEYPOINT_ON else None
    records, report = check_records(records, cfg.MODEL.ROI_HEADS.NUM_CLASSES, num_keypoints, mask_on=cfg.MODEL.MASK_ON)
    _raise_or_log(key, names, report)
    _warn_of_unused_classes(cfg, key, names, records)
    return records


def _warn_of_unused_classes(cfg: CfgNode, key: str, names: Sequence[str], records: list[dict]) -> None:
    used = {a["category_id"] for r in records for a in r.get("annotations", ())}
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if used and len(used) < num_classes:
        unused = sorted(set(range(num_classes)) - used)
        logger.warning(
            f"MODEL.ROI_HEADS.NUM_CLASSES={num_classes} but the annotations of {key} {_sources(names)} use "
            f"{len(used)} classes: no example of class ids {unused[:20]}{' ...' if len(unused) > 20 else ''}"
        )


def check_test_datasets(cfg: CfgNode) -> None:
    """Check each of DATASETS.TEST as the training data is checked (loading, json, metadata,
    records); ValueError on the first with errors. Its records are loaded again to evaluate."""
    for name in cfg.DATASETS.TEST:
        records = load_checked("DATASETS.TEST", [name], functools.partial(DatasetCatalog.get, name))
        checked_records(cfg, "DATASETS.TEST", [name], records)
