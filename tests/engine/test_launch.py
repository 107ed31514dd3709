"""Which engine started a process (engine/launch.py), read from its environment; the trainings
through each engine are in test_distributed.py."""

from argparse import Namespace

import pytest
import torch

from mask_rcnn_ext.engine.launch import (
    SLURM_PORT_BASE,
    ClusterWorker,
    cluster_worker,
    first_host,
    launch,
    local_device,
)

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "29500"}
SRUN = {
    "SLURM_PROCID": "5",
    "SLURM_STEP_NUM_TASKS": "16",
    "SLURM_NTASKS": "16",
    "SLURM_LOCALID": "1",
    "SLURM_JOB_ID": "123456",
}


@pytest.mark.parametrize(
    "nodelist, host",
    [("gpu[07-09,12],cpu3", "gpu07"), ("node5", "node5"), ("a-b[1-2]", "a-b1"), ("c[003]", "c003"), ("x,y", "x")],
)
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_torchrun_worker():
    assert cluster_worker(TORCHRUN) == ClusterWorker("torchrun", 3, 8, "10.0.0.2", 29500)


def test_srun_task_rendezvous_on_the_first_node_at_a_port_of_its_job():
    worker = cluster_worker({**SRUN, "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_NODELIST": "gpu[01-08]"})
    assert worker == ClusterWorker("slurm", 5, 16, "gpu07", SLURM_PORT_BASE + 123456 % 20000)
    explicit = cluster_worker({**SRUN, "SLURM_NODELIST": "n1", "MASTER_ADDR": "head", "MASTER_PORT": "1234"})
    assert (explicit.master_addr, explicit.master_port) == ("head", 1234)


def test_torchrun_inside_a_slurm_allocation_is_torchrun():
    assert cluster_worker({**SRUN, "SLURM_NODELIST": "n1", **TORCHRUN}).engine == "torchrun"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1", "SLURM_NODELIST": "n1"},
        {"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_NODELIST": "n[1-2]"},  # the batch script itself
    ],
    ids=["plain", "one-task step", "batch script"],
)
def test_a_plain_run_a_single_task_or_a_batch_script_is_no_cluster_worker(environ):
    assert cluster_worker(environ) is None  # detectron2's launcher, with --num-gpus, starts the workers


def test_num_gpus_under_torchrun_is_refused(monkeypatch):
    for key, value in TORCHRUN.items():
        monkeypatch.setenv(key, value)
    args = Namespace(num_gpus=2, num_machines=1, machine_rank=0, dist_url="auto")
    with pytest.raises(SystemExit, match="started by torchrun as worker 3 of 8.*torchrun --nproc-per-node"):
        launch(lambda _: pytest.fail("ran"), args)


@pytest.mark.parametrize("visible_gpus, device", [(4, 3), (1, 0)])  # 1: SLURM binds one GPU to each task
def test_a_workers_gpu_is_its_local_rank_among_those_it_sees(visible_gpus, device, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible_gpus)
    srun_task = cluster_worker({**SRUN, "SLURM_LOCALID": "3", "SLURM_NODELIST": "n1"})
    assert local_device(srun_task, {"SLURM_LOCALID": "3"}) == device
    assert local_device(cluster_worker(TORCHRUN), {**TORCHRUN, "LOCAL_RANK": "3"}) == device


@pytest.mark.parametrize(
    "environ, named",
    [
        ({**TORCHRUN, "RANK": "three"}, "RANK='three'"),
        ({**SRUN, "SLURM_NODELIST": "n1", "SLURM_PROCID": ""}, "SLURM_PROCID=''"),
    ],
)
def test_a_malformed_variable_is_named(environ, named):
    with pytest.raises(ValueError, match=f"the environment variable {named} is not an integer"):
        cluster_worker(environ)
