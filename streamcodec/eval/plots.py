"""Rate-distortion plots: one PNG per clip, one panel per quality metric, rate on a log axis."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io.safe_output import write_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = 3
#: A panel is drawn only where some codec has a measured point: no face in the clip, no face panel.
PANELS = (("psnr_db", "PSNR (dB)"), ("ms_ssim", "MS-SSIM"), ("vmaf", "VMAF"),
          ("psnr_kept_db", "PSNR, kept region (dB)"), ("ms_ssim_kept", "MS-SSIM, kept region"),
          ("psnr_face_db", "PSNR, face region (dB)"))  # fmt: skip


def _curves(rows: list[dict[str, Any]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per codec: measured (kbps, metric) points in rate order; failed and n/a cells have none."""
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for codec in dict.fromkeys(r["codec"] for r in rows):
        mine = [r for r in rows if r["codec"] == codec and r["status"] == "ok" and r.get(metric) is not None]
        points = sorted((r["kbps"], r[metric]) for r in mine)
        if points:
            curves[codec] = ([p[0] for p in points], [p[1] for p in points])
    return curves


def plot_path(out: Path, clip: str) -> Path:
    """`rd_<clip>.png` in `out`, the clip's name made safe for a file name."""
    return out / f"rd_{re.sub(r'[^A-Za-z0-9._-]+', '_', clip)}.png"


def plot_clip(rows: list[dict[str, Any]], clip: str) -> Figure | None:
    """The RD figure of one clip; None when no codec has a measured point.

    Args:
        rows: result rows of the run (all clips).
        clip: which clip.
    """
    # Figure without pyplot: no global state and no GUI backend, safe in any process.
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    mine = [r for r in rows if r["clip"] == clip]
    panels = [(metric, label, _curves(mine, metric)) for metric, label in PANELS]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return None
    columns = min(len(panels), COLUMNS)
    grid_rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.8 * grid_rows), layout="constrained")
    grid = figure.subplots(grid_rows, columns, squeeze=False).ravel()
    for extra in grid[len(panels) :]:
        extra.set_visible(False)
    for axes, (_, label, curves) in zip(grid, panels, strict=False):
        for codec, (kbps, values) in curves.items():
            axes.plot(kbps, values, marker="o", markersize=4, label=codec)
        axes.set_xscale("log")
        # Plain numbers on the rate axis (the default log labels read "2×10¹").
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # Label only the minor ticks at 2x and 5x of a decade, so the labels never overlap.
        axes.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))
        axes.set_xlabel("kbps (whole file)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    figure.suptitle(clip)
    return figure


def write_plots(rows: list[dict[str, Any]], out: Path, force: bool = False) -> list[Path]:
    """One `rd_<clip>.png` per clip with a measured point in `out` (an existing one replaced only with `force`).

    Returns:
        The files written.
    """
    written = []
    for clip in dict.fromkeys(r["clip"] for r in rows):
        figure = plot_clip(rows, clip)
        if figure is not None:
            write_file(plot_path(out, clip), _png(figure), force)
            written.append(plot_path(out, clip))
    return written


def _png(figure: Figure) -> Callable[[Path], None]:
    """Save `figure` as PNG to the path given: a partial's name, so the format is named, not read from the suffix."""

    def save(path: Path) -> None:
        figure.savefig(path, dpi=110, format="png")

    return save
