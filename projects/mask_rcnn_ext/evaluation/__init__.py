"""Evaluators beyond detectron2's own: Cityscapes instance AP computed in memory, per-keypoint
diagnostics of pose models."""

from .cityscapes_instances import (
    CityscapesInstanceEvaluator,
    ImageMatches,
    average_precisions,
    average_results,
    match_image,
)
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
    "CityscapesInstanceEvaluator",
    "ImageMatches",
    "average_precisions",
    "average_results",
    "match_image",
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
