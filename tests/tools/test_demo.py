"""tools/demo.py on the trained model: PNGs and predictions.json, unreadable inputs reported;
skeletons of any keypoint set drawn."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES
from detectron2.structures import Instances
from detectron2.utils.visualizer import ColorMode, Visualizer
from PIL import Image

from mask_rcnn_ext.data import register_coco_keypoints
from mask_rcnn_ext.data.synthetic import THING_CLASSES

from conftest import (
    COMPARED_EVAL_THREADS,
    SHORT_RUN_OPTS,
    SYNTHETIC_CONFIG,
    SYNTHETIC_VAL_MINI,
    import_tool,
    run_tool,
    run_tool_in_process,
)


@pytest.mark.slow
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
        [
            "--config-file",
            SYNTHETIC_CONFIG,
            "--input",
            inputs,
            tmp_path / "missing.jpg",
            "--output",
            output,
            "--confidence-threshold",
            "0.05",
            "--opts",
            "MODEL.WEIGHTS",
            os.path.join(trained_run, "model_final.pth"),
        ],
        datasets_env,
        tmp_path / "stdout.log",
        expected_exit_codes=(2,),  # some inputs skipped
    )
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
        assert len(inst["keypoints"]) == 3 * len(COCO_PERSON_KEYPOINT_NAMES)


def test_demo_reads_16_bit_gray_and_names_a_mode_it_does_not_read(short_run, datasets_env, tmp_path, capfd):
    """A 16-bit grayscale PNG is drawn over its 8-bit reading (data/images.py: the high byte of each
    value), not over white; a 32-bit float TIFF is reported with its mode, and skipped."""
    val_image = os.path.join(datasets_env["DETECTRON2_DATASETS"], "synthetic", "synthetic_val", "000000.png")
    gray = cv2.imread(val_image, cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray.astype(np.uint16) * 257)  # high byte: `gray`
    Image.fromarray(gray.astype(np.float32)).save(tmp_path / "float.tif")
    output = tmp_path / "vis"
    inputs = [str(tmp_path / "gray16.png"), str(tmp_path / "float.tif")]
    weights = ["MODEL.WEIGHTS", os.path.join(short_run, "model_final.pth")]
    outcome = run_tool_in_process(
        "demo",
        ["--config-file", SYNTHETIC_CONFIG, "--input", *inputs, "--output", str(output), "--opts", *weights],
        capfd,
    )
    assert outcome.code == 2, outcome.text  # one input skipped
    assert f"float.tif: cannot read image (ImageModeError: '{tmp_path / 'float.tif'}': PIL mode 'F'" in outcome.text
    assert sorted(os.listdir(output)) == ["gray16.png", "predictions.json"]
    drawn = cv2.imread(str(output / "gray16.png"))
    assert (drawn == gray[:, :, None]).all(axis=2).mean() > 0.5  # the picture under the drawing


def test_skeleton_of_a_custom_keypoint_set_is_drawn(tmp_path):
    """The demo draws with detectron2's Visualizer and the test dataset's metadata. For a 5-keypoint
    set (none of COCO's names, which its person-only extra lines look up), each skeleton edge is a
    line in the edge's colour, and keypoints not joined by the skeleton stay unjoined."""
    names = ["head", "left_fin", "right_fin", "back", "tail"]
    category = dict(id=1, name="fish", keypoints=names, skeleton=[[1, 4], [4, 5], [2, 4], [3, 4]])
    (tmp_path / "fish.json").write_text(json.dumps(dict(images=[], annotations=[], categories=[category])))
    register_coco_keypoints(
        "demo_test_fish", str(tmp_path / "fish.json"), str(tmp_path), keypoint_oks_sigmas=[0.05] * 5
    )
    metadata = MetadataCatalog.get("demo_test_fish")

    # A star around "back": head left, tail right, fins above and below; (x, y, score) per keypoint.
    xy = {"head": (20, 60), "left_fin": (60, 20), "right_fin": (60, 100), "back": (60, 60), "tail": (100, 60)}
    instances = Instances((120, 120), pred_keypoints=torch.tensor([[[*xy[n], 1.0] for n in names]]))
    drawing = Visualizer(np.zeros((120, 120, 3), np.uint8), metadata, instance_mode=ColorMode.IMAGE)
    drawing = drawing.draw_instance_predictions(instances).get_image()

    def pixel_between(a, b):
        (xa, ya), (xb, yb) = xy[a], xy[b]
        return drawing[(ya + yb) // 2, (xa + xb) // 2].astype(int)

    assert len(metadata.keypoint_connection_rules) == 4
    for a, b, colour in metadata.keypoint_connection_rules:
        assert np.abs(pixel_between(a, b) - colour).max() <= 2, (a, b)
    assert not pixel_between("head", "left_fin").any()  # not a skeleton edge: background


def test_quickstart_on_a_finished_run_reevaluates_and_writes_every_output(short_run, tmp_path, capfd, monkeypatch):
    """`make demo` a second time: resumes the finished training (no step), evaluates, draws, and
    writes the AP summary, curves and keypoint diagnostics beside each other."""
    output = tmp_path / "demo"
    shutil.copytree(short_run, output / "train")
    monkeypatch.setenv("OMP_NUM_THREADS", COMPARED_EVAL_THREADS)  # for the tools it runs: as the short run
    import_tool("quickstart").main(["--output-dir", str(output), "--num-vis", "2", *SHORT_RUN_OPTS])
    log = capfd.readouterr().out
    assert "keypoints: AP" in log and "keypoints: mean error" in log

    with open(output / "metrics.json") as f:
        summary = json.load(f)
    with open(os.path.join(short_run, "eval_results.json")) as f:
        trained = json.load(f)
    assert summary["results"][SYNTHETIC_VAL_MINI] == trained  # the same weights evaluate the same
    assert sorted(os.listdir(output / "vis")) == ["000000.png", "000001.png", "predictions.json"]
    for name in ("training_curves.png", "keypoint_diagnostics.png"):
        assert cv2.imread(str(output / name)) is not None
    with open(output / "keypoint_diagnostics.json") as f:
        assert json.load(f)["detect@0.5"] == trained["keypoint_diagnostics"]["detect@0.5"]
