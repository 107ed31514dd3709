"""Checks of detectron2 dataset dicts, before training: what would otherwise crash an iteration
hours in, or silently train on garbage.

Each problem is either an error (the data is wrong and no fix is safe: training must not start) or
skipped and counted (the broken part is dropped, as detectron2 drops some of it itself, and the
rest of the image trains):

  error, per image:   the image file is missing; (with read_images=True) it cannot be read, its PIL
                      mode is not read (`data.images`: 16-bit gray is), or its size differs from the
                      record's height / width;
  error, per object:  no bbox; category_id outside the model's classes; an RLE whose size is not
                      the image's; keypoints that are not NUM_KEYPOINTS triples;
  skipped polygon:    fewer than 3 points (the object keeps its other polygons);
  skipped object:     non-finite polygon or box coordinates; no polygon left; a box with no area
                      inside the image; (with mask_on) no segmentation, unless a crowd region;
  skipped keypoint:   labelled (v > 0) outside the image: it becomes unlabelled (v = 0), as
                      detectron2 treats keypoints that augmentation moves out of the image.

Objects are named by image file and index in the record's `annotations` (plus the annotation `id`
when the record keeps it).
"""

import collections
import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from detectron2.structures import BoxMode
from PIL import Image

from .images import ImageModeError, read_image

MAX_EXAMPLES = 5  # per kind of problem, in reports


@dataclass
class CheckReport:
    """What `check_records` found: error messages, and counts (with a few examples) of what it skipped."""

    errors: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))

    def skip(self, kind: str, where: str) -> None:
        self.skipped[kind] += 1
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(where)

    def extend(self, other: "CheckReport") -> None:
        """Add `other`'s errors and skipped counts (with examples, up to MAX_EXAMPLES a kind)."""
        self.errors += other.errors
        for kind, count in other.skipped.items():
            self.skipped[kind] += count
            self.examples[kind] = (self.examples[kind] + other.examples[kind])[:MAX_EXAMPLES]

    def summary(self) -> str:
        lines = [f"{len(self.errors)} errors"] + [f"  {e}" for e in self.errors[:50]]
        if len(self.errors) > 50:
            lines.append(f"  ... and {len(self.errors) - 50} more")
        for kind, count in sorted(self.skipped.items()):
            lines.append(f"skipped {count} x {kind}, e.g. {'; '.join(self.examples[kind])}")
        return "\n".join(lines)


def _where(record: dict, index: Optional[int] = None) -> str:
    if index is None:
        return f"'{record['file_name']}'"
    annotation = record["annotations"][index]
    named = f", id {annotation['id']}" if "id" in annotation else ""
    return f"'{record['file_name']}' annotation #{index}{named}"


def _check_image(record: dict, read_images: bool, report: CheckReport) -> None:
    path = record["file_name"]
    if not os.path.isfile(path):
        report.errors.append(f"{_where(record)}: image file missing")
        return
    if not read_images:
        return
    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file: PNG checksums fail here
        height, width = read_image(path).shape[:2]  # decoded as training decodes it: a truncated JPEG fails here
    except ImageModeError as error:  # its message names the file as `_where` does
        report.errors.append(str(error))
        return
    except Exception as error:  # PIL raises many types for bad files
        report.errors.append(f"{_where(record)}: unreadable image ({error})")
        return
    recorded = (record.get("height"), record.get("width"))
    if recorded != (None, None) and recorded != (height, width):
        report.errors.append(
            f"{_where(record)}: image is {height}x{width} but the record says {recorded[0]}x{recorded[1]}"
        )


def _clean_polygons(polygons: Sequence, record: dict, index: int, report: CheckReport) -> Optional[list]:
    """The polygons of 3 or more points; None when a coordinate is not finite."""
    kept = []
    for polygon in polygons:
        if not math.isfinite(sum(polygon)):  # a NaN or infinity anywhere makes the sum non-finite
            report.skip("object with non-finite polygon coordinates", _where(record, index))
            return None
        if len(polygon) < 6 or len(polygon) % 2:
            report.skip("polygon with fewer than 3 points", _where(record, index))
            continue
        kept.append(polygon)
    return kept


