"""tools/benchmark.py runs both models on the same inputs and compares them."""
import json

import pytest
from detectron2.modeling import build_model

from mask_rcnn_ext import build_config

from benchmark import REFERENCE_OPTS
from conftest import SYNTHETIC_CONFIG, run_tool


def _params_millions(opts):
    model = build_model(build_config(SYNTHETIC_CONFIG, ["MODEL.DEVICE", "cpu", *opts]))
    return sum(p.numel() for p in model.parameters()) / 1e6


def test_benchmark_compares_ours_with_detectron2_stock_heads_and_backbone(datasets_env, tmp_path):
    output = tmp_path / "bench.json"
    run_tool("benchmark.py", ["--iters", "1", "--warmup", "0", "--output", output], datasets_env, tmp_path / "log")
    report = json.loads(output.read_text())
    assert report["rows"]["ours"]["params_M"] == _params_millions([])
    for name, opts in REFERENCE_OPTS.items():
        assert report["rows"][name]["params_M"] == _params_millions(opts)
    # Our heads are detectron2's layers (the same parameters); the narrow backbone is the point of
    # the synthetic config: a third of the stock R18-FPN model.
    assert report["ratios"]["detectron2_heads"]["params_M"] == 1.0
    assert 0.25 < report["ratios"]["detectron2_backbone"]["params_M"] < 0.4
    for row in report["rows"].values():
        assert row["train_s_per_iter"] > 0 and row["infer_s_per_image"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--iters", "0"], "--iters must be >= 1"),
        (["DATASETS.TEST", "()"], "DATASETS.TEST is empty"),
    ],
)
def test_benchmark_refuses_bad_arguments_before_any_work(datasets_env, tmp_path, args, message):
    log = tmp_path / "log"
    run_tool("benchmark.py", args, datasets_env, log, expected_exit_codes=(2,))
    assert message in log.read_text()
