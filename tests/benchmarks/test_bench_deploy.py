"""benchmarks/deploy.py exports the demo's model and runs it in every runtime beside PyTorch (--quick)."""

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from benchmarks.deploy import main  # noqa: E402
from mask_rcnn_ext.deploy.parity import TOLERANCES  # noqa: E402

FP32_RUNTIMES = ("onnxruntime", "openvino", "torch_export")


def test_quick_benchmark_runs_every_runtime_on_the_same_detections(tmp_path):
    """Every runtime timed on the image, with the 100 detections the benchmark asks for; the float32
    runtimes' boxes those of PyTorch fp32 (the fresh model's soft masks, near the 0.5 threshold, are
    not compared)."""
    output = tmp_path / "report.json"
    main(["--quick", "--output", str(output)])
    rows = json.loads(output.read_text())["rows"]
    assert {"pytorch_fp32", "pytorch_auto", *FP32_RUNTIMES} <= set(rows)
    for name, row in rows.items():
        assert row["s_per_image"] > 0 and row["detections_per_image"] == 100, name
    for name in FP32_RUNTIMES:
        assert rows[name]["largest_box_difference_px"] <= TOLERANCES["box_px"], name
