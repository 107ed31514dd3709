"""Checkpoints written whole or not at all, read with every fault named, resumed from the newest
one that can be read.

Writing: detectron2's checkpointer (fvcore's `save`) writes `model_XXXXXXX.pth` and then
`last_checkpoint` in place: a job killed during either leaves a truncated file. Here each file is
written to a temporary name beside it, synced, and renamed over the target (an atomic step on one
filesystem), so the real names always hold complete files.

Reading: detectron2 passes on torch's and pickle's errors for a truncated or foreign file
("PytorchStreamReader failed reading zip archive", "pop from empty list") without the file, and
loads a checkpoint of another architecture with a warning per skipped tensor, which then
evaluates to AP 0. Here:
  - a file that cannot be read as a checkpoint raises `UnreadableCheckpointError` naming it;
  - tensors whose shapes differ from the model's raise `IncompatibleCheckpointError` with their
    count and first names, unless partial loading is allowed (MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL:
    fine-tuning on another class count);
  - so do model tensors the file lacks, where the file must hold the whole model (evaluation,
    `--resume`); weights that initialize training may hold a part (an ImageNet backbone), but
    not nothing of the model.
Resuming: the file `last_checkpoint` names is tried first, then the other `model_*.pth` newest
first; an unreadable one is skipped with a warning, and an empty or dangling `last_checkpoint`
likewise.
"""

import os
import re

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultPredictor

from ..io_utils import write_atomically

FIRST_NAMED = 5  # tensors named in an incompatibility message
_PERIODIC_CHECKPOINT = re.compile(r"model_(\d+)\.pth")
_FILE_KEY = "__mask_rcnn_ext_file__"  # carries the file's name from _load_file to _load_model
# Buffers the model sets from the config, absent from old checkpoints (detectron2 ignores them too)
_SET_FROM_CONFIG = ("pixel_mean", "pixel_std")


class UnreadableCheckpointError(ValueError):
    """The file is missing or cannot be read as a checkpoint (truncated, not a checkpoint)."""


class IncompatibleCheckpointError(ValueError):
    """The checkpoint is readable but does not fit the model (another architecture or class count)."""


