"""Per-keypoint diagnostics: hand-computed cases, agreement with pycocotools, the evaluator end to end."""

import contextlib
import copy
import io
import json
import math
import uuid

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json, register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from mask_rcnn_ext.evaluation import (
    KeypointDiagnosticsEvaluator,
    evaluated_annotations,
    image_keypoint_errors,
    match_people,
    oks_matrix,
    scalar_metrics,
    summarize_keypoint_errors,
)

COCO_SIGMAS = [float(s) for s in Params(iouType="keypoints").kpt_oks_sigmas]
SIGMAS_5 = [0.1, 0.2, 0.05, 0.3, 0.08]
THRESHOLDS = (0.5, 0.75, 0.9)


def _similarity(error, sigma):
    """The per-keypoint OKS term, written out from its definition."""
    return math.exp(-(error**2) / (2 * (2 * sigma) ** 2))


def _person(num_keypoints, seed, visibility=None):
    """(K, 3) gt keypoints: integer x, y inside a 100 x 100 box at (50, 50); v = 2 unless given."""
    xy = np.random.default_rng(seed).integers(50, 150, size=(num_keypoints, 2))
    v = np.full(num_keypoints, 2) if visibility is None else np.asarray(visibility)
    return np.concatenate([xy, v[:, None]], axis=1).astype(float)


def _diagnose(pred_xy, scores, gt_keypoints, areas, sigmas):
    pred_xy, scores = np.asarray(pred_xy, float), np.asarray(scores, float)
    errors, matched = image_keypoint_errors(pred_xy, scores, gt_keypoints, areas, sigmas)
    names = [f"kp{i}" for i in range(len(sigmas))]
    summary = summarize_keypoint_errors(errors, gt_keypoints[..., 2] > 0, matched, sigmas, names, THRESHOLDS)
    return errors, matched, summary


# ---------------------------------------------------------------- hand-computed cases


def test_a_perfect_prediction_has_zero_error_and_detects_every_keypoint():
    gt = _person(17, seed=0)[None]
    errors, matched, summary = _diagnose(gt[:, :, :2], [0.9], gt, np.array([10000.0]), COCO_SIGMAS)
    assert matched.tolist() == [True]
    assert np.all(errors == 0)
    assert summary["mean_error"] == 0 and all(summary[f"detect@{t:g}"] == 1 for t in THRESHOLDS)
    assert summary["num_visible_keypoints"] == summary["num_matched_visible_keypoints"] == 17
    assert all(k["mean_error"] == 0 and k["detect@0.9"] == 1 for k in summary["per_keypoint"])


def test_one_keypoint_moved_by_d_pixels():
    gt = _person(17, seed=1, visibility=[0] + [2] * 16)[None]  # the nose unlabelled
    pred = gt[:, :, :2].copy()
    wrist = 9  # COCO's left_wrist, sigma 0.062
    pred[0, wrist] += (3.0, 4.0)  # d = 5
    area = 2500.0  # s = 50
    errors, matched, summary = _diagnose(pred, [0.9], gt, np.array([area]), COCO_SIGMAS)

    error = 5 / math.sqrt(area)
    similarity = _similarity(error, COCO_SIGMAS[wrist])
    assert similarity == pytest.approx(0.7224, abs=1e-4)  # detected at 0.5, not at 0.75 or 0.9
    assert errors[0, wrist] == pytest.approx(error, rel=1e-12)
    assert np.isnan(errors[0, 0]) and np.all(errors[0, 1:wrist] == 0) and np.all(errors[0, wrist + 1 :] == 0)
    left_wrist = summary["per_keypoint"][wrist]
    assert left_wrist["mean_error"] == pytest.approx(error, rel=1e-12)
    assert [float(similarity >= t) for t in THRESHOLDS] == [1, 0, 0]
    assert [left_wrist[f"detect@{t:g}"] for t in THRESHOLDS] == [1, 0, 0]
    nose = summary["per_keypoint"][0]
    assert nose["num_visible"] == nose["num_matched_visible"] == 0 and nose["mean_error"] is None
    assert nose["detect@0.5"] is None
    # pooled over the 16 visible keypoints
    assert summary["mean_error"] == pytest.approx(error / 16, rel=1e-12)
    assert summary["detect@0.5"] == 1 and summary["detect@0.75"] == summary["detect@0.9"] == 15 / 16


