"""The detectron2 this project installs: imports alone, fails clearly where its extension is missing,
and the installer refuses an sdist its fixes were not written for."""

import subprocess
import sys
from pathlib import Path

import pytest

from dev import install_detectron2


def test_detectron2_imports_without_the_plugin():
    code = (
        "import sys; import detectron2.modeling, detectron2.data, detectron2.evaluation, "
        "detectron2.utils.visualizer, detectron2.engine; "
        "assert 'mask_rcnn_ext' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def has_extension():
    import importlib.util

    return importlib.util.find_spec("detectron2._C") is not None


@pytest.mark.skipif(has_extension(), reason="this detectron2 has its C++ extension")
def test_extension_ops_fail_with_instructions():
    import torch
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(ImportError, match=r"box_iou_rotated.*C\+\+/CUDA extension.*full build"):
        pairwise_iou_rotated(boxes, boxes)


def test_fixes_refuse_source_that_does_not_match(tmp_path: Path):
    (tmp_path / "setup.py").write_text('setup(name="something-else")\n')
    (tmp_path / "detectron2").mkdir()
    fix = install_detectron2.SourceFix("setup.py", r'name="pb1-detectron2"', 'name="detectron2"', 1, "why")
    with pytest.raises(SystemExit, match=r"setup\.py: pattern .* matched 0 times, expected 1"):
        install_detectron2.apply_fixes(tmp_path, [fix])


def test_fixes_apply_exact_counts(tmp_path: Path):
    (tmp_path / "detectron2").mkdir()
    (tmp_path / "m.py").write_text("a = np.bool\nb = np.bool_\nc = np.int(3)\nd = np.float32\n")
    fix = install_detectron2.SourceFix("m.py", install_detectron2._NUMPY_ALIAS, r"\1", 2, "why")
    install_detectron2.apply_fixes(tmp_path, [fix])
    assert (tmp_path / "m.py").read_text() == "a = bool\nb = np.bool_\nc = int(3)\nd = np.float32\n"
    assert "_ExtensionStandIn" in (tmp_path / "detectron2" / "_extension.py").read_text()


def _gather_rank(_):
    from detectron2.utils import comm

    from mask_rcnn_ext.engine.distributed import shut_down_process_group

    ranks = comm.all_gather(comm.get_rank())
    assert ranks == [0, 1], ranks
    shut_down_process_group()  # exiting with a live GLOO group can abort the worker


def test_launch_two_processes_on_cpu():
    """detectron2's launcher runs multi-process training on CPU (GLOO), as upstream main does."""
    from detectron2.engine import launch

    launch(_gather_rank, num_gpus_per_machine=2, dist_url="auto", args=(None,))
