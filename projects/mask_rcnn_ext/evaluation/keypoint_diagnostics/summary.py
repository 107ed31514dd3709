"""The per-keypoint and pooled diagnostics of matched people, as a JSON-ready table and as
detectron2's flat metrics."""

from collections.abc import Sequence

import numpy as np

from .oks import keypoint_similarity

DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)


def detect_key(threshold: float) -> str:
    """The name of the detection rate at similarity `threshold`, e.g. "detect@0.5"."""
    return f"detect@{threshold:g}"


def _metrics(errors: np.ndarray, num_visible: int, sigmas: np.ndarray, thresholds: Sequence[float]) -> dict:
    """mean_error and detect@t of the found keypoints `errors` (M,) with `sigmas` (M,), out of `num_visible`."""
    similarity = keypoint_similarity(errors, sigmas)
    metrics = {"mean_error": float(errors.mean()) if len(errors) else None}
    for t in thresholds:
        metrics[detect_key(t)] = float((similarity >= t).sum() / num_visible) if num_visible else None
    return metrics


def summarize_keypoint_errors(
    errors: np.ndarray,
    visible: np.ndarray,
    matched: np.ndarray,
    sigmas: Sequence[float],
    keypoint_names: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Per-keypoint and pooled diagnostics (package docstring) of N scored people.

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
    names = ["mean_error"] + [detect_key(t) for t in summary["thresholds"]]
    metrics = {name: summary[name] for name in names if summary[name] is not None}
    for keypoint in summary["per_keypoint"]:
        metrics.update({f"{name}-{keypoint['name']}": keypoint[name] for name in names if keypoint[name] is not None})
    return metrics
