"""Evaluators beyond detectron2's own: per-keypoint diagnostics of pose models."""
from .keypoint_diagnostics import (
    KeypointDiagnosticsEvaluator,
    evaluated_annotations,
    image_keypoint_errors,
    keypoint_similarity,
    match_people,
    normalized_errors,
    oks_matrix,
    plot_keypoint_diagnostics,
    scalar_metrics,
    summarize_keypoint_errors,
)

__all__ = [
    "KeypointDiagnosticsEvaluator",
    "evaluated_annotations",
    "image_keypoint_errors",
    "keypoint_similarity",
    "match_people",
    "normalized_errors",
    "oks_matrix",
    "plot_keypoint_diagnostics",
    "scalar_metrics",
    "summarize_keypoint_errors",
]
