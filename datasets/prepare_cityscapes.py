#!/usr/bin/env python
"""Parse the Cityscapes tree once, in parallel, into the cache the registered datasets read.

    python datasets/prepare_cityscapes.py [--splits train val test] [--workers N]

Reads `$DETECTRON2_DATASETS/cityscapes/` (default ./datasets/cityscapes; layout in
datasets/README.md) and writes `cityscapes/cache/`, which `cityscapes_instances_fine_<split>` then
loads in about a second. Without it the first training run parses the tree itself (the same
work, in the training process). A changed or added annotation file makes the cache stale, and the
next load rebuilds it. Prints, per split, the images and the instances per class.
"""

import argparse
import collections
import os
import time

from tabulate import tabulate

from mask_rcnn_ext.data.builtin import CITYSCAPES_SPLITS, cityscapes_cache_dir
from mask_rcnn_ext.data.cityscapes import load_cityscapes_instances, tree_from_metadata
from mask_rcnn_ext.data.cityscapes_labels import THING_CLASSES


def summary(records) -> dict:
    """Images, then per class: instances (groups in brackets)."""
    counts = collections.Counter()
    for record in records:
        for a in record.get("annotations", []):
            counts[(a["category_id"], bool(a["iscrowd"]))] += 1
    row = {"images": len(records)}
    for i, name in enumerate(THING_CLASSES):
        row[name] = f"{counts[(i, False)]} ({counts[(i, True)]})"
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parsing processes")
    args = parser.parse_args(argv)
    rows = []
    for name, split in CITYSCAPES_SPLITS.items():
        if split not in args.splits:
            continue
        start = time.perf_counter()
        records = load_cityscapes_instances(tree_from_metadata(name), cityscapes_cache_dir(), args.workers)
        rows.append({"dataset": name, **summary(records), "seconds": round(time.perf_counter() - start, 1)})
    print(f"Cached under {cityscapes_cache_dir()}; instances per class (groups in brackets):")
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":
    main()
