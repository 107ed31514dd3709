"""A split on disk, generated once and regenerated when its spec or the generator version changes."""

import contextlib
import json
import os
import shutil
from typing import Optional

from ...io_utils import exclusive_lock
from .coco_format import write_coco_split
from .spec import SyntheticSpec, generator_id


def _cached_generator_id(json_path: str) -> Optional[dict]:
    try:
        with open(json_path) as f:
            return json.load(f).get("info", {}).get("generator")
    except (OSError, ValueError):
        return None


def ensure_coco_split(spec: SyntheticSpec, root: str, split: str) -> tuple[str, str]:
    """Make sure `root/<split>.json` and `root/<split>/` hold `spec`'s data; generate if not.

    Regenerates when the cached split was made from another spec or generator version.
    Returns (json_path, image_dir).
    """
    json_path, image_dir = os.path.join(root, f"{split}.json"), os.path.join(root, split)
    if _cached_generator_id(json_path) == generator_id(spec):
        return json_path, image_dir
    os.makedirs(root, exist_ok=True)
    with exclusive_lock(os.path.join(root, f".{split}.lock")):
        if _cached_generator_id(json_path) != generator_id(spec):  # another process may have won
            staging_dir, staging_json = os.path.join(root, f".{split}.staging"), f"{json_path}.staging"
            shutil.rmtree(staging_dir, ignore_errors=True)
            write_coco_split(spec, staging_dir, staging_json)
            with contextlib.suppress(FileNotFoundError):
                os.remove(json_path)  # the json goes first: without it the folder counts as stale
            shutil.rmtree(image_dir, ignore_errors=True)
            os.replace(staging_dir, image_dir)
            os.replace(staging_json, json_path)
    return json_path, image_dir
