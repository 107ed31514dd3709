#!/usr/bin/env python
"""Turn a COCO-trained Mask R-CNN into the starting weights of a Cityscapes one.

    tools/convert_coco_to_cityscapes.py COCO_MODEL OUTPUT.pth [--seed 0]

The paper's "COCO" Cityscapes recipe (He et al. 2017, Appendix A, Table 7): the 7 Cityscapes
classes COCO has are initialised from the COCO model's rows for them; rider, which COCO lacks, is
initialised randomly. Train from the output with MODEL.WEIGHTS OUTPUT.pth and
MODEL.ROI_HEADS.NUM_CLASSES 8.

COCO_MODEL is a .pth saved by detectron2's DetectionCheckpointer (e.g. output/model_final.pth)
or a detectron2 model-zoo .pkl (detectron2 parameter names, numpy arrays) of an 80-class model.
OUTPUT.pth holds {"model": state dict} only: no optimizer, scheduler or iteration, so training
starts at iteration 0.

What changes: the class-specific outputs of the box classifier (80 classes + background, which
stays last), the box regressor (4 deltas per class) and the mask predictor (one mask per class)
keep the COCO rows of the Cityscapes classes, in Cityscapes order (CITYSCAPES_FROM_COCO); rider's
rows are drawn as detectron2 initialises these layers (weights normal with the layer's std, bias
0), from --seed. A class-agnostic box regressor (4 outputs) or mask predictor (1 channel) is
copied unchanged, as is every other parameter (backbone, RPN, the heads' hidden layers).
A tensor without the 80-class COCO shape, or a missing one, is refused with its name.
"""

import argparse
import pickle
import sys
from collections.abc import Sequence
from typing import NamedTuple, Optional

import torch

from mask_rcnn_ext.io_utils import write_atomically

NUM_COCO_CLASSES = 80

# Cityscapes thing classes in detectron2's contiguous order, each with the contiguous id of the
# same class among detectron2's 80 COCO classes; None where COCO has no such class.
CITYSCAPES_FROM_COCO: tuple[tuple[str, Optional[int]], ...] = (
    ("person", 0),
    ("rider", None),
    ("car", 2),
    ("truck", 7),
    ("bus", 5),
    ("train", 6),
    ("motorcycle", 3),
    ("bicycle", 1),
)


class ClassSpecificLayer(NamedTuple):
    """A layer whose weight and bias have `outputs_per_class` rows per class along dim 0."""

    outputs_per_class: int
    background: bool  # one more row after the classes' (detectron2's background score, index K)
    std: float  # of a new class's weights, as detectron2 initialises the layer (its bias is 0)


