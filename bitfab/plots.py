"""Figures of `bitfab compare`: the quantization error of one tensor in several formats, one small panel each.

Every panel spans its own ±max |error|, so a format with errors a thousand times smaller than another's still fills
its panel instead of one bin; the count axis (log) is shared, so the panels' heights compare.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from synth import save_figure

BINS = 61  # odd: the middle bin is centred on an error of 0
DPI = 120
PANEL_INCHES = (2.9, 2.3)


def error_histogram(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Small multiples of the error histograms of `rows` (dicts with "format", "sqnr_db" and "errors", an array of
    quantization errors of any shape), titled `title`, written as a PNG to `path` atomically (whole or absent).
    """
    if not rows:
        raise ValueError("rows must hold at least one format, got none")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    columns = min(len(rows), 4 if len(rows) <= 12 else 5)
    lines = math.ceil(len(rows) / columns)
    width = max(PANEL_INCHES[0] * columns + 0.5, 6.0)  # wide enough for the title when there are few panels
    figure, axes = plt.subplots(lines, columns, figsize=(width, PANEL_INCHES[1] * lines + 1), dpi=DPI, sharey=True,
                                squeeze=False, layout="constrained")  # fmt: skip
    figure.get_layout_engine().set(wspace=0.06)  # type: ignore[union-attr]  # air between neighbours' edge ticks
    peak = 1
    for axis, row in zip(axes.flat, rows, strict=False):
        errors = np.asarray(row["errors"], dtype=np.float64).reshape(-1)
        finite = errors[np.isfinite(errors)]
        spread = float(np.max(np.abs(finite))) if finite.size else 0.0
        counts, edges = np.histogram(finite, bins=BINS, range=(-(spread or 1.0), spread or 1.0))
        peak = max(peak, int(counts.max()))
        axis.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.85, linewidth=0)
        axis.set_xlim(edges[0] * 1.04, edges[-1] * 1.04)
        axis.xaxis.set_major_locator(MaxNLocator(nbins=2, symmetric=True))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:.2g}"))
        axis.tick_params(labelsize=8)
        axis.set_title(f"{row['format']} (SQNR {float(row['sqnr_db']):.1f} dB)", fontsize=9)
        notes = [] if spread else ["every error is 0"] if finite.size else ["no errors to show"]
        if finite.size < errors.size:
            notes.append(f"{errors.size - finite.size} non-finite not shown")
        if notes:  # top left, clear of a spike at 0
            axis.text(0.03, 0.96, "\n".join(notes), transform=axis.transAxes, ha="left", va="top", fontsize=8)
    for axis in axes.flat[len(rows) :]:
        axis.set_visible(False)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylim(0.5, peak * 3)  # a single count still shows; room above the tallest bin for the notes
    figure.suptitle(title)
    figure.supxlabel("quantization error (each panel spans its own ±max |error|)", fontsize=10)
    figure.supylabel("count (log scale, shared)" if len(rows) > 1 else "count (log scale)", fontsize=10)
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)
