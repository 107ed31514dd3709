"""The training data stream, resumable exactly: after `--resume`, training sees the batches, with the
augmentations, that the uninterrupted run would have seen.

detectron2's training loader restarts its sampler from the beginning when a run resumes, and its
augmentations draw from each loader worker's global random generators, whose states nothing saves:
a resumed run trains on the images the first iterations had seen, differently flipped and resized.
Here the stream has a position that a checkpoint holds:

* Which images: detectron2's own sampler (DATALOADER.SAMPLER_TRAIN, seeded as detectron2 seeds it),
  of which this rank has consumed `consumed` indices; and, with DATALOADER.ASPECT_RATIO_GROUPING,
  detectron2's grouping of the stream into batches of landscape or portrait images, done here on the
  records' width and height before mapping (as detectron2 groups by them after), with the images
  waiting in the two groups. A batch holds the same images as detectron2's would on one loader
  worker (with grouping off, detectron2 batches each worker's share, so there its batches depend on
  DATALOADER.NUM_WORKERS; here they do not).
* How they are augmented: the mapper runs with Python's, NumPy's and torch's global generators
  seeded from (sampler seed, the image's position in the whole stream), so an image's augmentation
  depends neither on the worker that maps it nor on the number of processes.

`TrainStream.state_dict()` is the position after the last batch it yielded (batches prefetched by
the loader workers are not counted); `load_state_dict` continues from one, when set before the first
batch is taken.
"""

import contextlib
import itertools
import logging
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import samplers
from detectron2.data.build import trivial_batch_collator
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm

logger = logging.getLogger(__name__)

Key = tuple[int, int]  # (index of the record in the dataset, position of the image in the whole stream)


@dataclass
class StreamPosition:
    """Where one rank is in the stream: `consumed` indices taken from its sampler, and the keys
    waiting in the aspect-ratio groups (landscape, portrait; one group without grouping)."""

    consumed: int = 0
    waiting: list[list[Key]] = field(default_factory=lambda: [[], []])

    def copy(self) -> "StreamPosition":
        return StreamPosition(self.consumed, [list(group) for group in self.waiting])


def build_sampler(cfg: CfgNode, records: list[dict], seeds: list[int]) -> torch.utils.data.Sampler:
    """DATALOADER.SAMPLER_TRAIN as detectron2 builds it for `records`, seeded with `seeds` (one per
    seed the sampler takes; `sampler_seed_count`)."""
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


def image_seed(stream_seed: int, position: int) -> int:
    """The seed of the augmentation of the image at `position` of the stream seeded `stream_seed`."""
    return int(np.random.SeedSequence([stream_seed, position]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_global_generators(seed: int):
    """Python's, NumPy's and torch's (CPU) global generators seeded with `seed` inside, and as they
    were outside: mapping in the training process must not move the model's random streams."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class SeededMapping(torch.utils.data.Dataset):
    """`mapper` over `records`, indexed by Key: each image augmented under `image_seed` of its position."""

    def __init__(self, records: list[dict], mapper, stream_seed: int):
        self.records = DatasetFromList(records, copy=True)  # serialized: workers share it without copies
        self.mapper = mapper
        self.stream_seed = stream_seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: Key) -> dict:
        index, position = key
        record = self.records[index]
        with seeded_global_generators(image_seed(self.stream_seed, position)):
            mapped = self.mapper(record)
        if mapped is None:  # detectron2's MapDataset would draw another image, outside any stream position
            raise ValueError(
                f"the training mapper returned None for {record.get('file_name')!r}: remove the images "
                "it cannot map from the dataset (the resumable data stream does not skip images)"
            )
        return mapped


class BatchPlan:
    """The batches of keys of one rank from `start`, drawn in the training process (the loader's
    batch sampler); the position after each batch is appended to `positions`, in order."""

    def __init__(
        self, sampler, groups: Optional[list[int]], batch_size: int, world_size: int, rank: int, start: StreamPosition
    ):
        self.sampler = sampler
        self.groups = groups  # per record: 0 landscape, 1 portrait; None: no grouping
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.start = start
        self.positions: deque[StreamPosition] = deque()

    def __iter__(self) -> Iterator[list[Key]]:
        position = self.start.copy()
        for index in itertools.islice(iter(self.sampler), position.consumed, None):
            # the sampler gives this rank every world_size-th index of the whole stream from `rank`
            key = (int(index), self.rank + position.consumed * self.world_size)
            position.consumed += 1
            group = position.waiting[self.groups[index] if self.groups is not None else 0]
            group.append(key)
            if len(group) == self.batch_size:
                batch = group[:]
                group.clear()
                self.positions.append(position.copy())
                yield batch


class TrainStream:
    """This rank's training batches (lists of `batch_size` mapped dicts, detectron2's format),
    endless, mapped by `num_workers` loader processes (0: in this process).

    Args:
        records: the training records (detectron2's dataset dicts).
        mapper: record -> model input dict (a DatasetMapper).
        cfg: DATALOADER.SAMPLER_TRAIN and its keys, DATALOADER.ASPECT_RATIO_GROUPING.
        batch_size: images per batch of this rank.
        num_workers: loader processes.
    """

    def __init__(self, records: list[dict], mapper, cfg: CfgNode, batch_size: int, num_workers: int):
        self.records = records
        self.mapper = mapper
        self.cfg = cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seeds = [comm.shared_random_seed() for _ in range(sampler_seed_count(cfg))]  # detectron2's seeding
        self.position = StreamPosition()
        self._started = False

    def state_dict(self) -> dict:
        """The position after the last batch yielded, and the sampler's seeds."""
        return {
            "seeds": list(self.seeds),
            "world_size": comm.get_world_size(),
            "consumed": self.position.consumed,
            "waiting": [[list(key) for key in group] for group in self.position.waiting],
        }

    def load_state_dict(self, state: dict) -> None:
        if self._started:
            raise RuntimeError("the data stream's position is set before its first batch is taken")
        self.seeds = list(state["seeds"])
        self.position = StreamPosition(state["consumed"], [[tuple(key) for key in group] for group in state["waiting"]])

    def __iter__(self) -> Iterator[list[dict]]:
        """Started lazily: detectron2's trainer takes `iter()` in its constructor, before a resumed
        position is loaded."""
        self._started = True
        groups = None
        if self.cfg.DATALOADER.ASPECT_RATIO_GROUPING:
            groups = [0 if record["width"] > record["height"] else 1 for record in self.records]
        plan = BatchPlan(
            build_sampler(self.cfg, self.records, self.seeds),
            groups,
            self.batch_size,
            comm.get_world_size(),
            comm.get_rank(),
            self.position,
        )
        loader = torch.utils.data.DataLoader(
            SeededMapping(self.records, self.mapper, self.seeds[0]),
            batch_sampler=plan,
            num_workers=self.num_workers,
            collate_fn=trivial_batch_collator,
            # its own generator: creating the loader's iterator draws a seed, which must not come from
            # the global generator that samples the model's RoIs
            generator=torch.Generator().manual_seed(self.seeds[0]),
        )
        for batch in loader:
            self.position = plan.positions.popleft()
            yield batch