def test_an_unmatched_person_counts_as_missed_keypoints_and_not_in_the_error():
    gts = np.stack([_person(17, seed=2), _person(17, seed=3, visibility=[2] * 10 + [0] * 7)])
    areas = np.array([10000.0, 10000.0])
    pred = gts[:1, :, :2].copy()
    pred[0, :, 0] += 3.0
    pred_far = gts[1:, :, :2] + 40.0  # OKS with person 1 well below 0.5
    all_preds = np.concatenate([pred, pred_far])
    assert oks_matrix(all_preds, gts, areas, COCO_SIGMAS)[1, 1] < 0.5
    errors, matched, summary = _diagnose(all_preds, [0.9, 0.8], gts, areas, COCO_SIGMAS)

    assert matched.tolist() == [True, False] and np.all(np.isnan(errors[1]))
    assert summary["num_gt_people"] == 2 and summary["num_matched_people"] == summary["num_unmatched_people"] == 1
    assert summary["num_visible_keypoints"] == 27 and summary["num_matched_visible_keypoints"] == 17
    assert summary["mean_error"] == pytest.approx(3 / 100, rel=1e-12)
    detected = sum(_similarity(0.03, s) >= 0.75 for s in COCO_SIGMAS)
    assert summary["detect@0.75"] == pytest.approx(detected / 27)
    nose = summary["per_keypoint"][0]  # visible on both people, found on one
    assert nose["num_visible"] == 2 and nose["num_matched_visible"] == 1 and nose["detect@0.5"] == 0.5


def test_of_two_predictions_on_one_person_the_higher_score_wins_whatever_its_oks():
    gt = _person(17, seed=4)[None]
    areas = np.array([10000.0])
    shifted = gt[0, :, :2] + (2.0, 0.0)
    exact = gt[0, :, :2]
    errors, matched, _ = _diagnose([shifted, exact], [0.9, 0.8], gt, areas, COCO_SIGMAS)
    assert matched.tolist() == [True] and np.allclose(errors, 0.02)  # the shifted one, scored higher, took it
    errors, _, _ = _diagnose([shifted, exact], [0.7, 0.8], gt, areas, COCO_SIGMAS)
    assert np.all(errors == 0)


def test_matching_follows_cocoeval_in_its_details():
    gt = _person(17, seed=5)
    oks = np.array([[0.9, 0.9]])  # a tie: COCOeval gives the prediction to the later person
    assert match_people(oks, np.array([1.0])).tolist() == [-1, 0]
    assert match_people(np.array([[0.5]]), np.array([1.0])).tolist() == [0]  # OKS >= 0.5 matches
    assert match_people(np.array([[0.4999]]), np.array([1.0])).tolist() == [-1]
    # only the 20 highest-scoring predictions take part: the 21st cannot take the person
    preds = np.stack([gt[:, :2] + 60.0] * 20 + [gt[:, :2]])
    scores = np.linspace(1.0, 0.5, 21)
    _, matched = image_keypoint_errors(preds, scores, gt[None], np.array([10000.0]), COCO_SIGMAS)
    assert matched.tolist() == [False]
    _, matched = image_keypoint_errors(preds[1:], scores[1:], gt[None], np.array([10000.0]), COCO_SIGMAS)
    assert matched.tolist() == [True]


