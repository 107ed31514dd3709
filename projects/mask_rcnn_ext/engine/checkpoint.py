"""Checkpoints written whole or not at all.

detectron2's checkpointer (fvcore's `save`) writes `model_XXXXXXX.pth` and then `last_checkpoint`
in place: a job killed during either leaves a truncated file, which `--resume` then loads or
stumbles on. Here each file is written to a temporary name beside it, synced, and renamed over the
target (an atomic step on one filesystem), so the files a resume reads are always complete: the
newest finished checkpoint, named by `last_checkpoint`.
"""

import os

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..io_utils import write_atomically


class AtomicCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer (same files, contents and loading) whose checkpoint and
    `last_checkpoint` files are replaced atomically when the save directory is local."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk or not os.path.isdir(self.save_dir):
            return super().save(name, **kwargs)  # nothing to write, or a remote store: fvcore's way
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        write_atomically(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not os.path.isdir(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        write_atomically(
            os.path.join(self.save_dir, "last_checkpoint"), lambda f: f.write(last_filename_basename.encode())
        )
