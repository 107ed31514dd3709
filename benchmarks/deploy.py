#!/usr/bin/env python
"""Inference of an exported model against the PyTorch model it was exported from, in one process
(`make bench`; docs/deploy.md).

    python -m benchmarks.deploy [--iters 5] [--output FILE.json] [--quick] [--device cuda]

Mask R-CNN R50-FPN (detectron2's recipe on our components,
configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_detectron2.yaml), fresh weights with its frozen
BatchNorm statistics set from one image (`peers.calibrate_frozen_batchnorm`), at 800-1333 with exactly
100 detections per image (score threshold 0), is exported by `mask_rcnn_ext.deploy.export_model` and
run on the same synthetic validation images by:
  * "pytorch_fp32": detectron2's DefaultPredictor, float32 (the reference of every ratio);
  * "pytorch_auto": the same in MASK_RCNN_EXT.PRECISION.TEST "auto" (docs/performance.md#precision);
  * "onnxruntime": ExportedPredictor on ONNX Runtime's CPU provider;
  * "openvino": ExportedPredictor on OpenVINO's CPU plugin in float32;
  * "openvino_bf16": the same with the bf16 inference precision hint, on CPUs with native bf16;
  * "torch_export": ExportedPredictor on the .pt2 torch.export program, run by torch.
With --device cuda: pytorch_fp32, pytorch_auto (fp16 there) and torch_export, on the GPU (the
export itself traces a CPU copy of the model).
Each is timed per image, in turns, after one untimed pass over the same images (median seconds),
and its detections are compared with pytorch_fp32's (`deploy.parity.compare_instances`).
--quick: the demo's small model at its own sizes on 1 image (a check that everything runs).
"""

import argparse
import copy
import os
import statistics
import tempfile

import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultPredictor

from benchmarks.measure import median_seconds
from benchmarks.peers import AUTO_PRECISION, DETECTIONS_PER_IMAGE, OURS_D2_RECIPE, calibrate_frozen_batchnorm
from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.config_files import DEMO_CONFIG
from mask_rcnn_ext.data.images import read_image
from mask_rcnn_ext.deploy.export import export_model
from mask_rcnn_ext.deploy.parity import compare_instances
from mask_rcnn_ext.deploy.runtime import ExportedPredictor
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.modeling.precision import cpu_native_reduced_dtypes

# Images are given, not loaded: no datasets (the config's are COCO's, which need not be there).
COMMON_OPTS = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"]
COMMON_OPTS += ["TEST.DETECTIONS_PER_IMAGE", str(DETECTIONS_PER_IMAGE), "MODEL.WEIGHTS", ""]


def pytorch_predictors(config_file: str, seed: int, device: str) -> dict[str, DefaultPredictor]:
    """{"pytorch_fp32", "pytorch_auto"}: the config's model on `device` with the same fresh weights,
    calibrated."""
    predictors = {}
    for name, opts in (("pytorch_fp32", []), ("pytorch_auto", AUTO_PRECISION)):
        cfg = build_config(config_file, COMMON_OPTS + ["MODEL.DEVICE", device] + opts)
        torch.manual_seed(seed)
        predictors[name] = DefaultPredictor(cfg)
    reference = predictors["pytorch_fp32"]
    calibration = read_image(DatasetCatalog.get("synthetic_val")[0]["file_name"], format="BGR")
    calibrate_frozen_batchnorm(reference.model, lambda: reference(calibration))
    predictors["pytorch_auto"].model.load_state_dict(reference.model.state_dict())
    return predictors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=5, help="timed test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the demo model on 1 image: a check, not figures")
    parser.add_argument("--output", help="also write the rows and ratios to this JSON file")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f"--iters must be >= 1 (got {args.iters})")
    iters = 1 if args.quick else args.iters
    config_file = get_config_file(DEMO_CONFIG if args.quick else OURS_D2_RECIPE)
    predictors = pytorch_predictors(config_file, args.seed, args.device)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path, program_path = os.path.join(folder, "model.onnx"), os.path.join(folder, "model.pt2")
        reference = predictors["pytorch_fp32"]
        export_model(copy.deepcopy(reference.model).cpu(), reference.cfg, onnx_path, program_path)
        if args.device == "cpu":
            predictors["onnxruntime"] = ExportedPredictor(onnx_path, "onnxruntime")
            predictors["openvino"] = ExportedPredictor(onnx_path, "openvino")
            if torch.bfloat16 in cpu_native_reduced_dtypes()[0]:
                predictors["openvino_bf16"] = ExportedPredictor(onnx_path, "openvino", precision="bf16")
        predictors["torch_export"] = ExportedPredictor(program_path, "torch_export", device=args.device)
        images = [read_image(r["file_name"], format="BGR") for r in DatasetCatalog.get("synthetic_val")[:iters]]
        detections = {name: [] for name in predictors}

        def step(name, image):
            with torch.no_grad():
                detections[name].append(predictors[name](image)["instances"])

        rounds = [{name: (lambda name=name, image=image: step(name, image)) for name in predictors} for image in images]
        seconds = median_seconds(rounds * 2, args.device, warm_up_rounds=iters)
    references = detections["pytorch_fp32"][iters:]
    rows = {}
    for name, found in detections.items():
        reports = [compare_instances(mine, ref) for mine, ref in zip(found[iters:], references)]
        rows[name] = {
            "s_per_image": seconds[name],
            "ratio_to_pytorch_fp32": seconds[name] / seconds["pytorch_fp32"],
            "detections_per_image": statistics.mean(len(i) for i in found[iters:]),
            "largest_box_difference_px": max(r.box_px for r in reports),
            "smallest_mask_iou": min(r.mask_iou for r in reports),
            "same_detections": all(r.passed for r in reports),
        }
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    title = f"{os.path.relpath(config_file)}, {iters} test images, medians ({where})"
    print(f"\n{title}")
    keys = list(next(iter(rows.values())))
    print(f"{'':<16}" + "".join(f"{k:>28}" for k in keys))
    for name, row in rows.items():
        print(
            f"{name:<16}" + "".join(f"{row[k]!s:>28}" if isinstance(row[k], bool) else f"{row[k]:>28.4f}" for k in keys)
        )
    if args.output:
        write_json_atomically(args.output, {"title": title, "rows": rows})


if __name__ == "__main__":
    main()
