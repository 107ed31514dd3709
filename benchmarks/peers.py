#!/usr/bin/env python
"""Speed and memory of our models against detectron2's and torchvision's, side by side in one process
(`make bench`).

    python -m benchmarks.peers [--groups peers synthetic] [--iters 5] [--images-per-batch 2] [--device cpu|cuda]
        [--output FILE.json] [--quick]

Two groups of models; within a group every model trains on the same batches and infers on the same
images, with fresh (untrained) weights, and the ratios compare ours with each reference:

  peers: Mask R-CNN R50-FPN at COCO sizes (shorter side 800, longer at most 1333)
    * "ours_d2_recipe": configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_detectron2.yaml,
      detectron2's "R50-FPN 1x" recipe on our components; against
    * "detectron2": detectron2's own model-zoo config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml
      with its stock components: the same work, so the ratio says what our components cost;
    * "ours_auto": ours_d2_recipe computing in MASK_RCNN_EXT.PRECISION "auto" for training and
      inference (bf16 and channels-last on a CPU with AMX / AVX-512 BF16, fp16 or bf16 on a GPU;
      docs/performance.md#precision), against the same stock detectron2 model in fp32;
    * "ours_paper": configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN.yaml (the paper's RoIAlign:
      2x2 samples per bin, not pixel-aligned); against
    * "torchvision": torchvision's `maskrcnn_resnet50_fpn` built as it trains from ImageNet weights
      (frozen BatchNorm, stem and res2 frozen), whose RoIAlign is the same as the paper's.
    All four keep exactly 100 detections per image: score threshold 0, at most 100 per image.
  synthetic: the demo's narrow R18-GN-FPN box + mask + keypoint model (`ours`), against
    * "detectron2_heads": detectron2's stock StandardROIHeads, MaskRCNNConvUpsampleHead and
      KRCNNConvDeconvUpsampleHead in place of ours, on the same backbone: what our heads cost;
    * "detectron2_backbone": detectron2's stock ResNet-FPN backbone at its standard width 64 in place
      of ours: what the synthetic config's narrow backbone buys.

Inputs come from the synthetic dataset (its images resized to the group's sizes), 2 images per
training iteration (--images-per-batch), one per inference. The R50 models' frozen BatchNorm
statistics are set from one test image (`calibrate_frozen_batchnorm`), as pretrained weights would
have them. Reported per model: parameters (millions), median seconds per training iteration and
per test image (timed in turns, model after model, each input run once untimed before), detections
per test image, and the peak memory of one training step and one inference above the level before it
(MiB): torch's peak allocation, from its counters on CUDA and from the allocations and frees its
profiler records on the CPU (`peak_memory_MiB`). Ratios below 1: ours is cheaper.
"""

import argparse
import dataclasses
import functools
import itertools
import os
import statistics
from typing import Any, Callable

import torch
from detectron2 import model_zoo
from detectron2.config import CfgNode, get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage
from detectron2.utils.logger import setup_logger
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

from benchmarks.measure import median_seconds, peak_memory_MiB, timed
from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.config_files import DEMO_CONFIG
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.modeling.precision import resolve_precision

REFERENCE_OPTS = {
    "detectron2_heads": [
        "MODEL.ROI_HEADS.NAME",
        "StandardROIHeads",
        "MODEL.ROI_MASK_HEAD.NAME",
        "MaskRCNNConvUpsampleHead",
        "MODEL.ROI_KEYPOINT_HEAD.NAME",
        "KRCNNConvDeconvUpsampleHead",
    ],
    "detectron2_backbone": [
        "MODEL.BACKBONE.NAME",
        "build_resnet_fpn_backbone",
        "MODEL.RESNETS.STEM_OUT_CHANNELS",
        "64",
        "MODEL.RESNETS.RES2_OUT_CHANNELS",
        "64",
    ],
}
OURS_D2_RECIPE = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_detectron2.yaml"
OURS_PAPER = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN.yaml"
DETECTRON2_STOCK = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"  # in detectron2's model zoo
PEER_RATIOS = [  # (ours, reference)
    ("ours_d2_recipe", "detectron2"),
    ("ours_auto", "detectron2"),
    ("ours_paper", "torchvision"),
]
AUTO_PRECISION = ["MASK_RCNN_EXT.PRECISION.TRAIN", "auto", "MASK_RCNN_EXT.PRECISION.TEST", "auto"]
# What "ours_auto" should cost against detectron2 where the CPU computes bf16 natively (issue #16).
AUTO_TARGETS = {"infer_s_per_image": 0.30, "train_s_per_iter": 0.40}
DETECTIONS_PER_IMAGE = 100
IMAGES_PER_BATCH = 2
QUICK_PEER_SIZES = (192, 320)  # shorter side, longest side
QUICK_IMAGES_PER_BATCH = 1


