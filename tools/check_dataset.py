#!/usr/bin/env python
"""Check registered datasets before training on them: every image read, every annotation checked.

    tools/check_dataset.py NAME [NAME ...] [--no-images] [--import MODULE]

For each dataset (DatasetCatalog name; `--import` a module of yours that registers it):
  - its COCO json as written, where it has one: ids that repeat, annotations of images or
    categories the file does not list, empty bboxes (errors); polygons of an odd number of
    coordinates or fewer than 3 points, which detectron2's loader drops unnamed (skipped, counted);
  - images that are missing, unreadable, of a PIL mode training does not read (32-bit float, say;
    16-bit gray is read: `mask_rcnn_ext/data/images.py`) or of another size than recorded (errors);
  - annotations whose category is not one of the dataset's `thing_classes`, whose RLE has another
    size than the image, or whose keypoints are not 3 x len(keypoint_names) values (errors);
    non-finite coordinates, boxes without area in the image, labelled keypoints outside it
    (skipped, counted).
Each is named by json file and annotation id, or image file and annotation index
(docs/reliability.md says what training does with each). Training runs the same checks on
DATASETS.TRAIN and DATASETS.TEST at start-up, without decoding images. Datasets registered with
detectron2's `register_coco_instances(name, {}, json_file, image_root)` are checked against the
classes their json declares.
Exit code 0: no errors; 1: errors; 2: a dataset that cannot be checked (not registered, its
annotation file unreadable, no classes) or an `--import` that fails, with the dataset and file named.
"""

import argparse
import functools
import sys

from detectron2.data import DatasetCatalog, MetadataCatalog

import mask_rcnn_ext  # noqa: F401  (registers the built-in datasets)
from mask_rcnn_ext.data.checks import check_records
from mask_rcnn_ext.engine.dataset_checks import annotation_file_report, load_named
from mask_rcnn_ext.user_modules import add_import_argument, parse_args_importing


def check_dataset(name: str, read_images: bool):
    """(records, CheckReport) of the registered dataset `name`: its json as written, where it has one
    (`data.coco_json_checks`), and its records against its own metadata (read after loading:
    detectron2's COCO loader fills thing_classes from the json's categories). ValueError naming the
    dataset (and its file) when it is not registered, cannot be loaded or has no thing_classes."""
    if name not in DatasetCatalog.list():
        raise ValueError(f"dataset {name!r} is not registered (--import the module that registers it)")
    records = load_named("dataset", [name], functools.partial(DatasetCatalog.get, name))
    meta = MetadataCatalog.get(name)
    if not meta.get("thing_classes", None):
        raise ValueError(f"dataset {name!r}: its metadata has no thing_classes to check category ids against")
    keypoint_names = meta.get("keypoint_names", None)
    _, report = check_records(
        records, len(meta.thing_classes), len(keypoint_names) if keypoint_names else None, read_images
    )
    report.extend(annotation_file_report([name]))
    return records, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("--no-images", action="store_true", help="check that image files exist, without reading them")
    add_import_argument(parser)
    args = parse_args_importing(parser, argv)
    failed = False
    for name in args.names:
        try:
            records, report = check_dataset(name, read_images=not args.no_images)
        except ValueError as error:
            parser.error(str(error))
        annotations = sum(len(r.get("annotations", [])) for r in records)
        print(f"{name}: {len(records)} images, {annotations} annotations: {report.summary()}")
        failed |= bool(report.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
