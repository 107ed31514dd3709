"""Reading detectron2's metrics.json and plotting losses + learning rate."""

import json

import cv2
import pytest
from detectron2.utils.events import EventStorage, JSONWriter

from mask_rcnn_ext.engine.training_curves import plot_compared_losses, plot_training_curves, read_metrics

from conftest import run_tool_in_process


def _write_metrics(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_read_metrics_keeps_training_records_and_the_latest_of_repeats(tmp_path):
    metrics = tmp_path / "metrics.json"
    _write_metrics(
        metrics,
        [
            {"iteration": 19, "total_loss": 3.0, "loss_mask": 0.7, "lr": 0.01},
            {"iteration": 39, "total_loss": 2.0, "loss_mask": 0.6, "lr": 0.02},
            {"iteration": 39, "bbox/AP": 12.0},  # an evaluation record: not a training one
            {"iteration": 39, "total_loss": 2.5, "loss_mask": 0.65, "lr": 0.02},  # logged again after a resume
            {"iteration": 59, "total_loss": 1.0, "loss_mask": 0.5, "lr": 0.02},
        ],
    )
    records = read_metrics(str(metrics))
    assert [(r["iteration"], r["total_loss"]) for r in records] == [(19, 3.0), (39, 2.5), (59, 1.0)]


def test_read_metrics_takes_the_training_records_whatever_the_line_order(tmp_path):
    """detectron2 v0.6's JSONWriter writes the iterations of one flush in the order their scalars
    were first logged: a scalar logged at iteration 0 only puts a line for iteration 0 last."""
    metrics = tmp_path / "metrics.json"
    with EventStorage(0) as storage:
        writer = JSONWriter(str(metrics))
        storage.put_scalars(total_loss=2.0, mask_accuracy=0.5)
        storage.step()
        storage.put_scalars(total_loss=1.0)
        writer.write()
        writer.close()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [1, 0]
    assert [r["iteration"] for r in read_metrics(str(metrics))] == [1]


def test_plot_writes_a_png(tmp_path):
    metrics = tmp_path / "metrics.json"
    _write_metrics(
        metrics, [{"iteration": i, "total_loss": 3.0 / (i + 1), "loss_cls": 1.0, "lr": 0.02} for i in range(0, 100, 20)]
    )
    png = tmp_path / "curves.png"
    plot_training_curves(str(metrics), str(png))
    assert cv2.imread(str(png)).shape == (700, 800, 3)


def test_plot_refuses_a_file_without_training_records(tmp_path):
    metrics = tmp_path / "metrics.json"
    _write_metrics(metrics, [{"iteration": 5, "bbox/AP": 1.0}])
    with pytest.raises(ValueError, match="no training records"):
        plot_training_curves(str(metrics), str(tmp_path / "x.png"))


def test_compared_plot_draws_the_losses_every_run_logs(tmp_path):
    runs = {}
    for label, scale in (("fp32", 1.0), ("bf16", 1.1)):
        path = tmp_path / f"{label}.json"
        runs[label] = str(path)
        records = [
            {"iteration": i, "total_loss": scale / (i + 1), "loss_cls": scale, "lr": 0.02} for i in range(0, 100, 20)
        ]
        if label == "fp32":
            for record in records:
                record["loss_mask"] = 0.5  # only one run logs it: no panel
        _write_metrics(path, records)
    png = tmp_path / "compared.png"
    plot_compared_losses(runs, str(png))
    assert cv2.imread(str(png)).shape == (300, 1000, 3)  # one row: total_loss and loss_cls


def test_plot_metrics_tool_compares_runs_and_names_what_it_refuses(tmp_path, capfd):
    """tools/plot_metrics.py: labelled runs draw the compared figure; a label given twice (one run would
    hide the other) and a file without training records stop with exit code 2, naming them, drawing nothing."""
    good = tmp_path / "good.json"
    _write_metrics(good, [{"iteration": i, "total_loss": 1.0 / (i + 1)} for i in range(3)])
    empty = tmp_path / "empty.json"
    _write_metrics(empty, [{"iteration": 5, "bbox/AP": 1.0}])
    png = tmp_path / "compared.png"
    assert run_tool_in_process("plot_metrics", [f"fp32={good}", f"bf16={good}", str(png)], capfd).code == 0
    assert cv2.imread(str(png)).shape == (300, 1000, 3)
    png.unlink()
    for argv, named in (
        ([f"fp32={good}", f"fp32={good}", str(png)], "each run needs its own label"),
        ([f"fp32={good}", f"bf16={empty}", str(png)], f"{empty} holds no training records"),
    ):
        outcome = run_tool_in_process("plot_metrics", argv, capfd)
        assert outcome.code == 2 and named in outcome.text, argv
        assert not png.exists()
