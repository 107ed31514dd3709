#!/usr/bin/env python
"""Time and memory of each mask head and RoI feature op against detectron2's stock ones, side by
side in one process, at R-50-FPN sizes (`make bench`).

    python -m benchmarks.heads [--device cpu|cuda] [--iters 5] [--pooler-rois 512] [--head-rois 128]
                             [--test-rois 100] [--output FILE.json]

Poolers pool 14x14 RoIs (2 samples per bin and axis) from the four FPN levels of an 800x1216
image (`--image-size`; 256 channels) for the paper's 512 RoIs per training image; heads map (R, 256, 14, 14) RoI
features to 80 classes' 28x28 masks for the 128 foreground RoIs a mask head trains on (512 at
1:3). Training: forward, loss (the head's own, on random targets; a pooler's output summed) and
backward. Test: `--test-rois` RoIs, forward only. Each figure is a median over `--iters` rounds
after one warm-up round, the rows timed in turns (`median_seconds` of benchmarks/measure.py).
Memory: on CUDA the peak allocated by a training step; on the CPU the bytes autograd keeps for
backward (the bulk of a training step's memory; detectron2's roi_align keeps only the RoIs, so
there no ratio is shown).
The reference is detectron2's ROIPooler("ROIAlignV2") for poolers and MaskRCNNConvUpsampleHead
for heads; `ours/ref` below 1 is cheaper than detectron2. torchvision's Mask R-CNN pieces
(MultiScaleRoIAlign; MaskRCNNHeads + MaskRCNNPredictor with maskrcnn_loss) are measured beside
them on the same inputs.

Test-time read-out of `--test-rois` detections, against detectron2's functions: keypoints decoded
from (R, 17, 56, 56) heatmaps (`heatmaps_to_keypoints`; ours `decode_keypoint_heatmaps`) and
(R, 28, 28) masks pasted into the image (`paste_masks_in_image`; ours `paste_masks`), each after
checking that ours returns the same tensor.
"""

import argparse
from typing import Callable, Optional

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec, paste_masks_in_image
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import build_mask_head
from detectron2.structures import BitMasks, Boxes, Instances, heatmaps_to_keypoints
from detectron2.utils.events import EventStorage
from torch import nn
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference, maskrcnn_loss
from torchvision.ops import MultiScaleRoIAlign

from benchmarks.measure import median_seconds, peak_memory_MiB, saved_for_backward_MiB
from mask_rcnn_ext import add_mask_rcnn_ext_config
from mask_rcnn_ext.io_utils import write_json_atomically
from mask_rcnn_ext.modeling import ROI_FEATURE_OP_REGISTRY, RoIFeaturePooler, decode_keypoint_heatmaps, paste_masks

IMAGE_SIZE = (800, 1216)  # the paper's test size for COCO's usual aspect ratio
CHANNELS, NUM_CLASSES, POOLED = 256, 80, 14
FPN_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
REFERENCE = "detectron2"
TORCHVISION = "torchvision"
OURS = "ours"
NUM_KEYPOINTS, HEATMAP_SIDE, MASK_SIDE = 17, 56, 28

# label -> mask head config overrides (detectron2's stock head is the reference)
HEADS = {
    REFERENCE: ("MaskRCNNConvUpsampleHead", []),
    "FCN sigmoid (default)": ("FCNMaskHead", []),
    "FCN softmax": ("FCNMaskHead", ["MASK_RCNN_EXT.MASK_HEAD.LOSS", "softmax"]),
    "FCN class-agnostic": ("FCNMaskHead", ["MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", "True"]),
    "MLP 1024-1024": ("MLPMaskHead", ["MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[1024, 1024]"]),
    "MLP 1024-1024-1024": ("MLPMaskHead", ["MASK_RCNN_EXT.MASK_HEAD.MLP_FC_DIMS", "[1024, 1024, 1024]"]),
}


def median_ms(steps: dict[str, Callable[[], object]], device: str, iters: int) -> dict[str, float]:
    """Median milliseconds of each step over `iters` rounds timed in turns, after one warm-up round."""
    seconds = median_seconds([steps] * (1 + iters), device, warm_up_rounds=1)
    return {name: 1000 * value for name, value in seconds.items()}


