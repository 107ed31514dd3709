"""Running an exported model: the resize before its graph and the decoding after it (the same for every
runtime), and a predictor for ONNX Runtime, OpenVINO and torch (the .pt2 program) that returns what
detectron2's `DefaultPredictor` returns, `{"instances": Instances}` at the image's size.

An exported model carries what its predictor needs (`ModelInfo`) under `METADATA_KEY`, in the ONNX
model's metadata and among the .pt2 archive's extra files: its config's input format, test resize and
score threshold, and its outputs. ONNX Runtime and OpenVINO are optional: `pip install mask_rcnn_ext[deploy]`.
"""

import dataclasses
import functools
import json
from typing import Any, Optional

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances
from torch.export.passes import move_to_device_pass

from ..modeling.keypoint_decoding import decode_keypoint_heatmaps
from .graph import INPUT_NAMES, MAX_SIDE, MIN_SIDE

METADATA_KEY = "mask_rcnn_ext"
# Each runtime and the file it runs: the .onnx model, or the .pt2 torch.export program.
BACKEND_FILES = {"onnxruntime": ".onnx", "openvino": ".onnx", "torch_export": ".pt2"}
BACKENDS = tuple(BACKEND_FILES)


def wrong_file_for_backend(path: str, backend: str) -> Optional[str]:
    """Why `backend` (one of BACKENDS) cannot run the exported file at `path`, or None when it can."""
    expected = BACKEND_FILES[backend]
    return None if path.endswith(expected) else f"{path}: {backend} runs the exported {expected} file"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What running an exported model needs besides its graph, from its config."""

    input_format: str  # INPUT.FORMAT: "BGR" or "RGB", the channel order the model was trained on
    min_size_test: int  # INPUT.MIN_SIZE_TEST
    max_size_test: int  # INPUT.MAX_SIZE_TEST
    score_threshold: float  # MODEL.ROI_HEADS.SCORE_THRESH_TEST: the graph's score_threshold input by default
    outputs: tuple[str, ...]  # the graph's outputs, in order (graph.OUTPUT_NAMES of its tasks)

    @classmethod
    def from_config(cls, cfg, outputs) -> "ModelInfo":
        return cls(
            cfg.INPUT.FORMAT,
            cfg.INPUT.MIN_SIZE_TEST,
            cfg.INPUT.MAX_SIZE_TEST,
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            tuple(outputs),
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ModelInfo":
        fields = json.loads(text)
        return cls(**{**fields, "outputs": tuple(fields["outputs"])})


def resize_for_model(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """(3, h, w) uint8, the graph's image input: `image` (H, W, 3) uint8 in BGR order, as
    DefaultPredictor takes it, in the model's channel order, resized as DefaultPredictor resizes it
    (detectron2's ResizeShortestEdge to MIN_SIZE_TEST, the longer side at most MAX_SIZE_TEST)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got {image.dtype} of shape {image.shape}")
    if info.input_format == "RGB":
        image = image[:, :, ::-1]
    resize = T.ResizeShortestEdge([info.min_size_test, info.min_size_test], info.max_size_test)
    return np.ascontiguousarray(resize.get_transform(image).apply_image(image).transpose(2, 0, 1))


def instances_from_outputs(
    outputs: dict[str, Any], image_size: tuple[int, int], resized_size: tuple[int, int]
) -> Instances:
    """The graph's `outputs` ({name: array}) for an image of `image_size` (H, W) given to it resized
    to `resized_size` (h, w), as the `Instances` detectron2's models return: pred_boxes, scores,
    pred_classes, pred_masks (N, H, W) bool, and pred_keypoints (N, K, 3) (x, y, score, decoded from
    the heatmaps as detectron2 decodes them, then scaled to the image) with pred_keypoint_heatmaps."""
    tensors = {name: torch.as_tensor(np.asarray(value)) for name, value in outputs.items()}
    instances = Instances(image_size)
    instances.pred_boxes = Boxes(tensors["boxes"])
    instances.scores = tensors["scores"]
    instances.pred_classes = tensors["classes"]
    if "masks" in tensors:
        instances.pred_masks = tensors["masks"]
    if "keypoint_heatmaps" in tensors:
        heatmaps = tensors["keypoint_heatmaps"]
        keypoints = decode_keypoint_heatmaps(heatmaps, tensors["keypoint_boxes"])[:, :, [0, 1, 3]]
        keypoints[:, :, 0] *= image_size[1] / resized_size[1]  # detector_postprocess's scaling
        keypoints[:, :, 1] *= image_size[0] / resized_size[0]
        instances.pred_keypoints = keypoints
        instances.pred_keypoint_heatmaps = heatmaps
    return instances


class ExportedPredictor:
    """`predictor(image)` -> {"instances": Instances} for an exported model, run by ONNX Runtime (CPU),
    OpenVINO (CPU) or torch, as detectron2's DefaultPredictor runs the model it was exported from.

    Args:
        path: the .onnx file `tools/export_model.py` wrote (onnxruntime, openvino), or its .pt2
            program (torch_export).
        backend: one of BACKENDS.
        precision: "fp32", or "bf16" (OpenVINO only, on a CPU that has it: its inference precision hint).
        score_threshold: the score a detection must exceed; None: the config's at export.
        device: where torch_export runs the program ("cpu", "cuda", "cuda:1"); the others run on the CPU.
    """

    def __init__(
        self,
        path: str,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        score_threshold: Optional[float] = None,
        device: str = "cpu",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        wrong_file = wrong_file_for_backend(path, backend)
        if wrong_file:
            raise ValueError(wrong_file)
        if precision not in ("fp32", "bf16") or (precision == "bf16" and backend != "openvino"):
            raise ValueError(f"precision {precision!r} with {backend}: fp32, or bf16 with openvino")
        if device != "cpu" and backend != "torch_export":
            raise ValueError(f"device {device!r} with {backend}: {backend} runs on the cpu (torch_export on any)")
        if backend == "torch_export":
            self.info, self._run = _torch_export_runner(path, device)
        else:
            self.info = read_model_info(path)
            self._run = _onnxruntime_runner(path) if backend == "onnxruntime" else _openvino_runner(path, precision)
        self.score_threshold = np.array(
            self.info.score_threshold if score_threshold is None else score_threshold, dtype=np.float32
        )

    def __call__(self, image: np.ndarray) -> dict[str, Instances]:
        """`image`: (H, W, 3) uint8, BGR (as cv2.imread reads it)."""
        return {"instances": self.run_resized(resize_for_model(image, self.info), image.shape[:2])}

    def run_resized(self, resized: np.ndarray, image_size: tuple[int, int]) -> Instances:
        """The detections of an image of `image_size` (H, W), given `resized` as the graph takes it."""
        if not MIN_SIDE <= min(resized.shape[1:]) <= max(resized.shape[1:]) <= MAX_SIDE:
            raise ValueError(
                f"an image of {image_size[1]}x{image_size[0]} pixels resized to {resized.shape[2]}x{resized.shape[1]}: "
                f"the exported graph takes sides from {MIN_SIDE} to {MAX_SIDE} pixels after the test resize"
            )
        inputs = {"image": resized, "original_size": np.array(image_size, dtype=np.int64)}
        outputs = self._run({**inputs, "score_threshold": self.score_threshold})
        return instances_from_outputs(outputs, tuple(image_size), resized.shape[1:])


class ExportedModel(torch.nn.Module):
    """An ExportedPredictor as a detectron2 model at inference, `model(batched_inputs)` (the dicts of
    detectron2's test loader, whose "image" is already resized), so that detectron2's
    `inference_on_dataset` and the evaluators score an exported model as they score the model."""

    def __init__(self, predictor: ExportedPredictor):
        super().__init__()
        self.predictor = predictor

    def forward(self, batched_inputs: list[dict]) -> list[dict[str, Instances]]:
        return [
            {
                "instances": self.predictor.run_resized(
                    inputs["image"].to(torch.uint8).numpy(), (inputs["height"], inputs["width"])
                )
            }
            for inputs in batched_inputs
        ]


def read_model_info(path: str) -> ModelInfo:
    """The ModelInfo an exported ONNX model at `path` carries; ValueError naming the file when it
    carries none (not written by tools/export_model.py)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return _model_info(path, metadata.get(METADATA_KEY))


def _model_info(path: str, text: Optional[str]) -> ModelInfo:
    if not text:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export the model with tools/export_model.py")
    return ModelInfo.from_json(text)


# A runner: {input name: array} -> {output name: array}.
def _onnxruntime_runner(path: str):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return lambda inputs: dict(zip(names, session.run(None, inputs)))


def _torch_export_runner(path: str, device: str):
    """(ModelInfo, runner) of the .pt2 program at `path` (traced on the CPU), run by torch on `device`."""
    extra_files = {METADATA_KEY: ""}
    program = torch.export.load(path, extra_files=extra_files)
    info = _model_info(path, extra_files[METADATA_KEY])
    if torch.device(device).type != "cpu":  # its weights and the devices its ops name
        program = move_to_device_pass(program, device)
    module = program.module()

    def run(inputs):
        with torch.no_grad():
            outputs = module(*(torch.from_numpy(np.asarray(inputs[name])).to(device) for name in INPUT_NAMES))
        return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

    return info, run


@functools.cache
def _openvino_core():
    """The process's one OpenVINO Core, as OpenVINO advises: with a Core per predictor, a process that
    had compiled a model in bf16 ended in a segmentation fault in a later predictor (OpenVINO 2026.4)."""
    import openvino

    return openvino.Core()


def _openvino_runner(path: str, precision: str):
    core = _openvino_core()
    compiled = core.compile_model(
        core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    )
    request = compiled.create_infer_request()

    def run(inputs):
        results = request.infer(inputs)
        return {output.get_any_name(): results[output] for output in compiled.outputs}

    return run
