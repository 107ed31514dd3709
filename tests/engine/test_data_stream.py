"""The resumable training data stream (engine/data_stream.py) and each rank's checkpointed state
(engine/exact_resume.py), in-process on the built-in 10-image split at 128 px."""

import itertools
import logging
import random

import numpy as np
import pytest
import torch
from detectron2.data import build_detection_train_loader
from detectron2.data.samplers import TrainingSampler

from mask_rcnn_ext.engine import build_config
from mask_rcnn_ext.engine.exact_resume import CHECKPOINT_KEY, RankState, capture_random_state, restore_random_state
from mask_rcnn_ext.engine.training_data import build_checked_train_loader, checked_training_records

from conftest import SYNTHETIC_CONFIG, SYNTHETIC_VAL_MINI

SEED = 1234


def stream_config(*opts):
    return build_config(
        SYNTHETIC_CONFIG,
        [
            *f"DATASETS.TRAIN ('{SYNTHETIC_VAL_MINI}',) INPUT.MIN_SIZE_TRAIN (96,128) INPUT.MAX_SIZE_TRAIN 200".split(),
            *f"DATALOADER.NUM_WORKERS 0 SOLVER.IMS_PER_BATCH 2 SEED {SEED}".split(),
            *opts,
        ],
    )


def stream_at(cfg, state=None):
    """A TrainStream of `cfg`, from the beginning with sampler seed SEED, or from `state`."""
    stream = build_checked_train_loader(cfg)
    stream.load_state_dict(state or {"seeds": [SEED], "world_size": 1, "consumed": 0, "waiting": [[], []]})
    return stream


def take(stream_iterator, count):
    return list(itertools.islice(stream_iterator, count))


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for batch, other in zip(first, second):
        assert [d["file_name"] for d in batch] == [d["file_name"] for d in other]
        for mapped, other_mapped in zip(batch, other):
            assert torch.equal(mapped["image"], other_mapped["image"])  # the same resize and flip
            assert torch.equal(mapped["instances"].gt_boxes.tensor, other_mapped["instances"].gt_boxes.tensor)


def test_batches_hold_the_images_detectron2s_loader_batches():
    """detectron2's sampler with the same seed, grouped by aspect ratio as its loader groups them
    (one loader worker): the same images in the same batches, portrait and landscape apart."""
    cfg = stream_config()
    records = checked_training_records(cfg)
    assert len({record["width"] > record["height"] for record in records}) == 2  # both groups are exercised
    theirs = build_detection_train_loader(
        cfg, dataset=records, sampler=TrainingSampler(len(records), seed=SEED), total_batch_size=2
    )
    ours = stream_at(cfg)
    names = [[[d["file_name"] for d in batch] for batch in take(iter(loader), 12)] for loader in (theirs, ours)]
    assert names[0] == names[1]


def test_a_stream_continued_from_its_state_yields_what_it_would_have():
    """State taken after 5 batches in this process; continued from it with 2 loader workers: the
    same images, resized and flipped the same (augmentation depends on an image's place in the stream,
    not on the worker that maps it)."""
    cfg = stream_config()
    stream = stream_at(cfg)
    batches = iter(stream)
    take(batches, 5)
    state = stream.state_dict()
    assert state["consumed"] >= 10 and sum(map(len, state["waiting"])) == state["consumed"] - 10
    expected = take(batches, 6)
    continued = stream_at(stream_config("DATALOADER.NUM_WORKERS", "2"), state)
    assert_same_batches(take(iter(continued), 6), expected)


def test_mapping_in_the_training_process_leaves_the_global_generators_alone():
    stream_iterator = iter(stream_at(stream_config()))
    before = capture_random_state()
    take(stream_iterator, 3)
    after = capture_random_state()
    assert torch.equal(before["torch"], after["torch"])
    assert torch.equal(before["numpy"][1], after["numpy"][1]) and before["python"] == after["python"]


def test_random_state_round_trips():
    state = capture_random_state()
    drawn = (random.random(), np.random.rand(), torch.rand(1))
    restore_random_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == drawn


def test_a_position_cannot_be_set_once_batches_were_taken():
    stream = stream_at(stream_config())
    take(iter(stream), 1)
    with pytest.raises(RuntimeError, match="before its first batch"):
        stream.load_state_dict(stream.state_dict())


@pytest.mark.parametrize(
    "checkpoint, warning",
    [
        ({}, "holds no data stream position or random state"),
        ({CHECKPOINT_KEY: [None, None]}, "saved by 2 processes and is resumed by 1"),
    ],
)
def test_a_checkpoint_without_this_runs_ranks_starts_the_stream_anew_with_a_warning(checkpoint, warning, caplog):
    stream = stream_at(stream_config())
    with caplog.at_level(logging.WARNING):
        assert RankState.restore(checkpoint, stream) is None
    assert warning in caplog.text
    assert stream.state_dict()["consumed"] == 0


def test_a_batch_size_the_processes_cannot_share_is_refused(monkeypatch):
    monkeypatch.setattr("mask_rcnn_ext.engine.training_data.comm.get_world_size", lambda: 4)
    with pytest.raises(ValueError, match=r"SOLVER.IMS_PER_BATCH \(2\) must be a multiple of the number of processes"):
        build_checked_train_loader(stream_config())
