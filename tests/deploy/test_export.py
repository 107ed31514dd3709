"""The trained run's model (the demo's box + mask + keypoint recipe) exported by tools/export_model.py,
run by ONNX Runtime, OpenVINO and torch (the .pt2 program, on the CPU and on a GPU where there is one):
through ExportedPredictor, the same detections as DefaultPredictor on the 10-image split (two image
sizes through one loaded model) and none for a threshold no score passes; through train_net's
evaluation, the same detections and AP as the PyTorch model on its whole val set. The synthetic
Cityscapes model exported likewise: the same detections and Cityscapes AP on its 40 val images
(OpenVINO). Configs that cannot export are refused."""

import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultPredictor
from detectron2.structures import Boxes, Instances

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.images import read_image
from mask_rcnn_ext.deploy.parity import compare_instances
from mask_rcnn_ext.deploy.runtime import BACKEND_FILES, BACKENDS, ExportedPredictor
from mask_rcnn_ext.engine import EVAL_RESULTS_FILE

from conftest import (
    CONFIGS_DIR,
    SYNTHETIC_CONFIG,
    SYNTHETIC_VAL_MINI,
    coco_predictions,
    run_tool,
    run_tool_in_process,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.slow  # exports a model (about 45 s)

C4_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "Ablation", "mask_rcnn_R18_C4.yaml")
KEYPOINT_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "keypoint_rcnn_R18_GN_FPN.yaml")
AP_TOLERANCE = 0.1  # the exported model's AP equal to PyTorch's within 0.1


def export_run(run_dir: str, output_dir, datasets_env) -> str:
    """`output_dir`, where the tool exported `run_dir`'s final model (and checked it on 2 images)."""
    weights = os.path.join(run_dir, "model_final.pth")
    run_tool(
        "export_model.py",
        ["--import", "mini_datasets", "--config-file", os.path.join(run_dir, "config.yaml")]
        + ["--output", output_dir, "MODEL.WEIGHTS", weights],
        datasets_env,
        output_dir / "export.log",
    )
    assert "ONNX Runtime vs PyTorch:" in (output_dir / "export.log").read_text()
    return str(output_dir)


def exported_file(folder: str, backend: str) -> str:
    """The file of the export in `folder` that `backend` runs: model.onnx or model.pt2."""
    return os.path.join(folder, "model" + BACKEND_FILES[backend])


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory, datasets_env) -> str:
    return export_run(trained_run, tmp_path_factory.mktemp("exported"), datasets_env)


@pytest.fixture(scope="module")
def pytorch_predictor(trained_run):
    """A function of a device: the trained run's model in a DefaultPredictor there (built once)."""
    predictors = {}

    def on(device: str) -> DefaultPredictor:
        if device not in predictors:
            opts = ["MODEL.WEIGHTS", os.path.join(trained_run, "model_final.pth"), "MODEL.DEVICE", device]
            predictors[device] = DefaultPredictor(build_config(os.path.join(trained_run, "config.yaml"), opts))
        return predictors[device]

    return on


