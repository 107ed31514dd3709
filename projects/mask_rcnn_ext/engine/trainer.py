"""detectron2's DefaultTrainer, with evaluators chosen from dataset metadata, results kept on disk,
training and test data checked first, checked and atomic checkpoints that resume exactly (the data
stream and random generators included), multi-process training on the CPU with bounded waits that
report where every process was, and loss scaling for fp16 training (MASK_RCNN_EXT.PRECISION.TRAIN)."""

import logging
import os
import weakref
from typing import Optional

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import build_detection_test_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import add_mask_rcnn_ext_config
from ..data.dataset_mapper import ImageModeDatasetMapper
from ..io_utils import write_json_atomically
from ..modeling.precision import resolve_precision
from .checkpoint import Checkpointer
from .config_vs_datasets import check_config
from .data_stream import TrainStream
from .dataset_checks import check_test_datasets
from .distributed import share_cpu_cores, wrap_for_distributed
from .evaluators import build_evaluator
from .exact_resume import RankState, RankStateCheckpointer
from .peer_progress import ProgressBoard, ProgressReporter, evaluation_timeout, set_timeout
from .random_state import preserved_random_state
from .training_data import build_checked_train_loader

EVAL_RESULTS_FILE = "eval_results.json"
# Key of the inner SimpleTrainer's state (optimizer) inside the "trainer" checkpointable;
# the same key upstream detectron2 uses, so checkpoints move between versions.
INNER_TRAINER_KEY = "_trainer"

logger = logging.getLogger(__name__)


def build_config(config_file: str, opts=(), freeze: bool = True) -> CfgNode:
    """detectron2 defaults + mask_rcnn_ext keys + `config_file` + `opts`, checked against its datasets."""
    cfg = get_cfg()
    add_mask_rcnn_ext_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    check_config(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def scales_loss(cfg: CfgNode) -> bool:
    """Whether training needs detectron2's AMPTrainer, whose gradient scaler keeps fp16's small
    gradients from vanishing: for SOLVER.AMP.ENABLED, and where MASK_RCNN_EXT.PRECISION.TRAIN
    resolves to fp16. bf16 has float32's range and needs no scaling."""
    node = cfg.MASK_RCNN_EXT.PRECISION
    precision = resolve_precision(node.TRAIN, node.MEMORY_FORMAT, torch.device(cfg.MODEL.DEVICE), training=True)
    return cfg.SOLVER.AMP.ENABLED or precision.dtype == torch.float16


class Trainer(DefaultTrainer):
    """DefaultTrainer whose evaluators come from `evaluator_type` in each test dataset's metadata,
    and which writes every evaluation's results to OUTPUT_DIR/eval_results.json.

    Checkpoints also hold the optimizer state (detectron2 v0.6 saves only the iteration and the
    LR scheduler, so `--resume` there restarts SGD momentum from zero) and every rank's data stream
    position and random generators (`exact_resume`): a resumed run trains as the uninterrupted one.
    """

    def __init__(self, cfg: CfgNode):
        """DefaultTrainer.__init__ (the same in detectron2 v0.6 and main) but for three parts: the
        model's DistributedDataParallel wrapping is `wrap_for_distributed`'s, so that CPU processes
        (GLOO) can train together (DefaultTrainer's refuses a CPU model); checkpoints are written
        atomically and read with their faults named (`Checkpointer`); DATASETS.TEST is checked
        with the training data, before the first iteration (`check_test_datasets`). The processes
        of one machine share its cores (`share_cpu_cores`)."""
        TrainerBase.__init__(self)
        share_cpu_cores()
        set_timeout(cfg.MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES)
        self.progress = ProgressBoard()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):  # setup_logger not called for d2
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        check_test_datasets(cfg)
        model = wrap_for_distributed(model)
        self._trainer = (AMPTrainer if scales_loss(cfg) else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.train_stream = data_loader if isinstance(data_loader, TrainStream) else None  # None: a user's loader
        self.checkpointer = Checkpointer(
            model,
            cfg.OUTPUT_DIR,
            allow_partial=cfg.MASK_RCNN_EXT.WEIGHTS.ALLOW_PARTIAL,
            initializes_training=True,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self) -> list:
        """DefaultTrainer's hooks, with its checkpointing hook (on the main process) replaced by a
        RankStateCheckpointer on every rank, in the same place (before evaluation)."""
        built = [hook for hook in super().build_hooks() if not isinstance(hook, hooks.PeriodicCheckpointer)]
        evaluation = next(i for i, hook in enumerate(built) if isinstance(hook, hooks.EvalHook))
        self.rank_state_checkpointer = RankStateCheckpointer(
            self.checkpointer, self.cfg.SOLVER.CHECKPOINT_PERIOD, self.train_stream
        )
        built.insert(evaluation, self.rank_state_checkpointer)
        return [ProgressReporter(self.progress), *built]

    def train(self):
        """DefaultTrainer's; a wait for the other processes that timed out or lost a peer is raised
        as a PeerWaitError with every other process's last phase, the oldest first (`peer_progress`)."""
        with self.progress.naming_laggards("MASK_RCNN_EXT.DISTRIBUTED.TIMEOUT_MINUTES"):
            return super().train()

    def resume_or_load(self, resume: bool = True) -> None:
        """DefaultTrainer's, and on resuming, this rank's data stream position and random state."""
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1  # the checkpoint holds the iteration that had finished
            self.rank_state_checkpointer.random_state_to_restore = RankState.restore(checkpoint, self.train_stream)

    # TrainerBase (iteration + stateful hooks) is called directly rather than super(): upstream
    # DefaultTrainer already adds INNER_TRAINER_KEY and would fail on checkpoints that lack it.
    def state_dict(self) -> dict:
        state = TrainerBase.state_dict(self)
        state[INNER_TRAINER_KEY] = self._trainer.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        TrainerBase.load_state_dict(self, state_dict)
        if INNER_TRAINER_KEY in state_dict:
            self._trainer.load_state_dict(state_dict[INNER_TRAINER_KEY])
        else:
            logger.warning(
                "Checkpoint has no optimizer state (saved by detectron2 v0.6?); SGD momentum restarts at zero."
            )

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        """detectron2's loader as a resumable TrainStream over checked records: bad data stops training
        before it starts, and an image that fails mid-training is named (`training_data.py`)."""
        return build_checked_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        """detectron2's test loader, its images read as training reads them (`ImageModeDatasetMapper`:
        16-bit gray by its high byte, a mode that is not read named with its file)."""
        return build_detection_test_loader(cfg, dataset_name, mapper=ImageModeDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        return build_evaluator(cfg, dataset_name, output_folder or os.path.join(cfg.OUTPUT_DIR, "inference"))

    @classmethod
    def test(cls, cfg: CfgNode, model, evaluators=None):
        share_cpu_cores()  # also for evaluation alone (--eval-only)
        board = ProgressBoard()
        # evaluating during training leaves the training's draws alone
        with (
            preserved_random_state(),
            evaluation_timeout(cfg.MASK_RCNN_EXT.DISTRIBUTED),
            board.naming_laggards("MASK_RCNN_EXT.DISTRIBUTED.EVAL_TIMEOUT_MINUTES"),
        ):
            board.report("evaluation: inference, gathers and the main process's scoring")
            results = super().test(cfg, model, evaluators)
            board.report("evaluation: done")
            comm.synchronize()  # the processes leave evaluation together, within its timeout
        if comm.is_main_process() and results:
            write_json_atomically(os.path.join(cfg.OUTPUT_DIR, EVAL_RESULTS_FILE), results)
        return results
