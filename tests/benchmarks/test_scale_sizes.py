"""benchmarks/scale_sizes.py on the demo's small model."""

from benchmarks.scale_sizes import main

from conftest import SYNTHETIC_CONFIG


def test_sizes_of_the_demo_model(tmp_path):
    (sizes,) = main(["--configs", SYNTHETIC_CONFIG]).values()
    assert sizes["gradient_bytes"] == 4 * sizes["trained_parameters"]
    assert 0 < sizes["trained_parameters"] <= sizes["parameters"]
    # weights and one momentum buffer per trained parameter, in float32, plus the file's own bytes
    assert 4 * (sizes["parameters"] + sizes["trained_parameters"]) < sizes["checkpoint_bytes"]
    assert sizes["checkpoint_bytes"] < 4 * (sizes["parameters"] + sizes["trained_parameters"]) * 1.05
