"""Checks of a COCO-format json as written, which detectron2's loader reads.

detectron2's `load_coco_json` drops some faults without a word and fails on others without naming
the file or the annotation: polygons of an odd number of coordinates or fewer than 3 points are
dropped (an object left with none: "Filtered out 1 instances"), annotations of images the file
does not list are ignored, an unknown `category_id` raises a bare KeyError, text that is not JSON
a decoder position. Here every such fault is reported with the json file, the annotation id and
its image:

  error:    not JSON, or no `images` / `categories` lists (`annotations` may be absent, as in
            COCO's test-dev); an image, annotation or category id that repeats; an annotation of
            an image id the file does not list, of a category id it does not list, with an empty
            bbox, or marked `ignore`;
  skipped:  a polygon of an odd number of coordinates or fewer than 3 points; an object left
            without polygons (both dropped by detectron2's loader: reported here by name).
"""

import collections
import json

from .checks import CheckReport


def _annotation(json_file: str, annotation: dict, images: dict) -> str:
    image = images.get(annotation.get("image_id"), {})
    return (
        f"'{json_file}' annotation id {annotation.get('id')} "
        f"(image id {annotation.get('image_id')}, '{image.get('file_name', '?')}')"
    )


def _repeated_ids(items: list, what: str, json_file: str, report: CheckReport) -> None:
    counts = collections.Counter(item.get("id") for item in items if isinstance(item, dict))
    repeated = [i for i, n in counts.items() if n > 1]
    if repeated:
        report.errors.append(f"'{json_file}': {len(repeated)} {what} ids repeat, e.g. {repeated[:5]}")


def _check_polygons(where: str, segmentation, report: CheckReport) -> None:
    if not isinstance(segmentation, list) or not segmentation:  # RLE, or none: read as written
        return
    kept = 0
    for polygon in segmentation:
        if isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0:
            kept += 1
        else:
            size = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
            report.skip("polygon of an odd number of coordinates or fewer than 3 points", f"{where}: {size}")
    if not kept:
        report.skip("object without a polygon of 3 points", where)


def check_coco_json(json_file: str, report: CheckReport) -> None:
    """Add the faults of the COCO-format json `json_file` to `report` (see the module docstring)."""
    try:
        with open(json_file) as f:
            data = json.load(f)
    except (OSError, ValueError) as error:  # ValueError: JSON syntax and encoding
        report.errors.append(f"'{json_file}' cannot be read as JSON: {type(error).__name__}: {error}")
        return
    data = data if isinstance(data, dict) else {}
    data.setdefault("annotations", [])  # image lists without annotations (COCO's test-dev) are read too
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if missing:
        report.errors.append(f"'{json_file}' is not a COCO json: no {' / '.join(missing)} list")
        return
    for key, what in (("images", "image"), ("annotations", "annotation"), ("categories", "category")):
        _repeated_ids(data[key], what, json_file, report)
    images = {image.get("id"): image for image in data["images"] if isinstance(image, dict)}
    categories = {category.get("id") for category in data["categories"] if isinstance(category, dict)}
    problems = collections.defaultdict(list)
    for annotation in data["annotations"]:
        where = _annotation(json_file, annotation, images)
        if annotation.get("image_id") not in images:
            problems["of an image id the file does not list"].append(where)
            continue
        if annotation.get("category_id") not in categories:
            problems[f"of a category_id not in its categories {sorted(categories)}"].append(
                f"{where}: category_id {annotation.get('category_id')}"
            )
        if "bbox" in annotation and not annotation["bbox"]:
            problems["with an empty bbox"].append(where)
        if annotation.get("ignore", 0):
            problems["marked 'ignore' (detectron2 does not read it; use iscrowd)"].append(where)
        _check_polygons(where, annotation.get("segmentation"), report)
    for problem, where in problems.items():
        examples = "; ".join(where[:5]) + (f"; and {len(where) - 5} more" if len(where) > 5 else "")
        report.errors.append(f"{len(where)} annotations {problem}: {examples}")