def test_crowds_and_people_without_labelled_keypoints_are_not_scored():
    keypoints = _person(5, seed=6).flatten().tolist()
    annotations = [
        {"id": 1, "iscrowd": 1, "num_keypoints": 5, "keypoints": keypoints},
        {"id": 2, "iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 15},
        {"id": 3, "iscrowd": 0, "num_keypoints": 5, "keypoints": keypoints},
        {"id": 4, "iscrowd": 0},  # an annotation of a class without keypoints
    ]
    assert [a["id"] for a in evaluated_annotations(annotations)] == [3]


def test_five_keypoints_with_their_own_sigmas():
    gt = _person(5, seed=7, visibility=[2, 1, 0, 2, 2])[None]
    area = np.array([400.0])  # s = 20
    shifts = np.array([[0.0, 2.0], [6.0, 8.0], [9.0, 9.0], [8.0, 6.0], [3.0, 4.0]])  # d = 2, 10, -, 10, 5
    errors, matched, summary = _diagnose(gt[:, :, :2] + shifts, [0.5], gt, area, SIGMAS_5)

    visible = (0, 1, 3, 4)
    expected_errors = {0: 2 / 20, 1: 10 / 20, 3: 10 / 20, 4: 5 / 20}
    similarities = {i: _similarity(e, SIGMAS_5[i]) for i, e in expected_errors.items()}
    assert [round(similarities[i], 4) for i in visible] == [0.8825, 0.4578, 0.7066, 0.2950]  # OKS 0.5855
    assert matched.tolist() == [True]
    for i, keypoint in enumerate(summary["per_keypoint"]):
        assert keypoint["sigma"] == SIGMAS_5[i]
        if i not in visible:
            assert keypoint["num_visible"] == 0 and keypoint["mean_error"] is None
            continue
        assert keypoint["mean_error"] == pytest.approx(expected_errors[i], rel=1e-12)
        assert [keypoint[f"detect@{t:g}"] for t in THRESHOLDS] == [float(similarities[i] >= t) for t in THRESHOLDS]
    assert summary["mean_error"] == pytest.approx(np.mean(list(expected_errors.values())), rel=1e-12)
    assert [summary[f"detect@{t:g}"] for t in THRESHOLDS] == [2 / 4, 1 / 4, 0]

    far = np.array([[0.0, 6.0], [0.0, 12.0], [9.0, 9.0], [12.0, 16.0], [3.0, 4.0]])  # d = 6, 12, -, 20, 5: OKS 0.298
    errors, matched, summary = _diagnose(gt[:, :, :2] + far, [0.5], gt, area, SIGMAS_5)
    assert matched.tolist() == [False] and np.all(np.isnan(errors))
    assert summary["mean_error"] is None and summary["num_visible_keypoints"] == 4
    assert all(summary[f"detect@{t:g}"] == 0 for t in THRESHOLDS)


# ---------------------------------------------------------------- agreement with pycocotools

PERSON, BALL = 1, 2


def _tiny_keypoint_coco(num_keypoints: int, seed: int = 0):
    """A small COCO keypoint json (dict) and detections for it in COCO's result format.

    Four 320 x 240 images of 1-3 people with keypoints of all visibilities, a near-duplicate
    person (two people competing for predictions), and what COCO does not score: a crowd with
    labelled keypoints, a person without, a ball (a category without keypoints). Areas are the
    boxes' w * h, so converting detectron2's dicts back to COCO (which takes the box area) gives
    the same json. Predictions: 0-2 noisy copies of each annotation, a false positive per image
    and a ball predicted exactly on a person. Values are multiples of 1/64 (exact in float32).
    """
    rng = np.random.default_rng(seed)
    scores = iter((rng.permutation(900) + 100) / 1024)
    images, annotations, detections = [], [], []

    def annotate(image_id, category_id, box, keypoints, iscrowd=0):
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "iscrowd": iscrowd,
                "bbox": [int(b) for b in box],
                "area": int(box[2] * box[3]),
                "keypoints": [int(v) for v in keypoints.flatten()],
                "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            }
        )

    def random_person(image_id):
        x, y, w, h = rng.integers(0, 180), rng.integers(0, 100), rng.integers(30, 130), rng.integers(30, 130)
        keypoints = np.stack(
            [
                rng.integers(x, x + w, num_keypoints),
                rng.integers(y, y + h, num_keypoints),
                rng.choice([0, 1, 2], num_keypoints, p=[0.2, 0.3, 0.5]),
            ],
            axis=1,
        )
        keypoints[rng.integers(num_keypoints), 2] = 2
        annotate(image_id, PERSON, (x, y, w, h), keypoints)

    def detect(image_id, category_id, xy, box):
        keypoints = np.concatenate([np.round(xy * 64) / 64, np.ones((num_keypoints, 1))], axis=1)
        detections.append(
            {
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [float(b) for b in box],
                "score": float(next(scores)),
                "keypoints": keypoints.flatten().tolist(),
            }
        )

    for image_id in range(1, 5):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 320, "height": 240})
        for _ in range(rng.integers(1, 4)):
            random_person(image_id)
    twin = np.array(annotations[-1]["keypoints"]).reshape(-1, 3) + [3, 3, 0]  # a second person, 4 px away
    annotate(4, PERSON, annotations[-1]["bbox"], twin)
    zeros = np.zeros((num_keypoints, 3), int)
    crowd_keypoints = np.array(annotations[0]["keypoints"]).reshape(-1, 3)
    annotate(1, PERSON, (150, 100, 100, 100), crowd_keypoints + [40, 40, 0], iscrowd=1)
    annotate(1, PERSON, (10, 10, 40, 80), zeros)
    annotate(2, BALL, (200, 150, 30, 30), zeros)

    for a in annotations:
        xy = np.array(a["keypoints"], float).reshape(-1, 3)[:, :2]
        scale = math.sqrt(a["area"])
        for _ in range(rng.integers(0, 3)):
            noise = rng.normal(0, rng.choice([0.02, 0.08, 0.3]) * scale, xy.shape)
            detect(a["image_id"], a["category_id"], xy + noise, a["bbox"])
    for image in images:
        detect(image["id"], PERSON, rng.uniform(0, 240, (num_keypoints, 2)), [20, 20, 60, 90])
    first = annotations[0]
    detect(first["image_id"], BALL, np.array(first["keypoints"], float).reshape(-1, 3)[:, :2], first["bbox"])
    categories = [
        {"id": PERSON, "name": "person", "keypoints": [f"kp{i}" for i in range(num_keypoints)], "skeleton": []},
        {"id": BALL, "name": "ball"},
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


CASES = {"coco17": (17, COCO_SIGMAS), "custom5": (5, SIGMAS_5)}


@pytest.fixture(params=sorted(CASES))
def keypoint_dataset(request, tmp_path):
    """(name, sigmas, detections) of a tiny keypoint dataset registered from its json; removed afterwards."""
    num_keypoints, sigmas = CASES[request.param]
    coco_json, detections = _tiny_keypoint_coco(num_keypoints)
    json_file = tmp_path / "gt.json"
    json_file.write_text(json.dumps(coco_json))
    name = f"test_keypoint_diagnostics_{request.param}_{uuid.uuid4().hex[:8]}"
    metadata = {"keypoint_names": [f"kp{i}" for i in range(num_keypoints)], "keypoint_oks_sigmas": sigmas}
    register_coco_instances(name, metadata, str(json_file), str(tmp_path))
    DatasetCatalog.get(name)  # sets thing_dataset_id_to_contiguous_id, as building the test loader does
    yield name, sigmas, detections
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _model_outputs(name, detections):
    """detectron2-style (inputs, outputs) holding `detections` (json coordinates and category ids)."""
    to_contiguous = MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id
    inputs, outputs = [], []
    for image_id in sorted({d["image_id"] for d in detections}):
        mine = [d for d in detections if d["image_id"] == image_id]
        keypoints = torch.tensor([d["keypoints"] for d in mine], dtype=torch.float32).reshape(len(mine), -1, 3)
        keypoints[:, :, :2] += 0.5  # detectron2's continuous coordinates
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)], dtype=torch.float32)
        instances = Instances(
            (240, 320),
            pred_boxes=Boxes(boxes),
            pred_keypoints=keypoints,
            scores=torch.tensor([d["score"] for d in mine], dtype=torch.float32),
            pred_classes=torch.tensor([to_contiguous[d["category_id"]] for d in mine]),
        )
        inputs.append({"image_id": image_id})
        outputs.append({"instances": instances})
    return inputs, outputs


