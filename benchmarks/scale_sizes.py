#!/usr/bin/env python
"""What grows with the number of GPUs, measured for models of our configs (docs/scale_out.md):

    python -m benchmarks.scale_sizes [--configs COCO-InstanceSegmentation/mask_rcnn_R_50_FPN.yaml ...]

For each config: its parameters and those training updates, the bytes DistributedDataParallel
all-reduces per iteration (float32 gradients of the trained parameters) and its number of 25 MiB
buckets, and a checkpoint as the trainer writes it (weights and SGD momentum) with its size and the
seconds `torch.save` and fsync took on this machine's temporary folder.
"""

import argparse
import os
import tempfile
import time

import torch

from mask_rcnn_ext import build_config, get_config_file
from mask_rcnn_ext.engine import Trainer

DEFAULT_CONFIGS = (
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN.yaml",
)
DDP_BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's bucket_cap_mb default
MIB = 2**20


def measure(config: str) -> dict:
    """The sizes of `config`'s model (built on the CPU, no weights loaded), in bytes and seconds."""
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"]
    model = Trainer.build_model(build_config(get_config_file(config), opts))
    trained = [p for p in model.parameters() if p.requires_grad]
    gradient_bytes = sum(p.numel() for p in trained) * 4  # float32, whatever the training computes in
    optimizer = torch.optim.SGD(trained, lr=0.01, momentum=0.9)
    for parameter in trained:
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # creates the momentum buffers a checkpoint holds
    checkpoint = {"model": model.state_dict(), "trainer": {"_trainer": {"optimizer": optimizer.state_dict()}}}
    with tempfile.NamedTemporaryFile() as f:
        start = time.perf_counter()
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
        write_seconds = time.perf_counter() - start
        checkpoint_bytes = os.path.getsize(f.name)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_parameters": sum(p.numel() for p in trained),
        "gradient_bytes": gradient_bytes,
        "ddp_buckets": -(-gradient_bytes // DDP_BUCKET_BYTES),
        "checkpoint_bytes": checkpoint_bytes,
        "checkpoint_write_seconds": write_seconds,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="config files under configs/")
    args = parser.parse_args(argv)
    results = {}
    for config in args.configs:
        sizes = results[config] = measure(config)
        parameters, trained = sizes["parameters"] / 1e6, sizes["trained_parameters"] / 1e6
        print(
            f"{config}: parameters {parameters:.2f} M (trained {trained:.2f} M); all-reduced per iteration "
            f"{sizes['gradient_bytes'] / MIB:.1f} MiB in {sizes['ddp_buckets']} DDP buckets; checkpoint "
            f"{sizes['checkpoint_bytes'] / MIB:.1f} MiB, written in {sizes['checkpoint_write_seconds']:.2f} s",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
