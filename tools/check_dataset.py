#!/usr/bin/env python
"""Check registered datasets before training on them: every image read, every annotation checked.

    tools/check_dataset.py NAME [NAME ...] [--no-images] [--import MODULE]

For each dataset (DatasetCatalog name; `--import` a module of yours that registers it): images that
are missing, unreadable, or of another size than recorded; annotations whose category is not one of
the dataset's `thing_classes`, whose RLE has another size than the image, or whose keypoints are
not 3 x len(keypoint_names) values (errors); polygons of fewer than 3 points, non-finite
coordinates, boxes without area in the image, labelled keypoints outside it (skipped, counted).
Each is named by image file and annotation index (docs/reliability.md says what training does
with each). Training runs the same checks on DATASETS.TRAIN at start-up, without decoding images.
Exit code 0: no errors; 1: errors.
"""

import argparse
import sys

from detectron2.data import DatasetCatalog, MetadataCatalog

import mask_rcnn_ext  # noqa: F401  (registers the built-in datasets)
from mask_rcnn_ext.data.checks import check_records
from mask_rcnn_ext.user_modules import add_import_argument, parse_args_importing


def check_dataset(name: str, read_images: bool):
    """(records, CheckReport) of the registered dataset `name`, against its own metadata.
    ValueError naming the dataset when it is not registered or its metadata has no thing_classes."""
    if name not in DatasetCatalog.list():
        raise ValueError(f"dataset {name!r} is not registered (--import the module that registers it)")
    meta = MetadataCatalog.get(name)
    if not meta.get("thing_classes", None):
        raise ValueError(f"dataset {name!r}: its metadata has no thing_classes to check category ids against")
    keypoint_names = meta.get("keypoint_names", None)
    records = DatasetCatalog.get(name)
    _, report = check_records(
        records, len(meta.thing_classes), len(keypoint_names) if keypoint_names else None, read_images
    )
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
