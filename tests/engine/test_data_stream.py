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

from mask_rcnn_ext.data.dataset_mapper import ImageModeDatasetMapper
from mask_rcnn_ext.engine import build_config
from mask_rcnn_ext.engine.data_stream import TrainStream
from mask_rcnn_ext.engine.exact_resume import CHECKPOINT_KEY, RankState
from mask_rcnn_ext.engine.random_state import capture_random_state, restore_random_state
from mask_rcnn_ext.engine.training_data import FileNamingMapper, build_checked_train_loader, checked_training_records

from conftest import SYNTHETIC_CONFIG, SYNTHETIC_VAL_MINI

SEED = 1234


def stream_config(workers=0):
    opts = f"DATASETS.TRAIN ('{SYNTHETIC_VAL_MINI}',) INPUT.MIN_SIZE_TRAIN (96,128) INPUT.MAX_SIZE_TRAIN 200"
    opts += f" DATALOADER.NUM_WORKERS {workers} SOLVER.IMS_PER_BATCH 2"
    return build_config(SYNTHETIC_CONFIG, opts.split())


def our_stream(cfg):
    """Our stream of `cfg` with sampler seed SEED, as build_checked_train_loader builds it."""
    records = checked_training_records(cfg)
    mapper = FileNamingMapper(ImageModeDatasetMapper(cfg, is_train=True))
    return TrainStream(records, mapper, cfg, batch_size=2, num_workers=cfg.DATALOADER.NUM_WORKERS, seeds=[SEED])


def take(stream_iterator, count):
    return list(itertools.islice(stream_iterator, count))


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for batch, other in zip(first, second):
        assert [d["file_name"] for d in batch] == [d["file_name"] for d in other]
        for mapped, other_mapped in zip(batch, other):
            assert torch.equal(mapped["image"], other_mapped["image"])  # the same resize and flip
            assert torch.equal(mapped["instances"].gt_boxes.tensor, other_mapped["instances"].gt_boxes.tensor)


def seed_everything():
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_detectron2s_loader_batches_bit_for_bit(workers):
    """detectron2's loader with the same sampler seed and the same global generators: the same images
    in the same batches (portrait and landscape apart), resized and flipped alike, mapped in this
    process or in 2 loader workers."""
    cfg = stream_config(workers)
    records = checked_training_records(cfg)
    assert len({record["width"] > record["height"] for record in records}) == 2  # both groups are exercised
    theirs = build_detection_train_loader(
        cfg,
        dataset=records,
        mapper=FileNamingMapper(ImageModeDatasetMapper(cfg, is_train=True)),
        sampler=TrainingSampler(len(records), seed=SEED),
        total_batch_size=2,
    )
    seed_everything()
    expected = take(iter(theirs), 10)
    seed_everything()
    assert_same_batches(take(iter(our_stream(cfg)), 10), expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_continued_from_its_state_yields_what_it_would_have(workers):
    """Stopped after 5 batches (the generators of the training process saved with its position, as a
    checkpoint saves them) and continued in a new stream: the same images, resized and flipped
    alike, as the stream that went on."""
    cfg = stream_config(workers)
    seed_everything()
    stream = our_stream(cfg)
    batches = iter(stream)
    take(batches, 5)
    state, generators = stream.state_dict(), capture_random_state()
    assert state["next_position"] >= 10 and sum(map(len, state["waiting"])) == state["next_position"] - 10
    expected = take(batches, 6)

    continued = our_stream(cfg)
    continued.load_state_dict(state)
    restore_random_state(generators)
    assert_same_batches(take(iter(continued), 6), expected)


def test_other_loader_workers_continue_the_same_images_with_a_warning(caplog):
    seed_everything()
    stream = our_stream(stream_config(workers=2))
    batches = iter(stream)
    take(batches, 3)
    state = stream.state_dict()
    expected = take(batches, 4)
    continued = our_stream(stream_config(workers=0))
    with caplog.at_level(logging.WARNING):
        continued.load_state_dict(state)
    assert "DATALOADER.NUM_WORKERS is 0, the checkpoint's run had 2" in caplog.text
    names = [[[d["file_name"] for d in batch] for batch in batches] for batches in (take(iter(continued), 4), expected)]
    assert names[0] == names[1]


def test_random_state_round_trips():
    state = capture_random_state()
    drawn = (random.random(), np.random.rand(), torch.rand(1))
    restore_random_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == drawn


def test_a_position_cannot_be_set_once_batches_were_taken():
    stream = our_stream(stream_config())
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
    stream = our_stream(stream_config())
    with caplog.at_level(logging.WARNING):
        assert RankState.restore(checkpoint, stream) is None
    assert warning in caplog.text
    assert stream.state_dict()["next_position"] == 0


def test_a_batch_size_the_processes_cannot_share_is_refused(monkeypatch):
    monkeypatch.setattr("mask_rcnn_ext.engine.training_data.comm.get_world_size", lambda: 4)
    with pytest.raises(ValueError, match=r"SOLVER.IMS_PER_BATCH \(2\) must be a multiple of the number of processes"):
        build_checked_train_loader(stream_config())


def test_waiting_images_of_another_batch_size_are_passed_over_with_a_warning(caplog):
    stream = our_stream(stream_config())
    take(iter(stream), 4)
    state = dict(stream.state_dict(), waiting=[[{"position": 7, "index": 0, "random": capture_random_state()}], []])
    other = our_stream(stream_config())
    other.batch_size = 3
    with caplog.at_level(logging.WARNING):
        other.load_state_dict(state)
    assert "(2, True): its 1 images waiting for a batch are passed over" in caplog.text
    assert other.state_dict()["waiting"] == [[], []] and other.state_dict()["next_position"] == state["next_position"]
