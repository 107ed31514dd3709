"""The trained run's model (the demo's box + mask + keypoint recipe) exported by tools/export_model.py,
run by ONNX Runtime and OpenVINO: the same detections as the PyTorch model on the 10-image split (two
image sizes through one loaded model), none for a threshold no score passes, the same AP through
train_net's evaluation; the synthetic Cityscapes model exported likewise, with the same Cityscapes AP on
its 40 val images (OpenVINO); and configs that cannot export refused."""

import json
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultPredictor

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.images import read_image
from mask_rcnn_ext.deploy.parity import compare_instances
from mask_rcnn_ext.deploy.runtime import BACKENDS, ExportedPredictor
from mask_rcnn_ext.engine import EVAL_RESULTS_FILE

from conftest import (
    CONFIGS_DIR,
    SYNTHETIC_CONFIG,
    SYNTHETIC_VAL_MINI,
    evaluate_in_precision,
    run_tool,
    run_tool_in_process,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.slow  # exports a model (about 45 s)

C4_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "Ablation", "mask_rcnn_R18_C4.yaml")
AP_TOLERANCE = 0.1  # the exported model's AP equal to PyTorch's within 0.1
MINI_SPLIT = ["DATASETS.TEST", f"('{SYNTHETIC_VAL_MINI}',)"]


def export_run(run_dir: str, output_dir, datasets_env) -> str:
    """The .onnx file of `run_dir`'s final model, exported by the tool (which checks it on 2 images)."""
    weights = os.path.join(run_dir, "model_final.pth")
    run_tool(
        "export_model.py",
        ["--import", "mini_datasets", "--config-file", os.path.join(run_dir, "config.yaml")]
        + ["--output", output_dir, "MODEL.WEIGHTS", weights],
        datasets_env,
        output_dir / "export.log",
    )
    assert "ONNX Runtime vs PyTorch:" in (output_dir / "export.log").read_text()
    return str(output_dir / "model.onnx")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory, datasets_env) -> str:
    return export_run(trained_run, tmp_path_factory.mktemp("exported"), datasets_env)


@pytest.fixture(scope="module")
def pytorch_predictor(trained_run):
    weights = os.path.join(trained_run, "model_final.pth")
    return DefaultPredictor(build_config(os.path.join(trained_run, "config.yaml"), ["MODEL.WEIGHTS", weights]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_model_detects_what_pytorch_detects(exported, pytorch_predictor, backend):
    predictor = ExportedPredictor(exported, backend)
    images = [read_image(record["file_name"], format="BGR") for record in DatasetCatalog.get(SYNTHETIC_VAL_MINI)]
    assert len({image.shape for image in images}) >= 2  # sizes change between calls of one loaded model
    detections = 0
    for index, image in enumerate(images):
        with torch.no_grad():
            reference = pytorch_predictor(image)["instances"]
        report = compare_instances(predictor(image)["instances"], reference)
        assert report.passed, (index, str(report))
        detections += report.detections
    assert detections >= 10 * len(images)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_threshold_no_detection_passes_returns_none(exported, backend):
    image = read_image(DatasetCatalog.get(SYNTHETIC_VAL_MINI)[0]["file_name"], format="BGR")
    instances = ExportedPredictor(exported, backend, score_threshold=1.0)(image)["instances"]
    assert len(instances) == 0 and instances.image_size == image.shape[:2]
    assert instances.pred_masks.shape == (0, *image.shape[:2]) and instances.pred_keypoints.shape == (0, 17, 3)


def test_an_image_the_graph_does_not_cover_is_refused_naming_its_size(exported):
    """A 40 x 600 image resized for the demo model (shorter side 256, longer at most 400) is 27 pixels
    high, below the exported graph's 128."""
    with pytest.raises(ValueError, match="an image of 600x40 pixels resized to 400x27"):
        ExportedPredictor(exported, "onnxruntime")(np.zeros((40, 600, 3), dtype=np.uint8))


def test_exported_model_scores_the_ap_pytorch_scores(exported, trained_run, tmp_path, capfd):
    """train_net --eval-only --exported, in each runtime, against train_net --eval-only in PyTorch:
    COCO box, mask and keypoint AP on the 10-image split within AP_TOLERANCE."""
    pytorch = evaluate_in_precision(trained_run, "fp32", str(tmp_path / "pytorch"), capfd, MINI_SPLIT)
    for backend in BACKENDS:
        argv = ["--eval-only", "--exported", exported, "--backend", backend, "--config-file"]
        argv += [os.path.join(trained_run, "config.yaml"), *MINI_SPLIT, "OUTPUT_DIR", str(tmp_path / backend)]
        outcome = run_tool_in_process("train_net", argv, capfd)
        assert outcome.code == 0, outcome.text[-6000:]
        with open(tmp_path / backend / EVAL_RESULTS_FILE) as f:
            results = json.load(f)
        for task in ("bbox", "segm", "keypoints"):
            assert abs(results[task]["AP"] - pytorch[task]["AP"]) <= AP_TOLERANCE, (backend, task)


def test_exported_cityscapes_model_scores_the_cityscapes_ap_pytorch_scores(
    cityscapes_run, tmp_path_factory, datasets_env, capfd
):
    """train_net --eval-only --exported (OpenVINO) on the 40 val images of the synthetic Cityscapes
    tree, against the evaluation that ended the model's training in PyTorch: Cityscapes AP and COCO
    mask and box AP within AP_TOLERANCE."""
    output_dir = tmp_path_factory.mktemp("exported_cityscapes")
    onnx_path = export_run(cityscapes_run, output_dir, datasets_env)
    argv = ["--eval-only", "--exported", onnx_path, "--backend", "openvino"]
    argv += ["--config-file", os.path.join(cityscapes_run, "config.yaml")]
    outcome = run_tool_in_process("train_net", argv + ["OUTPUT_DIR", str(output_dir / "eval")], capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    with open(output_dir / "eval" / EVAL_RESULTS_FILE) as f:
        exported_results = json.load(f)
    with open(os.path.join(cityscapes_run, EVAL_RESULTS_FILE)) as f:
        pytorch_results = json.load(f)
    for task in ("cityscapes_segm", "segm", "bbox"):
        assert abs(exported_results[task]["AP"] - pytorch_results[task]["AP"]) <= AP_TOLERANCE, task


@pytest.mark.parametrize(
    "config, opts, key",
    [
        (
            SYNTHETIC_CONFIG,
            ["MODEL.ROI_MASK_HEAD.POOLER_TYPE", "ROIAlignMax"],
            "MODEL.ROI_MASK_HEAD.POOLER_TYPE='ROIAlignMax'",
        ),
        (SYNTHETIC_CONFIG, ["MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIPool"], "MODEL.ROI_BOX_HEAD.POOLER_TYPE='ROIPool'"),
        (
            SYNTHETIC_CONFIG,
            ["MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
            "MODEL.ROI_MASK_HEAD.NAME: MaskRCNN",
        ),
        (C4_CONFIG, ["MODEL.WEIGHTS", ""], "MODEL.ROI_HEADS.NAME: AnyPoolerRes5ROIHeads"),
    ],
)
def test_a_config_that_cannot_export_is_refused_naming_the_key(config, opts, key, tmp_path, capfd):
    argv = ["--config-file", config, "--output", str(tmp_path / "out"), *opts]
    outcome = run_tool_in_process("export_model", argv, capfd)
    assert outcome.code == 1 and f"cannot export: {key}" in outcome.text
    assert not (tmp_path / "out").exists()
