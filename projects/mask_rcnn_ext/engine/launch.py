"""Starting the workers of a training or evaluation: by detectron2's launcher (`--num-gpus`,
`--num-machines`, `--machine-rank`, `--dist-url`: it spawns one process per GPU), or by the cluster
engine that started this process as one of the workers already, which detectron2 does not
recognise:

* torchrun (and `python -m torch.distributed.run`) sets RANK, WORLD_SIZE, LOCAL_RANK,
  LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; under `--max-restarts N` it restarts every worker
  when one dies, with TORCHELASTIC_RESTART_COUNT counting the restarts.
* SLURM's srun sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID and the job's node
  list; the first node of the list serves the rendezvous, on MASTER_PORT or a port derived from the
  job id.

There the process joins that group (GLOO without a GPU, NCCL with one), builds detectron2's
per-machine group from the machines the ranks report, and runs the tool's main function itself.
"""

import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Optional

import torch
import torch.distributed as dist
from detectron2.engine import launch as detectron2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT
from detectron2.utils import comm

logger = logging.getLogger(__name__)

# The rendezvous port of a SLURM job without MASTER_PORT: one per job id in this range, so that two
# jobs sharing a first node do not collide; below Linux's ephemeral ports (32768 on).
SLURM_PORT_BASE, SLURM_PORT_RANGE = 12000, 20000
# How `launch` found this process started, when by a cluster engine (logged by `RunRecords`).
started_by: Optional[str] = None


@dataclass(frozen=True)
class ClusterWorker:
    """This process as one worker of a group a cluster engine started."""

    engine: str  # "torchrun" or "slurm"
    rank: int
    world_size: int
    master_addr: str
    master_port: int


def first_host(nodelist: str) -> str:
    """The first host name of a SLURM node list: "gpu[07-09,12],cpu3" -> "gpu07"."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]  # zero padding kept as written


def environment_int(environ, key: str, default: Optional[int] = None) -> int:
    """`environ[key]` as an integer; ValueError naming the variable when it is missing or not one."""
    value = environ.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"the environment variable {key}={value!r} is not an integer (set by the job's launcher)"
        ) from None


def cluster_worker(environ=os.environ) -> Optional[ClusterWorker]:
    """This process's place in a group started by torchrun or srun (from `environ`); None when it
    was started otherwise, or as the only task of a SLURM step (a plain run, which may spawn its own
    workers with --num-gpus)."""
    if "RANK" in environ and "WORLD_SIZE" in environ and "MASTER_ADDR" in environ:
        return ClusterWorker(
            engine="torchrun",
            rank=environment_int(environ, "RANK"),
            world_size=environment_int(environ, "WORLD_SIZE"),
            master_addr=environ["MASTER_ADDR"],
            master_port=environment_int(environ, "MASTER_PORT"),
        )
    # srun sets the step's variables; a batch script itself has SLURM_PROCID and SLURM_NTASKS too, but
    # no step of several tasks: run there, the tool is a plain run (which may spawn with --num-gpus).
    if "SLURM_PROCID" in environ and environment_int(environ, "SLURM_STEP_NUM_TASKS", 1) > 1:
        nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST") or environ["SLURM_NODELIST"]
        job_port = SLURM_PORT_BASE + environment_int(environ, "SLURM_JOB_ID", 0) % SLURM_PORT_RANGE
        return ClusterWorker(
            engine="slurm",
            rank=environment_int(environ, "SLURM_PROCID"),
            world_size=environment_int(environ, "SLURM_STEP_NUM_TASKS"),
            master_addr=environ.get("MASTER_ADDR") or first_host(nodelist),
            master_port=environment_int(environ, "MASTER_PORT", job_port),
        )
    return None


def local_device(worker: ClusterWorker, environ=os.environ) -> int:
    """The GPU of this process: its local rank as the engine numbers it (LOCAL_RANK, SLURM_LOCALID),
    modulo the GPUs it sees (one, where SLURM binds a GPU to each task)."""
    local_rank = environment_int(environ, "LOCAL_RANK" if worker.engine == "torchrun" else "SLURM_LOCALID", 0)
    return local_rank % torch.cuda.device_count()


def rendezvous_store(worker: ClusterWorker, timeout: timedelta) -> dist.Store:
    """Where the workers meet. torchrun's agent hosts a store at MASTER_ADDR:MASTER_PORT that outlives
    a restart, holding the addresses the workers of the attempt before left: each attempt meets under
    its own prefix (TORCHELASTIC_RESTART_COUNT), or a restarted worker may dial a dead one's address.
    Otherwise (srun) rank 0 hosts the store."""
    hosted_by_agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        worker.master_addr,
        worker.master_port,
        worker.world_size,
        is_master=worker.rank == 0 and not hosted_by_agent,
        timeout=timeout,
    )
    return dist.PrefixStore(f"mask_rcnn_ext/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}", store)


def join_process_group(worker: ClusterWorker, timeout: timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the group of `worker`'s engine, and set up what detectron2's launcher sets up for its
    workers: the GPU of this process (`local_device`) and the per-machine group
    (`comm.get_local_rank`, `get_local_size`)."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():  # before any collective: NCCL runs them on the current device
        torch.cuda.set_device(local_device(worker))
    dist.init_process_group(
        backend,
        store=rendezvous_store(worker, timeout),
        world_size=worker.world_size,
        rank=worker.rank,
        timeout=timeout,
    )
    # Each rank says on which machine it runs (ranks of one machine share its cores and GPUs, whatever
    # node rank the engine gave them); every rank creates every machine's group, in one order.
    machine = socket.gethostname()
    machines = [None] * worker.world_size
    dist.all_gather_object(machines, machine)
    for other in sorted(set(machines), key=machines.index):
        group = dist.new_group([rank for rank, name in enumerate(machines) if name == other])
        if other == machine:
            comm._LOCAL_PROCESS_GROUP = group  # where detectron2's launcher keeps it (v0.6 and main)
    comm.synchronize()


def launch(main_func: Callable, args) -> None:
    """Run `main_func(args)` in every worker: joining the group of the cluster engine that started
    this process, or else through detectron2's launcher with the command line's --num-gpus,
    --num-machines, --machine-rank and --dist-url."""
    worker = cluster_worker()
    if worker is None:
        detectron2_launch(
            main_func,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
        return
    if args.num_gpus != 1 or args.num_machines != 1:
        raise SystemExit(
            f"started by {worker.engine} as worker {worker.rank} of {worker.world_size}: each process is one "
            "worker, so --num-gpus and --num-machines are not used (set the processes per node in "
            f"{'torchrun --nproc-per-node' if worker.engine == 'torchrun' else 'srun --ntasks-per-node'})"
        )
    if worker.world_size > 1:
        join_process_group(worker)
    global started_by
    started_by = f"worker {worker.rank} of {worker.world_size}, started by {worker.engine}"
    main_func(args)


def resumes_after_elastic_restart() -> bool:
    """Whether torchrun has restarted this group of workers (after one died, under --max-restarts),
    so that training resumes from OUTPUT_DIR's newest checkpoint without --resume; logged."""
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    if restarts:
        logger.info(
            f"torchrun restarted the workers ({restarts} restart(s)): resuming from OUTPUT_DIR's newest checkpoint"
        )
    return restarts > 0
