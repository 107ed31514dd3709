#!/usr/bin/env python
"""Cityscapes evaluation and loading speed, ours against the official pipeline, in one process.

    python -m benchmarks.cityscapes [--images 10] [--detections 100] [--height 1024 --width 2048]
                                  [--quick] [--output FILE.json]

Evaluation: a synthetic Cityscapes tree of `--images` images at the real size, each with
`--detections` predicted masks made from its ground truth as a model errs (grown, shrunk, shifted,
mislabelled, duplicated, on background), is scored twice:
  * official: what detectron2's CityscapesInstanceEvaluator does, a 0/255 PNG per mask and a text
    file per image, then cityscapesscripts' `evaluateImgLists` (benchmarks/official_cityscapes.py);
  * ours: `CityscapesInstanceEvaluator.process` on the masks as tensors, then `evaluate`.
Both must give the same AP to the last digit. Loading: the same tree's records parsed afresh
(in parallel, as `load_cityscapes_instances` does without a cache) against read from its cache.
Figures are wall-clock seconds on this machine; `ours/official` below 1 is faster.
"""

import argparse
import functools
import os
import tempfile
from collections.abc import Sequence
from typing import Optional

import cv2
import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from benchmarks.measure import timed
from benchmarks.official_cityscapes import evaluate_official, write_predictions
from mask_rcnn_ext.data.cityscapes import CityscapesTree, cityscapes_metadata, load_cityscapes_instances
from mask_rcnn_ext.data.cityscapes_labels import THING_LABEL_IDS
from mask_rcnn_ext.data.synthetic_cityscapes import SyntheticCityscapesSpec, write_split
from mask_rcnn_ext.evaluation import CityscapesInstanceEvaluator
from mask_rcnn_ext.io_utils import write_json_atomically

IGNORED_INSTANCE_LABEL_IDS = (29, 30)  # caravan, trailer: a model of 8 classes never predicts them


def _box(shape: tuple[int, int], y: int, x: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y : y + h, x : x + w] = True
    return mask


