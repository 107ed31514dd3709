"""Which prediction each ground-truth person is matched to, by COCOeval's greedy rule (package
docstring), and each keypoint's error to it."""

from collections.abc import Sequence

import numpy as np

from .oks import normalized_errors, oks_matrix

MATCH_OKS_THRESHOLD = 0.5
MAX_DETECTIONS = 20  # COCOeval's maxDets for keypoints


def evaluated_annotations(annotations: Sequence[dict]) -> list[dict]:
    """The COCO annotations that keypoint evaluation scores: not crowd, at least one labelled keypoint."""
    return [a for a in annotations if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]


def match_people(
    oks: np.ndarray,
    pred_scores: np.ndarray,
    oks_threshold: float = MATCH_OKS_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """COCOeval's greedy matching at one OKS threshold (package docstring).

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
