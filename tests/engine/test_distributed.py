"""Multi-process training and evaluation on the CPU (GLOO): through detectron2's launcher
(`tools/train_net.py --num-gpus 2` on a machine without a GPU, or two machines on localhost),
torchrun and SLURM's srun (its environment)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from detectron2.utils import comm

from mask_rcnn_ext.engine import EVAL_RESULTS_FILE
from mask_rcnn_ext.engine.distributed import share_cpu_cores

from conftest import (
    COMPARED_EVAL_THREADS,
    KILLED_RUN_OPTS,
    REPO_ROOT,
    SHORT_RUN_OPTS,
    SYNTHETIC_CONFIG,
    TESTS_DIR,
    TOOLS_DIR,
    assert_same_weights,
    coco_predictions,
    run_tool,
)

# Imported into each training process (tools/train_net.py --import): when its iteration AT_ITER
# starts, the rank PROBED_RANK dies as `kill -9` would (KILL, on torchrun's first attempt only) or
# hangs (HANG); on torchrun's second attempt, a process writing the file KILL_WRITING writes a part of
# it and dies; after training the main process saves every rank's parameters to
# OUTPUT_DIR/rank_parameters.pth.
RANK_PROBE = """
import os, time, torch
from detectron2.engine import train_loop
from detectron2.utils import comm
from mask_rcnn_ext import Trainer

attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
_run_step = train_loop.SimpleTrainer.run_step
def run_step(self):
    if os.environ.get("AT_ITER") == str(self.iter) and os.environ.get("PROBED_RANK") == str(comm.get_rank()):
        if os.environ.get("KILL") and attempt == "0":
            os.kill(os.getpid(), 9)
        if os.environ.get("HANG"):
            time.sleep(600)
    return _run_step(self)
train_loop.SimpleTrainer.run_step = run_step

_save = torch.save
def save(obj, f, *args, **kwargs):
    if os.environ.get("KILL_WRITING", "?") in getattr(f, "name", "") and attempt == "1":
        f.write(b"the first bytes of a checkpoint"); f.flush()
        os.kill(os.getpid(), 9)
    return _save(obj, f, *args, **kwargs)
torch.save = save

_train = Trainer.train
def train(self):
    results = _train(self)
    ranks = comm.gather(torch.cat([p.detach().flatten() for p in self.model.parameters()]), dst=0)
    if comm.is_main_process():
        torch.save(ranks, os.path.join(self.cfg.OUTPUT_DIR, "rank_parameters.pth"))
    return results
