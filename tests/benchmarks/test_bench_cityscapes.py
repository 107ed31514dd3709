"""benchmarks/cityscapes.py runs the official pipeline and ours on the same predictions."""

import json

import pytest

from benchmarks.cityscapes import main


def test_quick_benchmark_agrees_with_the_official_evaluation(tmp_path, capsys):
    output = tmp_path / "report.json"
    main(["--quick", "--output", str(output)])
    report = json.loads(output.read_text())
    evaluation = report["evaluation"]
    assert report["identical_AP"] and evaluation["ours_AP"] == evaluation["official_AP"] > 0
    assert evaluation["official_s"] > 0 and evaluation["ours_s"] > 0 and report["loading"]["cached_s"] > 0
    assert report["setting"] == {**report["setting"], "images": 2, "detections": 20, "height": 512, "width": 1024}
    assert "identical: True" in capsys.readouterr().out


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--detections", "0"])
    assert exit_info.value.code == 2 and "must be >= 1" in capsys.readouterr().err