# Each runtime on the CPU, and the .pt2 program on a GPU against the PyTorch model there.
RUNTIME_DEVICES = [pytest.param(backend, "cpu", id=backend) for backend in BACKENDS] + [
    pytest.param(
        "torch_export",
        "cuda",
        id="torch_export-cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    )
]


@pytest.mark.parametrize("backend, device", RUNTIME_DEVICES)
def test_exported_model_detects_what_pytorch_detects(exported, pytorch_predictor, backend, device):
    predictor = ExportedPredictor(exported_file(exported, backend), backend, device=device)
    images = [read_image(record["file_name"], format="BGR") for record in DatasetCatalog.get(SYNTHETIC_VAL_MINI)]
    assert len({image.shape for image in images}) >= 2  # sizes change between calls of one loaded model
    detections = 0
    for index, image in enumerate(images):
        with torch.no_grad():
            reference = pytorch_predictor(device)(image)["instances"].to("cpu")
        report = compare_instances(predictor(image)["instances"], reference)
        assert report.passed, (index, str(report))
        detections += report.detections
    assert detections >= 10 * len(images)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_threshold_no_detection_passes_returns_none(exported, backend):
    image = read_image(DatasetCatalog.get(SYNTHETIC_VAL_MINI)[0]["file_name"], format="BGR")
    instances = ExportedPredictor(exported_file(exported, backend), backend, score_threshold=1.0)(image)["instances"]
    assert len(instances) == 0 and instances.image_size == image.shape[:2]
    assert instances.pred_masks.shape == (0, *image.shape[:2]) and instances.pred_keypoints.shape == (0, 17, 3)


def test_a_keypoint_only_model_exports_its_boxes_and_keypoints(trained_run, tmp_path, capfd):
    """The keypoint-only config (the demo's model without its mask branch) with the trained run's
    weights: exported without masks, the tool's ONNX Runtime check passing on 2 images, and the .pt2
    program's detections those of DefaultPredictor."""
    opts = [
        "MODEL.WEIGHTS",
        os.path.join(trained_run, "model_final.pth"),
        "MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL",
        "True",
    ]
    opts += ["DATASETS.TEST", f"('{SYNTHETIC_VAL_MINI}',)"]
    argv = ["--config-file", KEYPOINT_CONFIG, "--output", str(tmp_path), *opts]
    outcome = run_tool_in_process("export_model", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]
    assert "exported outputs boxes, scores, classes, keypoint_heatmaps, keypoint_boxes" in outcome.text
    assert "check image 1 (" in outcome.text  # and 0: the tool writes only what passes its check
    image = read_image(DatasetCatalog.get(SYNTHETIC_VAL_MINI)[0]["file_name"], format="BGR")
    with torch.no_grad():
        reference = DefaultPredictor(build_config(KEYPOINT_CONFIG, opts))(image)["instances"]
    exported = ExportedPredictor(exported_file(str(tmp_path), "torch_export"), "torch_export")(image)["instances"]
    report = compare_instances(exported, reference)
    assert report.passed and report.detections >= 10 and not exported.has("pred_masks"), str(report)


def test_an_image_the_graph_does_not_cover_is_refused_naming_its_size(exported):
    """A 40 x 600 image resized for the demo model (shorter side 256, longer at most 400) is 27 pixels
    high, below the exported graph's 128."""
    with pytest.raises(ValueError, match="an image of 600x40 pixels resized to 400x27"):
        ExportedPredictor(exported_file(exported, "onnxruntime"), "onnxruntime")(np.zeros((40, 600, 3), np.uint8))


def test_a_runtime_given_the_other_file_is_refused_naming_it(exported, capfd):
    onnx_path = exported_file(exported, "onnxruntime")
    refusal = f"{onnx_path}: torch_export runs the exported .pt2 file"
    with pytest.raises(ValueError, match=refusal):
        ExportedPredictor(onnx_path, "torch_export")
    demo = ["--config-file", SYNTHETIC_CONFIG, "--input", "x.png", "--output", "out", "--model", onnx_path]
    outcome = run_tool_in_process("demo", demo + ["--backend", "torch_export"], capfd)
    assert outcome.code == 2 and f"--model {refusal}" in outcome.text
    evaluation = ["--config-file", SYNTHETIC_CONFIG, "--eval-only", "--exported", onnx_path]
    outcome = run_tool_in_process("train_net", evaluation + ["--backend", "torch_export"], capfd)
    assert outcome.code == 2 and f"--exported {refusal}" in outcome.text


def instances_from_coco_json(detections: list[dict], image_size: tuple[int, int]) -> Instances:
    """One image's detections as COCOEvaluator writes them (coco_instances_results.json) back as
    Instances: XYXY boxes, decoded masks, (N, K, 3) keypoints (both sides' shifted by COCO's -0.5)."""
    instances = Instances(image_size)
    boxes = torch.tensor([d["bbox"] for d in detections], dtype=torch.float64).reshape(-1, 4)
    instances.pred_boxes = Boxes(torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1))
    instances.scores = torch.tensor([d["score"] for d in detections], dtype=torch.float64)
    instances.pred_classes = torch.tensor([d["category_id"] for d in detections], dtype=torch.int64)
    if detections and "segmentation" in detections[0]:
        masks = mask_util.decode([d["segmentation"] for d in detections])  # (H, W, N)
        instances.pred_masks = torch.from_numpy(masks).permute(2, 0, 1).bool()
    if detections and "keypoints" in detections[0]:
        instances.pred_keypoints = torch.tensor([d["keypoints"] for d in detections]).reshape(len(detections), -1, 3)
    return instances