@dataclasses.dataclass
class Contender:
    """A model to measure: how to build it, one training step's losses, and one image's detections."""

    name: str
    build: Callable[[], torch.nn.Module]
    losses: Callable[[torch.nn.Module, Any], dict[str, torch.Tensor]]
    detect: Callable[[torch.nn.Module, Any], int]  # number of detections
    train_inputs: list
    test_inputs: list


def calibrate_frozen_batchnorm(model: torch.nn.Module, run: Callable[[], Any]) -> None:
    """Give every frozen BatchNorm of a randomly initialised `model` the statistics of its input in
    `run()` (one forward pass), as ImageNet training would. With the identity statistics of a fresh
    FrozenBatchNorm2d, ResNet-50's activations grow layer after layer, until detectron2's R50
    models keep no detection. Both libraries' FrozenBatchNorm2d read these buffers at each forward."""
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]

    def set_statistics(module, inputs):
        x = inputs[0].detach()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    hooks = [m.register_forward_pre_hook(set_statistics) for m in frozen]  # in forward order
    model.eval()
    with torch.no_grad():
        run()
    for hook in hooks:
        hook.remove()


def detectron2_contender(name: str, cfg: CfgNode, train_batches: list, test_images: list) -> Contender:
    """The model `cfg` builds, seeded with cfg.SEED, on detectron2's inputs (lists of dicts)."""

    def build():
        torch.manual_seed(cfg.SEED)
        model = build_model(cfg)
        calibrate_frozen_batchnorm(model, lambda: model([test_images[0]]))
        return model

    return Contender(
        name,
        build,
        losses=lambda model, batch: model(batch),
        detect=lambda model, image: len(model([image])[0]["instances"]),
        train_inputs=train_batches,
        test_inputs=test_images,
    )


def torchvision_maskrcnn(num_classes: int, min_size: int, max_size: int) -> torch.nn.Module:
    """`maskrcnn_resnet50_fpn` as torchvision builds it over ImageNet weights (frozen BatchNorm,
    3 trainable stages), but with random weights: without weights torchvision would switch to
    trainable BatchNorm in every stage, a different network. No detection is dropped by score."""
    backbone = resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    return MaskRCNN(
        backbone,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        box_score_thresh=0.0,
        box_detections_per_img=DETECTIONS_PER_IMAGE,
    )


def to_torchvision_image(d2_input: dict) -> torch.Tensor:
    """detectron2's BGR uint8 CHW image -> torchvision's RGB float in [0, 1]."""
    return d2_input["image"].flip(0).float().div(255.0)


def to_torchvision_batch(batch: list[dict]):
    """A detectron2 training batch (bitmask instances) -> torchvision's (images, targets)."""
    images, targets = [], []
    for item in batch:
        instances = item["instances"]
        images.append(to_torchvision_image(item))
        targets.append(
            {
                "boxes": instances.gt_boxes.tensor.clone(),
                "labels": instances.gt_classes + 1,  # torchvision's 0 is the background
                "masks": instances.gt_masks.tensor.to(torch.uint8),
            }
        )
    return images, targets