def training_memory_MiB(loss: Callable[[], torch.Tensor], device: str) -> float:
    """On CUDA the peak allocated by a training step (`loss()` and its backward); on the CPU what
    autograd saves for that backward."""
    if device == "cuda":
        return peak_memory_MiB(device, lambda: None, lambda: loss().backward())
    return saved_for_backward_MiB(loss)


def measure_cases(
    cases: dict[str, tuple[Callable[[], torch.Tensor], Callable[[], object]]], device: str, iters: int
) -> dict[str, dict]:
    """{name: {"train_ms", "test_ms", and "peak_MiB" on CUDA or "saved_MiB" on the CPU}} for
    `cases`: name -> (the training forward, returning a scalar loss; the test forward). Training
    is timed with its backward; memory is `training_memory_MiB`."""
    train = median_ms(
        {name: (lambda step=train: step().backward()) for name, (train, _) in cases.items()}, device, iters
    )
    with torch.no_grad():
        test = median_ms({name: test for name, (_, test) in cases.items()}, device, iters)
    memory_key = "peak_MiB" if device == "cuda" else "saved_MiB"
    return {
        name: {"train_ms": train[name], "test_ms": test[name], memory_key: training_memory_MiB(cases[name][0], device)}
        for name in cases
    }


def fpn_features(image_size, device: str, generator: torch.Generator) -> list[torch.Tensor]:
    """Random P2-P5 features of an (H, W) image, each (1, 256, H * scale, W * scale), requiring grad."""
    return [
        torch.randn(1, CHANNELS, int(image_size[0] * s), int(image_size[1] * s), generator=generator)
        .to(device)
        .requires_grad_(True)
        for s in FPN_SCALES
    ]


def random_boxes(num: int, image_size, device: str, generator: torch.Generator) -> Boxes:
    """Boxes of 16 pixels to about half the image, so every FPN level gets RoIs."""
    height, width = image_size
    side = torch.exp(torch.empty(num, 2).uniform_(2.8, 6.4, generator=generator)).clamp(max=min(height, width) / 2)
    corner = torch.rand(num, 2, generator=generator) * (torch.tensor([width, height]) - side)
    return Boxes(torch.cat([corner, corner + side], dim=1).to(device))


def bench_poolers(image_size, device: str, iters: int, train_rois: int, test_rois: int) -> dict[str, dict]:
    """`measure_cases` rows of every RoI feature op, detectron2's and torchvision's poolers: training
    pools `train_rois` RoIs from `fpn_features` and sums the (R, 256, 14, 14) output; test pools `test_rois`."""
    generator = torch.Generator().manual_seed(0)
    features = fpn_features(image_size, device, generator)
    train_boxes = random_boxes(train_rois, image_size, device, generator)
    test_boxes = random_boxes(test_rois, image_size, device, generator)
    args = dict(output_size=POOLED, scales=FPN_SCALES, sampling_ratio=2)
    poolers = {REFERENCE: ROIPooler(pooler_type="ROIAlignV2", **args)}
    poolers.update({name: RoIFeaturePooler(pooler_type=name, **args) for name, _ in ROI_FEATURE_OP_REGISTRY})
    cases = {
        name: (lambda p=pooler: p(features, [train_boxes]).sum(), lambda p=pooler: p(features, [test_boxes]))
        for name, pooler in poolers.items()
    }
    # torchvision's Mask R-CNN pooler: the same levels, its own level mapping, aligned=False
    torchvision_pooler = MultiScaleRoIAlign([f"p{i}" for i in range(2, 6)], POOLED, sampling_ratio=2)
    feature_dict = {f"p{i + 2}": f for i, f in enumerate(features)}
    cases[TORCHVISION] = (
        lambda: torchvision_pooler(feature_dict, [train_boxes.tensor], [tuple(image_size)]).sum(),
        lambda: torchvision_pooler(feature_dict, [test_boxes.tensor], [tuple(image_size)]),
    )
    return measure_cases(cases, device, iters)


