"""Figures written as PNG files: the one place mask_rcnn_ext calls matplotlib.

Each chart stays beside the data it draws (`engine/training_curves.py`, `evaluation/`'s keypoint
diagnostics, the Table 2 study's bar chart); what they share is here: a figure made, laid out,
written and released. It is matplotlib's object API, not pyplot: nothing opens a window or
changes the process's backend, so plotting works without a display and leaves a user's
interactive session as it was.
"""

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def png_figure(png_path: str, figsize: tuple[float, float], **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """A `figsize` (inches) figure and its axes to draw on inside the `with` block; on leaving it
    the figure is laid out tightly and written to `png_path` at 100 dpi.

    `subplots` go to matplotlib's `Figure.subplots` (nrows, ncols, sharex, height_ratios, ...),
    which gives the axes as `plt.subplots` does. Nothing is written if the block raises.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    yield figure, figure.subplots(**subplots)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
