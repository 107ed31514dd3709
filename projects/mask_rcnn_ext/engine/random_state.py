"""A process's global random generators (Python's, NumPy's, torch's CPU and current CUDA device's)
as a value a checkpoint holds: detectron2's augmentations draw from NumPy's, the RPN's and RoI
heads' sampling from torch's."""

import contextlib
import random

import numpy as np
import torch


def capture_random_state() -> dict:
    """This process's global random generators' states, in types torch's weights-only loading reads."""
    version, keys, gauss = random.getstate()
    name, numpy_keys, numpy_pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [name, torch.from_numpy(numpy_keys.astype(np.int64)), numpy_pos, has_gauss, cached_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_random_state(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, numpy_keys, numpy_pos, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((name, numpy_keys.numpy().astype(np.uint32), numpy_pos, has_gauss, cached_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


@contextlib.contextmanager
def preserved_random_state():
    """The global random generators as they were before the block, after it."""
    state = capture_random_state()
    try:
        yield
    finally:
        restore_random_state(state)
