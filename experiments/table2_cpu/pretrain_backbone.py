#!/usr/bin/env python
"""Pretrain a config's narrow ResNet on the synthetic data, as ImageNet pretrains the paper's.

    python -m experiments.table2_cpu.pretrain_backbone --config-file CFG --output backbone.pkl [--epochs 12]

The paper's models start from an ImageNet classifier; no such weights can be fetched here, and
from scratch a short CPU schedule learns too little to rank model variants. So the ResNet of
CFG (MODEL.RESNETS, res2-res5) learns to classify the instances of CFG's first training set,
cropped from their images (box plus a margin, resized to a square), with a linear classifier on
its pooled res5. Classification involves no RoI op and no mask head, so it favours none of the
variants ablate.py compares. The weights are written as detectron2 reads ImageNet `.pkl`
files: ResNet parameter names (`stem.conv1.weight`, `res5.1.conv2.norm.bias`, ...) matched by
suffix into any model that holds that ResNet (FPN bottom-up, plain backbone, or a C4 model's
res5 ROI head). Prints the classification accuracy on CFG's first test set.
"""

import argparse
import os
import pickle
import time

import cv2
import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.layers import ShapeSpec
from detectron2.structures import BoxMode
from torch import nn
from torch.nn import functional as F

from mask_rcnn_ext import build_config
from mask_rcnn_ext.modeling import build_narrow_resnet

CROP_MARGIN = 0.3  # of the box's side, on each side: context, as detection sees, and room to jitter
JITTER = 8  # pixels: training takes a random crop_size window of the crop_size + 2 * JITTER crop


def instance_crops(dataset_dicts: list[dict], crop_size: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every annotated instance cropped from its image: (N, 3, S, S) uint8 BGR, (N,) class ids."""
    crops, labels = [], []
    for record in dataset_dicts:
        image = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {record['file_name']}")
        height, width = image.shape[:2]
        for annotation in record["annotations"]:
            x0, y0, x1, y1 = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
            margin_x, margin_y = CROP_MARGIN * (x1 - x0), CROP_MARGIN * (y1 - y0)
            left, top = max(int(x0 - margin_x), 0), max(int(y0 - margin_y), 0)
            right, bottom = min(int(np.ceil(x1 + margin_x)), width), min(int(np.ceil(y1 + margin_y)), height)
            if right - left < 2 or bottom - top < 2:
                continue
            crop = cv2.resize(image[top:bottom, left:right], (crop_size, crop_size), interpolation=cv2.INTER_AREA)
            crops.append(torch.from_numpy(crop).permute(2, 0, 1))
            labels.append(annotation["category_id"])
    if not crops:
        raise ValueError("the dataset has no annotated instances to pretrain on")
    labels = torch.tensor(labels)
    if labels.max() >= num_classes:
        raise ValueError(f"category id {labels.max().item()} >= MODEL.ROI_HEADS.NUM_CLASSES={num_classes}")
    return torch.stack(crops), labels


class PooledClassifier(nn.Module):
    """ResNet -> global average of its last feature map -> linear class scores."""

    def __init__(self, resnet: nn.Module, num_classes: int, pixel_mean, pixel_std):
        super().__init__()
        self.resnet = resnet
        ((self.last_feature, shape),) = resnet.output_shape().items()  # built with one OUT_FEATURE
        self.classifier = nn.Linear(shape.channels, num_classes)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = (images_uint8.float() - self.pixel_mean) / self.pixel_std
        return self.classifier(self.resnet(x)[self.last_feature].mean(dim=(2, 3)))


def random_window(crops: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A randomly placed (size x size) window of each crop, flipped left-right half of the time."""
    offsets = torch.randint(0, crops.shape[-1] - size + 1, (len(crops), 2), generator=generator).tolist()
    windows = torch.stack([crop[:, y : y + size, x : x + size] for crop, (y, x) in zip(crops, offsets)])
    flip = torch.rand(len(crops), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], windows.flip(-1), windows)


def centre_window(crops: torch.Tensor, size: int) -> torch.Tensor:
    start = (crops.shape[-1] - size) // 2
    return crops[:, :, start : start + size, start : start + size]


def accuracy(model: nn.Module, crops: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(crops[i : i + batch_size]).argmax(1) for i in range(0, len(crops), batch_size)])
    return (predictions == labels).float().mean().item()


def pretrain_backbone(
    config_file: str,
    output_pkl: str,
    *,
    epochs: int,
    crop_size: int = 64,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
    opts=(),
) -> dict:
    """Train CFG's ResNet as a crop classifier and write its weights to `output_pkl`.

    Returns {"train_accuracy", "test_accuracy", "num_train_crops", "seconds"}.
    """
    start = time.perf_counter()
    cfg = build_config(
        config_file, list(opts) + ["MODEL.RESNETS.OUT_FEATURES", "['res5']", "MODEL.BACKBONE.FREEZE_AT", "0"]
    )
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    padded_size = crop_size + 2 * JITTER
    train_crops, train_labels = instance_crops(DatasetCatalog.get(cfg.DATASETS.TRAIN[0]), padded_size, num_classes)
    test_crops, test_labels = instance_crops(DatasetCatalog.get(cfg.DATASETS.TEST[0]), padded_size, num_classes)

    torch.manual_seed(seed)
    resnet = build_narrow_resnet(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    model = PooledClassifier(resnet, num_classes, cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = -(-len(train_crops) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_crops), generator=generator)
        for i in range(0, len(order), batch_size):
            batch = random_window(train_crops[order[i : i + batch_size]], crop_size, generator)
            loss = F.cross_entropy(model(batch), train_labels[order[i : i + batch_size]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"pretrain epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.3f}", flush=True)

    weights = {name: value.detach().numpy() for name, value in resnet.state_dict().items()}
    partial = f"{output_pkl}.tmp{os.getpid()}"  # an interrupted write never leaves a torn file
    with open(partial, "wb") as f:
        pickle.dump(
            {
                "model": weights,
                "__author__": "mask_rcnn_ext experiments/table2_cpu/pretrain_backbone.py",
                "matching_heuristics": True,
            },
            f,
        )
    os.replace(partial, output_pkl)
    return {
        "train_accuracy": accuracy(model, centre_window(train_crops, crop_size), train_labels, 256),
        "test_accuracy": accuracy(model, centre_window(test_crops, crop_size), test_labels, 256),
        "num_train_crops": len(train_crops),
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output", required=True, help="the .pkl to write")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    stats = pretrain_backbone(
        args.config_file, args.output, epochs=args.epochs, crop_size=args.crop_size, opts=args.opts
    )
    print(
        f"wrote {args.output}: crop classification accuracy {stats['train_accuracy']:.3f} (train), "
        f"{stats['test_accuracy']:.3f} (test), {stats['num_train_crops']} train crops, {stats['seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