# Parameter prefix -> layer. The stds are FastRCNNOutputLayers' and MaskRCNNConvUpsampleHead's.
CLASS_SPECIFIC_LAYERS: dict[str, ClassSpecificLayer] = {
    "roi_heads.box_predictor.cls_score": ClassSpecificLayer(1, True, 0.01),  # (K + 1, D)
    "roi_heads.box_predictor.bbox_pred": ClassSpecificLayer(4, False, 0.001),  # (4K, D) or (4, D)
    "roi_heads.mask_head.predictor": ClassSpecificLayer(1, False, 0.001),  # (K, C, 1, 1) or (1, C, 1, 1)
}


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The "model" state dict of a detectron2 .pth checkpoint or model-zoo .pkl, as CPU tensors."""
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:  # as detectron2 reads them (a pickle: trusted files only)
                checkpoint = pickle.load(f, encoding="latin1")
        else:
            checkpoint = torch.load(path, map_location="cpu")
    except Exception as error:  # torch and pickle raise many types for missing, cut or foreign files
        raise ValueError(f"{path}: cannot be read as a checkpoint: {type(error).__name__}: {error}") from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} has no 'model' state dict: not a detectron2 checkpoint or model-zoo .pkl")
    return {key: torch.as_tensor(value) for key, value in checkpoint["model"].items()}


def _class_rows(tensor: torch.Tensor, layer: ClassSpecificLayer, rider_rows: torch.Tensor) -> torch.Tensor:
    """(80 * n [+ 1], ...) COCO rows -> (8 * n [+ 1], ...) Cityscapes rows, n = outputs per class.

    `rider_rows` (n, ...) stand in for the class COCO lacks; the background row stays last.
    """
    n = layer.outputs_per_class
    per_class = tensor[: NUM_COCO_CLASSES * n].unflatten(0, (NUM_COCO_CLASSES, n))
    rows = [rider_rows if coco_id is None else per_class[coco_id] for _, coco_id in CITYSCAPES_FROM_COCO]
    if layer.background:
        rows.append(tensor[-1:])
    return torch.cat(rows)


def convert_state_dict(state_dict: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """A COCO Mask R-CNN state dict -> the Cityscapes one (a new dict; unchanged tensors are shared).

    Raises ValueError naming the key when a class-specific weight or bias is missing or does not
    have an 80-class COCO model's rows (class-agnostic ones, with one class's rows, are kept).
    """
    generator = torch.Generator().manual_seed(seed)
    converted = dict(state_dict)
    for prefix, layer in CLASS_SPECIFIC_LAYERS.items():
        keys = (f"{prefix}.weight", f"{prefix}.bias")
        for key in keys:
            if key not in state_dict:
                raise ValueError(f"{key} is missing: not a detectron2 Mask R-CNN state dict")
        weight, bias = (state_dict[key] for key in keys)
        if not layer.background and weight.shape[0] == bias.shape[0] == layer.outputs_per_class:
            continue  # class-agnostic: its outputs serve every class, Cityscapes' too
        coco_rows = NUM_COCO_CLASSES * layer.outputs_per_class + layer.background
        for key in keys:
            if state_dict[key].shape[0] != coco_rows:
                raise ValueError(
                    f"{key} has shape {tuple(state_dict[key].shape)}: an 80-class COCO model's has {coco_rows} rows "
                    f"({layer.outputs_per_class} per class{' + background' if layer.background else ''})"
                )
        rider_weight = torch.empty((layer.outputs_per_class, *weight.shape[1:]), dtype=weight.dtype)
        rider_weight.normal_(0.0, layer.std, generator=generator)
        converted[keys[0]] = _class_rows(weight, layer, rider_weight)
        converted[keys[1]] = _class_rows(bias, layer, bias.new_zeros(layer.outputs_per_class))
    return converted


def _print_summary(coco: dict[str, torch.Tensor], cityscapes: dict[str, torch.Tensor], seed: int) -> None:
    resized = [key for key in cityscapes if cityscapes[key].shape != coco[key].shape]
    for prefix in CLASS_SPECIFIC_LAYERS:
        for key in (f"{prefix}.weight", f"{prefix}.bias"):
            shape = tuple(coco[key].shape)
            print(
                f"  {key}: {shape} -> {tuple(cityscapes[key].shape)}"
                if key in resized
                else f"  {key}: {shape}, class-agnostic: copied"
            )
    sources = (
        f"{name} <- " + (f"random (seed {seed})" if coco_id is None else f"COCO {coco_id}")
        for name, coco_id in CITYSCAPES_FROM_COCO
    )
    print(f"  class rows: {', '.join(sources)}; background <- COCO background")
    print(f"  {len(cityscapes) - len(resized)} other tensors copied unchanged")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="COCO model: detectron2 .pth checkpoint or model-zoo .pkl")
    parser.add_argument("output", help="Cityscapes starting weights to write (.pth)")
    parser.add_argument("--seed", type=int, default=0, help="seed of rider's random initialisation")
    args = parser.parse_args(argv)
    if args.output.endswith(".pkl"):  # detectron2 would read it as a pickle, not a torch.save file
        parser.error("output: name it .pth (detectron2 reads .pkl files as model-zoo pickles)")
    try:
        coco = load_state_dict(args.input)  # its errors name the file
        cityscapes = convert_state_dict(coco, seed=args.seed)
    except ValueError as error:
        named = "" if args.input in str(error) else f"{args.input}: "
        sys.exit(f"convert_coco_to_cityscapes: {named}{error}")
    print(f"{args.input} (COCO, 80 classes) -> {args.output} (Cityscapes, 8 classes):")
    _print_summary(coco, cityscapes, args.seed)
    write_atomically(args.output, lambda f: torch.save({"model": cityscapes}, f))  # never a torn file


if __name__ == "__main__":
    main()
