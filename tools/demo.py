#!/usr/bin/env python
"""Run a trained model on images and write visualized PNGs and a JSON of its predictions.

    tools/demo.py --config-file CFG --input a.jpg folder/ 'images/*.png' --output out/ \
        --opts MODEL.WEIGHTS output/model_final.pth
    tools/demo.py --config-file CFG --backend onnxruntime --model exported/model.onnx --input ... --output out/

With --backend onnxruntime, openvino or torch_export it runs a model tools/export_model.py exported
(model.onnx, or model.pt2 for torch_export; the config still names the classes).

Inputs may be files, folders (their images, not recursive) or glob patterns. Each readable image
gives out/<name>.png (masks, boxes, keypoints drawn); out/predictions.json lists every image's
instances (COCO result format: XYWH boxes, RLE masks, keypoints; category_id is the model's
class index, category_name its name in the test dataset's metadata).
Unreadable inputs are reported and skipped. Exit code: 0 all inputs done, 2 some skipped,
1 nothing to do or nothing readable (then nothing is written). Existing files in out/ other than
those written are kept.
"""

import argparse
import glob
import logging
import os
import sys

import cv2
from detectron2.data import MetadataCatalog
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

from mask_rcnn_ext import build_config
from mask_rcnn_ext.data.images import read_image
from mask_rcnn_ext.deploy.runtime import BACKENDS, ExportedPredictor, wrong_file_for_backend
from mask_rcnn_ext.engine.checkpoint import load_predictor
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.user_modules import add_import_argument, parse_args_importing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger("mask_rcnn_ext.demo")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--input", nargs="+", required=True, help="image files, folders or glob patterns")
    parser.add_argument("--output", required=True, help="folder for the PNGs and predictions.json")
    parser.add_argument(
        "--confidence-threshold", type=float, default=0.5, help="draw and save instances scoring at least this"
    )
    parser.add_argument(
        "--backend",
        choices=["pytorch", *BACKENDS],
        default="pytorch",
        help="run the config's model in PyTorch (MODEL.WEIGHTS), or the exported --model in a runtime",
    )
    parser.add_argument("--model", help="the model.onnx (or model.pt2, for torch_export) tools/export_model.py wrote")
    add_import_argument(parser)
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    args = parse_args_importing(parser, argv)  # the test dataset's metadata names the classes drawn
    if (args.backend == "pytorch") != (args.model is None):
        parser.error("--model names the exported model to run with a --backend other than pytorch, and only then")
    wrong_file = args.model and wrong_file_for_backend(args.model, args.backend)
    if wrong_file:
        parser.error(f"--model {wrong_file}")
    return args


def collect_inputs(patterns: list[str]) -> tuple[list[str], list[str]]:
    """Expand files, folders and globs to image paths (in order, without repeats).

    Returns (paths, problems): problems name the patterns that matched nothing."""
    paths, problems = [], []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(
                os.path.join(pattern, name) for name in os.listdir(pattern) if name.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
        else:
            found = [pattern]  # a missing file is reported when it is read
        if not found:
            problems.append(f"{pattern}: matched no image")
        paths += [p for p in found if p not in paths]
    return paths, problems


def output_names(paths: list[str]) -> list[str]:
    """A distinct PNG file name per input: its stem, suffixed when two inputs share a stem."""
    names, used = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = f"{stem}.png", 1
        while name in used:
            name, k = f"{stem}_{k}.png", k + 1
        used.add(name)
        names.append(name)
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="mask_rcnn_ext")
    cfg = build_config(args.config_file, args.opts, freeze=False)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.freeze()
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused")
    if args.backend == "pytorch":
        predictor = load_predictor(cfg)
    else:
        predictor = ExportedPredictor(args.model, args.backend, score_threshold=args.confidence_threshold)

    paths, problems = collect_inputs(args.input)
    os.makedirs(args.output, exist_ok=True)
    predictions = []
    for path, png_name in zip(paths, output_names(paths)):
        try:
            image = read_image(path, format=cfg.INPUT.FORMAT)
        except Exception as e:  # PIL/OS errors of every kind: report the file and go on
            problems.append(f"{path}: cannot read image ({type(e).__name__}: {e})")
            continue
        instances = predictor(image)["instances"].to("cpu")
        vis = Visualizer(
            image[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else image, metadata, instance_mode=ColorMode.IMAGE
        )
        drawing = vis.draw_instance_predictions(instances).get_image()
        cv2.imwrite(os.path.join(args.output, png_name), drawing[:, :, ::-1])
        results = instances_to_coco_json(instances, path)
        class_names = metadata.get("thing_classes", None)
        for r in results:
            del r["image_id"]
            r["category_name"] = class_names[r["category_id"]] if class_names else str(r["category_id"])
        predictions.append(
            {
                "file_name": path,
                "height": image.shape[0],
                "width": image.shape[1],
                "visualization": png_name,
                "instances": results,
            }
        )
        logger.info(f"{path}: {len(instances)} instances -> {png_name}")

    for problem in problems:
        logger.error(problem)
    if not predictions:  # an earlier predictions.json stays
        logger.error(f"no image could be read; nothing written to {args.output}")
        return 1
    write_json_atomically(os.path.join(args.output, "predictions.json"), predictions)
    logger.info(f"{len(predictions)} images done, {len(problems)} problems; outputs in {args.output}")
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
