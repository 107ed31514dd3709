"""Parse many annotation files once, in parallel, and reuse the result while the files are unchanged."""

import glob
import hashlib
import logging
import os
import pickle
from collections.abc import Sequence
from typing import Callable, Optional

from ..io_utils import write_atomically
from .parallel import default_num_workers, parallel_map

logger = logging.getLogger(__name__)


def fingerprint(version: str, files: Sequence[str]) -> str:
    """A digest of `version` and each file's absolute path, size and modification time.

    Raises FileNotFoundError naming the first missing file.
    """
    digest = hashlib.sha1(version.encode())
    for path in files:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"File missing: '{path}'") from None
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_cached(
    *,
    name: str,
    cache_dir: Optional[str],
    items: Sequence,
    files: Sequence[str],
    parse: Callable,
    version: str,
    num_workers: Optional[int] = None,
    check: Optional[Callable[[Sequence[str]], None]] = None,
) -> list:
    """`[parse(item) for item in items]`, read from `cache_dir` when it holds the result for the same
    `files` (path, size, mtime) and `version`, else computed in parallel and stored there.

    `check(files)`, when given, runs before parsing (not on a cache hit: the files are those that
    passed it), in this process: its error names the files at fault, where one raised in a worker
    would come through the pool.

    The cache file is `cache_dir/<name>-<fingerprint>.pkl`, written atomically; older files of `name`
    are removed. A `cache_dir` that cannot be written is reported and the result returned uncached.
    """
    key = fingerprint(version, files)
    path = os.path.join(cache_dir, f"{name}-{key}.pkl") if cache_dir else None
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            logger.info(f"Loading {len(items)} records from the cache {path}")
            return pickle.load(f)
    if check is not None:
        check(files)
    records = parallel_map(parse, items, num_workers or default_num_workers(), desc=f"parsing {name}")
    if path:
        try:
            write_atomically(path, lambda f: pickle.dump(records, f, protocol=pickle.HIGHEST_PROTOCOL))
            for stale in set(glob.glob(os.path.join(cache_dir, f"{name}-*.pkl"))) - {path}:
                os.remove(stale)
            logger.info(f"Cached {len(records)} records in {path}")
        except OSError as error:
            logger.warning(f"Cannot cache records in '{cache_dir}' ({error}); they will be parsed at every load")
    return records