Trainer.train = train
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoProcessRun:
    """The killed run (KILLED_RUN_OPTS) in 2 CPU processes of 2 images each, 1 torch thread each (equal
    thread counts give equal sums), with RANK_PROBE imported, started by one engine or another."""

    def __init__(self, tmp_path, datasets_env):
        (tmp_path / "rank_probe.py").write_text(RANK_PROBE)
        self.tmp_path = tmp_path
        self.env = dict(os.environ, **datasets_env, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        self.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), TESTS_DIR])

    def train_net(self, output_dir, *arguments, opts=()) -> list[str]:
        options = [*KILLED_RUN_OPTS, "SOLVER.IMS_PER_BATCH", "4", "OUTPUT_DIR", str(output_dir), *opts]
        script = os.path.join(TOOLS_DIR, "train_net.py")
        return [script, *arguments, "--import", "rank_probe", "--config-file", SYNTHETIC_CONFIG, *options]

    def run_together(self, commands: list[list[str]], envs: list[dict], log_name: str) -> list[int]:
        """Start `commands` at once (each with its `envs` added) and return their exit codes."""
        with open(self.tmp_path / log_name, "w") as log:
            processes = [
                subprocess.Popen(command, cwd=REPO_ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
                for command, env in zip(commands, envs)
            ]
            codes = [process.wait(timeout=600) for process in processes]
        if any(codes):
            print((self.tmp_path / log_name).read_text()[-6000:])
        return codes

    def slurm(self, output_dir) -> list[int]:
        """Two tasks of one SLURM step, as srun starts them."""
        step = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "localhost"}
        step["MASTER_PORT"] = str(free_port())
        envs = [{**step, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0"} for rank in (0, 1)]
        return self.run_together([[sys.executable, *self.train_net(output_dir)]] * 2, envs, "slurm.log")

    def detectron2_two_machines(self, output_dir) -> list[int]:
        """detectron2's launcher on two "machines" of one process each, on localhost."""
        url = f"tcp://127.0.0.1:{free_port()}"
        machine = ["--num-machines", "2", "--dist-url", url, "--machine-rank"]
        commands = [[sys.executable, *self.train_net(output_dir, *machine, str(rank))] for rank in (0, 1)]
        return self.run_together(commands, [{}, {}], "detectron2.log")

    def torchrun(self, output_dir, *torchrun_arguments, env=()) -> list[int]:
        """torchrun's 2 workers on this machine."""
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        return self.run_together(
            [command + [*torchrun_arguments, *self.train_net(output_dir)]], [dict(env)], "torchrun.log"
        )

    def torchrun_two_nodes(self, output_dir) -> list[int]:
        """torchrun on two "nodes" of one worker each, on localhost, meeting by c10d rendezvous."""
        node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
        node += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "two_nodes"]
        return self.run_together([node + self.train_net(output_dir)] * 2, [{}, {}], "torchrun_two_nodes.log")


@pytest.fixture(scope="module")
def srun_run(tmp_path_factory, datasets_env):
    """(TwoProcessRun, OUTPUT_DIR) of the run trained by two tasks of a SLURM step, as srun starts them:
    the weights every other engine's run must end with."""
    tmp_path = tmp_path_factory.mktemp("engines")
    run = TwoProcessRun(tmp_path, datasets_env)
    assert run.slurm(tmp_path / "slurm") == [0, 0]
    return run, tmp_path / "slurm"


def final_weights(output_dir) -> dict:
    return torch.load(output_dir / "model_final.pth")["model"]


@pytest.mark.slow  # trains in subprocesses
def test_two_srun_tasks_train_as_one_model(srun_run):
    """Both processes end with the same parameters (their gradients averaged); the main process alone
    wrote the checkpoints, with both ranks' stream positions."""
    _, output_dir = srun_run
    ranks = torch.load(output_dir / "rank_parameters.pth")
    assert len(ranks) == 2 and torch.equal(ranks[0], ranks[1])
    first = torch.load(output_dir / "model_0000002.pth")["model"]
    assert not all(torch.equal(first[name], final_weights(output_dir)[name]) for name in first)  # training moved them
    assert len(torch.load(output_dir / "model_0000005.pth")["ranks"]) == 2
    assert "This process is worker 0 of 2, started by slurm" in (output_dir / "log.txt").read_text()


@pytest.mark.slow  # trains in subprocesses
def test_detectron2s_launcher_on_two_machines_trains_the_same_model(srun_run, tmp_path):
    run, reference = srun_run
    assert run.detectron2_two_machines(tmp_path / "detectron2") == [0, 0]
    assert_same_weights(tmp_path / "detectron2" / "model_final.pth", final_weights(reference))


@pytest.mark.slow  # trains in subprocesses
def test_torchrun_on_two_nodes_trains_the_same_model(srun_run, tmp_path):
    run, reference = srun_run
    assert run.torchrun_two_nodes(tmp_path / "two_nodes") == [0, 0]
    assert "started by torchrun" in (tmp_path / "two_nodes" / "log.txt").read_text()
    assert_same_weights(tmp_path / "two_nodes" / "model_final.pth", final_weights(reference))


@pytest.mark.slow  # trains in subprocesses
def test_torchrun_restarts_resume_by_themselves_to_the_same_model(srun_run, tmp_path):
    """Under --max-restarts 2: process 1 killed between the checkpoints of iterations 5 and 8, then,
    in the restarted group, process 0 killed while writing the checkpoint of iteration 8. Each time
    torchrun restarts both, which resume from the newest complete checkpoint by themselves, each
    rank's data stream and random generators continued: the weights of the run never stopped."""
    run, reference = srun_run
    output_dir = tmp_path / "torchrun"
    kills = {"AT_ITER": "7", "PROBED_RANK": "1", "KILL": "1", "KILL_WRITING": "model_0000008.pth"}
    assert run.torchrun(output_dir, "--max-restarts", "2", env=kills) == [0]
    log = (output_dir / "log.txt").read_text()
    assert "torchrun restarted the workers (1 restart(s))" in log and "(2 restart(s))" in log
    assert log.count("Starting training from iteration 6") == 2  # both restarts resumed from model_0000005
    assert not list(output_dir.glob("*.partial*"))  # the torn write was cleared by the next one
    assert_same_weights(output_dir / "model_final.pth", final_weights(reference))


def largest_difference(weights: dict, others: dict) -> float:
    return max((weights[name].double() - others[name].double()).abs().max().item() for name in weights)


@pytest.mark.slow  # trains in subprocesses
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_a_restarted_worker_ends_within_the_spread_of_uninterrupted_runs(tmp_path, datasets_env):
    """On CUDA some kernels add in a varying order (RoIAlign's backward, scatter-adds), so two
    uninterrupted runs of one seed differ in their last bits, and a resumed run cannot be compared
    with one bit for bit. What holds: under torchrun --max-restarts 1, a worker killed between the
    checkpoints of iterations 5 and 8 is restarted and resumes on the GPU by itself, its data stream
    and random generators (the GPU's too) continued, and it ends no further from an uninterrupted run
    than a second uninterrupted run is."""
    run = TwoProcessRun(tmp_path, datasets_env)
    del run.env["CUDA_VISIBLE_DEVICES"]
    on_gpu = ["MODEL.DEVICE", "cuda"]
    uninterrupted = [tmp_path / "uninterrupted_1", tmp_path / "uninterrupted_2"]
    for output_dir in uninterrupted:
        assert run.run_together([[sys.executable, *run.train_net(output_dir, opts=on_gpu)]], [{}], "plain.log") == [0]
    resumed = tmp_path / "torchrun"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    command = [*torchrun, "--max-restarts", "1", *run.train_net(resumed, opts=on_gpu)]
    kill = {"AT_ITER": "7", "PROBED_RANK": "0", "KILL": "1"}
    assert run.run_together([command], [kill], "torchrun.log") == [0]
    log = (resumed / "log.txt").read_text()
    assert "MaskRCNN training on cuda:0" in log and "Starting training from iteration 6" in log
    assert "cuda" in torch.load(resumed / "model_0000005.pth")["ranks"][0]["random"]
    spread = largest_difference(final_weights(uninterrupted[0]), final_weights(uninterrupted[1]))
    difference = largest_difference(final_weights(resumed), final_weights(uninterrupted[0]))
    print(f"uninterrupted runs differ by up to {spread:.3g}, the resumed one from the first by {difference:.3g}")
    assert difference <= 4 * spread


@pytest.mark.slow  # trains in subprocesses
def test_a_hung_process_ends_the_job_within_the_timeout_naming_it(tmp_path, datasets_env):
    """Process 1 hangs when its iteration 3 starts; process 0 waits in that iteration's gradient
    all-reduce for MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES (3 s) and ends the job naming rank 1 and
    what it was doing."""
    run = TwoProcessRun(tmp_path, datasets_env)
    output_dir = tmp_path / "hung"
    command = run.train_net(output_dir, "--num-gpus", "2", opts=["MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES", "0.05"])
    start = time.monotonic()
    assert run.run_together(
        [[sys.executable, *command]], [{"AT_ITER": "3", "PROBED_RANK": "1", "HANG": "1"}], "hung.log"
    ) == [1]
    assert time.monotonic() - start < 90  # start-up, 3 iterations, 3 s of waiting: not the 600 s of the hang
    log = (output_dir / "log.txt").read_text()
    assert "Rank 0 stopped waiting for the other processes in 'iteration 3: backward and gradient all-reduce'" in log
    assert "Their last reports, the oldest first: rank 1: 'iteration 3: data loading and forward'" in log
    assert "Timed out waiting 3000ms" in log and "MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES sets how long" in log


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
