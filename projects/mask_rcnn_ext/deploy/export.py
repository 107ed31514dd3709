"""Exporting a trained model: `DeployableRCNN` traced by `torch.export` for any image height and
width, then written as ONNX by torch's exporter (`torch.onnx.export(..., dynamo=True)`), with the
`ModelInfo` its predictors need in the ONNX model's metadata, and as a `torch.export` program
(`.pt2`, which `torch.export.load` reads back; it runs where torch and torchvision are, without
detectron2 or this package)."""

import contextlib
from collections.abc import Iterator

import torch
from detectron2.layers import wrappers
from torch.nn import functional as F

from .graph import MAX_SIDE, MIN_SIDE, DeployableRCNN
from .runtime import METADATA_KEY, ModelInfo

ONNX_OPSET = 18
INPUT_NAMES = ("image", "original_size", "score_threshold")


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
    torch.export.save(program, program_path)
    onnx_program = torch.onnx.export(
        program, dynamo=True, opset_version=ONNX_OPSET, input_names=list(INPUT_NAMES), output_names=list(info.outputs)
    )
    onnx_program.model.metadata_props[METADATA_KEY] = info.to_json()
    onnx_program.save(onnx_path)
    return info
