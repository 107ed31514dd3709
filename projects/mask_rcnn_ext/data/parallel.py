"""A map over items in worker processes, for the per-file work of parsing and generating datasets."""

import multiprocessing
import os
from collections.abc import Sequence
from typing import Callable

from tqdm import tqdm


def default_num_workers() -> int:
    """The cores this process may run on, up to 8."""
    return min(8, len(os.sched_getaffinity(0)))


def parallel_map(function: Callable, items: Sequence, num_workers: int, desc: str) -> list:
    """[function(item) for item in items], in `num_workers` processes, in order, with a progress bar;
    in this process where it may not start others (a DataLoader worker is a daemon process)."""
    if num_workers <= 1 or len(items) < 2 or multiprocessing.current_process().daemon:
        return [function(item) for item in tqdm(items, desc=desc, disable=None)]
    with multiprocessing.Pool(num_workers) as pool:
        return list(tqdm(pool.imap(function, items, chunksize=4), total=len(items), desc=desc, disable=None))
