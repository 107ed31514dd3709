"""Plots the losses and learning rate that detectron2's JSONWriter logs to OUTPUT_DIR/metrics.json."""

import json

from ..plotting import png_figure


def read_metrics(metrics_json: str) -> list[dict]:
    """The records of detectron2's metrics.json (one JSON object per line), training records only.

    A run resumed from a checkpoint logs some iterations twice: the later record wins."""
    by_iteration = {}
    with open(metrics_json) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            if "iteration" in record and "total_loss" in record:
                by_iteration[record["iteration"]] = record
    return [by_iteration[i] for i in sorted(by_iteration)]


def training_records(metrics_json: str) -> list[dict]:
    """`read_metrics`, refusing a file without a training record: there is nothing to plot."""
    records = read_metrics(metrics_json)
    if not records:
        raise ValueError(f"{metrics_json} holds no training records (iteration + total_loss)")
    return records


def plot_training_curves(metrics_json: str, png_path: str) -> None:
    """Save a figure of every `loss_*`/`total_loss` (log scale) and of `lr` against iteration."""
    records = training_records(metrics_json)
    iterations = [r["iteration"] for r in records]
    loss_keys = sorted({k for r in records for k in r if k == "total_loss" or k.startswith("loss_")})
    with png_figure(png_path, (8, 7), nrows=2, sharex=True, height_ratios=(3, 1)) as (fig, (ax_loss, ax_lr)):
        for key in loss_keys:
            ax_loss.plot(
                iterations,
                [r.get(key, float("nan")) for r in records],
                label=key,
                linewidth=2.0 if key == "total_loss" else 1.0,
            )
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("loss (median over the logging window)")
        ax_loss.legend(fontsize=8, ncol=2)
        ax_loss.grid(alpha=0.3)
        ax_lr.plot(iterations, [r.get("lr", float("nan")) for r in records], color="black")
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_xlabel("iteration")
        ax_lr.grid(alpha=0.3)
        fig.suptitle(metrics_json)


def plot_compared_losses(runs: dict[str, str], png_path: str) -> None:
    """Save a figure with one panel per loss that every run logs (log scale), each run a line
    labelled by its key in `runs` ({label: metrics.json}): e.g. the same config in fp32 and bf16."""
    records = {label: training_records(path) for label, path in runs.items()}
    keys = set.intersection(
        *({k for r in rs for k in r if k == "total_loss" or k.startswith("loss_")} for rs in records.values())
    )
    keys = ["total_loss"] + sorted(keys - {"total_loss"})
    columns = 2
    rows = -(-len(keys) // columns)
    with png_figure(png_path, (5 * columns, 3 * rows), nrows=rows, ncols=columns, sharex=True, squeeze=False) as (
        fig,
        axes,
    ):
        for ax, key in zip(axes.flat, keys):
            for label, run_records in records.items():
                ax.plot(
                    [r["iteration"] for r in run_records], [r.get(key, float("nan")) for r in run_records], label=label
                )
            ax.set_title(key, fontsize=10)
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        for ax in axes.flat[len(keys) :]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=8)
        for ax in axes[-1]:
            ax.set_xlabel("iteration")