def mask_head_targets(num: int, device: str, generator: torch.Generator) -> list[Instances]:
    """Foreground proposals with ground truth. Only the loss reads them (it crops the masks to the
    boxes), so a small frame serves: cropping full 800x1216 masks would time mask I/O, not heads."""
    frame = (128, 128)
    instances = Instances(frame)
    instances.proposal_boxes = random_boxes(num, frame, device, generator)
    instances.gt_classes = torch.randint(0, NUM_CLASSES, (num,), generator=generator).to(device)
    instances.gt_masks = BitMasks(torch.rand(num, *frame, generator=generator).to(device) > 0.5)
    return [instances]


def bench_heads(device: str, iters: int, train_rois: int, test_rois: int) -> dict[str, dict]:
    """`measure_cases` rows of every mask head of HEADS and torchvision's: training maps
    (train_rois, 256, 14, 14) features to its mask loss; test maps (test_rois, 256, 14, 14) features
    to each RoI's 28x28 mask of its predicted class."""
    generator = torch.Generator().manual_seed(0)
    train_features = (
        torch.randn(train_rois, CHANNELS, POOLED, POOLED, generator=generator).to(device).requires_grad_(True)
    )
    test_features = torch.randn(test_rois, CHANNELS, POOLED, POOLED, generator=generator).to(device)
    targets = mask_head_targets(train_rois, device, generator)
    test_instances = Instances(IMAGE_SIZE)
    test_instances.pred_classes = torch.randint(0, NUM_CLASSES, (test_rois,), generator=generator).to(device)
    cases = {}
    for label, (name, opts) in HEADS.items():
        cfg = get_cfg()
        add_mask_rcnn_ext_config(cfg)
        cfg.merge_from_list(
            [
                "MODEL.ROI_MASK_HEAD.NAME",
                name,
                "MODEL.ROI_MASK_HEAD.NUM_CONV",
                "4",
                "MODEL.ROI_HEADS.NUM_CLASSES",
                str(NUM_CLASSES),
                *opts,
            ]
        )
        head = build_mask_head(cfg, ShapeSpec(channels=CHANNELS, height=POOLED, width=POOLED)).to(device)
        cases[label] = (
            lambda h=head: h.train()(train_features, targets)["loss_mask"],
            lambda h=head: h.eval()(test_features, [test_instances]),
        )
    # torchvision's Mask R-CNN mask head and loss on the same RoIs and ground truth
    torchvision_head = nn.Sequential(
        MaskRCNNHeads(CHANNELS, [CHANNELS] * 4, 1), MaskRCNNPredictor(CHANNELS, CHANNELS, NUM_CLASSES)
    ).to(device)
    (gt,) = targets
    cases[TORCHVISION] = (
        lambda: maskrcnn_loss(
            torchvision_head(train_features),
            [gt.proposal_boxes.tensor],
            [gt.gt_masks.tensor],
            [gt.gt_classes],
            [torch.arange(len(gt), device=device)],
        ),
        lambda: maskrcnn_inference(torchvision_head(test_features), [test_instances.pred_classes]),
    )
    with EventStorage():  # the heads log training statistics
        return measure_cases(cases, device, iters)


def bench_read_out(image_size, device: str, iters: int, test_rois: int) -> dict[str, dict]:
    """Milliseconds to decode keypoints and to paste masks of `test_rois` detections, ours and
    detectron2's; raises if the outputs differ."""
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes(test_rois, image_size, device, generator).tensor
    heatmaps = (torch.randn(test_rois, NUM_KEYPOINTS, HEATMAP_SIDE, HEATMAP_SIDE, generator=generator) * 4).to(device)
    masks = torch.rand(test_rois, MASK_SIDE, MASK_SIDE, generator=generator).to(device)
    image_size = tuple(image_size)
    operations = {
        "keypoints_ms": {
            REFERENCE: lambda: heatmaps_to_keypoints(heatmaps, boxes),
            OURS: lambda: decode_keypoint_heatmaps(heatmaps, boxes),
        },
        "masks_ms": {
            REFERENCE: lambda: paste_masks_in_image(masks, boxes, image_size),
            OURS: lambda: paste_masks(masks, boxes, image_size),
        },
    }
    for name, steps in operations.items():
        if not torch.equal(steps[OURS](), steps[REFERENCE]()):
            raise AssertionError(f"{name}: our read-out differs from detectron2's")
    times = {name: median_ms(steps, device, iters) for name, steps in operations.items()}
    return {row: {name: times[name][row] for name in operations} for row in (REFERENCE, OURS)}


