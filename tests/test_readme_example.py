"""The README's "Add your own head" example, run as written: a custom mask head on our
BaseMaskHead, registered by name, selected by the config, trained for two iterations with the
loss the config chooses."""

import os
import re
import subprocess
import sys

import torch

from mask_rcnn_ext.engine.training_curves import read_metrics

from conftest import REPO_ROOT

EXAMPLE_MARKER = "<!-- tested by tests/test_readme_example.py -->"
EXAMPLE_OUTPUT_DIR = "output/dilated_mask_head"


def readme_example() -> str:
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme = f.read()
    assert EXAMPLE_MARKER in readme
    match = re.search(r"```python\n(.*?)```", readme[readme.index(EXAMPLE_MARKER) :], re.S)
    return match.group(1)


def test_readme_custom_mask_head_trains(datasets_env, tmp_path):
    code = readme_example()
    assert EXAMPLE_OUTPUT_DIR in code
    script = tmp_path / "example.py"
    script.write_text(code.replace(EXAMPLE_OUTPUT_DIR, str(tmp_path / "out")))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO_ROOT,
        env=dict(os.environ, **datasets_env),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    checkpoint = torch.load(tmp_path / "out" / "model_final.pth", weights_only=True)
    assert checkpoint["iteration"] == 1
    head_weights = [k for k in checkpoint["model"] if k.startswith("roi_heads.mask_head.")]
    assert "roi_heads.mask_head.predictor.weight" in head_weights
    assert any(".dilated" in k for k in head_weights), head_weights  # the custom head, not detectron2's
    # MASK_RCNN_EXT.MASK_HEAD.LOSS softmax reached the subclass: 7 classes + background
    assert checkpoint["model"]["roi_heads.mask_head.predictor.weight"].shape[0] == 8
    # read_metrics orders by iteration: detectron2 v0.6's JSONWriter can write iteration 1's
    # line before iteration 0's when a scalar (e.g. mask accuracy) was logged at 0 only.
    last = read_metrics(tmp_path / "out" / "metrics.json")[-1]
    assert last["iteration"] == 1 and last["loss_mask"] > 0
