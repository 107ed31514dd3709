"""Bounded waits between processes, and which process kept the others waiting.

A process that hangs (a stuck file read, a deadlock) rather than dies leaves the others blocked in
the next collective (the gradient all-reduce, a gather) for the process group's timeout, 30 minutes
with detectron2's launcher, and then torch reports "Timed out waiting 1800000ms for recv operation
to complete", naming no process. Here:

* the timeouts are settings (MASK_RCNN_EXT.DISTRIBUTED): one for training's collectives, applied when
  the Trainer is built, and a longer one for evaluation, whose inference and the main process's
  scoring may take minutes while the others wait (`evaluation_timeout`);
* each process posts its phase (iteration and step, evaluation) to the store the processes met in
  (`ProgressBoard`): two small writes per iteration;
* a wait that times out or loses its peer is raised again as `PeerWaitError`, with what each other
  process last reported and how long ago, the oldest first: the process that kept the others
  waiting leads (`ProgressBoard.explain`).

GLOO (CPU) raises the timeout in the waiting process, so the message is ours. NCCL's watchdog aborts
a process whose collective timed out, with its own message; the timeout applies all the same.
"""

import contextlib
import json
import logging
import time
from datetime import timedelta
from typing import Optional

import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

logger = logging.getLogger(__name__)

_KEY = "mask_rcnn_ext/progress/{rank}"
# What torch's messages say when a collective waited too long or its peer went away.
_WAIT_FAILURES = (
    "timed out waiting",
    "connection closed by peer",
    "connection reset by peer",
    "collective operation timeout",  # NCCL's watchdog, where the process lives to raise it
)


class PeerWaitError(RuntimeError):
    """A collective timed out or lost a peer; the message gives the other processes' last phases."""


def set_timeout(minutes: float) -> None:
    """Collectives of this process wait at most `minutes` for the others (the default group, which
    DistributedDataParallel's all-reduce uses, and the GLOO group of detectron2's gathers)."""
    if comm.get_world_size() == 1:
        return
    timeout = timedelta(minutes=minutes)
    dist.set_timeout(timeout)
    gather_group = comm._get_global_gloo_group()  # the default group itself on GLOO; created once on NCCL
    if gather_group is not dist.group.WORLD:
        dist.set_timeout(timeout, gather_group)


@contextlib.contextmanager
def evaluation_timeout(node):
    """The evaluation's timeout (`node`: MASK_RCNN_EXT.DISTRIBUTED) inside, training's after."""
    set_timeout(node.EVAL_TIMEOUT_MINUTES)
    try:
        yield
    finally:
        set_timeout(node.TIMEOUT_MINUTES)


class ProgressBoard:
    """Every process's last reported phase, in the store of the default process group (none in a
    single process: reports are dropped)."""

    def __init__(self):
        distributed = comm.get_world_size() > 1
        self.store = dist.distributed_c10d._get_default_store() if distributed else None
        self.rank = comm.get_rank()

    def report(self, phase: str) -> None:
        if self.store is not None:
            self.store.set(_KEY.format(rank=self.rank), json.dumps({"phase": phase, "time": time.time()}))

    def reports(self) -> dict[int, dict]:
        """{rank: {"phase", "time"}} of the processes that reported; {} when the store is gone (the
        process that served it died)."""
        found = {}
        try:
            self.store.set_timeout(timedelta(seconds=10))
            for rank in range(comm.get_world_size()):
                key = _KEY.format(rank=rank)
                if self.store.check([key]):
                    found[rank] = json.loads(self.store.get(key))
        except Exception as error:  # noqa: BLE001 (any failure to read leaves the message without them)
            logger.warning(f"Could not read the other processes' progress: {error}")
        return found

    def explain(self, error: BaseException, timeout_key: str) -> Optional[PeerWaitError]:
        """A PeerWaitError for `error` when it is a collective's timeout or lost peer, with every other
        process's last phase and its age, the oldest first (`timeout_key`: the setting to raise);
        None for any other error."""
        if self.store is None or not any(words in str(error).lower() for words in _WAIT_FAILURES):
            return None
        reports, now = self.reports(), time.time()
        mine = reports.get(self.rank, {}).get("phase", "?")
        others = sorted(
            (report["time"], rank, report["phase"]) for rank, report in reports.items() if rank != self.rank
        )
        lines = [f"rank {rank}: {phase!r}, {now - reported:.0f} s ago" for reported, rank, phase in others]
        silent = [rank for rank in range(comm.get_world_size()) if rank not in reports]
        if silent:
            lines.append(f"no report from rank(s) {silent}")
        behind = "; ".join(lines)
        return PeerWaitError(
            f"Rank {self.rank} stopped waiting for the other processes in {mine!r}: {str(error).strip()}. "
            f"Their last reports, the oldest first: {behind}. A process that hangs or is far slower keeps the "
            f"others waiting; {timeout_key} sets how long they wait."
        )

    @contextlib.contextmanager
    def naming_laggards(self, timeout_key: str):
        """Errors inside pass as they are, but for a wait that timed out or lost a peer: raised as
        the PeerWaitError `explain` makes of it."""
        try:
            yield
        except PeerWaitError:  # explained already (an evaluation's, inside training)
            raise
        except Exception as error:
            explained = self.explain(error, timeout_key)
            if explained is None:
                raise
            raise explained from error


class ProgressReporter(HookBase):
    """Posts each iteration's phases to the ProgressBoard: data loading and forward, then (after
    the model's forward, by a forward hook) backward and the gradient all-reduce."""

    def __init__(self, board: ProgressBoard):
        self.board = board
        self._handle = None

    def before_train(self):
        self._handle = self.trainer.model.register_forward_hook(self._forward_done)

    def _forward_done(self, module, inputs, outputs) -> None:
        if module.training:  # not evaluation's forwards, which report their own phase
            self.board.report(f"iteration {self.trainer.iter}: backward and gradient all-reduce")

    def after_train(self):
        self._handle.remove()

    def before_step(self):
        self.board.report(f"iteration {self.trainer.iter}: data loading and forward")
