"""tools/demo.py on the trained model: PNGs and predictions.json, unreadable inputs reported."""
import json
import os
import shutil

import cv2

from mask_rcnn_ext.data.synthetic import COCO_KEYPOINT_NAMES, THING_CLASSES

from conftest import SYNTHETIC_CONFIG, run_tool


def test_demo_writes_pictures_and_predictions_and_skips_bad_inputs(trained_run, datasets_env, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    val_dir = os.path.join(datasets_env["DETECTRON2_DATASETS"], "synthetic", "synthetic_val")
    for name in ("000000.png", "000001.png"):
        shutil.copy(os.path.join(val_dir, name), inputs / name)
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    output = tmp_path / "vis"
    run_tool(
        "demo.py",
        ["--config-file", SYNTHETIC_CONFIG, "--input", inputs, tmp_path / "missing.jpg",
         "--output", output, "--confidence-threshold", "0.05",
         "--opts", "MODEL.WEIGHTS", os.path.join(trained_run, "model_final.pth")],
        datasets_env, tmp_path / "stdout.log", expected_exit_codes=(2,),  # some inputs skipped
    )  # fmt: skip
    log = (tmp_path / "stdout.log").read_text()
    assert "corrupt.png: cannot read image" in log and "missing.jpg: cannot read image" in log

    assert sorted(os.listdir(output)) == ["000000.png", "000001.png", "predictions.json"]
    for name in ("000000.png", "000001.png"):
        drawn, original = cv2.imread(str(output / name)), cv2.imread(str(inputs / name))
        assert drawn.shape == original.shape and (drawn != original).any()  # something was drawn
    with open(output / "predictions.json") as f:
        predictions = json.load(f)
    assert [os.path.basename(p["file_name"]) for p in predictions] == ["000000.png", "000001.png"]
    instances = [inst for p in predictions for inst in p["instances"]]
    assert instances, "the trained model detects nothing at score 0.05"
    for inst in instances:
        assert inst["score"] >= 0.05
        assert inst["category_name"] == THING_CLASSES[inst["category_id"]]
        assert len(inst["bbox"]) == 4 and set(inst["segmentation"]) == {"size", "counts"}
        assert len(inst["keypoints"]) == 3 * len(COCO_KEYPOINT_NAMES)


def test_demo_exits_1_when_nothing_is_readable(trained_run, datasets_env, tmp_path):
    run_tool(
        "demo.py",
        ["--config-file", SYNTHETIC_CONFIG, "--input", tmp_path / "nothing_here_*.png", "--output", tmp_path / "vis",
         "--opts", "MODEL.WEIGHTS", os.path.join(trained_run, "model_final.pth")],
        datasets_env, tmp_path / "stdout.log", expected_exit_codes=(1,),
    )  # fmt: skip
    assert "matched no image" in (tmp_path / "stdout.log").read_text()
