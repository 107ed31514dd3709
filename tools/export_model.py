#!/usr/bin/env python
"""Export a trained Mask / Keypoint R-CNN for deployment: the whole model, from the resized image to
boxes, scores, classes, masks pasted into the image and keypoint heatmaps (docs/deploy.md).

    tools/export_model.py --config-file CFG --output exported/ MODEL.WEIGHTS output/model_final.pth

Writes out/model.onnx (ONNX, opset 18, dynamic image size; run it with
`mask_rcnn_ext.deploy.runtime.ExportedPredictor` on ONNX Runtime or OpenVINO, or `tools/demo.py --backend`)
and out/model.pt2 (a torch.export program). Then checks the ONNX model with ONNX Runtime against
the PyTorch model on --check-images images (the config's first test images, or random ones) and
prints the largest differences. A config whose model cannot be exported is refused before anything
is written, naming the config key; existing files are replaced only by a complete export.
Exit code 0: exported (and checked), 1: refused or failed.
"""

import argparse
import logging
import os
import sys
import tempfile

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.images import read_image
from mask_rcnn_ext.deploy.export import export_model
from mask_rcnn_ext.deploy.graph import DeployableRCNN, export_errors
from mask_rcnn_ext.deploy.parity import compare_instances
from mask_rcnn_ext.deploy.runtime import ExportedPredictor
from mask_rcnn_ext.engine.checkpoint import load_predictor
from mask_rcnn_ext.user_modules import add_import_argument, parse_args_importing

logger = logging.getLogger("mask_rcnn_ext.export")
ONNX_FILE, PROGRAM_FILE = "model.onnx", "model.pt2"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--output", required=True, help="folder for model.onnx and model.pt2")
    parser.add_argument("--check-images", type=int, default=2, help="images to check the export on (0: none)")
    add_import_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parse_args_importing(parser, argv)


def check_images(cfg, count: int) -> list[np.ndarray]:
    """`count` (H, W, 3) uint8 BGR images: the first of the config's test dataset, else random."""
    if cfg.DATASETS.TEST:
        records = DatasetCatalog.get(cfg.DATASETS.TEST[0])[:count]
        return [read_image(record["file_name"], format="BGR") for record in records]
    generator = np.random.default_rng(0)
    return [generator.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="mask_rcnn_ext")
    cfg = build_config(args.config_file, args.opts, freeze=False)
    cfg.MODEL.DEVICE = "cpu"  # the export traces the float32 CPU model
    cfg.freeze()
    errors = export_errors(cfg)
    if errors:
        for error in errors:
            logger.error(f"cannot export: {error}")
        return 1
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: exporting the model's initial weights")
    predictor = load_predictor(cfg)
    try:  # what only the built model tells: heads of a class the export cannot call
        DeployableRCNN(predictor.model)
    except ValueError as error:
        logger.error(f"cannot export: {error}")
        return 1

    os.makedirs(args.output, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output, prefix=".export-") as staging:
        onnx_path, program_path = os.path.join(staging, ONNX_FILE), os.path.join(staging, PROGRAM_FILE)
        info = export_model(predictor.model, cfg, onnx_path, program_path)
        logger.info(f"exported outputs {', '.join(info.outputs)}")
        if args.check_images:
            exported = ExportedPredictor(onnx_path, "onnxruntime")
            for index, image in enumerate(check_images(cfg, args.check_images)):
                with torch.no_grad():
                    reference = predictor(image)["instances"]
                report = compare_instances(exported(image)["instances"], reference)
                logger.info(
                    f"check image {index} ({image.shape[1]}x{image.shape[0]}), ONNX Runtime vs PyTorch: {report}"
                )
                if not report.passed:
                    logger.error("the exported model's detections differ from the PyTorch model's; nothing written")
                    return 1
        for name in (ONNX_FILE, PROGRAM_FILE):
            os.replace(os.path.join(staging, name), os.path.join(args.output, name))
    logger.info(f"wrote {os.path.join(args.output, ONNX_FILE)} and {PROGRAM_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
