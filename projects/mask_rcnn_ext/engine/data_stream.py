"""The training data stream: detectron2's training loader, batch for batch and bit for bit, with a
position a checkpoint holds, so that after `--resume` training sees the batches, augmented alike,
that the uninterrupted run would have seen.

detectron2's loader (`build_detection_train_loader` with aspect-ratio grouping) maps this rank's
share of its sampler's stream in DATALOADER.NUM_WORKERS loader processes, worker w taking stream
positions w, w + W, ... and augmenting them with its global generators (seeded by
`worker_init_reset_seed`), and groups the mapped images into batches of landscape or portrait
images. On a resume it starts all of that again from the beginning. Here the same pipeline runs with
its state tracked in the training process: the next stream position, each worker's generator states
after the last image taken from it (the workers report them with each image), and the images
waiting in the two groups (their positions and the generator states they were mapped under, to map
them again identically). Resumed with as many workers, worker j continues the role of the old worker
whose position comes next, from its generator states; without workers, images are mapped in the
training process with its global generators, which the checkpoint restores (`exact_resume`).
"""

import itertools
import logging
import operator
from collections.abc import Iterator
from typing import NamedTuple, Optional

import torch
from detectron2.config import CfgNode
from detectron2.data import samplers
from detectron2.data.build import worker_init_reset_seed
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm

from .random_state import capture_random_state, preserved_random_state, restore_random_state

logger = logging.getLogger(__name__)


def build_sampler(cfg: CfgNode, records: list[dict], seeds: list[int]) -> torch.utils.data.Sampler:
    """DATALOADER.SAMPLER_TRAIN as detectron2 builds it for `records`, seeded with `seeds` (one per
    seed the sampler takes; `sampler_seed_count`). detectron2's own construction
    (`_train_loader_from_config`) always draws fresh seeds, and a resumed stream needs its saved ones."""
    name = cfg.DATALOADER.SAMPLER_TRAIN
    if name == "TrainingSampler":
        return samplers.TrainingSampler(len(records), seed=seeds[0])
    if name == "RepeatFactorTrainingSampler":
        sqrt = {"sqrt": cfg.DATALOADER.REPEAT_SQRT} if "REPEAT_SQRT" in cfg.DATALOADER else {}  # detectron2 main
        factors = samplers.RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            records, cfg.DATALOADER.REPEAT_THRESHOLD, **sqrt
        )
        return samplers.RepeatFactorTrainingSampler(factors, seed=seeds[0])
    if name == "RandomSubsetTrainingSampler":
        return samplers.RandomSubsetTrainingSampler(
            len(records), cfg.DATALOADER.RANDOM_SUBSET_RATIO, seed_shuffle=seeds[0], seed_subset=seeds[1]
        )
    raise ValueError(f"DATALOADER.SAMPLER_TRAIN {name!r} is not a training sampler detectron2 has")


def sampler_seed_count(cfg: CfgNode) -> int:
    return 2 if cfg.DATALOADER.SAMPLER_TRAIN == "RandomSubsetTrainingSampler" else 1


def map_record(mapper, record: dict) -> dict:
    mapped = mapper(record)
    if mapped is None:  # detectron2's MapDataset would draw another image in its place
        raise ValueError(
            f"the training mapper returned None for {record.get('file_name')!r}: remove the images it "
            "cannot map from the dataset (the resumable data stream does not replace images)"
        )
    return mapped


class WorkerStart(NamedTuple):
    """A worker's first message: the generator states it starts from (those of its role until an
    image of it is taken)."""

    role: int
    random: dict


class MappedImage(NamedTuple):
    position: int  # in this rank's stream
    index: int  # of the record
    mapped: dict
    random_before: dict  # the worker's generator states it was mapped under
    random_after: dict


class WorkerStream(torch.utils.data.IterableDataset):
    """What each loader worker (or, without workers, the training process) yields: a WorkerStart,
    then a MappedImage for each stream position of its role from `start`.

    Args:
        records: detectron2's dataset dicts, serialized (DatasetFromList).
        mapper: record -> model input dict.
        sampler: this rank's stream of record indices (detectron2's samplers shard it by rank).
        start: the stream position the first worker takes; worker j takes start + j, + W, ...
        role_states: per position modulo W, the generator states the worker taking those positions
            continues from; None: the states worker_init_reset_seed gives (a fresh stream).
    """

    def __init__(self, records: DatasetFromList, mapper, sampler, start: int, role_states: Optional[list[dict]]):
        self.records = records
        self.mapper = mapper
        self.sampler = sampler
        self.start = start
        self.role_states = role_states

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first = self.start + worker
        if info is not None and self.role_states is not None:
            restore_random_state(self.role_states[first % workers])
        yield WorkerStart(first % workers, capture_random_state())
        indices = itertools.islice(iter(self.sampler), first, None, workers)
        for position, index in zip(itertools.count(first, workers), indices):
            before = capture_random_state()
            mapped = map_record(self.mapper, self.records[index])
            yield MappedImage(position, int(index), mapped, before, capture_random_state())


