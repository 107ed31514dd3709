"""Shared fixtures. Tests run on CPU, seeded; the slow ones share one short training run."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS_DIR = os.path.join(REPO_ROOT, "tools")
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")
SYNTHETIC_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "mask_keypoint_rcnn_R18_GN_FPN.yaml")

if TOOLS_DIR not in sys.path:  # the tools are scripts, imported by the tests that exercise them
    sys.path.insert(0, TOOLS_DIR)
