"""A training killed with SIGKILL, between checkpoints or in the middle of writing one, resumes
with `--resume` from its last complete checkpoint and finishes with the weights of the run that
was not stopped, bit for bit; no checkpoint is lost or torn."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from detectron2.modeling.meta_arch import GeneralizedRCNN

from conftest import (
    KILLED_RUN_MAX_ITER,
    KILLED_RUN_OPTS,
    REPO_ROOT,
    SYNTHETIC_CONFIG,
    TOOLS_DIR,
    assert_same_weights,
    run_tool_in_process,
)

pytestmark = pytest.mark.slow  # trains models (those killed in subprocesses)

BF16_TRAINING = ("MASK_RCNN_EXT.PRECISION.TRAIN", "bf16")
# Imported into the training process (tools/train_net.py --import): when the file it names is being
# written, write a part of it and die as `kill -9` would.
KILL_DURING_SAVE = """
import os, torch
_save = torch.save
def save(obj, f, *args, **kwargs):
    if os.environ["KILL_WHILE_WRITING"] in getattr(f, "name", ""):
        f.write(b"the first bytes of a checkpoint"); f.flush()
        os.kill(os.getpid(), 9)
    return _save(obj, f, *args, **kwargs)
torch.save = save
"""


def train_command(output_dir, *extra, opts=()):
    return [
        sys.executable,
        os.path.join(TOOLS_DIR, "train_net.py"),
        "--config-file",
        SYNTHETIC_CONFIG,
        *extra,
        "OUTPUT_DIR",
        str(output_dir),
        *KILLED_RUN_OPTS,
        *opts,
    ]


def assert_finished_whole(output_dir):
    with open(output_dir / "last_checkpoint") as f:
        assert f.read() == "model_final.pth"
    names = sorted(p.name for p in output_dir.iterdir() if ".pth" in p.name)
    assert names == ["model_0000002.pth", "model_0000005.pth", "model_0000008.pth", "model_final.pth"], names
    for name in names:  # each loads under torch's default (weights_only) loading
        checkpoint = torch.load(output_dir / name)
        assert {"model", "trainer", "iteration"} <= set(checkpoint) and "optimizer" in checkpoint["trainer"]["_trainer"]
    assert torch.load(output_dir / "model_final.pth")["iteration"] == KILLED_RUN_MAX_ITER - 1
    with open(output_dir / "metrics.json") as f:
        assert max(json.loads(line)["iteration"] for line in f if line.strip()) == KILLED_RUN_MAX_ITER - 1


def train_in_process(output_dir, capfd, *extra, opts=()) -> None:
    """`tools/train_net.py` into `output_dir` with `extra` arguments (--resume), in this process
    (only a run to be killed needs a process of its own), with config overrides `opts`."""
    argv = ["--config-file", SYNTHETIC_CONFIG, *extra, "OUTPUT_DIR", str(output_dir), *KILLED_RUN_OPTS, *opts]
    outcome = run_tool_in_process("train_net", argv, capfd)
    assert outcome.code == 0, outcome.text[-6000:]


def resume(output_dir, capfd, *opts) -> None:
    train_in_process(output_dir, capfd, "--resume", opts=opts)


def uninterrupted_weights(tmp_path, capfd, *opts) -> dict:
    """model_final.pth's weights of the run trained from start to end without a stop."""
    train_in_process(tmp_path / "uninterrupted", capfd, opts=opts)
    return torch.load(tmp_path / "uninterrupted" / "model_final.pth")["model"]


def test_killed_while_writing_a_checkpoint(tmp_path, datasets_env, capfd):
    (tmp_path / "kill_during_save.py").write_text(KILL_DURING_SAVE)
    output_dir = tmp_path / "run"
    env = dict(os.environ, **datasets_env, KILL_WHILE_WRITING="model_0000005.pth", PYTHONPATH=str(tmp_path))
    killed = subprocess.run(
        train_command(output_dir, "--import", "kill_during_save"),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert killed.returncode == -signal.SIGKILL
    with open(output_dir / "last_checkpoint") as f:
        assert f.read() == "model_0000002.pth"  # the newest complete checkpoint
    assert not (output_dir / "model_0000005.pth").exists()  # the torn write never took the real name
    assert [p.name for p in output_dir.glob("model_0000005.pth.partial*")]  # it stayed a temporary file
    resume(output_dir, capfd)
    assert "Starting training from iteration 3" in (output_dir / "log.txt").read_text()
    assert_finished_whole(output_dir)
    assert not list(output_dir.glob("*.partial*"))  # the leftover was cleared by the next write
    assert_same_weights(output_dir / "model_final.pth", uninterrupted_weights(tmp_path, capfd))


def test_killed_between_checkpoints(tmp_path, datasets_env, capfd):
    """In bf16 (the kill while writing, above, trains in fp32): a checkpoint holds float32 weights
    whatever the training computes in, and the resumed run carries on in bf16."""
    output_dir = tmp_path / "run"
    env = dict(os.environ, **datasets_env)
    process = subprocess.Popen(
        train_command(output_dir, opts=BF16_TRAINING),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (output_dir / "model_0000005.pth").exists():  # tagged after it is complete
        assert process.poll() is None and time.time() < deadline, "training ended before the kill"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    with open(output_dir / "last_checkpoint") as f:
        assert f.read() in ("model_0000002.pth", "model_0000005.pth")  # the newest complete one
    resume(output_dir, capfd, *BF16_TRAINING)
    assert "MaskRCNN training on cpu: bf16" in (output_dir / "log.txt").read_text()
    assert_finished_whole(output_dir)
    assert all(
        v.dtype == torch.float32
        for v in torch.load(output_dir / "model_final.pth")["model"].values()
        if v.is_floating_point()
    )
    assert_same_weights(output_dir / "model_final.pth", uninterrupted_weights(tmp_path, capfd, *BF16_TRAINING))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capfd, precision):
    """The mask loss of the 6th training step is made NaN."""
    forward, steps = GeneralizedRCNN.forward, [0]

    def nan_at_step_6(self, batched_inputs):
        losses = forward(self, batched_inputs)
        if self.training:
            steps[0] += 1
            if steps[0] == 6:
                losses["loss_mask"] = losses["loss_mask"] * float("nan")
        return losses

    monkeypatch.setattr(GeneralizedRCNN, "forward", nan_at_step_6)
    output_dir = tmp_path / "run"
    argv = ["--config-file", SYNTHETIC_CONFIG, "OUTPUT_DIR", str(output_dir), *KILLED_RUN_OPTS]
    outcome = run_tool_in_process("train_net", argv + ["MASK_RCNN_EXT.PRECISION.TRAIN", precision], capfd)
    text = outcome.text
    assert f"MaskRCNN training on cpu: {precision}" in text
    assert outcome.code != 0
    # detectron2 stops at the step, names it and every loss (loss_mask: nan), before the optimizer step
    assert "Loss became infinite or NaN at iteration=5" in text, text[-3000:]
    assert re.search(r"'loss_mask': (np\.float64\()?nan", text) and "'loss_cls'" in text
    with open(output_dir / "last_checkpoint") as f:
        assert f.read() == "model_0000002.pth"
    assert not (output_dir / "model_final.pth").exists()
    checkpoint = torch.load(output_dir / "model_0000002.pth")
    assert checkpoint["iteration"] == 2 and all(torch.isfinite(v).all() for v in checkpoint["model"].values())
