"""What a `tools/train_net.py` invocation writes in OUTPUT_DIR, and when: nothing of an earlier run
is changed before this one's checks have passed.

detectron2's `default_setup` replaces OUTPUT_DIR/config.yaml and appends to log.txt first thing,
so a run that then fails on bad weights, data or arguments has already overwritten the record of
how the finished model was trained. Here (`RunRecords`):
  - at start, each invocation writes only new files: invocations/<time>/config.yaml (its resolved
    config, atomically) and invocations/<time>/log.txt (its whole log, a failure's traceback too);
  - once its checks have passed (`checks_passed`): its log so far is appended to log.txt and the
    rest follows there; config.yaml is replaced (atomically) by a run that trains, and written by
    one that only evaluates where there is none.
Logs of rank r > 0 are log.txt.rank<r>, as detectron2 names them.
"""

import logging
import os
import time
from typing import Optional

import torch
from detectron2.config import CfgNode
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from ..io_utils import write_atomically
from . import launch

INVOCATIONS_DIR = "invocations"
# The loggers whose records go to the log files: detectron2's, fvcore's (its checkpointer) and ours
LOGGER_NAMES = ("detectron2", "fvcore", "mask_rcnn_ext")
# detectron2's log.txt format
FILE_FORMAT = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")

logger = logging.getLogger(__name__)


def _log_name(rank: int) -> str:
    return "log.txt" if rank == 0 else f"log.txt.rank{rank}"


def _new_invocation_dir(output_dir: str) -> str:
    """Create and return OUTPUT_DIR/invocations/<local time>[-k], a folder no other invocation has."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = os.path.join(output_dir, INVOCATIONS_DIR, stamp if k == 0 else f"{stamp}-{k}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a new folder in {os.path.join(output_dir, INVOCATIONS_DIR)}")


class RunRecords:
    """The log and config files of one invocation (a context manager: its log handlers are removed
    on exit, and an exception that ends the run is logged to its invocation log first).

    Args:
        cfg: the run's config (OUTPUT_DIR, SEED, CUDNN_BENCHMARK are read).
        args: the command line arguments, logged.
    """

    def __init__(self, cfg: CfgNode, args):
        self.cfg, self.rank = cfg, comm.get_rank()
        self.output_dir = cfg.OUTPUT_DIR
        folder = _new_invocation_dir(self.output_dir) if comm.is_main_process() else None
        self.invocation_dir = comm.all_gather(folder)[0]  # rank 0's, for every rank
        os.makedirs(self.invocation_dir, exist_ok=True)  # ranks on other machines
        self._handlers: list[logging.Handler] = []
        for name in LOGGER_NAMES:  # the console (rank 0); cached, so added once per process
            setup_logger(distributed_rank=self.rank, name=name)
        self._add_log_file(os.path.join(self.invocation_dir, _log_name(self.rank)))
        self._log_start(args)
        if comm.is_main_process():
            write_atomically(os.path.join(self.invocation_dir, "config.yaml"), lambda f: f.write(cfg.dump().encode()))
        seed = cfg.SEED
        seed_all_rng(None if seed < 0 else seed + self.rank)  # as detectron2: distinct, deterministic per rank
        if not getattr(args, "eval_only", False):
            torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK

    def _add_log_file(self, path: str) -> None:
        handler = logging.FileHandler(path, mode="a")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(FILE_FORMAT)
        for name in LOGGER_NAMES:
            logging.getLogger(name).addHandler(handler)
        self._handlers.append(handler)

    def _log_start(self, args) -> None:
        logger.info(f"Rank of current process: {self.rank}. World size: {comm.get_world_size()}")
        if launch.started_by:
            logger.info(f"This process is {launch.started_by}")
        logger.info("Environment info:\n" + collect_env_info())
        logger.info(f"Command line arguments: {args}")
        logger.info(f"Running with full config:\n{self.cfg.dump()}")
        logger.info(f"This invocation's config and log: {self.invocation_dir}")

    def checks_passed(self, trains: bool) -> None:
        """The config, data and weights were accepted: continue the run's log in OUTPUT_DIR/log.txt
        (this invocation's log so far appended first) and, if `trains` or there is none, write its
        config to OUTPUT_DIR/config.yaml."""
        invocation_log = self._handlers[0]
        invocation_log.flush()
        with (
            open(invocation_log.baseFilename, "rb") as source,
            open(os.path.join(self.output_dir, _log_name(self.rank)), "ab") as log,
        ):
            log.write(source.read())
        self._add_log_file(os.path.join(self.output_dir, _log_name(self.rank)))
        config = os.path.join(self.output_dir, "config.yaml")
        if comm.is_main_process() and (trains or not os.path.exists(config)):
            write_atomically(config, lambda f: f.write(self.cfg.dump().encode()))
            logger.info(f"Full config saved to {config}")

    def __enter__(self) -> "RunRecords":
        return self

    def __exit__(self, error_type, error: Optional[BaseException], traceback) -> None:
        if error is not None:  # to the log files only: the console shows Python's own report
            record = logger.makeRecord(
                logger.name, logging.ERROR, __file__, 0, "The run failed:", None, (error_type, error, traceback)
            )
            for handler in self._handlers:
                handler.handle(record)
        for handler in self._handlers:
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeHandler(handler)
            handler.close()