class Checkpointer(DetectionCheckpointer):
    """DetectionCheckpointer (same files, contents and loading of good files) that writes atomically
    where the save directory is local, names the file and the fault of a bad one, and resumes from
    the newest readable checkpoint.

    Args:
        model, save_dir, checkpointables: as DetectionCheckpointer's.
        allow_partial: load a checkpoint whose tensors partly do not fit, leaving those at their
            initialization (MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL).
        initializes_training: `resume_or_load`'s weights (when not resuming) start a training, so
            they may hold a part of the model (a backbone); else they must hold all of it.
    """

    def __init__(
        self,
        model,
        save_dir: str = "",
        *,
        allow_partial: bool = False,
        initializes_training: bool = False,
        **checkpointables,
    ):
        super().__init__(model, save_dir, **checkpointables)
        self.allow_partial = allow_partial
        self.initializes_training = initializes_training
        self._part_of_model_expected = False  # True while loading weights that start a training

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

    def resume_or_load(self, path: str, *, resume: bool = True) -> dict:
        """With `resume` and checkpoints in save_dir: the newest readable one, with all
        checkpointables (`resume_candidates` in order; an unreadable one is skipped with a warning,
        UnreadableCheckpointError when none can be read). Else the model's weights from `path`."""
        candidates = self.resume_candidates() if resume else []
        for candidate in candidates:
            try:
                return self.load(candidate)
            except UnreadableCheckpointError as error:
                self.logger.warning(f"Not resuming from it: {error}. Trying the next newest checkpoint.")
        if candidates:
            raise UnreadableCheckpointError(
                f"--resume: none of the checkpoints in {self.save_dir!r} can be read: {', '.join(candidates)}"
            )
        self._part_of_model_expected = self.initializes_training
        try:
            return self.load(path, checkpointables=[])
        finally:
            self._part_of_model_expected = False

    def has_checkpoint(self) -> bool:
        """Whether `resume_or_load` resumes: save_dir holds a checkpoint, tagged or not (detectron2's
        trainer then continues from the loaded iteration)."""
        return bool(self.resume_candidates())

    def resume_candidates(self) -> list[str]:
        """The checkpoints of save_dir to resume from, in order: the file `last_checkpoint` names
        (if it exists), then model_final.pth and model_NNNNNNN.pth, the highest iteration first."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        tagged = self._tagged_checkpoint()
        periodic = sorted(
            (int(match.group(1)), name)
            for name in os.listdir(self.save_dir)
            if (match := _PERIODIC_CHECKPOINT.fullmatch(name))
        )
        names = ["model_final.pth"] + [name for _, name in reversed(periodic)]
        others = [os.path.join(self.save_dir, name) for name in names]
        return tagged + [path for path in others if os.path.isfile(path) and path not in tagged]

    def _tagged_checkpoint(self) -> list[str]:
        """[the checkpoint `last_checkpoint` names], or [] (logged when it names nothing that exists)."""
        last_checkpoint = os.path.join(self.save_dir, "last_checkpoint")
        if not os.path.isfile(last_checkpoint):
            return []
        with open(last_checkpoint) as f:
            named = f.read().strip()
        path = os.path.join(self.save_dir, named)
        if named and os.path.isfile(path):
            return [path]
        self.logger.warning(f"{last_checkpoint!r} names no checkpoint file ({named!r}); looking for others")
        return []

    def load(self, path: str, checkpointables=None) -> dict:
        if path and not os.path.isfile(path) and not re.search(r"://|\?", path):  # URLs: detectron2's
            raise UnreadableCheckpointError(f"checkpoint {path!r} does not exist")
        try:
            return super().load(path, checkpointables)
        finally:  # detectron2 main's load leaves this set when loading fails, and asserts it unset
            if hasattr(self, "_parsed_url_during_load"):
                self._parsed_url_during_load = None

    def _load_file(self, filename: str) -> dict:
        try:
            checkpoint = super()._load_file(filename)
        except Exception as error:  # torch and pickle raise many types for foreign or cut files
            first_line = (str(error).splitlines() or [""])[0]
            raise UnreadableCheckpointError(
                f"{filename!r} cannot be read as a checkpoint (truncated, or not a checkpoint?): "
                f"{type(error).__name__}: {first_line}"
            ) from error
        if not isinstance(checkpoint.get("model"), dict):
            raise UnreadableCheckpointError(f"{filename!r} holds no state dict of a model")
        checkpoint[_FILE_KEY] = filename  # named by _load_model's messages
        return checkpoint

    def _load_model(self, checkpoint: dict):
        filename = checkpoint.pop(_FILE_KEY)
        model_keys = [k for k in self.model.state_dict() if k not in _SET_FROM_CONFIG]
        incompatible = super()._load_model(checkpoint)
        reshaped = {k: (tuple(c), tuple(m)) for k, c, m in incompatible.incorrect_shapes}
        absent = [k for k in incompatible.missing_keys if k not in reshaped and k not in _SET_FROM_CONFIG]
        problems = []
        if len(reshaped) + len(absent) == len(model_keys):
            problems.append(f"none of the model's {len(model_keys)} tensors are in it with the model's shape")
        else:
            if reshaped and not self.allow_partial:
                problems.append(
                    f"{len(reshaped)} of the model's {len(model_keys)} tensors have other shapes: "
                    + "; ".join(
                        f"{k} {c} in the file, {m} in the model" for k, (c, m) in list(reshaped.items())[:FIRST_NAMED]
                    )
                )
            if absent and not (self._part_of_model_expected or self.allow_partial):
                named = ", ".join(absent[:FIRST_NAMED])
                problems.append(f"{len(absent)} of the model's {len(model_keys)} tensors are not in it: {named}")
        if problems:
            raise IncompatibleCheckpointError(
                f"checkpoint {filename!r} does not fit the model (another architecture or class count?): "
                + "; ".join(problems)
                + ". MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL True loads what fits and leaves the rest at its "
                "initialization (fine-tuning on other classes, say)"
            )
        return incompatible


def load_predictor(cfg) -> DefaultPredictor:
    """detectron2's DefaultPredictor for `cfg`, its MODEL.WEIGHTS loaded by our Checkpointer: a
    missing, unreadable or unfitting file is refused with the file and the fault named (empty
    MODEL.WEIGHTS: the model's initial weights, as detectron2 keeps them)."""
    without_weights = cfg.clone()
    without_weights.defrost()
    without_weights.MODEL.WEIGHTS = ""
    predictor = DefaultPredictor(without_weights)
    Checkpointer(predictor.model, allow_partial=cfg.MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL).load(cfg.MODEL.WEIGHTS)
    return predictor