def ratios_to_reference(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, Optional[float]]]:
    """{name: {key: row's value / the REFERENCE row's}}; None where the reference holds under 1 MiB,
    which no ratio describes."""
    reference = rows[REFERENCE]
    return {
        name: {k: None if k.endswith("MiB") and reference[k] < 1 else value / reference[k] for k, value in row.items()}
        for name, row in rows.items()
    }


def print_table(title: str, rows: dict[str, dict[str, float]], ratios: dict[str, dict[str, Optional[float]]]) -> None:
    """`rows`, then their `ratios` to the reference, one line per name."""
    keys = list(rows[REFERENCE])
    print(f"\n{title}")
    print(
        f"{'':<24}" + "".join(f"{k:>12}" for k in keys) + "".join(f"{'ours/ref ' + k.split('_')[0]:>20}" for k in keys)
    )
    for name, row in rows.items():
        cells = "".join("{:>20}".format("-" if r is None else f"{r:.3f}") for r in ratios[name].values())
        print(f"{name:<24}" + "".join(f"{row[k]:>12.2f}" for k in keys) + cells)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--iters", type=int, default=5, help="timed rounds (after one warm-up)")
    parser.add_argument("--pooler-rois", type=int, default=512, help="RoIs pooled per training step")
    parser.add_argument("--head-rois", type=int, default=128, help="foreground RoIs per mask head training step")
    parser.add_argument("--test-rois", type=int, default=100)
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=IMAGE_SIZE,
        metavar=("H", "W"),
        help="image whose FPN features the poolers read, and into which the read-out pastes masks",
    )
    parser.add_argument("--output", help="also write the rows and ratios to this JSON file")
    args = parser.parse_args(argv)
    if min(args.iters, args.pooler_rois, args.head_rois, args.test_rois) < 1:
        parser.error("--iters, --pooler-rois, --head-rois and --test-rois must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA device")
    print(
        f"{args.device}: training (forward + backward) on {args.pooler_rois} RoIs (poolers, {args.image_size[0]}x"
        f"{args.image_size[1]} image) and {args.head_rois} "
        f"(heads), test on {args.test_rois}; {CHANNELS} channels; medians of {args.iters} rounds"
    )
    poolers = bench_poolers(args.image_size, args.device, args.iters, args.pooler_rois, args.test_rois)
    pooler_ratios = ratios_to_reference(poolers)
    print_table(
        "RoI feature ops: 14x14 from P2-P5, reference detectron2 ROIPooler('ROIAlignV2')", poolers, pooler_ratios
    )
    heads = bench_heads(args.device, args.iters, args.head_rois, args.test_rois)
    head_ratios = ratios_to_reference(heads)
    print_table(
        "mask heads: (R, 256, 14, 14) -> 80 x 28x28, reference detectron2 MaskRCNNConvUpsampleHead", heads, head_ratios
    )
    read_out = bench_read_out(args.image_size, args.device, args.iters, args.test_rois)
    read_out_ratios = ratios_to_reference(read_out)
    print_table(
        f"test read-out: {NUM_KEYPOINTS} keypoints from {HEATMAP_SIDE}x{HEATMAP_SIDE} heatmaps, "
        f"{MASK_SIDE}x{MASK_SIDE} masks pasted into the image (same outputs)",
        read_out,
        read_out_ratios,
    )
    if args.output:
        write_json_atomically(
            args.output,
            {
                "device": args.device,
                "pooler_rois": args.pooler_rois,
                "head_rois": args.head_rois,
                "test_rois": args.test_rois,
                "poolers": poolers,
                "pooler_ratios": pooler_ratios,
                "heads": heads,
                "head_ratios": head_ratios,
                "read_out": read_out,
                "read_out_ratios": read_out_ratios,
            },
        )


if __name__ == "__main__":
    main()
