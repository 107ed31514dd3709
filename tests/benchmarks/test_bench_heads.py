"""benchmarks/heads.py times every pooler, head and test read-out beside detectron2's in one run."""

import json

import pytest

from benchmarks.heads import HEADS, OURS, REFERENCE, TORCHVISION, main
from mask_rcnn_ext.modeling import ROI_FEATURE_OP_REGISTRY


@pytest.mark.slow
def test_every_pooler_and_head_is_measured_against_detectron2(tmp_path):
    output = tmp_path / "heads.json"
    main(
        [
            "--iters",
            "1",
            "--pooler-rois",
            "16",
            "--head-rois",
            "8",
            "--test-rois",
            "4",
            "--image-size",
            "200",
            "304",
            "--output",
            str(output),
        ]
    )
    report = json.loads(output.read_text())
    assert set(report["poolers"]) == {REFERENCE, TORCHVISION} | {name for name, _ in ROI_FEATURE_OP_REGISTRY}
    assert set(report["heads"]) == set(HEADS) | {TORCHVISION}
    assert all(value == 1.0 for value in report["head_ratios"][REFERENCE].values())
    # detectron2's roi_align keeps only the RoIs for backward: no memory ratio describes that
    assert report["pooler_ratios"][REFERENCE] == {"train_ms": 1.0, "test_ms": 1.0, "saved_MiB": None}
    for row in list(report["poolers"].values()) + list(report["heads"].values()):
        assert row["train_ms"] > 0 and row["test_ms"] > 0 and row["saved_MiB"] > 0
    # same computation, same saved activations: our default path keeps no more than detectron2's
    assert report["heads"]["FCN sigmoid (default)"]["saved_MiB"] == report["heads"][REFERENCE]["saved_MiB"]
    assert report["poolers"]["ROIAlignV2"]["saved_MiB"] == report["poolers"][REFERENCE]["saved_MiB"]
    # the read-out is timed only once ours returned detectron2's outputs
    assert set(report["read_out"]) == {REFERENCE, OURS}
    assert all(value > 0 for row in report["read_out"].values() for value in row.values())
    assert report["read_out_ratios"][REFERENCE] == {"keypoints_ms": 1.0, "masks_ms": 1.0}


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--head-rois", "0"])
    assert exit_info.value.code == 2
    assert "--iters, --pooler-rois, --head-rois and --test-rois must be >= 1" in capsys.readouterr().err