class TrainStream:
    """This rank's training batches (lists of `batch_size` mapped dicts, detectron2's format),
    endless, with a position (`state_dict`, `load_state_dict`).

    Args:
        records: the training records (detectron2's dataset dicts).
        mapper: record -> model input dict (a DatasetMapper).
        cfg: DATALOADER.SAMPLER_TRAIN and its keys, DATALOADER.ASPECT_RATIO_GROUPING.
        batch_size: images per batch of this rank.
        num_workers: loader processes (0: mapped in this process).
        seeds: the sampler's seeds; default: drawn as detectron2 draws them (shared by the ranks).
    """

    def __init__(
        self,
        records: list[dict],
        mapper,
        cfg: CfgNode,
        batch_size: int,
        num_workers: int,
        seeds: Optional[list[int]] = None,
    ):
        self.records = DatasetFromList(records, copy=False)  # serialized: workers share it without copies
        self.mapper = mapper
        self.cfg = cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seeds = seeds or [comm.shared_random_seed() for _ in range(sampler_seed_count(cfg))]  # as detectron2
        self.sampler = build_sampler(cfg, self.records, self.seeds)
        self.state = {"next_position": 0, "role_states": None, "waiting": [[], []]}
        self._resumed = False
        self._started = False

    def state_dict(self) -> dict:
        """The position after the last batch yielded: the next stream position, the workers' generator
        states (by position modulo NUM_WORKERS), the waiting images; and what they depend on."""
        return {
            "seeds": list(self.seeds),
            "num_workers": self.num_workers,
            "batch_size": self.batch_size,
            "grouping": self.cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            **self.state,
        }

    def load_state_dict(self, state: dict) -> None:
        if self._started:
            raise RuntimeError("the data stream's position is set before its first batch is taken")
        self.seeds = list(state["seeds"])
        self.sampler = build_sampler(self.cfg, self.records, self.seeds)
        role_states = state["role_states"]
        if state["num_workers"] != self.num_workers:
            logger.warning(
                f"DATALOADER.NUM_WORKERS is {self.num_workers}, the checkpoint's run had {state['num_workers']}: "
                "the stream continues with the same images, but their augmentations draw from other seeds"
            )
            role_states = None
        waiting = state["waiting"]
        if (state["batch_size"], state["grouping"]) != (self.batch_size, self.cfg.DATALOADER.ASPECT_RATIO_GROUPING):
            logger.warning(
                f"The images per process or DATALOADER.ASPECT_RATIO_GROUPING differ from the checkpoint's run "
                f"({state['batch_size']}, {state['grouping']}): its {sum(map(len, waiting))} images waiting for a "
                "batch are passed over"
            )
            waiting = [[], []]
        self.state = {"next_position": state["next_position"], "role_states": role_states, "waiting": waiting}
        self._resumed = True

    def _waiting_groups(self) -> list[list[tuple]]:
        """The waiting images, mapped again under the generator states they were mapped under."""
        groups = []
        for group in self.state["waiting"]:
            remapped = []
            for item in group:
                with preserved_random_state():
                    restore_random_state(item["random"])
                    remapped.append((item, map_record(self.mapper, self.records[item["index"]])))
            groups.append(remapped)
        return groups

    def __iter__(self) -> Iterator[list[dict]]:
        """Started lazily: detectron2's trainer takes `iter()` in its constructor, before a resumed
        position is loaded."""
        self._started = True
        groups = self._waiting_groups()
        role_states = [None] * self.num_workers  # each worker reports its start (WorkerStart) first
        loader = torch.utils.data.DataLoader(
            WorkerStream(
                self.records, self.mapper, self.sampler, self.state["next_position"], self.state["role_states"]
            ),
            num_workers=self.num_workers,
            collate_fn=operator.itemgetter(0),  # one item per fetch, as detectron2's loader
            worker_init_fn=worker_init_reset_seed,
            # A fresh stream draws the workers' base seed from torch's global generator as detectron2's
            # loader does; a resumed one must not draw (the checkpoint restored that generator).
            generator=torch.Generator().manual_seed(self.state["next_position"]) if self._resumed else None,
        )
        grouping = self.cfg.DATALOADER.ASPECT_RATIO_GROUPING
        for message in loader:
            if isinstance(message, WorkerStart):
                if self.num_workers:
                    role_states[message.role] = message.random
                continue
            if self.num_workers:
                role_states[message.position % self.num_workers] = message.random_after
            mapped = message.mapped
            group = groups[0 if not grouping or mapped["width"] > mapped["height"] else 1]
            group.append(
                ({"position": message.position, "index": message.index, "random": message.random_before}, mapped)
            )
            if len(group) < self.batch_size:
                continue
            batch = [mapped for _, mapped in group]
            group.clear()
            self.state = {
                "next_position": message.position + 1,
                "role_states": list(role_states) if self.num_workers else None,
                "waiting": [[item for item, _ in other] for other in groups],
            }
            yield batch
