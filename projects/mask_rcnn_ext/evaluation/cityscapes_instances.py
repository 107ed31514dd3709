"""Cityscapes instance-level AP, exactly as the official evaluation computes it, in memory.

The official code (cityscapesscripts, `evaluation/evalInstanceLevelSemanticLabeling.py`) reads one
PNG per predicted mask, compares every mask with every ground-truth region of its class over the
whole image, and then scores the matches. Here each image is reduced once to what the scoring reads
(`ImageMatches`: region and prediction sizes, scores, and the pixels each prediction shares with the
void and with each region of its class), and the scoring is the official one on those numbers:

  * ground truth: the regions of the instance image (`*_gtFine_instanceIds.png`) whose label is one
    of the 8 evaluated classes. A region is an instance (value >= 1000) or a group (the bare label id).
    Instances of at least 100 pixels are scored; groups and smaller instances are ignore regions;
  * void: pixels whose instance-image value is the id of a label ignored in evaluation;
  * at each overlap threshold t in 0.5, 0.55, ..., 0.95, a prediction matches a scored instance of its
    class when their IoU is > t. An instance with matches is a true positive scored by its best
    match; its other matches are false positives. An instance without one is a false negative.
    A prediction that matches no region of its class (scored or ignored) is a false positive unless
    more than t of its pixels are void, group or small-instance pixels (a pixel in both a group and a
    small instance counts twice, as in the official code);
  * AP per class and threshold from the official precision-recall curve (same numpy operations, so
    the values are float-equal). A class with ground truth but no prediction has AP 0; a class
    without ground truth has NaN, left out of the averages. Where the official code crashes (a class
    whose every prediction is ignored and no instance is found, cityscapesScripts #89) the AP is 0.
"""

import dataclasses
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from tabulate import tabulate

from ..data.cityscapes import tree_from_metadata
from ..data.cityscapes_labels import EVAL_VOID_LABEL_IDS, THING_CLASSES, THING_LABEL_IDS
from ..io_utils import write_json_atomically

OVERLAPS = np.arange(0.5, 1.0, 0.05)  # the official thresholds, bit for bit
MIN_REGION_SIZE = 100  # pixels; smaller instances are ignore regions
RESULTS_FILE = "cityscapes_instances.json"


@dataclass
class ImageMatches:
    """What the official scoring reads of one image; a few KB, whatever the image and mask sizes.

    gt_label, gt_is_group, gt_pixels: (G,) the image's regions of the 8 evaluated classes (instances
        and groups): label id, whether it is a group, size in pixels.
    pred_label, pred_score, pred_pixels, pred_void_pixels: (P,) its non-empty predictions of those
        classes: label id, score (float64), size, pixels on void.
    pair_pred, pair_gt, pair_pixels: (M,) every (prediction, region of the prediction's class) that
        share pixels, as indices into the arrays above, and the shared pixel count.
    """

    gt_label: np.ndarray
    gt_is_group: np.ndarray
    gt_pixels: np.ndarray
    pred_label: np.ndarray
    pred_score: np.ndarray
    pred_pixels: np.ndarray
    pred_void_pixels: np.ndarray
    pair_pred: np.ndarray
    pair_gt: np.ndarray
    pair_pixels: np.ndarray