def _pycocotools_eval(name, sigmas, detections) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(MetadataCatalog.get(name).json_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(detections)), "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.array(sigmas)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def test_coco_evaluator_keypoint_ap_equals_pycocotools(keypoint_dataset):
    name, sigmas, detections = keypoint_dataset
    evaluator = COCOEvaluator(name, tasks=("keypoints",), distributed=False, use_fast_impl=False, kpt_oks_sigmas=sigmas)
    evaluator.reset()
    evaluator.process(*_model_outputs(name, detections))
    results = evaluator.evaluate()["keypoints"]

    stats = _pycocotools_eval(name, sigmas, detections).stats
    assert 0 < stats[0] < 1  # neither trivial nor perfect
    expected = [s * 100 if s >= 0 else np.nan for s in stats[:5]]
    np.testing.assert_allclose([results[k] for k in ("AP", "AP50", "AP75", "APm", "APl")], expected, rtol=1e-12)


def _per_image(name, detections):
    """image_id -> (scored people's keypoints (G, K, 3), areas (G,), their ids, person detections sorted
    by score as COCOeval takes them: keypoints (D, K, 2), scores (D,), ids (loadRes numbers them from 1))."""
    coco_gt = COCO(MetadataCatalog.get(name).json_file)
    numbered = [dict(d, id=i + 1) for i, d in enumerate(detections)]
    out = {}
    for image_id in coco_gt.getImgIds():
        people = evaluated_annotations(coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=image_id, catIds=PERSON)))
        dets = [d for d in numbered if d["image_id"] == image_id and d["category_id"] == PERSON]
        dets = [dets[i] for i in np.argsort([-d["score"] for d in dets], kind="mergesort")][:20]
        out[image_id] = (
            np.array([p["keypoints"] for p in people], float).reshape(len(people), -1, 3),
            np.array([p["area"] for p in people], float),
            [p["id"] for p in people],
            np.array([d["keypoints"] for d in dets], float).reshape(len(dets), -1, 3)[:, :, :2],
            np.array([d["score"] for d in dets]),
            [d["id"] for d in dets],
        )
    return out