def _box_in_image(annotation: dict, height: int, width: int) -> Optional[tuple[float, float, float, float]]:
    """The box as XYXY clipped to the image; None when a coordinate is not finite."""
    mode, box = annotation["bbox_mode"], list(annotation["bbox"])
    if mode == BoxMode.XYWH_ABS:  # the common modes by hand: BoxMode.convert goes through torch
        box = [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    elif mode != BoxMode.XYXY_ABS:
        box = BoxMode.convert(box, mode, BoxMode.XYXY_ABS)
    if not math.isfinite(sum(box)):
        return None
    x0, y0, x1, y1 = box
    return max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))


def _check_annotation(
    annotation: dict,
    record: dict,
    index: int,
    num_classes: int,
    num_keypoints: Optional[int],
    mask_on: bool,
    report: CheckReport,
) -> Optional[dict]:
    """The annotation, cleaned, or None to drop it; errors go to `report`."""
    height, width, where = record["height"], record["width"], _where(record, index)
    if "bbox" not in annotation or "bbox_mode" not in annotation:
        report.errors.append(f"{where}: no bbox / bbox_mode")
        return None
    if not 0 <= annotation.get("category_id", -1) < num_classes:
        report.errors.append(
            f"{where}: category_id {annotation.get('category_id')} is not one of the {num_classes} classes"
        )
        return None
    segmentation = annotation.get("segmentation")
    if mask_on and not segmentation and not annotation.get("iscrowd", 0):
        # detectron2's loader leaves out an empty segmentation; its mapper then fails the batch
        report.skip("object without a segmentation (the model predicts masks)", where)
        return None
    if isinstance(segmentation, dict):
        size = list(segmentation.get("size", []))
        if size != [height, width]:
            report.errors.append(f"{where}: RLE of size {size} in an image of {height}x{width}")
            return None
    elif isinstance(segmentation, list):
        kept = _clean_polygons(segmentation, record, index, report)
        if kept is None:
            return None
        if not kept:
            report.skip("object without a polygon of 3 points", where)
            return None
        annotation["segmentation"] = kept
    box = _box_in_image(annotation, height, width)
    if box is None:
        report.skip("object with non-finite box coordinates", where)
        return None
    if box[2] <= box[0] or box[3] <= box[1]:
        report.skip("object whose box has no area inside the image", where)
        return None
    keypoints = annotation.get("keypoints")
    if num_keypoints is not None and keypoints is not None:
        if len(keypoints) != 3 * num_keypoints:
            report.errors.append(f"{where}: {len(keypoints)} keypoint values, expected 3 x {num_keypoints}")
            return None
        keypoints = np.asarray(keypoints, dtype=float).reshape(-1, 3)
        outside = (keypoints[:, 2] > 0) & (
            (keypoints[:, 0] < 0) | (keypoints[:, 1] < 0) | (keypoints[:, 0] > width) | (keypoints[:, 1] > height)
        )
        if outside.any():
            keypoints[outside, 2] = 0
            report.skip("labelled keypoint outside the image (made unlabelled)", where)
            annotation["keypoints"] = keypoints.flatten().tolist()
    return annotation


def check_records(
    records: Sequence[dict],
    num_classes: int,
    num_keypoints: Optional[int] = None,
    read_images: bool = False,
    mask_on: bool = False,
) -> tuple[list[dict], CheckReport]:
    """Check dataset dicts; return cleaned copies (skipped parts removed) and the report.

    Args:
        records: detectron2 dataset dicts (file_name, height, width, annotations).
        num_classes: the model's NUM_CLASSES (category_id must be in [0, num_classes)).
        num_keypoints: NUM_KEYPOINTS when the model predicts keypoints, else None (not checked).
        read_images: also decode every image (slow: the tool does it; training checks existence only).
        mask_on: the model predicts masks: every object but crowd regions needs a segmentation.
    """
    report, cleaned = CheckReport(), []
    for record in records:
        _check_image(record, read_images, report)
        record = copy.copy(record)
        if "annotations" in record:
            annotations = []
            for index, annotation in enumerate(record["annotations"]):
                kept = _check_annotation(
                    copy.copy(annotation), record, index, num_classes, num_keypoints, mask_on, report
                )
                if kept is not None:
                    annotations.append(kept)
            record["annotations"] = annotations
        cleaned.append(record)
    return cleaned, report
