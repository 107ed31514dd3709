"""What a checkpoint holds beyond detectron2's (weights, optimizer, scheduler, iteration) so that a
resumed run continues exactly where the saved one was: for every rank, its data stream's position
(`data_stream.TrainStream`) and its random generators (`random_state`), which sample the RPN's
anchors and the RoI heads' proposals (and augment the images when there are no loader workers).

They are gathered from every rank to the main process at each checkpoint
(`RankStateCheckpointer`) and saved under the checkpoint's "ranks" key, one entry per rank; on
`--resume` each rank takes its own back (`RankState.restore`). Evaluation during training runs
between checkpoints and the next iteration, so it leaves the generators as it found them
(`random_state.preserved_random_state`): a resumed run, which does not evaluate again there, draws
the same.
"""

import logging
from typing import Optional

from detectron2.engine import hooks
from detectron2.utils import comm

from .data_stream import TrainStream
from .random_state import capture_random_state, restore_random_state

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "ranks"


class RankState:
    """One rank's part of a checkpoint: its data stream's position (when the trainer's loader is a
    TrainStream) and its random generators."""

    @staticmethod
    def capture(stream: Optional[TrainStream]) -> dict:
        return {"stream": stream.state_dict() if stream is not None else None, "random": capture_random_state()}

    @staticmethod
    def restore(checkpoint: dict, stream: Optional[TrainStream]) -> Optional[dict]:
        """Set `stream` to this rank's saved position and return its saved random state (restored
        when training starts, `RankStateCheckpointer.before_train`); None, with a warning saying
        what starts anew, when the checkpoint does not hold them for this world size."""
        ranks = checkpoint.get(CHECKPOINT_KEY)
        world_size, rank = comm.get_world_size(), comm.get_rank()
        if ranks is None:
            logger.warning(
                "The checkpoint holds no data stream position or random state (saved by detectron2, or by an "
                "older mask_rcnn_ext): the training data stream starts anew, so the resumed run differs from "
                "an uninterrupted one."
            )
            return None
        if len(ranks) != world_size:
            logger.warning(
                f"The checkpoint was saved by {len(ranks)} processes and is resumed by {world_size}: the "
                "training data stream and the random generators start anew (an exact resume needs as many "
                "processes as saved it)."
            )
            return None
        mine = ranks[rank]
        if stream is None:
            logger.warning(
                "The trainer's loader is not mask_rcnn_ext's TrainStream (build_train_loader overridden?): the "
                "random generators continue, but the training data stream starts anew."
            )
        elif mine["stream"] is not None:
            stream.load_state_dict(mine["stream"])
            logger.info(
                f"Resuming the training data stream of rank {rank} at its image {mine['stream']['next_position']}"
            )
        else:
            logger.warning("The checkpoint holds no data stream position: the training data stream starts anew.")
        return mine["random"]


class RankStateCheckpointer(hooks.PeriodicCheckpointer):
    """detectron2's PeriodicCheckpointer hook, on every rank: when it saves, each rank's `RankState`
    is gathered to the main process, which writes it in the checkpoint (the other ranks' checkpointers
    write nothing). Before training, it restores the random state a resumed run loaded.

    Args:
        checkpointer, period: as detectron2's hook.
        stream: the trainer's data stream, or None when its loader is not a TrainStream.
    """

    def __init__(self, checkpointer, period: int, stream: Optional[TrainStream]):
        super().__init__(checkpointer, period)
        self.stream = stream
        self.random_state_to_restore: Optional[dict] = None

    def before_train(self):
        super().before_train()
        if self.random_state_to_restore is not None:
            restore_random_state(self.random_state_to_restore)
            self.random_state_to_restore = None

    def after_step(self):
        iteration = self.trainer.iter
        # the iterations fvcore's PeriodicCheckpointer.step saves at: every period, and the last
        if (iteration + 1) % self.period == 0 or iteration >= self.max_iter - 1:
            ranks = comm.gather(RankState.capture(self.stream), dst=0)
            self.step(iteration, **{CHECKPOINT_KEY: ranks})
        else:
            self.step(iteration)
