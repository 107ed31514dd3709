"""Writing files so that an interrupted run never leaves a torn one, and concurrent ones do it once."""

import contextlib
import fcntl
import glob
import json
import os
from typing import IO, Callable

TEMPORARY_SUFFIX = ".partial"


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file beside `path`, sync it, and rename it to `path` (atomic on
    one filesystem): `path` then holds either its old or its new content, never a part, even if
    the process is killed. Leftovers of writers killed earlier (`path.partial*`) are removed."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for leftover in glob.glob(glob.escape(path) + TEMPORARY_SUFFIX + "*"):
        os.remove(leftover)
    temporary = f"{path}{TEMPORARY_SUFFIX}{os.getpid()}"
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power loss
    finally:
        os.close(directory)


def write_json_atomically(path: str, data) -> None:
    """Write `data` as JSON with `write_atomically`."""
    write_atomically(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


@contextlib.contextmanager
def exclusive_lock(lock_path: str):
    """Hold an exclusive lock on `lock_path`: concurrent processes generate a dataset only once."""
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
