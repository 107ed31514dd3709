"""Bar charts of the diagnostics table: per-keypoint mean error and detection rates."""

import numpy as np

from ...plotting import png_figure
from .matching import MATCH_OKS_THRESHOLD
from .summary import detect_key


def plot_keypoint_diagnostics(summary: dict, png_path: str, title: str) -> None:
    """Save bar charts of `summary`'s per-keypoint mean error (top) and detection rates (bottom)."""
    keypoints = summary["per_keypoint"]
    x = np.arange(len(keypoints))
    thresholds = summary["thresholds"]
    width = 0.8 / len(thresholds)

    def values(name):
        return [np.nan if k[name] is None else k[name] for k in keypoints]

    figsize = (max(8.0, 0.5 * len(keypoints) + 2), 7)
    with png_figure(png_path, figsize, nrows=2, sharex=True) as (fig, (ax_error, ax_rate)):
        ax_error.bar(x, values("mean_error"), color="tab:red")
        ax_error.set_ylabel("mean error / sqrt(area)\n(matched people)")
        for i, t in enumerate(thresholds):
            offset = (i - (len(thresholds) - 1) / 2) * width
            ax_rate.bar(x + offset, values(detect_key(t)), width, label=f"similarity >= {t:g}")
        ax_rate.set_ylim(0, 1)
        ax_rate.set_ylabel("fraction of visible\ngt keypoints detected")
        ax_rate.legend(fontsize=8)
        ax_rate.set_xticks(x, [k["name"] for k in keypoints], rotation=45, ha="right")
        for ax in (ax_error, ax_rate):
            ax.grid(axis="y", alpha=0.3)
        matched = f"{summary['num_matched_people']} of {summary['num_gt_people']} people matched"
        fig.suptitle(f"{title}: {matched} (OKS >= {MATCH_OKS_THRESHOLD:g})")
