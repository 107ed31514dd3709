"""Multi-process training and evaluation on the CPU (GLOO) through detectron2's launcher:
`tools/train_net.py --num-gpus 2` on a machine without a GPU."""

import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.utils import comm

from mask_rcnn_ext.engine import EVAL_RESULTS_FILE
from mask_rcnn_ext.engine.distributed import share_cpu_cores

from conftest import (
    COMPARED_EVAL_THREADS,
    REPO_ROOT,
    SHORT_RUN_OPTS,
    SYNTHETIC_CONFIG,
    SYNTHETIC_VAL_MINI,
    coco_predictions,
    run_tool,
)

# Each rank reports its parameters before and after 3 iterations (the demo's model on the 10-image
# split at 128 px, no loader process); rank 0 compares them.
TRAIN_SCRIPT = """
import json, sys, torch
from detectron2.engine import launch
from detectron2.utils import comm
from mask_rcnn_ext import Trainer, build_config
from mask_rcnn_ext.engine.distributed import shut_down_process_group


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])

def main(out):
    cfg = build_config({config!r}, ["SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "DATASETS.TEST", "()",
                                    "SOLVER.CHECKPOINT_PERIOD", "100000", "OUTPUT_DIR", out,
                                    "DATASETS.TRAIN", "('{mini}',)", "INPUT.MIN_SIZE_TRAIN", "(128,)",
                                    "INPUT.MAX_SIZE_TRAIN", "200", "DATALOADER.NUM_WORKERS", "0"])
    trainer = Trainer(cfg)
    model = trainer.model.module  # wrapped in DistributedDataParallel
    before = flat(model)
    trainer.train()
    after = comm.all_gather(flat(model))
    if comm.is_main_process():
        with open(out + "/ranks.json", "w") as f:
            json.dump({{"world_size": comm.get_world_size(), "moved": float((after[0] - before).abs().max()),
                       "rank_difference": float((after[0] - after[1]).abs().max())}}, f)
    shut_down_process_group()

if __name__ == "__main__":
    launch(main, 2, dist_url="auto", args=(sys.argv[1],))
"""


def cpu_only(datasets_env):
    return dict(os.environ, CUDA_VISIBLE_DEVICES="", **datasets_env)  # detectron2's launcher then picks GLOO


@pytest.mark.slow  # trains in subprocesses
def test_two_cpu_processes_keep_identical_parameters(tmp_path, datasets_env):
    script = tmp_path / "train_two.py"
    script.write_text(TRAIN_SCRIPT.format(config=SYNTHETIC_CONFIG, mini=SYNTHETIC_VAL_MINI))
    subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=REPO_ROOT, env=cpu_only(datasets_env), check=True, timeout=600
    )
    with open(tmp_path / "ranks.json") as f:
        ranks = json.load(f)
    assert ranks["world_size"] == 2
    assert ranks["moved"] > 1e-4  # the 3 steps changed the weights ...
    assert ranks["rank_difference"] == 0.0  # ... identically on both ranks: gradients were averaged
    # The main process alone wrote the final checkpoint, once, and the metrics of iterations 0, 1, 2.
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["model_final.pth"]
    with open(tmp_path / "metrics.json") as f:
        assert json.loads(f.readlines()[-1])["iteration"] == 2


@pytest.mark.slow  # trains in subprocesses
def test_two_process_evaluation_equals_one_process(short_run, tmp_path, datasets_env):
    """`--eval-only` on the short run's final weights, in 2 CPU processes (each half of the test split,
    predictions gathered by COCOEvaluator and the keypoint diagnostics), reproduces the evaluation
    that ended its training in one process: the same numbers from the same detections."""
    output_dir = tmp_path / "eval2"
    weights = os.path.join(short_run, "model_final.pth")
    run_tool(
        "train_net.py",
        ["--config-file", SYNTHETIC_CONFIG, "--eval-only", "--num-gpus", "2"]
        + [*SHORT_RUN_OPTS, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", output_dir],
        {**datasets_env, "CUDA_VISIBLE_DEVICES": ""},
        tmp_path / "log",
    )
    with open(output_dir / EVAL_RESULTS_FILE) as f:
        two = json.load(f)
    with open(os.path.join(short_run, EVAL_RESULTS_FILE)) as f:
        one = json.load(f)
    log = (output_dir / "log.txt").read_text()
    assert "World size: 2" in log  # `--num-gpus 2` without a GPU: 2 GLOO processes
    # each its share of the cores (or they would oversubscribe them): as many threads as the short run
    assert f"2 processes on this machine: {COMPARED_EVAL_THREADS} torch threads each" in log
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)  # text: NaN (no small objects) == NaN
    assert coco_predictions(output_dir) == coco_predictions(short_run)  # every detection gathered


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "local_processes, omp_num_threads, threads",
    [(1, None, 5), (2, None, 3), (4, None, 1), (2, "3", 5)],  # 6 cores; the user's OMP_NUM_THREADS is kept
)
def test_processes_of_a_machine_share_its_cores(
    local_processes, omp_num_threads, threads, monkeypatch, restore_torch_threads
):
    monkeypatch.setattr(comm, "get_local_size", lambda: local_processes)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    if omp_num_threads:
        monkeypatch.setenv("OMP_NUM_THREADS", omp_num_threads)
    else:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(5)
    share_cpu_cores()
    assert torch.get_num_threads() == threads
