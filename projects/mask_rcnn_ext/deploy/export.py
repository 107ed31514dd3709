"""Exporting a trained model: `DeployableRCNN` traced by `torch.export` for any image height and
width, then written as ONNX by torch's exporter (`torch.onnx.export(..., dynamo=True)`) and as a
`torch.export` program (`.pt2`, which `torch.export.load` reads back; it runs where torch and
torchvision are, without detectron2 or this package), each with the `ModelInfo` its predictor needs
(in the ONNX model's metadata, among the .pt2 archive's extra files)."""

import contextlib
from collections.abc import Iterator

import torch
from detectron2.layers import wrappers
from onnxscript import opset18 as op
from torch.nn import functional as F

from .graph import INPUT_NAMES, MAX_SIDE, MIN_SIDE, DeployableRCNN
from .nms import batched_nms_top_k_per_group
from .runtime import METADATA_KEY, ModelInfo

ONNX_OPSET = 18


def _conv2d_forward(self, x: torch.Tensor) -> torch.Tensor:
    """detectron2's `Conv2d.forward` without its empty-input check for training (`x.numel() == 0
    and self.training`), which asks the number of detections, a value the tracer does not know."""
    x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
    if self.norm is not None:
        x = self.norm(x)
    if self.activation is not None:
        x = self.activation(x)
    return x


@contextlib.contextmanager
def traceable_layers() -> Iterator[None]:
    """detectron2's layers made traceable for the time of an export (what they compute is unchanged)."""
    forward = wrappers.Conv2d.forward
    wrappers.Conv2d.forward = _conv2d_forward
    try:
        yield
    finally:
        wrappers.Conv2d.forward = forward


def _batched_nms_top_k_onnx(boxes, scores, groups, iou_threshold: float, num_groups: int, k: int):
    """nms.batched_nms_top_k in ONNX: torchvision's coordinate trick (each group's boxes moved apart by
    the group index times the largest coordinate + 1; 0 for no boxes) and one NonMaxSuppression (one
    batch, one class) told to keep at most k boxes."""
    largest = op.ReduceMax(op.Concat(op.Reshape(boxes, [-1]), op.CastLike([0.0], boxes), axis=0), keepdims=0)
    offsets = op.Mul(op.CastLike(groups, boxes), op.Add(largest, op.CastLike(1.0, boxes)))
    moved = op.Add(boxes, op.Unsqueeze(offsets, [1]))
    selected = op.NonMaxSuppression(op.Unsqueeze(moved, [0]), op.Unsqueeze(scores, [0, 1]), k, iou_threshold)
    return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])  # (kept, 3) rows of batch, class, box


def _meshgrid(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """aten.meshgrid.default (detectron2's anchors call torch.meshgrid without `indexing`) as what it
    computes, meshgrid.indexing with "ij": torch's own decomposition of it fails when called there."""
    return torch.ops.aten.meshgrid.indexing(tensors, indexing="ij")


NMS_TO_ONNX = {torch.ops.mask_rcnn_ext.batched_nms_top_k.default: _batched_nms_top_k_onnx}
# The .pt2 program's rewrites: batched_nms_top_k in torch's and torchvision's ops, so that it runs
# without this package.
PROGRAM_DECOMPOSITIONS = {
    torch.ops.mask_rcnn_ext.batched_nms_top_k.default: batched_nms_top_k_per_group,
    torch.ops.aten.meshgrid.default: _meshgrid,
}


def example_inputs(height: int = 256, width: int = 320) -> tuple[torch.Tensor, ...]:
    """(image, original_size, score_threshold) of the graph's input types: a (3, height, width) uint8 image."""
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return image, torch.tensor([height, width], dtype=torch.int64), torch.tensor(0.05)


def export_program(graph: DeployableRCNN) -> torch.export.ExportedProgram:
    """`graph` (its model in eval mode, on the CPU, in float32) traced by torch.export, for any image
    height and width in [MIN_SIDE, MAX_SIDE]."""
    sides = {
        1: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE),
        2: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE),
    }
    with traceable_layers(), torch.no_grad():
        return torch.export.export(
            graph.eval(),
            example_inputs(),
            dynamic_shapes={"image": sides, "original_size": None, "score_threshold": None},
            strict=False,
        )


def export_model(model: torch.nn.Module, cfg, onnx_path: str, program_path: str) -> ModelInfo:
    """Write `model` (built from `cfg`, weights loaded) as ONNX at `onnx_path` and as a torch.export
    program at `program_path`; returns the ModelInfo the ONNX model carries."""
    graph = DeployableRCNN(model.eval())
    info = ModelInfo.from_config(cfg, graph.output_names)
    program = export_program(graph)
    program_info = {METADATA_KEY: info.to_json()}
    torch.export.save(program.run_decompositions(PROGRAM_DECOMPOSITIONS), program_path, extra_files=program_info)
    onnx_program = torch.onnx.export(
        program,
        dynamo=True,
        opset_version=ONNX_OPSET,
        input_names=list(INPUT_NAMES),
        output_names=list(info.outputs),
        custom_translation_table=NMS_TO_ONNX,
    )
    onnx_program.model.metadata_props[METADATA_KEY] = info.to_json()
    onnx_program.save(onnx_path)
    return info