def assert_same_detections_and_ap(exported_dir, reference_dir, tasks: tuple[str, ...]) -> int:
    """The evaluation in `exported_dir` found the detections of the one in `reference_dir` on every
    image (deploy.parity's tolerances) and scored each of `tasks`' AP within AP_TOLERANCE of it;
    returns the number of detections compared."""
    by_image = {}
    for side, output_dir in (("exported", exported_dir), ("reference", reference_dir)):
        for detection in coco_predictions(output_dir):
            by_image.setdefault(detection["image_id"], {"exported": [], "reference": []})[side].append(detection)
    detections = 0
    for image_id, sides in by_image.items():
        first = (sides["exported"] + sides["reference"])[0]
        image_size = tuple(first["segmentation"]["size"]) if "segmentation" in first else (0, 0)
        exported, reference = (instances_from_coco_json(sides[side], image_size) for side in ("exported", "reference"))
        report = compare_instances(exported, reference)
        assert report.passed, (image_id, str(report))
        detections += report.detections
    results = {}
    for side, output_dir in (("exported", exported_dir), ("reference", reference_dir)):
        with open(os.path.join(output_dir, EVAL_RESULTS_FILE)) as f:
            results[side] = json.load(f)
    for task in tasks:
        assert abs(results["exported"][task]["AP"] - results["reference"][task]["AP"]) <= AP_TOLERANCE, task
    return detections


def evaluate_exported(folder: str, backend: str, run_dir: str, output_dir: str, capfd) -> None:
    """train_net --eval-only --exported (the export in `folder`) in `backend`, with `run_dir`'s config,
    in this process."""
    argv = ["--eval-only", "--exported", exported_file(folder, backend), "--backend", backend]
    argv += ["--config-file", os.path.join(run_dir, "config.yaml"), "OUTPUT_DIR", output_dir]
    outcome = run_tool_in_process("train_net", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_model_detects_and_scores_what_pytorch_does_on_the_val_set(
    exported, trained_run, tmp_path, capfd, backend
):
    """train_net --eval-only --exported on the trained run's 50 val images, against the evaluation
    that ended its training in PyTorch (fp32): the same detections on every image, and COCO box,
    mask and keypoint AP within AP_TOLERANCE."""
    evaluate_exported(exported, backend, trained_run, str(tmp_path), capfd)
    detections = assert_same_detections_and_ap(tmp_path, trained_run, ("bbox", "segm", "keypoints"))
    assert detections >= 10 * 50


def test_exported_cityscapes_model_detects_and_scores_what_pytorch_does(
    cityscapes_run, tmp_path_factory, datasets_env, capfd
):
    """The synthetic Cityscapes model exported and evaluated by train_net --eval-only --exported
    (OpenVINO) on the 40 val images of its tree, against the evaluation that ended its training in
    PyTorch: the same detections on every image; Cityscapes AP and COCO mask and box AP within
    AP_TOLERANCE."""
    output_dir = tmp_path_factory.mktemp("exported_cityscapes")
    evaluate_exported(
        export_run(cityscapes_run, output_dir, datasets_env),
        "openvino",
        cityscapes_run,
        str(output_dir / "eval"),
        capfd,
    )
    detections = assert_same_detections_and_ap(output_dir / "eval", cityscapes_run, ("cityscapes_segm", "segm", "bbox"))
    assert detections >= 10 * 40


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
