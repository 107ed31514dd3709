#!/usr/bin/env python
"""Speed of a config's model against a reference model, side by side in one process (`make bench`).

    tools/benchmark.py [--config-file CFG] [--iters 20] [--device cpu|cuda] [--output FILE.json]

"ours" is CFG as it stands. Each reference changes one part of it, everything else equal:
  * "detectron2_heads": detectron2's stock StandardROIHeads, MaskRCNNConvUpsampleHead and
    KRCNNConvDeconvUpsampleHead in place of our ROI heads, mask head and keypoint head (the joint
    box + mask + keypoint model of detectron2, on the same backbone): what our heads cost;
  * "detectron2_backbone": detectron2's stock ResNet-FPN backbone (`build_resnet_fpn_backbone` at
    its standard base width 64) in place of ours: what the synthetic config's narrow backbone buys.
All models train on the same batches and infer on the same val images, with fresh (untrained)
weights: an untrained model keeps about TEST.DETECTIONS_PER_IMAGE detections, so the mask and
keypoint heads run at their full per-image load. On CUDA the peak GPU memory of each is reported too.

Prints one row per model and the ratios ours / each reference (below 1: ours is cheaper).
"""
import argparse
import itertools
import os
import statistics
import time
from typing import Any, Callable, Dict, List

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from detectron2.utils.logger import setup_logger

from mask_rcnn_ext import build_config
from mask_rcnn_ext.io_utils import write_json_atomically

from run_demo import DEFAULT_CONFIG  # the demo's model is the one measured by default
REFERENCE_OPTS = {
    "detectron2_heads": [
        "MODEL.ROI_HEADS.NAME", "StandardROIHeads",
        "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead",
        "MODEL.ROI_KEYPOINT_HEAD.NAME", "KRCNNConvDeconvUpsampleHead",
    ],
    "detectron2_backbone": [
        "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone",
        "MODEL.RESNETS.STEM_OUT_CHANNELS", "64",
        "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    ],
}  # fmt: skip


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(step: Callable[[Any], None], inputs: List, warmup: int, device: str) -> float:
    """Median wall time of `step(x)` over `inputs`, after `warmup` untimed calls on the first ones."""
    for x in inputs[:warmup]:
        step(x)
    times = []
    for x in inputs:
        _synchronize(device)
        start = time.perf_counter()
        step(x)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(cfg, train_batches: List, test_images: List, warmup: int) -> Dict[str, float]:
    """Parameters (millions), seconds per training iteration and per test image, peak GPU MiB."""
    device = cfg.MODEL.DEVICE
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)  # small: keep fresh weights sane

    def train_step(batch):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    def infer(image):
        with torch.no_grad():
            model([image])

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    with EventStorage():  # the losses log to it
        train_seconds = median_seconds(train_step, train_batches, warmup, device)
    model.eval()
    infer_seconds = median_seconds(infer, test_images, warmup, device)
    row = {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "train_s_per_iter": train_seconds,
        "infer_s_per_image": infer_seconds,
    }
    if device == "cuda":
        row["peak_gpu_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--iters", type=int, default=20, help="timed training iterations and test images")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--output", help="also write the rows and ratios to this JSON file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args()
    if args.iters < 1 or args.warmup < 0:
        parser.error(f"--iters must be >= 1 and --warmup >= 0 (got {args.iters} and {args.warmup})")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA device")
    setup_logger(name="mask_rcnn_ext")
    config_name = os.path.relpath(args.config_file)

    opts = list(args.opts) + ["MODEL.DEVICE", args.device, "DATALOADER.NUM_WORKERS", "0"]
    configs = {"ours": build_config(args.config_file, opts)}
    configs.update({name: build_config(args.config_file, opts + extra) for name, extra in REFERENCE_OPTS.items()})
    ours = configs["ours"]
    if not ours.DATASETS.TEST:
        parser.error(f"{config_name}: DATASETS.TEST is empty; inference is timed on its first dataset")
    # The same inputs for both models: the first batches of the training loader, the first val images.
    train_batches = list(itertools.islice(build_detection_train_loader(ours), args.iters))
    test_images = [b[0] for b in itertools.islice(build_detection_test_loader(ours, ours.DATASETS.TEST[0]), args.iters)]

    # One untimed pass first, so that one-off costs (CUDA context and kernel loading, allocator
    # growth) fall on no model's figures, whichever is measured first.
    measure(ours, train_batches[: args.warmup + 1], test_images[: args.warmup + 1], args.warmup)
    rows = {name: measure(cfg, train_batches, test_images, args.warmup) for name, cfg in configs.items()}
    ratios = {ref: {key: rows["ours"][key] / rows[ref][key] for key in rows["ours"]} for ref in REFERENCE_OPTS}

    print(f"\n{config_name} on {args.device}: {args.iters} training iterations "
          f"(batch {ours.SOLVER.IMS_PER_BATCH}) and {args.iters} test images, medians")
    keys = list(rows["ours"])
    print(f"{'':<28}" + "".join(f"{k:>20}" for k in keys))
    for name, row in rows.items():
        print(f"{name:<28}" + "".join(f"{row[k]:>20.4f}" for k in keys))
    for ref, ratio in ratios.items():
        print(f"{'ours/' + ref:<28}" + "".join(f"{ratio[k]:>20.3f}" for k in keys))
    if args.output:
        write_json_atomically(args.output, {"config": config_name, "device": args.device, "rows": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
