"""Shared fixtures. Tests run on CPU, seeded; the slow ones share one training run."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS_DIR = os.path.join(REPO_ROOT, "tools")
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")
SYNTHETIC_CONFIG = os.path.join(CONFIGS_DIR, "Synthetic", "mask_keypoint_rcnn_R18_GN_FPN.yaml")

if TOOLS_DIR not in sys.path:  # the tools are scripts, imported by the tests that exercise them
    sys.path.insert(0, TOOLS_DIR)


import subprocess  # noqa: E402  (fixtures below run the tools as users do, in subprocesses)

import pytest  # noqa: E402


def run_tool(script: str, args, env_overrides: dict, log_path: str, expected_exit_codes=(0,)) -> int:
    """Run tools/<script> with `args` and return its exit code; its output goes to `log_path`,
    shown if the exit code is not one of `expected_exit_codes`."""
    env = dict(os.environ, **env_overrides)
    with open(log_path, "w") as log:
        result = subprocess.run(
            [sys.executable, os.path.join(TOOLS_DIR, script), *map(str, args)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    if result.returncode not in expected_exit_codes:
        with open(log_path) as log:
            pytest.fail(f"tools/{script} exited {result.returncode}:\n{log.read()[-6000:]}")
    return result.returncode


@pytest.fixture(scope="session")
def datasets_env(tmp_path_factory) -> dict:
    """Environment for tools run by tests: the synthetic splits generated once, in a temp folder."""
    return {"DETECTRON2_DATASETS": str(tmp_path_factory.mktemp("datasets"))}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, datasets_env) -> str:
    """OUTPUT_DIR of one training + evaluation of the synthetic config by tools/train_net.py.

    It is the demo's run: the config as it stands, with its schedule (about 10 minutes on 2 cores)
    and SEED, so the AP floors guard what `make demo` reports. Tests must not write into it (copy it first).
    """
    output_dir = str(tmp_path_factory.mktemp("trained_run"))
    run_tool(
        "train_net.py",
        ["--config-file", SYNTHETIC_CONFIG, "OUTPUT_DIR", output_dir],
        datasets_env,
        os.path.join(output_dir, "stdout.log"),
    )
    return output_dir
