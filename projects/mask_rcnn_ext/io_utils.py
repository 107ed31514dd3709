"""Writing result files so that an interrupted run never leaves a torn one."""
import json
import os


def write_json_atomically(path: str, data) -> None:
    """Write `data` as JSON: `path` then holds either its old or its new content, never a part."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
