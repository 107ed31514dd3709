"""Every tool that runs a model computes in MASK_RCNN_EXT.PRECISION's setting and says so in its log:
tools/train_net.py (training, the evaluation after it, --eval-only) and tools/demo.py. The benchmark's
"ours_auto" row is checked in tests/benchmarks/test_bench_peers.py, the AP of bf16 inference on the
trained runs in tests/engine/test_training.py and tests/tools/test_train_net_cityscapes.py."""

import json
import os

import pytest
import torch
from detectron2.data import DatasetCatalog

from mask_rcnn_ext.modeling.precision import resolve_precision

from conftest import SYNTHETIC_CONFIG, SYNTHETIC_VAL_MINI, run_tool_in_process

# Two iterations on two images and their evaluation, at 128 px: bf16 is slow where it is emulated.
TINY_RUN = (
    "SOLVER.MAX_ITER 2 SOLVER.WARMUP_ITERS 1 SOLVER.STEPS () SOLVER.CHECKPOINT_PERIOD 100 DATALOADER.NUM_WORKERS 0 "
    "INPUT.MIN_SIZE_TRAIN (128,) INPUT.MAX_SIZE_TRAIN 200 INPUT.MIN_SIZE_TEST 128 INPUT.MAX_SIZE_TEST 200"
).split()


@pytest.mark.slow
def test_train_net_trains_and_evaluates_in_the_precision_set(tmp_path, capfd, registered):
    two_images = registered("two_val_images", DatasetCatalog.get(SYNTHETIC_VAL_MINI)[:2])
    run = tmp_path / "run"
    precision = ["MASK_RCNN_EXT.PRECISION.TRAIN", "bf16", "MASK_RCNN_EXT.PRECISION.TEST", "bf16"]
    data = ["DATASETS.TRAIN", f"('{two_images}',)", "DATASETS.TEST", f"('{two_images}',)"]
    argv = ["--config-file", SYNTHETIC_CONFIG, *TINY_RUN, *data, *precision, "OUTPUT_DIR", str(run)]
    outcome = run_tool_in_process("train_net", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    assert "MaskRCNN training on cpu: bf16, channels-last" in outcome.text
    assert "MaskRCNN inference on cpu: bf16, channels-last" in outcome.text  # the evaluation after training
    with open(run / "eval_results.json") as f:
        assert {"bbox", "segm", "keypoints"} <= set(json.load(f))

    argv = ["--eval-only", "--config-file", str(run / "config.yaml"), "MODEL.WEIGHTS", str(run / "model_final.pth")]
    argv += ["OUTPUT_DIR", str(tmp_path / "eval"), "MASK_RCNN_EXT.PRECISION.TEST", "auto"]
    outcome = run_tool_in_process("train_net", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    auto = resolve_precision("auto", "auto", torch.device("cpu"), training=False)
    assert f"MaskRCNN inference on cpu: {auto.describe()}" in outcome.text  # with why it chose it


def test_demo_predicts_in_the_precision_set(short_run, datasets_env, tmp_path, capfd):
    image = os.path.join(datasets_env["DETECTRON2_DATASETS"], "synthetic", "synthetic_val", "000000.png")
    output = tmp_path / "vis"
    opts = ["MODEL.WEIGHTS", os.path.join(short_run, "model_final.pth"), "MASK_RCNN_EXT.PRECISION.TEST", "bf16"]
    argv = ["--config-file", SYNTHETIC_CONFIG, "--input", image, "--output", str(output), "--opts", *opts]
    outcome = run_tool_in_process("demo", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    assert "MaskRCNN inference on cpu: bf16, channels-last" in outcome.text
    assert sorted(os.listdir(output)) == ["000000.png", "predictions.json"]
