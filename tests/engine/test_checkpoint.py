"""engine/checkpoint.py on a small model: a bad file named with its fault, a checkpoint that does not
fit refused unless partial loading is allowed, and `--resume` from the newest readable checkpoint."""

import logging

import pytest
import torch
from torch import nn

from mask_rcnn_ext.engine.checkpoint import Checkpointer, IncompatibleCheckpointError, UnreadableCheckpointError


class Model(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, classes)


def save(directory, name: str, value: float, iteration: int) -> None:
    model = Model()
    for parameter in model.parameters():
        nn.init.constant_(parameter, value)
    Checkpointer(model, str(directory)).save(name, iteration=iteration)


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.fixture
def run(tmp_path):
    """A run folder with checkpoints of iterations 4, 9 and the final 14 (weights 4.0, 9.0, 14.0)."""
    for name, value in (("model_0000004", 4.0), ("model_0000009", 9.0), ("model_final", 14.0)):
        save(tmp_path, name, value, int(value))
    return tmp_path


def resume(directory, caplog) -> tuple[float, dict]:
    model = Model()
    with caplog.at_level(logging.WARNING):
        extra = Checkpointer(model, str(directory)).resume_or_load("", resume=True)
    return model.head.weight[0, 0].item(), extra


def test_resume_skips_a_truncated_newest_checkpoint(run, caplog):
    truncate(run / "model_final.pth")
    value, extra = resume(run, caplog)
    assert (value, extra["iteration"]) == (9.0, 9)
    assert f"'{run / 'model_final.pth'}' cannot be read as a checkpoint" in caplog.text


@pytest.mark.parametrize("content", ["", "model_0000099.pth"], ids=["empty", "dangling"])
def test_resume_with_an_empty_or_dangling_last_checkpoint_takes_the_newest(run, caplog, content):
    (run / "last_checkpoint").write_text(content)
    value, extra = resume(run, caplog)
    assert (value, extra["iteration"]) == (14.0, 14)
    assert "names no checkpoint file" in caplog.text


def test_resume_orders_untagged_checkpoints_by_iteration(run, caplog):
    (run / "last_checkpoint").unlink()
    (run / "model_final.pth").unlink()
    save(run, "model_0000010", 10.0, 10)  # numbered above 9, not only later in the listing
    assert Checkpointer(Model(), str(run)).has_checkpoint()
    assert resume(run, caplog)[0] == 10.0


def test_resume_without_checkpoints_loads_the_given_weights(tmp_path, run):
    model = Model()
    checkpointer = Checkpointer(model, str(tmp_path / "empty"))
    assert not checkpointer.has_checkpoint()
    checkpointer.resume_or_load(str(run / "model_0000004.pth"), resume=True)
    assert model.head.weight[0, 0].item() == 4.0


def test_resume_with_no_readable_checkpoint_is_refused(run):
    for path in run.glob("*.pth"):
        truncate(path)
    with pytest.raises(UnreadableCheckpointError, match="none of the checkpoints .* can be read"):
        Checkpointer(Model(), str(run)).resume_or_load("", resume=True)


def test_another_class_count_is_refused_unless_partial_loading_is_allowed(run, caplog):
    path = str(run / "model_final.pth")
    message = r"2 of the model's 4 tensors have other shapes: head.weight \(3, 4\) in the file, \(5, 4\)"
    with pytest.raises(IncompatibleCheckpointError, match=message):
        Checkpointer(Model(classes=5)).load(path)
    model = Model(classes=5)
    Checkpointer(model, allow_partial=True).load(path)
    assert model.backbone.weight[0, 0].item() == 14.0 and model.head.weight[0, 0].item() != 14.0


def test_a_part_of_the_model_initializes_training_only(tmp_path):
    path = str(tmp_path / "backbone.pth")
    torch.save({"model": {"backbone.weight": torch.ones(4, 4), "backbone.bias": torch.ones(4)}}, path)
    with pytest.raises(
        IncompatibleCheckpointError, match="2 of the model's 4 tensors are not in it: head.weight, head.bias"
    ):
        Checkpointer(Model()).resume_or_load(path, resume=False)  # evaluation: the whole model
    model = Model()
    Checkpointer(model, initializes_training=True).resume_or_load(path, resume=False)
    assert model.backbone.weight[0, 0].item() == 1.0


def test_a_file_of_another_model_is_refused_even_when_partial_loading_is_allowed(tmp_path):
    path = str(tmp_path / "other.pth")
    torch.save({"model": {"encoder.weight": torch.ones(2)}}, path)
    with pytest.raises(IncompatibleCheckpointError, match="none of the model's 4 tensors are in it"):
        Checkpointer(Model(), allow_partial=True, initializes_training=True).resume_or_load(path, resume=False)
