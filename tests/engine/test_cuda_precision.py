"""Mixed precision on a GPU (skipped without CUDA): the trained run's recipe (the demo's config on
TRAINED_RUN_OPTS) trained on CUDA in fp32, in fp16 (the loss scaled) and in bf16 learns all three
tasks as it does on the CPU, and the fp32 model's inference in fp16 and in bf16 scores within
BF16_AP_TOLERANCE of its fp32 inference."""

import json
import os

import pytest
import torch

from mask_rcnn_ext.engine import EVAL_RESULTS_FILE

from conftest import (
    BF16_AP_TOLERANCE,
    SYNTHETIC_CONFIG,
    TRAINED_AP_FLOORS,
    TRAINED_RUN_OPTS,
    evaluate_in_precision,
    run_tool,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CUDA_DEVICE = "cuda:0"  # the model's device as MaskRCNN logs it


@pytest.fixture(scope="module")
def trained_on_cuda(tmp_path_factory, datasets_env):
    """A function of a training precision: OUTPUT_DIR of the trained run's recipe trained on CUDA in
    it by tools/train_net.py, and evaluated in fp32 (each precision trained once)."""
    runs = {}

    def train(precision: str) -> str:
        if precision not in runs:
            output_dir = str(tmp_path_factory.mktemp(f"cuda_{precision}"))
            run_tool(
                "train_net.py",
                ["--import", "mini_datasets", "--config-file", SYNTHETIC_CONFIG, *TRAINED_RUN_OPTS]
                + ["MODEL.DEVICE", "cuda", "MASK_RCNN_EXT.PRECISION.TRAIN", precision, "OUTPUT_DIR", output_dir],
                datasets_env,
                os.path.join(output_dir, "stdout.log"),
            )
            runs[precision] = output_dir
        return runs[precision]

    return train


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_training_on_cuda_learns_every_task(trained_on_cuda, precision):
    run = trained_on_cuda(precision)
    with open(os.path.join(run, "log.txt")) as f:
        assert f"MaskRCNN training on {CUDA_DEVICE}: {precision}" in f.read()
    with open(os.path.join(run, EVAL_RESULTS_FILE)) as f:
        results = json.load(f)
    print(precision, {task: round(results[task]["AP"], 2) for task in TRAINED_AP_FLOORS})
    for task, floor in TRAINED_AP_FLOORS.items():
        assert results[task]["AP"] > floor, (precision, task, results[task]["AP"])


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_inference_on_cuda_scores_as_fp32(trained_on_cuda, precision, tmp_path, capfd):
    """On the trained run's 50 test images; the outputs are float32 whatever computed them."""
    run = trained_on_cuda("fp32")
    fp32 = evaluate_in_precision(run, "fp32", str(tmp_path / "fp32"), capfd, device=CUDA_DEVICE)
    reduced = evaluate_in_precision(run, precision, str(tmp_path / precision), capfd, device=CUDA_DEVICE)
    for task in ("bbox", "segm", "keypoints"):
        print(precision, task, round(fp32[task]["AP"], 3), round(reduced[task]["AP"], 3))
        assert abs(reduced[task]["AP"] - fp32[task]["AP"]) <= BF16_AP_TOLERANCE, (task, reduced[task], fp32[task])