def test_oks_matrix_and_matching_equal_cocoeval(keypoint_dataset):
    name, sigmas, detections = keypoint_dataset
    coco_eval = _pycocotools_eval(name, sigmas, detections)
    all_areas = coco_eval.params.areaRng[coco_eval.params.areaRngLbl.index("all")]
    cocoeval_matches = {
        e["image_id"]: dict(zip(e["gtIds"], e["gtMatches"][0]))  # at OKS threshold 0.5
        for e in coco_eval.evalImgs
        if e is not None and e["category_id"] == PERSON and e["aRng"] == all_areas
    }
    num_matched = num_unmatched = 0
    with contextlib.redirect_stdout(io.StringIO()):
        per_image = _per_image(name, detections)
    for image_id, (gt_keypoints, areas, gt_ids, pred_xy, scores, pred_ids) in per_image.items():
        ours = oks_matrix(pred_xy, gt_keypoints, areas, sigmas)
        theirs = coco_eval.ious[image_id, PERSON]
        all_gt_ids = coco_eval.cocoGt.getAnnIds(imgIds=image_id, catIds=PERSON)  # computeOks's columns
        np.testing.assert_allclose(ours, theirs[:, [all_gt_ids.index(i) for i in gt_ids]], rtol=1e-12)

        gt_to_pred = match_people(ours, scores)
        for gt_id, d in zip(gt_ids, gt_to_pred):
            assert cocoeval_matches[image_id][gt_id] == (pred_ids[d] if d >= 0 else 0)
        num_matched += int((gt_to_pred >= 0).sum())
        num_unmatched += int((gt_to_pred < 0).sum())
    assert num_matched > 0 and num_unmatched > 0  # the data exercise both outcomes


# ---------------------------------------------------------------- the evaluator


def _expected_summary(name, sigmas, detections):
    """The diagnostics computed with the plain functions, straight from the json and the detections."""
    with contextlib.redirect_stdout(io.StringIO()):
        per_image = _per_image(name, detections)
    errors, visible, matched = [], [], []
    for gt_keypoints, areas, _, pred_xy, scores, _ in per_image.values():
        if len(areas):
            image_errors, image_matched = image_keypoint_errors(pred_xy, scores, gt_keypoints, areas, sigmas)
            errors.append(image_errors)
            visible.append(gt_keypoints[..., 2] > 0)
            matched.append(image_matched)
    errors, visible, matched = map(np.concatenate, (errors, visible, matched))
    return summarize_keypoint_errors(errors, visible, matched, sigmas, MetadataCatalog.get(name).keypoint_names)


def test_evaluator_writes_json_and_png_with_the_plain_functions_numbers(keypoint_dataset, tmp_path):
    name, sigmas, detections = keypoint_dataset
    output_dir = tmp_path / "inference"
    evaluator = KeypointDiagnosticsEvaluator(name, str(output_dir))  # sigmas from the metadata
    evaluator.reset()
    inputs, outputs = _model_outputs(name, detections)
    for batch in range(0, len(inputs), 2):
        evaluator.process(inputs[batch : batch + 2], outputs[batch : batch + 2])
    results = evaluator.evaluate()

    expected = _expected_summary(name, sigmas, detections)
    written = json.loads((output_dir / "keypoint_diagnostics.json").read_text())
    assert written == {"dataset": name, "match_oks_threshold": 0.5, "max_detections": 20, **expected}
    assert results == {"keypoint_diagnostics": scalar_metrics(expected)}
    assert {"mean_error", "detect@0.9", "mean_error-kp1", "detect@0.5-kp1"} <= set(results["keypoint_diagnostics"])
    assert 0 < expected["num_unmatched_people"] < expected["num_gt_people"]
    image = cv2.imread(str(output_dir / "keypoint_diagnostics.png"))
    assert image is not None and image.shape == (700, max(800, 50 * len(sigmas) + 200), 3)


