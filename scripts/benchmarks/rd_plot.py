"""Rate–distortion figures for the benchmark scripts: panels side by side, one curve per codec.

The look of `progressive_stills.py --plot` (docs/progressive/rd_stills.png): small round markers,
a light grid, the legend in the first panel, a title over the whole figure, 110 dpi.

    figure(curves, [Panel("kbps", "psnr", "PSNR (dB)")], title="…", out=Path("rd.png"))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: One curve: its points, each a mapping of field name to value (e.g. {"kbps": 120.0, "psnr": 31.2}).
Curve = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Panel:
    """One panel: `y` against `x`, both field names of the points; `log_x` for a logarithmic rate axis."""

    x: str
    y: str
    y_label: str
    x_label: str = "kbps"
    log_x: bool = False


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM): spreads the values close to 1 (0.99 → 20 dB, 0.999 → 30 dB)."""
    return -10 * math.log10(max(1 - value, 1e-9))


def figure(curves: Mapping[str, Curve], panels: Sequence[Panel], *, title: str, out: Path, legend_below: bool = False) -> None:
    """Draw every curve into every panel and write the PNG `out`.

    Args:
        curves: label → points, drawn in this order (so in matplotlib's colour order).
        panels: the panels, left to right.
        title: over the whole figure.
        out: the PNG to write.
        legend_below: the legend in one row under the panels (where curves fill every corner), not in the first panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        for label, points in curves.items():
            ordered = sorted(points, key=lambda p: p[panel.x])
            axis.plot([p[panel.x] for p in ordered], [p[panel.y] for p in ordered], marker="o", markersize=3, label=label)
        axis.set_xlabel(panel.x_label)
        axis.set_ylabel(panel.y_label)
        if panel.log_x:
            _log_axis(axis)
        axis.grid(alpha=0.3, which="both" if panel.log_x else "major")
    plot.suptitle(title)
    if legend_below:
        plot.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(curves), frameon=False)
        plot.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        axes[0][0].legend()
        plot.tight_layout()
    plot.savefig(out, dpi=110)
    plt.close(plot)


def _log_axis(axis: Any) -> None:
    """A logarithmic x axis labelled in plain numbers at 1, 2 and 5 of each decade (10, 20, 50, 100 …)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
