"""COCO format: annotations of rendered instances, and a split written as PNGs and one json."""

import functools
import os
from typing import Optional

import cv2
import numpy as np
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES
from pycocotools import mask as mask_util

from ...io_utils import write_json_atomically
from ..parallel import default_num_workers, parallel_map
from .placement import render_sample
from .spec import THING_CLASSES, SyntheticSpec, generator_id

# COCO's person skeleton, 1-based keypoint indices as in person_keypoints_*.json.
COCO_SKELETON = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)


def mask_to_segmentation(mask: np.ndarray):
    """COCO segmentation of a (H, W) bool mask: a polygon when the mask is one simple region that
    the polygon reproduces exactly under pycocotools' rasterizer, else compressed RLE."""
    h, w = mask.shape
    # Contours run through the centres of boundary pixels; tracing the mask at twice the
    # resolution puts them a quarter pixel inside the pixel edges, close enough to rasterize back.
    doubled = cv2.resize(mask.astype(np.uint8), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 1:
        contour = cv2.approxPolyDP(contours[0], 0.5, True).reshape(-1, 2)
        polygon = ((contour.astype(np.float64) + 0.5) / 2).flatten().tolist()
        if len(polygon) >= 6:
            drawn = mask_util.decode(mask_util.frPyObjects([polygon], h, w))[..., 0].astype(bool)
            if np.array_equal(drawn, mask):
                return [polygon]
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_categories() -> list[dict]:
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(THING_CLASSES)]
    categories[0].update(
        supercategory="person", keypoints=list(COCO_PERSON_KEYPOINT_NAMES), skeleton=[list(p) for p in COCO_SKELETON]
    )
    return categories


def coco_annotations(instances: list[dict], image_id: int, first_id: int) -> list[dict]:
    """COCO annotation dicts for `render_sample`'s instances; ids count up from `first_id`."""
    annotations = []
    for offset, inst in enumerate(instances):
        mask = inst["visible_mask"]
        ys, xs = np.nonzero(mask)
        keypoints = inst["keypoints"]
        annotations.append(
            {
                "id": first_id + offset,
                "image_id": image_id,
                "category_id": THING_CLASSES.index(inst["category"]) + 1,
                "segmentation": mask_to_segmentation(mask),
                "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "iscrowd": 0,
                "keypoints": [int(v) for v in keypoints.flatten()],
                "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            }
        )
    return annotations


def write_image(spec: SyntheticSpec, image_dir: str, index: int) -> tuple[dict, list[dict]]:
    """Render image `index` of `spec` as PNG into `image_dir`; its COCO image entry and annotations
    (annotation ids from 1)."""
    image, instances = render_sample(spec, index)
    file_name = f"{index:06d}.png"
    cv2.imwrite(os.path.join(image_dir, file_name), image[:, :, ::-1])
    entry = {"id": index + 1, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]}
    return entry, coco_annotations(instances, index + 1, first_id=1)


def write_coco_split(spec: SyntheticSpec, image_dir: str, json_path: str, num_workers: Optional[int] = None) -> None:
    """Render every image of `spec` as PNG into `image_dir`, in `num_workers` processes (default:
    a process per core, up to 8; each image depends on its index alone, so the files are the same
    for any count), and write the COCO json (atomically, last, so a json on disk always describes
    a complete image folder)."""
    os.makedirs(image_dir, exist_ok=True)
    written = parallel_map(
        functools.partial(write_image, spec, image_dir),
        range(spec.num_images),
        num_workers or default_num_workers(),
        desc="generating synthetic images",
    )
    images = [entry for entry, _ in written]
    in_image_order = (annotation for _, image_annotations in written for annotation in image_annotations)
    annotations = [dict(annotation, id=annotation_id) for annotation_id, annotation in enumerate(in_image_order, 1)]
    info = {"description": "mask_rcnn_ext synthetic data", "generator": generator_id(spec)}
    write_json_atomically(
        json_path, {"info": info, "images": images, "annotations": annotations, "categories": coco_categories()}
    )
