"""Object keypoint similarity (OKS), as pycocotools computes it: per keypoint and per person."""

from collections.abc import Sequence

import numpy as np


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
