"""Where detectron2's multi-process training needs help (v0.6 and main alike).

* Models on the CPU: detectron2 wraps the model in DistributedDataParallel with
  `device_ids=[local rank]`, which torch refuses for a module on the CPU. Its launcher already
  picks GLOO when there is no GPU, so with the model wrapped as below `tools/train_net.py
  --num-gpus N` runs N CPU processes too; on GPUs the wrapping is detectron2's own.
* Leaving: detectron2's launcher returns from each worker with its process group alive, and a
  process that exits so can abort in GLOO's teardown ("terminate called without an active
  exception") after its work is done, which fails the whole launch.
* Threads: every process of a machine starts with as many intra-op threads as the machine has
  cores, so N CPU processes run N times too many and spin against each other (2 processes on 2
  cores evaluated 5 times slower than one). torchrun sets OMP_NUM_THREADS=1; detectron2's
  launcher sets nothing.
"""

import logging
import os

import torch
import torch.distributed as dist
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm

logger = logging.getLogger(__name__)


def wrap_for_distributed(model: torch.nn.Module) -> torch.nn.Module:
    """`model` itself in a single process, else DistributedDataParallel as detectron2's trainer
    makes it (buffers not broadcast), with no device ids for a CPU model."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).device.type == "cuda":
        # the current device (detectron2's launcher and `launch.join_process_group` set it), which
        # under srun may differ from the rank within the machine's group
        return create_ddp_model(model, broadcast_buffers=False, device_ids=[torch.cuda.current_device()])
    return create_ddp_model(model, broadcast_buffers=False, device_ids=None)


def shut_down_process_group() -> None:
    """Wait for every rank, then destroy the process group (if any) before the worker returns."""
    if dist.is_available() and dist.is_initialized():
        comm.synchronize()
        dist.destroy_process_group()


def cpu_threads_per_process(processes: int) -> int:
    """Each of `processes` processes' share of the cores this process may run on (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) // processes)


def share_cpu_cores() -> None:
    """With several processes on this machine and no OMP_NUM_THREADS of the user's, give each
    process its share of the cores (`cpu_threads_per_process`) as torch's intra-op threads."""
    processes = comm.get_local_size()
    if processes <= 1 or "OMP_NUM_THREADS" in os.environ:
        return
    threads = cpu_threads_per_process(processes)
    if torch.get_num_threads() != threads:
        logger.info(f"{processes} processes on this machine: {threads} torch threads each (OMP_NUM_THREADS sets them)")
        torch.set_num_threads(threads)