def match_image(
    instance_ids: np.ndarray, masks: torch.Tensor, label_ids: Sequence[int], scores: Sequence[float]
) -> ImageMatches:
    """Reduce one image's predictions against its instance image.

    Args:
        instance_ids: (H, W) non-negative integers, the image's `*_gtFine_instanceIds.png`.
        masks: (N, H, W) bool predicted masks, on any device (brought to the CPU).
        label_ids: (N,) Cityscapes label id of each prediction; ids outside the 8 classes are skipped.
        scores: (N,) confidences; kept as float64 of the given values.
    """
    if tuple(masks.shape[1:]) != tuple(instance_ids.shape):
        raise ValueError(f"predicted masks are {tuple(masks.shape[1:])}, the ground truth {instance_ids.shape}")
    region_sizes = np.bincount(instance_ids.ravel())
    region_map, gt_values = _region_map(instance_ids, region_sizes)
    num_regions = len(gt_values)
    gt_label = np.where(gt_values < 1000, gt_values, gt_values // 1000)
    masks = masks.bool().cpu().numpy()
    rows_hit = _rows_hit(masks)

    preds = {"label": [], "score": [], "pixels": [], "void": []}
    pairs = {"pred": [], "gt": [], "pixels": []}
    for i, (label, score) in enumerate(zip(np.asarray(label_ids).tolist(), np.asarray(scores, dtype=np.float64))):
        rows = np.flatnonzero(rows_hit[i])
        if label not in THING_LABEL_IDS or rows.size == 0:
            continue  # the official code skips other classes and empty masks
        rows = slice(rows[0], rows[-1] + 1)
        cols = np.flatnonzero(_columns_hit(masks[i, rows]))
        box = (rows, slice(cols[0], cols[-1] + 1))
        counts = np.bincount(region_map[box][masks[i][box]], minlength=num_regions + 2)
        shared = np.flatnonzero((counts[:num_regions] > 0) & (gt_label == label))
        pairs["pred"] += [len(preds["label"])] * len(shared)
        pairs["gt"] += shared.tolist()
        pairs["pixels"] += counts[shared].tolist()
        for key, value in zip(preds, (label, score, counts.sum(), counts[num_regions])):
            preds[key].append(value)

    as_int = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return ImageMatches(
        gt_label=gt_label.astype(np.int64),
        gt_is_group=gt_values < 1000,
        gt_pixels=region_sizes[gt_values].astype(np.int64),
        pred_label=as_int(preds["label"]),
        pred_score=np.array(preds["score"], dtype=np.float64),
        pred_pixels=as_int(preds["pixels"]),
        pred_void_pixels=as_int(preds["void"]),
        pair_pred=as_int(pairs["pred"]),
        pair_gt=as_int(pairs["gt"]),
        pair_pixels=as_int(pairs["pixels"]),
    )


# Which rows / columns of a mask hold a pixel is found 8 pixels at a time (the bool bytes read as
# int64) where the width allows: a plain `any` over 100 masks of 2048 x 1024 would cost more than all
# the rest of `match_image`. Columns are only searched in the rows a mask spans.
def _rows_hit(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool masks -> (N, H) bool: rows with a pixel."""
    if masks.shape[2] % 8 or not masks.flags.c_contiguous:
        return masks.any(axis=2)
    return np.bitwise_or.reduce(masks.view(np.int64), axis=2) != 0


def _columns_hit(mask: np.ndarray) -> np.ndarray:
    """(h, W) bool rows of one mask -> (W,) bool: columns with a pixel."""
    if mask.shape[1] % 8 or not mask.flags.c_contiguous:
        return mask.any(axis=0)
    return np.bitwise_or.reduce(mask.view(np.int64), axis=0).view(np.bool_)


def _region_map(instance_ids: np.ndarray, value_counts: np.ndarray):
    """(H, W) int32 map: index of the pixel's evaluated region, G for void, G + 1 for anything else;
    and (G,) the instance-image values of the G regions, ascending. `value_counts` is the
    bincount of `instance_ids`."""
    present = np.flatnonzero(value_counts)
    labels = np.where(present < 1000, present, present // 1000)
    values = present[np.isin(labels, THING_LABEL_IDS)]
    lookup = np.full(present[-1] + 1, len(values) + 1, dtype=np.int32)
    void = [v for v in EVAL_VOID_LABEL_IDS if 0 <= v <= present[-1]]
    lookup[void] = len(values)  # void ids are never ids of evaluated regions
    lookup[values] = np.arange(len(values))
    return np.take(lookup, instance_ids), values


def _concatenate(images: Sequence[ImageMatches]) -> ImageMatches:
    """One ImageMatches for all (one or more) images, pair indices shifted to the concatenated arrays."""
    shifts = {
        "pair_pred": np.cumsum([0] + [len(m.pred_label) for m in images]),
        "pair_gt": np.cumsum([0] + [len(m.gt_label) for m in images]),
    }
    return ImageMatches(
        **{
            f.name: np.concatenate(
                [
                    getattr(m, f.name) + shifts[f.name][i] if f.name in shifts else getattr(m, f.name)
                    for i, m in enumerate(images)
                ]
            )
            for f in dataclasses.fields(ImageMatches)
        }
    )


def average_precisions(images: Sequence[ImageMatches]) -> np.ndarray:
    """(1, 8, 10) AP of each class (THING_LABEL_IDS order) at each of OVERLAPS, in the official
    result matrix's layout (its first axis is the distance setting; only 'any distance' exists here)."""
    m = _concatenate(images)
    ap = np.zeros((1, len(THING_LABEL_IDS), len(OVERLAPS)), float)
    iou = m.pair_pixels / (m.gt_pixels[m.pair_gt] + m.pred_pixels[m.pair_pred] - m.pair_pixels)
    scored_gt = ~m.gt_is_group & (m.gt_pixels >= MIN_REGION_SIZE)
    # pixels of each prediction on ignore regions; a pixel of a small group counts twice, as officially
    ignored_pixels = m.pair_pixels * (
        m.gt_is_group[m.pair_gt].astype(np.int64) + (m.gt_pixels[m.pair_gt] < MIN_REGION_SIZE)
    )
    ignored_fraction = (
        m.pred_void_pixels
        + np.bincount(m.pair_pred, weights=ignored_pixels, minlength=len(m.pred_label)).astype(np.int64)
    ) / m.pred_pixels
    for c, label in enumerate(THING_LABEL_IDS):
        class_gt = scored_gt & (m.gt_label == label)
        class_pred = m.pred_label == label
        if not class_gt.any():
            ap[0, c, :] = np.nan
            continue
        if not class_pred.any():
            continue  # AP 0
        class_pair = class_pred[m.pair_pred]
        for t, overlap in enumerate(OVERLAPS):
            hit = class_pair & (iou > overlap)
            found = hit & scored_gt[m.pair_gt]
            # per instance, its best match is a true positive and the others false positives
            order = np.lexsort((-m.pred_score[m.pair_pred[found]], m.pair_gt[found]))
            found_gt, found_score = m.pair_gt[found][order], m.pred_score[m.pair_pred[found]][order]
            best = np.r_[True, found_gt[1:] != found_gt[:-1]] if found_gt.size else np.zeros(0, bool)
            matched_pred = np.zeros(len(m.pred_label), bool)
            matched_pred[m.pair_pred[hit]] = True
            unmatched_fp = class_pred & ~matched_pred & (ignored_fraction <= overlap)
            y_true = np.r_[np.ones(best.sum()), np.zeros((~best).sum() + unmatched_fp.sum())]
            y_score = np.r_[found_score[best], found_score[~best], m.pred_score[unmatched_fp]]
            ap[0, c, t] = _official_average_precision(y_true, y_score, int(class_gt.sum() - best.sum()))
    return ap


def _official_average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_false_negatives: int) -> float:
    """The official area under the step-wise precision-recall curve, with its numpy operations (the
    order of ties does not change it). Empty inputs give 0 where the official code crashes."""
    order = np.argsort(y_score)
    true_cumsum = np.cumsum(y_true[order])
    _, unique_indices = np.unique(y_score[order], return_index=True)
    num_examples = len(y_score)
    num_true = true_cumsum[-1] if num_examples else 0.0
    true_cumsum = np.append(true_cumsum, 0)  # index -1 of the first threshold reads this 0
    below = true_cumsum[unique_indices - 1]
    tp = num_true - below
    fp = num_examples - unique_indices - tp
    fn = below + hard_false_negatives
    precision = np.append(tp / (tp + fp), 1.0)  # the curve's artificial first point: recall 0, precision 1
    recall = np.append(tp / (tp + fn), 0.0)
    recall_for_conv = np.append(np.append(recall[0], recall), 0.0)
    step_widths = np.convolve(recall_for_conv, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, step_widths))


