"""`KeypointDiagnosticsEvaluator`: detectron2's DatasetEvaluator around the diagnostics, writing
their table (JSON) and charts (PNG)."""

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

from ...data.coco_keypoints import resolve_oks_sigmas
from ...io_utils import write_json_atomically
from .matching import MATCH_OKS_THRESHOLD, MAX_DETECTIONS, evaluated_annotations, image_keypoint_errors
from .plot import plot_keypoint_diagnostics
from .summary import scalar_metrics, summarize_keypoint_errors

JSON_FILE = "keypoint_diagnostics.json"
PNG_FILE = "keypoint_diagnostics.png"


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
    """Per-keypoint diagnostics (package docstring) of a dataset's keypoint predictions.

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
