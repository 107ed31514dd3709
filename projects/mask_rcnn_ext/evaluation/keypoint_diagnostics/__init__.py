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

One module per job: `oks` (the similarity maths), `matching` (people to predictions), `summary`
(the per-keypoint table), `plot` (its bar charts), `evaluator` (the DatasetEvaluator).
"""

from .evaluator import JSON_FILE, PNG_FILE, KeypointDiagnosticsEvaluator, load_coco_ground_truth
from .matching import MATCH_OKS_THRESHOLD, MAX_DETECTIONS, evaluated_annotations, image_keypoint_errors, match_people
from .oks import keypoint_similarity, normalized_errors, oks_matrix
from .plot import plot_keypoint_diagnostics
from .summary import DEFAULT_THRESHOLDS, scalar_metrics, summarize_keypoint_errors

__all__ = [
    "DEFAULT_THRESHOLDS",
    "JSON_FILE",
    "MATCH_OKS_THRESHOLD",
    "MAX_DETECTIONS",
    "PNG_FILE",
    "KeypointDiagnosticsEvaluator",
    "evaluated_annotations",
    "image_keypoint_errors",
    "keypoint_similarity",
    "load_coco_ground_truth",
    "match_people",
    "normalized_errors",
    "oks_matrix",
    "plot_keypoint_diagnostics",
    "scalar_metrics",
    "summarize_keypoint_errors",
]
