#!/usr/bin/env python
"""The main job (`make demo`): synthetic data -> train -> evaluate -> visualize -> plot.

    tools/quickstart.py [--config-file CFG] [--output-dir output/demo] [--import MODULE] [KEY VALUE ...]

Trains CFG with tools/train_net.py (resuming from OUTPUT/train if an earlier run got part way,
so a second run only re-evaluates), then writes:
  OUTPUT/metrics.json          final box / mask / keypoint AP per test dataset (COCO metrics),
                               the keypoint diagnostics' pooled numbers, the seconds each step took
  OUTPUT/keypoint_diagnostics.json, .png
                               per-keypoint mean normalised error and detection rates (models
                               with keypoints; mask_rcnn_ext.evaluation.keypoint_diagnostics)
  OUTPUT/vis/                  predictions drawn on a few val images (tools/demo.py)
  OUTPUT/training_curves.png   losses and learning rate over iterations
Trailing KEY VALUE pairs override the config (e.g. SOLVER.MAX_ITER 50 for a quick check).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from detectron2.data import DatasetCatalog

from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.config_files import DEMO_CONFIG
from mask_rcnn_ext.engine import EVAL_RESULTS_FILE
from mask_rcnn_ext.engine.training_curves import plot_training_curves
from mask_rcnn_ext.evaluation.keypoint_diagnostics import JSON_FILE as DIAGNOSTICS_JSON
from mask_rcnn_ext.evaluation.keypoint_diagnostics import PNG_FILE as DIAGNOSTICS_PNG
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.user_modules import add_import_argument, parse_args_importing

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPORTED_TASKS = ("bbox", "segm", "keypoints")


def run(command):
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=get_config_file(DEMO_CONFIG))
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--num-vis", type=int, default=6, help="val images to visualize")
    add_import_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parse_args_importing(parser, argv)
    imports = [arg for module in args.imports for arg in ("--import", module)]  # for the tools it runs
    train_dir = os.path.join(args.output_dir, "train")
    opts = list(args.opts) + ["OUTPUT_DIR", train_dir]
    cfg = build_config(args.config_file, opts)  # fails here, before any work, on a bad config
    seconds = {}

    start = time.perf_counter()
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        DatasetCatalog.get(name)  # generates the synthetic splits on first use
    seconds["data"] = time.perf_counter() - start

    start = time.perf_counter()
    train_net = os.path.join(TOOLS, "train_net.py")
    run([sys.executable, train_net, "--config-file", args.config_file, *imports, "--resume", *opts])
    seconds["train_and_eval"] = time.perf_counter() - start
    with open(os.path.join(train_dir, EVAL_RESULTS_FILE)) as f:
        results = json.load(f)
    if len(cfg.DATASETS.TEST) == 1:  # detectron2 drops the dataset level for a single test set
        results = {cfg.DATASETS.TEST[0]: results}

    start = time.perf_counter()
    vis_inputs = [d["file_name"] for d in DatasetCatalog.get(cfg.DATASETS.TEST[0])[: args.num_vis]]
    run(
        [
            sys.executable,
            os.path.join(TOOLS, "demo.py"),
            "--config-file",
            args.config_file,
            "--input",
            *vis_inputs,
            "--output",
            os.path.join(args.output_dir, "vis"),
            *imports,
            "--opts",
            *opts,
            "MODEL.WEIGHTS",
            os.path.join(train_dir, "model_final.pth"),
        ]
    )
    plot_training_curves(os.path.join(train_dir, "metrics.json"), os.path.join(args.output_dir, "training_curves.png"))
    for name in (DIAGNOSTICS_JSON, DIAGNOSTICS_PNG):  # the evaluator wrote them beside COCOEvaluator's files
        if os.path.exists(os.path.join(train_dir, "inference", name)):
            shutil.copyfile(os.path.join(train_dir, "inference", name), os.path.join(args.output_dir, name))
    seconds["visualize"] = time.perf_counter() - start

    summary = {
        "config": os.path.relpath(args.config_file),
        "max_iter": cfg.SOLVER.MAX_ITER,
        "results": results,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    write_json_atomically(os.path.join(args.output_dir, "metrics.json"), summary)
    for dataset_name, dataset_results in results.items():
        print(f"\nmask_rcnn_ext demo: final AP on {dataset_name}")
        for task in REPORTED_TASKS:
            if task in dataset_results:
                r = dataset_results[task]
                print(f"  {task:>9}: AP {r['AP']:.1f}  AP50 {r['AP50']:.1f}  AP75 {r['AP75']:.1f}")
        diagnostics = dataset_results.get("keypoint_diagnostics")
        if diagnostics:
            rates = "  ".join(
                f"{k} {v:.2f}" for k, v in diagnostics.items() if k.startswith("detect@") and "-" not in k
            )
            # no mean error when the model matched no person (the diagnostics leave it out)
            error = diagnostics.get("mean_error")
            error = "none matched" if error is None else f"{error:.3f} (of sqrt(area))"
            print(f"  keypoints: mean error {error}  {rates}")
    print(f"  seconds: {summary['seconds']}")
    print(
        f"  wrote {args.output_dir}/metrics.json, vis/, training_curves.png"
        + (
            f", {DIAGNOSTICS_JSON}, {DIAGNOSTICS_PNG}"
            if os.path.exists(os.path.join(args.output_dir, DIAGNOSTICS_PNG))
            else ""
        )
    )


if __name__ == "__main__":
    main()