def torchvision_contender(seed: int, cfg: CfgNode, train_batches: list, test_images: list, device: str) -> Contender:
    """torchvision's Mask R-CNN for `cfg`'s classes and test sizes, on the same inputs converted to its format."""
    torchvision_images = [to_torchvision_image(i).to(device) for i in test_images]

    def build():
        torch.manual_seed(seed)
        model = torchvision_maskrcnn(cfg.MODEL.ROI_HEADS.NUM_CLASSES, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
        model.to(device)
        calibrate_frozen_batchnorm(model, lambda: model([torchvision_images[0]]))
        return model

    def to_device(batch):
        images, targets = to_torchvision_batch(batch)
        return [i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets]

    return Contender(
        "torchvision",
        build,
        losses=lambda model, batch: model(*batch),
        detect=lambda model, image: len(model([image])[0]["boxes"]),
        train_inputs=[to_device(b) for b in train_batches],
        test_inputs=torchvision_images,
    )


class Runner:
    """A built contender with its optimizer: one training step or one inference at a time."""

    def __init__(self, contender: Contender):
        self.contender = contender
        self.model = contender.build()
        # A small LR keeps the fresh weights sane over the few steps.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.detections: list[int] = []

    def train_step(self, batch) -> None:
        self.model.train()
        with EventStorage():  # detectron2's losses log to it
            losses = self.contender.losses(self.model, batch)
        self.optimizer.zero_grad()
        sum(losses.values()).backward()
        self.optimizer.step()

    def infer(self, image) -> None:
        self.model.eval()
        with torch.no_grad():
            self.detections.append(self.contender.detect(self.model, image))


@dataclasses.dataclass
class ProfiledSteps:
    """Peak MiB of one training step and one inference (each after another), and their seconds;
    the profiler that records the memory slows them, so the seconds are checks, not figures."""

    train_peak_MiB: float
    infer_peak_MiB: float
    train_seconds: float
    infer_seconds: float


def profile_steps(runner: Runner, device: str, seed: int) -> ProfiledSteps:
    """`runner`'s second training step and inference, each profiled for its peak memory after a first
    one as lead-in. Each starts from torch's RNG seeded with `seed`: a training step's memory follows
    the RoIs it samples at random; seeded, every model and run draws alike."""

    def seeded(step: Callable[[Any], None], x) -> Callable[[], None]:
        return lambda: (torch.manual_seed(seed), step(x))

    def profiled(step: Callable[[], None]) -> tuple[float, float]:
        """(peak MiB, seconds) of `step`, run once before as the lead-in."""
        seconds = []
        peak = peak_memory_MiB(device, step, lambda: seconds.append(timed(step, device)[1]))
        return peak, seconds[0]

    batch, image = runner.contender.train_inputs[0], runner.contender.test_inputs[0]
    train_peak, train_seconds = profiled(seeded(runner.train_step, batch))
    infer_peak, infer_seconds = profiled(seeded(runner.infer, image))
    return ProfiledSteps(train_peak, infer_peak, train_seconds, infer_seconds)


def measure_group(spec: "GroupSpec", contenders: list[Contender]) -> dict[str, dict[str, float]]:
    """{name: row} for the contenders of group `spec`, which share their inputs. First each model's
    peak memory over its second training step and inference (the first ones, its warm-up, carry
    one-time costs: the optimizer's momentum buffers, the CUDA context, kernel loading); then the
    median seconds of `spec.iters` training steps, and of as many inferences, timed in turns
    (`median_seconds`) after the same steps untimed: step i of every model trains on batch i,
    inference i runs on image i.
    Without `spec.timed_rounds` the seconds are those of the profiled steps."""
    runners = [Runner(c) for c in contenders]
    profiled = {r.contender.name: profile_steps(r, spec.device, spec.seed) for r in runners}
    if spec.timed_rounds:
        for runner in runners:
            runner.detections.clear()  # counted over the rounds' inferences
        train_rounds = [
            {r.contender.name: functools.partial(r.train_step, r.contender.train_inputs[i]) for r in runners}
            for i in range(spec.iters)
        ]
        infer_rounds = [
            {r.contender.name: functools.partial(r.infer, r.contender.test_inputs[i]) for r in runners}
            for i in range(spec.iters)
        ]
        # Each round twice, the first time untimed: cuDNN and oneDNN build their kernels' plans at
        # the first input of each size (on an H200, 0.1-0.2 s an image), which a long evaluation or
        # training pays once per padded size and the times here would pay at every image.
        train_seconds = median_seconds(train_rounds * 2, spec.device, warm_up_rounds=spec.iters)
        infer_seconds = median_seconds(infer_rounds * 2, spec.device, warm_up_rounds=spec.iters)
    else:
        train_seconds = {name: steps.train_seconds for name, steps in profiled.items()}
        infer_seconds = {name: steps.infer_seconds for name, steps in profiled.items()}
    return {
        r.contender.name: {
            "params_M": sum(p.numel() for p in r.model.parameters()) / 1e6,
            "train_s_per_iter": train_seconds[r.contender.name],
            "infer_s_per_image": infer_seconds[r.contender.name],
            "train_peak_MiB": profiled[r.contender.name].train_peak_MiB,
            "infer_peak_MiB": profiled[r.contender.name].infer_peak_MiB,
            "detections_per_image": statistics.mean(r.detections),
        }
        for r in runners
    }


def first_inputs(cfg: CfgNode, count: int):
    """The first `count` training batches and test images of `cfg`'s datasets, through its mappers;
    the same batches in every run of a given cfg.SEED."""
    seed_all_rng(cfg.SEED)  # detectron2's training sampler draws its own seed from numpy's RNG
    train_batches = list(itertools.islice(build_detection_train_loader(cfg), count))
    test_loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0])
    return train_batches, [batch[0] for batch in itertools.islice(test_loader, count)]


