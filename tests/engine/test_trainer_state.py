"""The Trainer's checkpointable state: what `--resume` restores, in-process on a tiny split."""

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from mask_rcnn_ext.data.builtin import register_synthetic_split
from mask_rcnn_ext.data.synthetic import SyntheticSpec
from mask_rcnn_ext.engine import Trainer, build_config
from mask_rcnn_ext.engine.trainer import INNER_TRAINER_KEY

from conftest import SYNTHETIC_CONFIG

SPLIT = "trainer_state_test"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer_state")
    register_synthetic_split(SPLIT, SyntheticSpec(num_images=4, seed=11), str(root / "data"))
    opts = [
        "DATASETS.TRAIN",
        f"('{SPLIT}',)",
        "DATASETS.TEST",
        "()",
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.WARMUP_ITERS",
        "1",
        "DATALOADER.NUM_WORKERS",
        "0",
        "SEED",
        "3",
        "OUTPUT_DIR",
        str(root / "out"),
    ]
    yield build_config(SYNTHETIC_CONFIG, opts)
    DatasetCatalog.remove(SPLIT)
    MetadataCatalog.remove(SPLIT)


def test_state_holds_and_restores_optimizer_and_scheduler(config):
    trained = Trainer(config)
    trained.train()
    state = trained.state_dict()
    momentum = [s["momentum_buffer"] for s in state[INNER_TRAINER_KEY]["optimizer"]["state"].values()]
    assert momentum and any(m.abs().sum() > 0 for m in momentum)  # SGD has moved

    fresh = Trainer(config)  # its LRScheduler hook is registered in __init__
    fresh.load_state_dict(state)
    assert fresh.iter == trained.iter == 3  # train() leaves iter one past the last iteration
    assert fresh.scheduler.last_epoch == trained.scheduler.last_epoch == 3
    restored = fresh.optimizer.state_dict()["state"]
    original = trained.optimizer.state_dict()["state"]
    assert restored.keys() == original.keys()
    for key in original:
        torch.testing.assert_close(restored[key]["momentum_buffer"], original[key]["momentum_buffer"], rtol=0, atol=0)


def test_state_without_optimizer_still_loads(config, caplog):
    """Checkpoints written by detectron2 v0.6's DefaultTrainer lack the optimizer; they load with a warning."""
    trainer = Trainer(config)
    state = trainer.state_dict()
    del state[INNER_TRAINER_KEY]
    state["iteration"] = 5
    trainer.load_state_dict(state)
    assert trainer.iter == 5
    assert "no optimizer state" in caplog.text