def simulated_predictions(
    instance_ids: np.ndarray,
    rng: np.random.Generator,
    count: Optional[int] = None,
    label_ids: Sequence[int] = THING_LABEL_IDS,
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Predictions made from an instance image as a model errs: each region of a class in `label_ids`
    (and caravans, trailers and some stuff, as other classes) gives 1-2 masks, grown, shrunk, shifted
    or kept, 20% with a wrong class of `label_ids`; scores are float32, half of them rounded to one
    decimal (ties); then masks on random boxes, scored below 0.3: 3, or up to `count` in all (extra
    ones dropped).

    Returns (N, H, W) bool masks, N label ids (of `label_ids`), (N,) float32 scores.
    """
    masks, labels, scores = [], [], []
    kernel = np.ones((3, 3), np.uint8)
    for value in np.unique(instance_ids).tolist():
        label = value if value < 1000 else value // 1000
        if label not in (*label_ids, *IGNORED_INSTANCE_LABEL_IDS) and rng.random() > 0.1:
            continue
        for _ in range(int(rng.integers(1, 3))):
            mask = (instance_ids == value).astype(np.uint8)
            r = rng.random()
            if r < 0.3:
                mask = cv2.dilate(mask, kernel, iterations=int(rng.integers(1, 4)))
            elif r < 0.6:
                mask = cv2.erode(mask, kernel, iterations=int(rng.integers(1, 3)))
            elif r < 0.8:
                mask = np.roll(mask, int(rng.integers(-6, 7)), axis=1)
            masks.append(mask.astype(bool))
            labels.append(label if label in label_ids and rng.random() < 0.8 else int(rng.choice(label_ids)))
            scores.append(round(float(rng.random()), 1) if rng.random() < 0.5 else rng.random())
    height, width = instance_ids.shape
    for _ in range(3 if count is None else max(0, count - len(masks))):
        h, w = int(rng.integers(2, height // 8)), int(rng.integers(2, width // 8))
        masks.append(_box(instance_ids.shape, int(rng.integers(0, height - h)), int(rng.integers(0, width - w)), h, w))
        labels.append(int(rng.choice(label_ids)))
        scores.append(0.3 * rng.random())  # a model's spurious detections score low
    return np.array(masks[:count]), labels[:count], np.array(scores[:count], dtype=np.float32)


def model_output(masks: np.ndarray, label_ids: Sequence[int], scores: np.ndarray) -> dict:
    """What a detectron2 model returns for the predictions: Instances with contiguous classes."""
    instances = Instances(masks.shape[1:])
    instances.pred_masks = torch.from_numpy(masks)
    instances.pred_classes = torch.tensor([THING_LABEL_IDS.index(label) for label in label_ids], dtype=torch.int64)
    instances.scores = torch.from_numpy(scores)
    return {"instances": instances}


def benchmark_evaluation(tree: CityscapesTree, detections: int, work_dir: str) -> dict:
    """Seconds of the official pipeline and of ours on the same predictions, and both APs."""
    dataset_name = "benchmark_cityscapes_tree"
    MetadataCatalog.get(dataset_name).set(**cityscapes_metadata(tree))
    evaluator = CityscapesInstanceEvaluator(dataset_name, distributed=False)
    rng = np.random.default_rng(0)
    images = tree.image_files()
    pred_dir = os.path.join(work_dir, "pred")
    times = {"official_write_s": 0.0, "ours_process_s": 0.0}
    for image_file in images:
        masks, labels, scores = simulated_predictions(tree.instance_ids(image_file), rng, detections)
        _, seconds = timed(functools.partial(write_predictions, pred_dir, image_file, masks, labels, scores))
        times["official_write_s"] += seconds
        output = model_output(masks, labels, scores)
        _, seconds = timed(functools.partial(evaluator.process, [{"file_name": image_file}], [output]))
        times["ours_process_s"] += seconds
    official, times["official_evaluate_s"] = timed(
        functools.partial(evaluate_official, [tree.gt_file(f) for f in images], pred_dir, work_dir)
    )
    results, times["ours_evaluate_s"] = timed(evaluator.evaluate)
    ours = results["cityscapes_segm"]
    times["official_s"] = times["official_write_s"] + times["official_evaluate_s"]
    times["ours_s"] = times["ours_process_s"] + times["ours_evaluate_s"]
    return dict(
        times,
        official_AP=float(100 * official["averages"]["allAp"]),
        official_AP50=float(100 * official["averages"]["allAp50%"]),
        ours_AP=float(ours["AP"]),
        ours_AP50=float(ours["AP50"]),
    )


def benchmark_loading(tree: CityscapesTree, cache_dir: str) -> dict:
    """Seconds to parse the tree's records afresh and to read them from the cache."""
    load = functools.partial(load_cityscapes_instances, tree, cache_dir)
    parsed, parse_s = timed(load)  # parses, then writes the cache
    cached, cached_s = timed(load)
    if cached != parsed:
        raise RuntimeError("cached records differ from the parsed ones")
    return {"parse_s": parse_s, "cached_s": cached_s}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--detections", type=int, default=100, help="predicted masks per image")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="2 images of 512 x 1024 with 20 detections (CI)")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.detections, args.height, args.width = 2, 20, 512, 1024
    if min(args.images, args.detections, args.height, args.width) < 1:
        parser.error("--images, --detections, --height and --width must be >= 1")

    with tempfile.TemporaryDirectory() as work_dir:
        spec = SyntheticCityscapesSpec(
            "val", args.images, seed=0, cities=("frankfurt", "lindau", "munster"), height=args.height, width=args.width
        )
        write_split(spec, work_dir)
        tree = CityscapesTree(os.path.join(work_dir, "leftImg8bit", "val"), os.path.join(work_dir, "gtFine", "val"))
        evaluation = benchmark_evaluation(tree, args.detections, work_dir)
        loading = benchmark_loading(tree, os.path.join(work_dir, "cache"))

    identical = (
        evaluation["ours_AP"] == evaluation["official_AP"] and evaluation["ours_AP50"] == evaluation["official_AP50"]
    )
    report = {
        "setting": {
            "images": args.images,
            "detections": args.detections,
            "height": args.height,
            "width": args.width,
            "cpu_threads": torch.get_num_threads(),
        },
        "evaluation": evaluation,
        "identical_AP": identical,
        "evaluation_speedup": evaluation["official_s"] / evaluation["ours_s"],
        "loading": loading,
        "loading_speedup": loading["parse_s"] / loading["cached_s"],
    }
    print(f"Cityscapes evaluation, {args.images} images of {args.width}x{args.height}, {args.detections} masks each:")
    print(
        f"  official (PNG per mask + evaluateImgLists): {evaluation['official_s']:.2f} s "
        f"(writing {evaluation['official_write_s']:.2f} s, evaluating {evaluation['official_evaluate_s']:.2f} s)"
    )
    print(
        f"  ours (CityscapesInstanceEvaluator):         {evaluation['ours_s']:.3f} s "
        f"(process {evaluation['ours_process_s']:.3f} s, evaluate {evaluation['ours_evaluate_s']:.3f} s)"
    )
    print(
        f"  AP official {evaluation['official_AP']!r} / ours {evaluation['ours_AP']!r}; "
        f"AP50 official {evaluation['official_AP50']!r} / ours {evaluation['ours_AP50']!r}; identical: {identical}"
    )
    print(f"  ours/official time {1 / report['evaluation_speedup']:.4f} ({report['evaluation_speedup']:.1f}x faster)")
    print(
        f"Cityscapes records of the same tree: parsed {loading['parse_s']:.3f} s, from the cache "
        f"{loading['cached_s']:.4f} s ({report['loading_speedup']:.0f}x faster)"
    )
    if args.output:
        write_json_atomically(args.output, report)
    if not identical:
        raise SystemExit("ours and the official evaluation disagree")
    return report


if __name__ == "__main__":
    main()