def group_opts(device: str, seed: int, images_per_batch: int) -> list[str]:
    """Config overrides every model of both groups shares."""
    return [
        "MODEL.DEVICE",
        device,
        "DATALOADER.NUM_WORKERS",
        "0",
        "SEED",
        str(seed),
        "SOLVER.IMS_PER_BATCH",
        str(images_per_batch),
    ]


def peer_contenders(spec: "GroupSpec") -> list[Contender]:
    """The peers group: COCO's 80 classes; every model's inputs are the synthetic set (7 classes)
    resized to the spec's `min_size`/`max_size`. ours_paper and torchvision only with `spec.paper_pair`."""
    device, min_size, max_size = spec.device, spec.min_size, spec.max_size
    opts = group_opts(device, spec.seed, spec.images_per_batch) + [
        "DATASETS.TRAIN",
        "()",
        "DATASETS.TEST",
        "()",  # inputs are given, not loaded
        "INPUT.MIN_SIZE_TRAIN",
        f"({min_size},)",
        "INPUT.MAX_SIZE_TRAIN",
        str(max_size),
        "INPUT.MIN_SIZE_TEST",
        str(min_size),
        "INPUT.MAX_SIZE_TEST",
        str(max_size),
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
        "TEST.DETECTIONS_PER_IMAGE",
        str(DETECTIONS_PER_IMAGE),
    ]
    configs = {
        "ours_d2_recipe": build_config(get_config_file(OURS_D2_RECIPE), opts),
        "detectron2": detectron2_stock_config(opts),
        "ours_auto": build_config(get_config_file(OURS_D2_RECIPE), opts + AUTO_PRECISION),
    }
    if spec.paper_pair:
        configs["ours_paper"] = build_config(get_config_file(OURS_PAPER), opts)
    data_opts = [
        "DATASETS.TRAIN",
        "('synthetic_train',)",
        "DATASETS.TEST",
        "('synthetic_val',)",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "7",
        "INPUT.MASK_FORMAT",
        "bitmask",  # the synthetic masks are RLE
    ]
    train_batches, test_images = first_inputs(build_config(get_config_file(OURS_PAPER), opts + data_opts), spec.iters)
    contenders = [detectron2_contender(name, cfg, train_batches, test_images) for name, cfg in configs.items()]
    if spec.paper_pair:
        contenders.append(torchvision_contender(spec.seed, configs["ours_paper"], train_batches, test_images, device))
    return contenders


def detectron2_stock_config(opts: list[str]) -> CfgNode:
    """detectron2's model-zoo config with its own defaults and components (none of ours)."""
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(DETECTRON2_STOCK))
    cfg.merge_from_list(opts)
    return cfg


def synthetic_contenders(spec: "GroupSpec") -> list[Contender]:
    """The synthetic group: the spec's `config_file` with its `opts` as "ours", and with each of
    REFERENCE_OPTS on top, on the first `iters` inputs of its datasets."""
    config_file = spec.config_file
    opts = group_opts(spec.device, spec.seed, spec.images_per_batch) + list(spec.opts)
    configs = {"ours": build_config(config_file, opts)}
    if not configs["ours"].DATASETS.TEST:
        raise ValueError(
            f"{os.path.relpath(config_file)}: DATASETS.TEST is empty; inference is timed on its first dataset"
        )
    configs.update({name: build_config(config_file, opts + extra) for name, extra in REFERENCE_OPTS.items()})
    train_batches, test_images = first_inputs(configs["ours"], spec.iters)
    return [detectron2_contender(name, cfg, train_batches, test_images) for name, cfg in configs.items()]


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """What a group's contenders are built from."""

    name: str  # "peers" or "synthetic"
    iters: int
    device: str
    seed: int
    min_size: int = 800  # peers: image sizes
    max_size: int = 1333
    config_file: str = get_config_file(DEMO_CONFIG)  # synthetic: the config and its overrides
    opts: tuple[str, ...] = ()
    timed_rounds: bool = True  # False (--quick): the seconds are those of the steps profiled for memory
    images_per_batch: int = IMAGES_PER_BATCH
    paper_pair: bool = True  # peers: ours_paper and torchvision too (False: --quick)


def build_group(spec: GroupSpec) -> list[Contender]:
    """The contenders of the group `spec` names, with their inputs."""
    return peer_contenders(spec) if spec.name == "peers" else synthetic_contenders(spec)