def test_a_dataset_without_json_is_converted_as_coco_evaluator_does(keypoint_dataset, tmp_path):
    """detectron2's dataset dicts keep no `area`: the evaluator converts them (box areas here) to COCO."""
    name, sigmas, detections = keypoint_dataset
    metadata = MetadataCatalog.get(name)
    dicts_name = f"{name}_dicts"
    DatasetCatalog.register(dicts_name, lambda: load_coco_json(metadata.json_file, metadata.image_root, dicts_name))
    try:
        DatasetCatalog.get(dicts_name)
        MetadataCatalog.get(dicts_name).set(keypoint_names=metadata.keypoint_names, keypoint_oks_sigmas=sigmas)
        evaluator = KeypointDiagnosticsEvaluator(dicts_name, str(tmp_path), distributed=False)
        assert MetadataCatalog.get(dicts_name).json_file == str(tmp_path / f"{dicts_name}_coco_format.json")
        evaluator.process(*_model_outputs(name, detections))
        expected = _expected_summary(name, sigmas, detections)
        assert evaluator.evaluate() == {"keypoint_diagnostics": scalar_metrics(expected)}
    finally:
        DatasetCatalog.remove(dicts_name)
        MetadataCatalog.remove(dicts_name)


def test_the_sigmas_argument_overrides_the_metadata_and_bad_keypoint_counts_are_named(keypoint_dataset, tmp_path):
    name, sigmas, detections = keypoint_dataset
    inputs, outputs = _model_outputs(name, detections)
    wider = [2 * s for s in sigmas]
    evaluator = KeypointDiagnosticsEvaluator(name, str(tmp_path), oks_sigmas=wider, distributed=False)
    evaluator.process(inputs, outputs)
    evaluator.evaluate()
    written = json.loads((tmp_path / "keypoint_diagnostics.json").read_text())
    assert [k["sigma"] for k in written["per_keypoint"]] == wider

    with pytest.raises(ValueError, match=f"has {len(sigmas)} keypoint_names in its metadata but 3 OKS sigmas"):
        KeypointDiagnosticsEvaluator(name, str(tmp_path), oks_sigmas=[0.1] * 3)
    three = f"{name}_3"
    MetadataCatalog.get(three).set(json_file=MetadataCatalog.get(name).json_file, keypoint_names=["a", "b", "c"])
    try:
        with pytest.raises(ValueError, match=f"annotation 1 has {len(sigmas)} keypoints, but 3 OKS sigmas"):
            KeypointDiagnosticsEvaluator(three, str(tmp_path), oks_sigmas=[0.1] * 3)
    finally:
        MetadataCatalog.remove(three)
    outputs[0]["instances"].pred_keypoints = outputs[0]["instances"].pred_keypoints[:, :2]
    with pytest.raises(ValueError, match=f"predicts 2 keypoints, but dataset '{name}' has {len(sigmas)} OKS sigmas"):
        evaluator.process(inputs[:1], outputs[:1])


def test_only_the_images_given_are_scored(keypoint_dataset, tmp_path):
    """As COCOEvaluator: people of images never processed are left out, those of an image processed
    without any detection count as unmatched."""
    name, sigmas, detections = keypoint_dataset
    inputs, outputs = _model_outputs(name, detections)
    evaluator = KeypointDiagnosticsEvaluator(name, str(tmp_path), distributed=False)
    empty = outputs[1]["instances"][:0]  # no detection on the second image
    evaluator.process([inputs[0], inputs[1]], [outputs[0], {"instances": empty}])
    evaluator.evaluate()
    written = json.loads((tmp_path / "keypoint_diagnostics.json").read_text())
    gt = json.loads(open(MetadataCatalog.get(name).json_file).read())
    scored = [
        a
        for a in evaluated_annotations(gt["annotations"])
        if a["image_id"] in (inputs[0]["image_id"], inputs[1]["image_id"])
    ]
    second = [a for a in scored if a["image_id"] == inputs[1]["image_id"]]
    assert written["num_gt_people"] == len(scored) and second
    assert written["num_unmatched_people"] >= len(second)
