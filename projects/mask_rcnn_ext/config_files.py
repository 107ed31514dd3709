"""The configs that ship with the plugin, found wherever it is installed.

In a source checkout they are the repository's `configs/`; `pip install .` puts the same files in
the package as `mask_rcnn_ext/configs/`. Their `_BASE_` paths are relative, so the tree is kept.
"""

import importlib.resources
from pathlib import Path

# The model `make demo` trains on the built-in synthetic data: masks and keypoints on 2 CPU cores.
DEMO_CONFIG = "Synthetic/mask_keypoint_rcnn_R18_GN_FPN.yaml"


def config_root() -> Path:
    """The directory holding the shipped configs (e.g. `COCO-InstanceSegmentation/...`)."""
    return Path(str(importlib.resources.files("mask_rcnn_ext.configs")))


def get_config_file(relative_path: str) -> str:
    """Path of a shipped config, e.g. `get_config_file("COCO-Keypoints/keypoint_rcnn_R_50_FPN.yaml")`,
    for `build_config` or `cfg.merge_from_file`. Raises FileNotFoundError naming the known configs."""
    path = config_root() / relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"no config {relative_path!r} ships with mask_rcnn_ext (under {config_root()}); "
            f"known: {', '.join(config_names())}"
        )
    return str(path)


def config_names() -> list[str]:
    """Every shipped config, as the relative paths `get_config_file` takes, sorted."""
    root = config_root()
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.yaml"))