def ratio_rows(rows: dict[str, dict[str, float]], pairs: list) -> dict[str, dict[str, float]]:
    """{"ours/ref": {key: ours' value / ref's}} for each (ours, ref) pair of measured rows; keys where
    ref's is 0 are left out."""
    return {
        f"{ours}/{ref}": {k: rows[ours][k] / rows[ref][k] for k in rows[ours] if rows[ref][k]}
        for ours, ref in pairs
        if ours in rows and ref in rows
    }


def print_group(title: str, rows: dict[str, dict[str, float]], ratios: dict[str, dict[str, float]]) -> None:
    keys = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'':<32}" + "".join(f"{k:>21}" for k in keys))
    for name, row in rows.items():
        print(f"{name:<32}" + "".join(f"{row[k]:>21.4f}" for k in keys))
    for name, ratio in ratios.items():
        print(f"{name:<32}" + "".join(f"{ratio[k]:>21.3f}" if k in ratio else f"{'':>21}" for k in keys))


def auto_precision_summary(device: str, ratios: dict[str, dict[str, float]]) -> str:
    """What "auto" computed in on `device`, and its ratios to detectron2 beside the targets."""
    resolved = [resolve_precision("auto", "auto", torch.device(device), training) for training in (True, False)]
    measured = ratios["ours_auto/detectron2"]
    against = ", ".join(f"{key} {measured[key]:.3f} (target <= {target})" for key, target in AUTO_TARGETS.items())
    return f"ours_auto: training {resolved[0].describe()}; inference {resolved[1].describe()}; ratios {against}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", nargs="+", default=["peers", "synthetic"], choices=["peers", "synthetic"])
    parser.add_argument("--config-file", default=get_config_file(DEMO_CONFIG), help="the synthetic group's model")
    parser.add_argument("--iters", type=int, default=5, help="timed training iterations and test images per model")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images-per-batch", type=int, default=IMAGES_PER_BATCH, help="images per training iteration")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="for CI: peers at shorter side 192 without ours_paper and torchvision, 1 image per training "
        "step, seconds of the steps profiled for memory: checks, not figures",
    )
    parser.add_argument("--output", help="also write the rows and ratios to this JSON file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="synthetic group config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.quick:
        args.iters = 1  # the inputs of the profiled steps
    for option, value in (("--iters", args.iters), ("--images-per-batch", args.images_per_batch)):
        if value < 1:
            parser.error(f"{option} must be >= 1 (got {value})")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA device")
    setup_logger(name="mask_rcnn_ext")
    # --quick: the peers at a size and batch where the heads, not the backbone, cost most; the
    # memory ratios hold there too (tests/benchmarks/test_bench_peers.py)
    min_size, max_size = QUICK_PEER_SIZES if args.quick else (800, 1333)
    images_per_batch = QUICK_IMAGES_PER_BATCH if args.quick else args.images_per_batch
    specs = [
        GroupSpec(
            name,
            args.iters,
            args.device,
            args.seed,
            min_size,
            max_size,
            args.config_file,
            tuple(args.opts),
            timed_rounds=not args.quick,
            images_per_batch=images_per_batch,
            paper_pair=not args.quick,
        )
        for name in ("peers", "synthetic")
        if name in args.groups
    ]
    titles = {
        "peers": f"Mask R-CNN R50-FPN, images {min_size}-{max_size}",
        "synthetic": os.path.relpath(args.config_file),
    }
    pairs = {"peers": PEER_RATIOS, "synthetic": [("ours", reference) for reference in REFERENCE_OPTS]}
    try:  # inputs of every group first: a bad synthetic config stops before any timing
        contenders = {spec.name: build_group(spec) for spec in reversed(specs)}
    except ValueError as error:
        parser.error(str(error))
    report = {"device": args.device, "iters": args.iters, "images_per_batch": images_per_batch, "groups": {}}
    for spec in specs:
        rows = measure_group(spec, contenders[spec.name])
        ratios = ratio_rows(rows, pairs[spec.name])
        report["groups"][spec.name] = {"title": titles[spec.name], "rows": rows, "ratios": ratios}
        timing = (
            "seconds of the steps profiled for memory (--quick)"
            if args.quick
            else f"{args.iters} training iterations (batch {images_per_batch}) and {args.iters} test images, medians"
        )
        print_group(
            f"{titles[spec.name]} on {args.device}: {timing}",
            rows,
            ratios,
        )
        if spec.name == "peers":
            report["groups"]["peers"]["auto_precision"] = auto_precision_summary(args.device, ratios)
            print(report["groups"]["peers"]["auto_precision"])
    if args.output:
        write_json_atomically(args.output, report)


if __name__ == "__main__":
    main()
