"""What an evaluation is and what it produced, shared by the runner and every report.

    runner ──► EvalRun (rows, not-available reasons, counts) ──► report ──► html_report, plots

`EvalConfig` says what to run; `EvalRun` holds the result rows, whose columns (`COLUMNS`), labels
(`LABELS`) and cell formatting (`fmt`) every report writes the same way.

Outside the kept region (the eval's masks, the same for every codec) each row has psnr_outside_db,
frames_over_bound (frames with a 16x16 block whose mean absolute luma error exceeds
`metrics.BLOCK_ERROR_BOUND`, no kept pixel in it), worst_block (the largest such error over the clip,
in levels), worst_frame (its frame) and worst_image (that frame, source | decoded, relative to OUT).

In the face region (the eval's own detector on the source frames, `faces.py`, the same for every codec)
each row has psnr_face_db and ms_ssim_face (means over the frames with a face), face_share (the mean
share of a frame the region covers, frames without a face counting 0) and face_frames (how many have one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..codec import DEFAULT_GOP
from ..metrics import BLOCK_ERROR_BOUND
from ..models.registry import DEFAULT_MODEL
from .codecs import DEFAULT_CODECS
from .masks import MaskSource

COLUMNS = (
    "clip", "codec", "point", "quality_level", "target_kbps", "status", "detail",
    "kbps", "bpp", "file_bytes", "frames", "width", "height", "duration_s",
    "psnr_db", "psnr_of_mean_mse_db", "ms_ssim", "vmaf",
    "psnr_kept_db", "psnr_kept_of_mean_mse_db", "ms_ssim_kept",
    "psnr_outside_db", "frames_over_bound", "worst_block", "worst_frame", "person_iou",
    "psnr_face_db", "ms_ssim_face", "face_share", "face_frames",
    "flicker", "background_flicker", "encode_fps", "decode_fps", "worst_image", "notes", "cached",
)  # fmt: skip
LABELS = {
    "psnr_db": "PSNR (dB)", "ms_ssim": "MS-SSIM", "vmaf": "VMAF", "psnr_kept_db": "PSNR kept region (dB)",
    "ms_ssim_kept": "MS-SSIM kept region", "kbps": "kbps", "bpp": "bpp", "flicker": "flicker",
    "psnr_outside_db": "PSNR outside kept (dB)", "frames_over_bound": f"frames > {BLOCK_ERROR_BOUND:g} (16x16)",
    "worst_block": "worst block (levels)", "worst_frame": "worst frame", "person_iou": "person IoU",
    "background_flicker": "background flicker", "encode_fps": "enc fps", "decode_fps": "dec fps",
    "psnr_face_db": "PSNR face region (dB)", "ms_ssim_face": "MS-SSIM face region", "face_share": "face share",
    "face_frames": "face frames",
}  # fmt: skip


@dataclass
class EvalConfig:
    """What to evaluate and where to write it.

    `mask_source` is "auto" (selective mode's) or a given source (tests). `force` replaces the
    reports and plots an earlier run left in `out` (without it they are refused before any work).
    """

    clips: list[Path]
    codecs: list[str] = field(default_factory=lambda: list(DEFAULT_CODECS))
    points: int = 4
    out: Path = Path("eval-results")
    anchor: str | None = None  # None: x265 when it runs, else the first codec given
    model: str = DEFAULT_MODEL
    gop: int = DEFAULT_GOP
    vmaf: bool = True
    progress: bool = False
    command: str | None = None
    mask_source: MaskSource | Literal["auto"] | None = "auto"
    force: bool = False


@dataclass
class EvalRun:
    """What a run produced: the rows, the not-available reasons, and what it had to compute."""

    config: EvalConfig
    anchor: str
    rows: list[dict[str, Any]]
    not_available: dict[str, str]
    environment: dict[str, Any]
    computed: int = 0
    cached: int = 0
    failed: int = 0
    unavailable: int = 0
    outputs: dict[str, Path] = field(default_factory=dict)


def fmt(value: Any, column: str = "") -> str:
    """A cell for the human-readable tables."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        fine = column.startswith("ms_ssim") or column in ("bpp", "person_iou", "face_share")
        digits = 4 if fine else 1 if column.endswith("fps") else 2
        return f"{value:.{digits}f}"
    return str(value)


def worst_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per clip and codec, the measured row with the largest worst_block (the picture a report shows), in row order."""
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row["status"] == "ok" and row.get("worst_block") is not None:
            key = (row["clip"], row["codec"])
            if key not in worst or row["worst_block"] > worst[key]["worst_block"]:
                worst[key] = row
    return list(worst.values())
