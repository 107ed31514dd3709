"""tools/benchmark_cityscapes.py runs the official pipeline and ours on the same predictions."""
import json

from conftest import run_tool


def test_quick_benchmark_agrees_with_the_official_evaluation(tmp_path):
    output = tmp_path / "report.json"
    run_tool("benchmark_cityscapes.py", ["--quick", "--output", output], {}, tmp_path / "log")
    report = json.loads(output.read_text())
    evaluation = report["evaluation"]
    assert report["identical_AP"] and evaluation["ours_AP"] == evaluation["official_AP"] > 0
    assert evaluation["official_s"] > 0 and evaluation["ours_s"] > 0 and report["loading"]["cached_s"] > 0
    assert report["setting"] == {**report["setting"], "images": 2, "detections": 20, "height": 512, "width": 1024}
    assert "identical: True" in (tmp_path / "log").read_text()


def test_bad_arguments_are_refused(tmp_path):
    log = tmp_path / "log"
    run_tool("benchmark_cityscapes.py", ["--detections", "0"], {}, log, expected_exit_codes=(2,))
    assert "must be >= 1" in log.read_text()
