"""Training by tools/train_net.py. The demo's recipe on a shortened schedule (`trained_run`, slow):
the model learns all three tasks. The short run (`short_run`): it evaluates with COCO metrics,
checkpoints and resumes (`--eval-only` reproducing its evaluation: tests/engine/test_distributed.py)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES

from mask_rcnn_ext.engine import EVAL_RESULTS_FILE
from mask_rcnn_ext.engine.trainer import INNER_TRAINER_KEY
from mask_rcnn_ext.engine.training_curves import read_metrics

from conftest import (
    BF16_AP_TOLERANCE,
    SHORT_CHECKPOINT_PERIOD,
    SHORT_MAX_ITER,
    SHORT_RUN_OPTS,
    SYNTHETIC_CONFIG,
    SYNTHETIC_VAL_MINI,
    TRAINED_AP_FLOORS,
    TRAINED_MAX_ITER,
    evaluate_in_precision,
    run_tool,
)

# ... and of the fraction of visible val keypoints found within OKS similarity 0.5 (it reaches 0.38).
DETECT_AT_05_FLOOR = 0.32


def _eval_results(output_dir):
    with open(os.path.join(output_dir, EVAL_RESULTS_FILE)) as f:
        return json.load(f)


def _logged_iterations(metrics_json: Path):
    with open(metrics_json) as f:
        return [json.loads(line)["iteration"] for line in f if line.strip()]


@pytest.mark.slow
def test_losses_fall(trained_run):
    records = read_metrics(os.path.join(trained_run, "metrics.json"))
    first, last = records[0], records[-1]
    assert last["iteration"] == TRAINED_MAX_ITER - 1
    assert last["total_loss"] < first["total_loss"]
    assert last["loss_mask"] < 0.9 * first["loss_mask"]
    assert last["loss_rpn_cls"] < 0.5 * first["loss_rpn_cls"]
    assert last["loss_keypoint"] < first["loss_keypoint"]


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TRAINED_AP_FLOORS))
def test_ap_beats_floor(trained_run, task):
    ap = _eval_results(trained_run)[task]["AP"]
    assert ap > TRAINED_AP_FLOORS[task], f"{task} AP {ap:.2f} <= floor {TRAINED_AP_FLOORS[task]}"


@pytest.mark.slow
def test_evaluation_reports_per_keypoint_diagnostics(trained_run):
    """One evaluation gives box, mask and keypoint AP and the per-keypoint diagnostics, as scalars
    and as the JSON table + plot beside COCOEvaluator's files."""
    diagnostics = _eval_results(trained_run)["keypoint_diagnostics"]
    with open(os.path.join(trained_run, "inference", "keypoint_diagnostics.json")) as f:
        table = json.load(f)
    assert [k["name"] for k in table["per_keypoint"]] == list(COCO_PERSON_KEYPOINT_NAMES)
    assert diagnostics["detect@0.5"] == table["detect@0.5"]
    assert diagnostics["mean_error-nose"] == table["per_keypoint"][0]["mean_error"]
    assert table["detect@0.5"] > DETECT_AT_05_FLOOR, table["detect@0.5"]
    assert os.path.getsize(os.path.join(trained_run, "inference", "keypoint_diagnostics.png")) > 0


@pytest.mark.slow
def test_bf16_inference_scores_as_fp32_does(trained_run, tmp_path, capfd):
    """bf16 (autocast, channels-last) moves box, mask and keypoint AP by at most BF16_AP_TOLERANCE.
    On the 10-image split: a CPU without native bf16 emulates it (with float32 accumulation, as
    native kernels), about 7 times slower than fp32."""
    mini = ["DATASETS.TEST", f"('{SYNTHETIC_VAL_MINI}',)"]
    fp32 = evaluate_in_precision(trained_run, "fp32", str(tmp_path / "fp32"), capfd, mini)
    bf16 = evaluate_in_precision(trained_run, "bf16", str(tmp_path / "bf16"), capfd, mini)
    for task in ("bbox", "segm", "keypoints"):
        assert abs(bf16[task]["AP"] - fp32[task]["AP"]) <= BF16_AP_TOLERANCE, (task, bf16[task], fp32[task])


def test_checkpoint_holds_weights_and_state(short_run):
    with open(os.path.join(short_run, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"
    checkpoint = torch.load(os.path.join(short_run, "model_final.pth"), weights_only=True)
    assert checkpoint["iteration"] == SHORT_MAX_ITER - 1
    assert {"model", "trainer", "iteration"} <= set(checkpoint)
    # What --resume needs besides the weights: SGD momentum and the LR schedule's position.
    assert "optimizer" in checkpoint["trainer"][INNER_TRAINER_KEY]
    assert checkpoint["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == SHORT_MAX_ITER
    assert any(k.startswith("roi_heads.keypoint_head.") for k in checkpoint["model"])
    assert os.path.exists(os.path.join(short_run, f"model_{SHORT_CHECKPOINT_PERIOD - 1:07d}.pth"))


def test_evaluation_scores_every_task_on_the_test_split(short_run):
    """The short run's evaluation at the end of training: box, mask and keypoint AP of its
    predictions (every detection kept) and the keypoint diagnostics, all finite numbers."""
    results = _eval_results(short_run)
    assert set(results) == {"bbox", "segm", "keypoints", "keypoint_diagnostics"}
    for task in ("bbox", "segm", "keypoints"):
        assert 0 <= results[task]["AP"] <= 100, (task, results[task])


def test_resume_continues_from_the_last_checkpoint(short_run, datasets_env, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(short_run, resumed)
    run_tool(
        "train_net.py",
        ["--config-file", SYNTHETIC_CONFIG, "--resume", *SHORT_RUN_OPTS]
        + ["SOLVER.MAX_ITER", SHORT_MAX_ITER + 4, "DATASETS.TEST", "()", "OUTPUT_DIR", resumed],
        datasets_env,
        tmp_path / "stdout.log",
    )
    checkpoint = torch.load(resumed / "model_final.pth", weights_only=True)
    assert checkpoint["iteration"] == SHORT_MAX_ITER + 3
    before, after = (_logged_iterations(d / "metrics.json") for d in (Path(short_run), resumed))
    assert after[: len(before)] == before
    appended = after[len(before) :]
    # Only iterations after the last one were trained again: training went on from the checkpoint.
    assert appended and min(appended) >= SHORT_MAX_ITER and max(appended) == SHORT_MAX_ITER + 3