def average_results(ap: np.ndarray) -> dict:
    """The official `computeAverages`: overall and per-class AP and AP50 (fractions, NaN classes
    left out of the overall means), with its numpy expressions so the values are float-equal."""
    o50 = np.where(np.isclose(OVERLAPS, 0.5))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # no class has ground truth
        results = {"allAp": np.nanmean(ap[0, :, :]), "allAp50%": np.nanmean(ap[0, :, o50]), "classes": {}}
    for c, name in enumerate(THING_CLASSES):
        results["classes"][name] = {"ap": np.average(ap[0, c, :]), "ap50%": np.average(ap[0, c, o50])}
    return results


class CityscapesInstanceEvaluator(DatasetEvaluator):
    """Cityscapes AP and AP50 (overall and per class) of `pred_masks`, float-equal to the official
    evaluation on the images it is given, without writing a file per mask.

    Works across processes and machines: each process reduces its images to `ImageMatches`, which
    are gathered to the main process. Results are under "cityscapes_segm" in percent, and written
    with the full (8, 10) AP matrix to `output_dir/cityscapes_instances.json`.
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, distributed: bool = True):
        self._tree = tree_from_metadata(dataset_name)
        if self._tree.gt_dir is None:
            raise ValueError(f"Dataset '{dataset_name}' has no ground truth (gt_dir=None): nothing to evaluate")
        meta = MetadataCatalog.get(dataset_name)
        self._label_ids = np.array(
            sorted(meta.thing_dataset_id_to_contiguous_id, key=meta.thing_dataset_id_to_contiguous_id.get)
        )
        self._dataset_name, self._output_dir, self._distributed = dataset_name, output_dir, distributed
        self._logger = logging.getLogger(__name__)
        self.reset()

    def reset(self):
        self._matches: dict[str, ImageMatches] = {}

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            instance_ids = self._tree.instance_ids(input["file_name"])
            instances = output["instances"] if "instances" in output else None
            if instances is None or len(instances) == 0:
                masks, classes, scores = torch.zeros((0, *instance_ids.shape), dtype=torch.bool), [], []
            else:
                masks, classes, scores = (
                    instances.pred_masks,
                    instances.pred_classes.cpu().numpy(),
                    instances.scores.cpu().numpy(),
                )
            try:
                self._matches[input["file_name"]] = match_image(instance_ids, masks, self._label_ids[classes], scores)
            except ValueError as error:
                raise ValueError(f"'{input['file_name']}': {error}") from error

    def evaluate(self):
        matches = self._matches
        if self._distributed:
            comm.synchronize()
            matches = {k: v for part in comm.gather(matches, dst=0) for k, v in part.items()}
            if not comm.is_main_process():
                return {}
        if not matches:
            self._logger.warning(f"[CityscapesInstanceEvaluator] no image of '{self._dataset_name}' was evaluated")
            return {}
        ap = average_precisions([matches[k] for k in sorted(matches)])
        averages = average_results(ap)
        results = {"AP": 100 * averages["allAp"], "AP50": 100 * averages["allAp50%"]}
        for name, values in averages["classes"].items():
            results[f"AP-{name}"], results[f"AP50-{name}"] = 100 * values["ap"], 100 * values["ap50%"]
        self._logger.info(
            f"Cityscapes instance AP of {len(matches)} images of '{self._dataset_name}' (NaN: no ground truth):\n"
            + tabulate(
                [[name, 100 * v["ap"], 100 * v["ap50%"]] for name, v in averages["classes"].items()]
                + [["average", results["AP"], results["AP50"]]],
                headers=["class", "AP", "AP50"],
                floatfmt=".3f",
            )
        )
        if self._output_dir:
            write_json_atomically(
                os.path.join(self._output_dir, RESULTS_FILE),
                {
                    "averages": _json_safe(averages),
                    "overlaps": OVERLAPS.tolist(),
                    "classes": THING_CLASSES,
                    "ap_matrix": _json_safe(ap[0].tolist()),
                    "num_images": len(matches),
                },
            )
        return OrderedDict(cityscapes_segm=results)


def _json_safe(value):
    """Floats as JSON numbers, NaN as null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if np.isnan(value) else float(value)
