"""Writing files so that an interrupted run never leaves a torn one, and concurrent ones do it once."""
import contextlib
import fcntl
import json
import os


def write_json_atomically(path: str, data) -> None:
    """Write `data` as JSON: `path` then holds either its old or its new content, never a part."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


@contextlib.contextmanager
def exclusive_lock(lock_path: str):
    """Hold an exclusive lock on `lock_path`: concurrent processes generate a dataset only once."""
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
