"""Per-keypoint diagnostics of a pose model: which keypoints lose the keypoint AP, and by how much.

COCO keypoint AP (detectron2's COCOEvaluator) folds all keypoints into one OKS per person. Here the
people are matched as COCO keypoint evaluation matches them, then every keypoint is scored alone.

Matching, per image and category (COCOeval's rule at OKS threshold 0.5, its loosest AP threshold):
  * the people scored are the annotations with iscrowd = 0 and num_keypoints > 0. The others are
    COCO's ignore regions, which never take a prediction away from a scored person, so they are
    simply left out;
  * the predictions are the 20 highest-scoring (COCO's maxDets for keypoints), taken in decreasing
    score (stable order for ties);
  * each takes the still unmatched person with the highest OKS if that OKS is >= 0.5 (among equal
    OKS, the later annotation, as COCOeval). A matched person is thus a true positive of AP50.
    Any OKS > 0 is no threshold: OKS never reaches 0, so every person would be paired with some
    prediction however far, and the errors would measure the pairing, not the keypoints;
  * OKS = the mean, over the person's keypoints with v > 0, of the per-keypoint similarity
    exp(-d^2 / (2 s^2 k^2)): d the Euclidean distance, s^2 the annotation's `area`, k = 2 sigma.

Per keypoint, over the visible (v > 0) ground-truth keypoints of the scored people:
  * mean_error: mean of d / s (s = sqrt(area), OKS's scale) over the matched people only;
  * detect@t: the fraction whose per-keypoint similarity is >= t, i.e. d / s <= k sqrt(2 ln(1/t)).
    Keypoints of unmatched people count as misses.
The overall numbers pool every visible keypoint (each weighs the same, whichever its type).
Rates are fractions in [0, 1]. Coordinates are the json's pixel indices: detectron2's predictions
are moved by -0.5 first, as COCOEvaluator does.
"""

import contextlib
import io
import itertools
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from pycocotools.coco import COCO

from ..data.coco_keypoints import resolve_oks_sigmas
from ..io_utils import write_json_atomically
from ..plotting import png_figure

MATCH_OKS_THRESHOLD = 0.5
MAX_DETECTIONS = 20  # COCOeval's maxDets for keypoints
DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)
JSON_FILE = "keypoint_diagnostics.json"
PNG_FILE = "keypoint_diagnostics.png"


def evaluated_annotations(annotations: Sequence[dict]) -> list[dict]:
    """The COCO annotations that keypoint evaluation scores: not crowd, at least one labelled keypoint."""
    return [a for a in annotations if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]


def normalized_errors(pred_xy: np.ndarray, gt_keypoints: np.ndarray, gt_areas: np.ndarray) -> np.ndarray:
    """d / s of each keypoint: (..., K, 2) predicted x, y, (..., K, 3) gt x, y, v, (...) gt areas -> (..., K).

    s^2 = area + machine epsilon, as pycocotools, so a zero area gives a huge error, not a division by zero.
    """
    squared = ((pred_xy - gt_keypoints[..., :2]) ** 2).sum(-1)
    return np.sqrt(squared / (gt_areas[..., None] + np.spacing(1)))


