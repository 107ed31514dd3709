"""detectron2's DefaultTrainer, with evaluators chosen from dataset metadata and results kept on disk."""
import logging
import os
from typing import Optional

from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer, TrainerBase
from detectron2.utils import comm

from ..config import add_mask_rcnn_ext_config
from ..io_utils import write_json_atomically
from .config_checks import check_config
from .evaluators import build_evaluator

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


class Trainer(DefaultTrainer):
    """DefaultTrainer whose evaluators come from `evaluator_type` in each test dataset's metadata,
    and which writes every evaluation's results to OUTPUT_DIR/eval_results.json.

    Checkpoints also hold the optimizer state: detectron2 v0.6 saves only the iteration and the
    LR scheduler, so `--resume` there restarts SGD momentum from zero.
    """

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
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        return build_evaluator(cfg, dataset_name, output_folder or os.path.join(cfg.OUTPUT_DIR, "inference"))

    @classmethod
    def test(cls, cfg: CfgNode, model, evaluators=None):
        results = super().test(cfg, model, evaluators)
        if comm.is_main_process() and results:
            write_json_atomically(os.path.join(cfg.OUTPUT_DIR, EVAL_RESULTS_FILE), results)
        return results