def keypoint_similarity(errors: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """OKS's per-keypoint term exp(-d^2 / (2 s^2 k^2)) with k = 2 sigma, from errors (..., K) = d / s."""
    return np.exp(-(errors**2) / (2 * (2 * np.asarray(sigmas, dtype=float)) ** 2))


def oks_matrix(
    pred_xy: np.ndarray, gt_keypoints: np.ndarray, gt_areas: np.ndarray, sigmas: Sequence[float]
) -> np.ndarray:
    """Object keypoint similarity of every prediction with every ground-truth person.

    Args:
        pred_xy: (D, K, 2) predicted keypoints, x, y.
        gt_keypoints: (G, K, 3) gt keypoints, x, y, v; each person has a keypoint with v > 0.
        gt_areas: (G,) gt `area`, OKS's s^2.
        sigmas: (K,) per-keypoint OKS sigmas.
    Returns:
        (D, G) OKS. Equals pycocotools' COCOeval.computeOks (which measures people without any
        visible keypoint differently, but those are never scored).
    """
    errors = normalized_errors(pred_xy[:, None], gt_keypoints[None], gt_areas[None])  # (D, G, K)
    similarity = keypoint_similarity(errors, sigmas)
    visible = gt_keypoints[None, :, :, 2] > 0
    return (similarity * visible).sum(-1) / visible.sum(-1)


def match_people(
    oks: np.ndarray,
    pred_scores: np.ndarray,
    oks_threshold: float = MATCH_OKS_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """COCOeval's greedy matching at one OKS threshold (module docstring).

    Args:
        oks: (D, G) from `oks_matrix`.
        pred_scores: (D,) prediction scores.
    Returns:
        (G,) index of the prediction matched to each person, -1 where none is.
    """
    gt_to_pred = np.full(oks.shape[1], -1)
    if oks.shape[1] == 0:
        return gt_to_pred
    for d in np.argsort(-pred_scores, kind="mergesort")[:max_detections]:
        candidates = np.where(gt_to_pred < 0, oks[d], -np.inf)
        g = len(candidates) - 1 - np.argmax(candidates[::-1])  # the last of equal bests, as COCOeval
        if candidates[g] >= oks_threshold:
            gt_to_pred[g] = d
    return gt_to_pred


def image_keypoint_errors(
    pred_xy: np.ndarray,
    pred_scores: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_areas: np.ndarray,
    sigmas: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's predictions to its scored people (one category) and measure each keypoint.

    Args: as `oks_matrix` and `match_people`; gt_* hold the scored people only (`evaluated_annotations`).
    Returns:
        errors: (G, K) d / s to the matched prediction; NaN where the person is unmatched or v = 0.
        matched: (G,) bool, whether the person is matched.
    """
    gt_to_pred = match_people(oks_matrix(pred_xy, gt_keypoints, gt_areas, sigmas), pred_scores)
    matched = gt_to_pred >= 0
    errors = np.full(gt_keypoints.shape[:2], np.nan)
    errors[matched] = normalized_errors(pred_xy[gt_to_pred[matched]], gt_keypoints[matched], gt_areas[matched])
    errors[gt_keypoints[..., 2] <= 0] = np.nan
    return errors, matched


def _detect_key(threshold: float) -> str:
    return f"detect@{threshold:g}"


def _metrics(errors: np.ndarray, num_visible: int, sigmas: np.ndarray, thresholds: Sequence[float]) -> dict:
    """mean_error and detect@t of the found keypoints `errors` (M,) with `sigmas` (M,), out of `num_visible`."""
    similarity = keypoint_similarity(errors, sigmas)
    metrics = {"mean_error": float(errors.mean()) if len(errors) else None}
    for t in thresholds:
        metrics[_detect_key(t)] = float((similarity >= t).sum() / num_visible) if num_visible else None
    return metrics


def summarize_keypoint_errors(
    errors: np.ndarray,
    visible: np.ndarray,
    matched: np.ndarray,
    sigmas: Sequence[float],
    keypoint_names: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Per-keypoint and pooled diagnostics (module docstring) of N scored people.

    Args:
        errors: (N, K) stacked from `image_keypoint_errors`.
        visible: (N, K) bool, gt v > 0.
        matched: (N,) bool, stacked from `image_keypoint_errors`.
        sigmas, keypoint_names: (K,) each.
    Returns:
        A JSON-ready dict: the thresholds, counts of people and keypoints, the pooled metrics and,
        under "per_keypoint", one dict per keypoint (name, sigma, counts, metrics). A metric with
        nothing to average (no visible or no matched keypoint) is None.
    """
    sigmas = np.asarray(sigmas, dtype=float)
    found = ~np.isnan(errors)  # visible keypoints of matched people
    per_keypoint = [
        {
            "name": name,
            "sigma": float(sigmas[i]),
            "num_visible": int(visible[:, i].sum()),
            "num_matched_visible": int(found[:, i].sum()),
            **_metrics(errors[found[:, i], i], int(visible[:, i].sum()), sigmas[i], thresholds),
        }
        for i, name in enumerate(keypoint_names)
    ]
    return {
        "thresholds": [float(t) for t in thresholds],
        "num_gt_people": len(matched),
        "num_matched_people": int(matched.sum()),
        "num_unmatched_people": int((~matched).sum()),
        "num_visible_keypoints": int(visible.sum()),
        "num_matched_visible_keypoints": int(found.sum()),
        **_metrics(errors[found], int(visible.sum()), np.broadcast_to(sigmas, errors.shape)[found], thresholds),
        "per_keypoint": per_keypoint,
    }


def scalar_metrics(summary: dict) -> dict[str, float]:
    """The metrics of `summary` as detectron2's flat {metric: float}: pooled ones by their name,
    per-keypoint ones as "<metric>-<keypoint>" (the "-" keeps them out of print_csv_format's
    copy-paste line, as detectron2's per-category "AP-<class>"). Metrics that are None are left out."""
    names = ["mean_error"] + [_detect_key(t) for t in summary["thresholds"]]
    metrics = {name: summary[name] for name in names if summary[name] is not None}
    for keypoint in summary["per_keypoint"]:
        metrics.update({f"{name}-{keypoint['name']}": keypoint[name] for name in names if keypoint[name] is not None})
    return metrics


def plot_keypoint_diagnostics(summary: dict, png_path: str, title: str) -> None:
    """Save bar charts of `summary`'s per-keypoint mean error (top) and detection rates (bottom)."""
    keypoints = summary["per_keypoint"]
    x = np.arange(len(keypoints))
    thresholds = summary["thresholds"]
    width = 0.8 / len(thresholds)

    def values(name):
        return [np.nan if k[name] is None else k[name] for k in keypoints]

    figsize = (max(8.0, 0.5 * len(keypoints) + 2), 7)
    with png_figure(png_path, figsize, nrows=2, sharex=True) as (fig, (ax_error, ax_rate)):
        ax_error.bar(x, values("mean_error"), color="tab:red")
        ax_error.set_ylabel("mean error / sqrt(area)\n(matched people)")
        for i, t in enumerate(thresholds):
            offset = (i - (len(thresholds) - 1) / 2) * width
            ax_rate.bar(x + offset, values(_detect_key(t)), width, label=f"similarity >= {t:g}")
        ax_rate.set_ylim(0, 1)
        ax_rate.set_ylabel("fraction of visible\ngt keypoints detected")
        ax_rate.legend(fontsize=8)
        ax_rate.set_xticks(x, [k["name"] for k in keypoints], rotation=45, ha="right")
        for ax in (ax_error, ax_rate):
            ax.grid(axis="y", alpha=0.3)
        matched = f"{summary['num_matched_people']} of {summary['num_gt_people']} people matched"
        fig.suptitle(f"{title}: {matched} (OKS >= {MATCH_OKS_THRESHOLD:g})")


def load_coco_ground_truth(dataset_name: str, output_dir: str) -> COCO:
    """The dataset's COCO json, found as COCOEvaluator finds it, so both score the same `area`,
    `iscrowd` and `num_keypoints`: the metadata's json_file, else the dataset dicts converted into
    output_dir (the cache file COCOEvaluator uses too; detectron2's dicts keep no `area`)."""
    metadata = MetadataCatalog.get(dataset_name)
    if not hasattr(metadata, "json_file"):
        json_file = os.path.join(output_dir, f"{dataset_name}_coco_format.json")
        convert_to_coco_json(dataset_name, json_file)
        metadata.json_file = json_file
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        return COCO(metadata.json_file)


class KeypointDiagnosticsEvaluator(DatasetEvaluator):
    """Per-keypoint diagnostics (module docstring) of a dataset's keypoint predictions.

    evaluate() returns {"keypoint_diagnostics": `scalar_metrics`} and writes the full table
    (`summarize_keypoint_errors`, with the dataset and matching parameters) to
    output_dir/keypoint_diagnostics.json and its bar charts to output_dir/keypoint_diagnostics.png.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str,
        oks_sigmas: Optional[Sequence[float]] = None,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: a registered dataset with keypoint annotations.
            output_dir: where the JSON and PNG are written.
            oks_sigmas: (K,) per-keypoint OKS sigmas. None or empty: the metadata's
                keypoint_oks_sigmas, else COCO's person sigmas (COCOEvaluator's default).
            distributed: gather the predictions of all processes and evaluate in the main one.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._metadata = MetadataCatalog.get(dataset_name)
        self._sigmas = resolve_oks_sigmas(self._metadata, oks_sigmas)
        num_keypoints = len(self._sigmas)
        unnamed = [f"keypoint_{i}" for i in range(num_keypoints)]
        self._keypoint_names = list(self._metadata.get("keypoint_names", unnamed))
        if len(self._keypoint_names) != num_keypoints:
            raise ValueError(
                f"Dataset '{dataset_name}' has {len(self._keypoint_names)} keypoint_names in its metadata "
                f"but {num_keypoints} OKS sigmas; they must agree."
            )
        coco = load_coco_ground_truth(dataset_name, output_dir)
        self._ground_truth = _ground_truth_by_image_and_category(coco, num_keypoints, self._metadata.json_file)
        self.reset()

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        """Keep, per image, the predicted classes (R,), scores (R,) and keypoints (R, K, 2) in json coordinates."""
        for input, output in zip(inputs, outputs):
            instances = output["instances"].to(torch.device("cpu"))
            if not len(instances):  # the image's people count as unmatched
                self._predictions.append({"image_id": input["image_id"], **self._no_prediction()})
                continue
            if instances.pred_keypoints.shape[1] != len(self._sigmas):
                raise ValueError(
                    f"The model predicts {instances.pred_keypoints.shape[1]} keypoints, but dataset "
                    f"'{self._dataset_name}' has {len(self._sigmas)} OKS sigmas."
                )
            self._predictions.append(
                {
                    "image_id": input["image_id"],
                    "classes": instances.pred_classes.numpy(),
                    "scores": instances.scores.numpy(),
                    # detectron2's continuous coordinates -> the json's pixel indices, as COCOEvaluator
                    "xy": instances.pred_keypoints[:, :, :2].numpy() - 0.5,
                }
            )

    def evaluate(self):
        predictions = self._predictions
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        summary = self._summarize(predictions)
        matching = {"match_oks_threshold": MATCH_OKS_THRESHOLD, "max_detections": MAX_DETECTIONS}
        write_json_atomically(
            os.path.join(self._output_dir, JSON_FILE), {"dataset": self._dataset_name, **matching, **summary}
        )
        plot_keypoint_diagnostics(summary, os.path.join(self._output_dir, PNG_FILE), title=self._dataset_name)
        return {"keypoint_diagnostics": scalar_metrics(summary)}

    def _no_prediction(self) -> dict:
        return {"classes": np.zeros(0, int), "scores": np.zeros(0), "xy": np.zeros((0, len(self._sigmas), 2))}

    def _summarize(self, predictions: list[dict]) -> dict:
        to_dataset_id = {v: k for k, v in self._metadata.get("thing_dataset_id_to_contiguous_id", {}).items()}
        by_image = {p["image_id"]: p for p in predictions}
        errors, visible, matched = [], [], []
        for (image_id, category_id), (gt_keypoints, gt_areas) in self._ground_truth.items():
            if image_id not in by_image:
                continue  # not evaluated (as COCOEvaluator, which scores the images it was given)
            prediction = by_image[image_id]
            keep = np.array([to_dataset_id.get(c, c) == category_id for c in prediction["classes"].tolist()], bool)
            image_errors, image_matched = image_keypoint_errors(
                prediction["xy"][keep], prediction["scores"][keep], gt_keypoints, gt_areas, self._sigmas
            )
            errors.append(image_errors)
            visible.append(gt_keypoints[..., 2] > 0)
            matched.append(image_matched)
        num_keypoints = len(self._sigmas)
        return summarize_keypoint_errors(
            np.concatenate(errors or [np.zeros((0, num_keypoints))]),
            np.concatenate(visible or [np.zeros((0, num_keypoints), bool)]),
            np.concatenate(matched or [np.zeros(0, bool)]),
            self._sigmas,
            self._keypoint_names,
        )


def _ground_truth_by_image_and_category(
    coco: COCO, num_keypoints: int, json_file: str
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(image_id, category_id) -> keypoints (G, K, 3) and areas (G,) of its scored people, in json order."""
    groups = defaultdict(list)
    for annotation in evaluated_annotations(coco.dataset.get("annotations", [])):
        if len(annotation["keypoints"]) != 3 * num_keypoints:
            raise ValueError(
                f"{json_file}: annotation {annotation['id']} has {len(annotation['keypoints']) // 3} keypoints, "
                f"but {num_keypoints} OKS sigmas were given (keypoint_oks_sigmas of the dataset's metadata)."
            )
        groups[annotation["image_id"], annotation["category_id"]].append(annotation)
    return {
        key: (
            np.array([a["keypoints"] for a in annotations], dtype=float).reshape(len(annotations), num_keypoints, 3),
            np.array([a["area"] for a in annotations], dtype=float),
        )
        for key, annotations in groups.items()
    }
