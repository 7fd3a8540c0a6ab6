"""`run_eval`: every codec at every rate point on every clip, cached cell by cell, then the reports.

    for clip:                 prepare once (video-only copy, raw frames, masks) — only if needed
      for codec (streamcodec first: its measured rates place the classical targets):
        for point:            cached?  → reuse
                              available? → encode, decode, measure, cache (failures too)
                              else       → an n/a row with the reason
    → results.csv / results.json / RD plots / BD-rates / report.html / summary.md
      (and, with masks, OUT/worst/<clip>-<codec>-<point>.png per computed cell: the worst block's frame)

Every prepared clip also gets its face region from the eval's own detector (faces.py, not the encoder's).

A failing cell is recorded with its error and the run goes on; a rerun retries it.

Scratch files (the clip's copies, each cell's encoded file) live in a locked folder the run makes
in OUT, `.work.partial-XXXXXXXX`, removed at the end; nothing else in OUT is removed. Existing
outputs are refused before any work unless `force` (report.check_outputs).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError
from ..io.demux import Source
from ..io.safe_output import Partial, remove_stale_partials, writing_errors
from ..progress import Progress
from .cache import CellCache, file_digest, safe_name
from .clip import PreparedClip, prepare_clip
from .codecs import CODECS, Codec, EncodeContext, RatePoint, StreamcodecCodec, classical_targets
from .faces import NAME as FACE_DETECTOR
from .faces import NO_FACE
from .ffmpeg_tools import system_ffmpeg
from .masks import mask_source, unavailable_reason
from .measure import measure_cell
from .report import check_outputs, environment, write_reports
from .results import EvalConfig, EvalRun
from .vmaf import NO_VMAF, find_vmaf_ffmpeg

DEFAULT_ANCHOR = "x265"
MASK_METRICS = ("psnr_kept_db", "psnr_kept_of_mean_mse_db", "ms_ssim_kept", "psnr_outside_db", "frames_over_bound",
                "worst_block", "person_iou", "background_flicker")  # fmt: skip
WORST_FOLDER = "worst"


def validate(config: EvalConfig) -> None:
    """Check the configuration up front, naming the bad value and what is allowed."""
    unknown = [name for name in config.codecs if name not in CODECS]
    if unknown or not config.codecs:
        raise ValueError(f"unknown codec(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CODECS)}")
    if config.points < 1:
        raise ValueError(f"--points {config.points} must be at least 1")
    if config.anchor is not None and config.anchor not in config.codecs:
        raise ValueError(f"anchor {config.anchor!r} is not among the codecs being run ({', '.join(config.codecs)})")
    for clip in config.clips:
        if not clip.is_file():
            raise InputNotFoundError("no such clip", clip)
        with Source(clip):  # unreadable clips stop the run here, before any work is done
            pass
    stems = [clip.stem for clip in config.clips]
    if len(set(stems)) != len(stems):
        raise ValueError(f"clips must have distinct names (rows and plots are labelled by name): {', '.join(stems)}")


def resolved_anchor(config: EvalConfig) -> str:
    """The BD-rate anchor: the one asked for, else x265 when it runs, else the first codec given."""
    if config.anchor is not None:
        return config.anchor
    return DEFAULT_ANCHOR if DEFAULT_ANCHOR in config.codecs else config.codecs[0]


def _ordered(names: list[str]) -> list[Codec]:
    # streamcodec first: the classical codecs' targets come from its measured rates.
    codecs = [CODECS[name] for name in dict.fromkeys(names)]
    return sorted(codecs, key=lambda codec: not isinstance(codec, StreamcodecCodec))


class _Grid:
    """State of one run while it walks the grid; scratch files go into `work`, a folder of the run's own."""

    def __init__(self, config: EvalConfig, work: Path) -> None:
        self.config = config
        self.out = config.out
        self.cache = CellCache(config.out / "cache" / "cells")
        self.work = work
        self.ffmpeg = system_ffmpeg()
        self.masks = mask_source() if config.mask_source == "auto" else config.mask_source
        self.masks_reason = (unavailable_reason() or "needs selective-mode masks") if self.masks is None else None
        self.vmaf_exe = find_vmaf_ffmpeg() if config.vmaf else None
        self.features = {"vmaf": self.vmaf_exe is not None, "masks": self.masks.name if self.masks else None,
                         "faces": FACE_DETECTOR}  # fmt: skip
        self.rows: list[dict[str, Any]] = []
        self.counts = {"computed": 0, "cached": 0, "failed": 0, "unavailable": 0}
        total = len(config.clips) * sum(self._count(codec) for codec in _ordered(config.codecs))
        self.bar = Progress(total=total, unit="cell", enabled=config.progress, desc="eval")

    def _count(self, codec: Codec) -> int:
        if isinstance(codec, StreamcodecCodec):
            return len(codec.points(self.config.model, self.config.points))
        return self.config.points * self._modes()

    def _modes(self) -> int:
        """How many streamcodec modes this run measures (at least 1): classical codecs get `points` per mode."""
        ours = [c for c in _ordered(self.config.codecs) if isinstance(c, StreamcodecCodec)]
        return max(1, sum(c.unavailable(self.masks_reason) is None for c in ours))

    def not_available(self) -> dict[str, str]:
        reasons = {name: self.masks_reason for name in MASK_METRICS if self.masks_reason}
        if self.vmaf_exe is None:
            reasons["vmaf"] = NO_VMAF if self.config.vmaf else "switched off (--no-vmaf)"
        for name in self.config.codecs:
            reason = CODECS[name].unavailable(self.masks_reason)
            if reason:
                reasons[name] = reason
        measured = [row for row in self.rows if row["status"] == "ok"]
        # No face in any clip: n/a run-wide. (Where only some clips have none, their rows' notes say so.)
        if measured and not any(row.get("face_frames") for row in measured):
            reasons |= {"psnr_face_db": NO_FACE, "ms_ssim_face": NO_FACE}
        return {name: reason for name, reason in reasons.items() if reason}

    def run_clip(self, path: Path) -> None:
        digest = file_digest(path)
        prepared: list[PreparedClip] = []

        def clip() -> PreparedClip:
            # Prepared only when a cell has to be computed: a fully cached clip costs one hash.
            if not prepared:
                with writing_errors(self.out):  # its copies and the masks' cache: a full disk is one line
                    prepared.append(prepare_clip(path, digest, self.work, self.out / "cache" / "masks", self.ffmpeg, self.masks))
            return prepared[0]

        ours_kbps: list[float] = []  # every streamcodec mode's measured rates: the classical targets span them
        for codec in _ordered(self.config.codecs):
            for point in self._points(codec, ours_kbps, self._modes(), path):
                row = self._cell(codec, point, path, digest, clip)
                if isinstance(codec, StreamcodecCodec) and row["status"] == "ok":
                    ours_kbps.append(row["kbps"])
                self.rows.append(row)
                self.bar.update(1, clip=path.stem, codec=codec.name)

    def _points(self, codec: Codec, ours_kbps: list[float], modes: int, path: Path) -> list[RatePoint]:
        if isinstance(codec, StreamcodecCodec):
            return codec.points(self.config.model, self.config.points)
        with Source(path) as source:  # frame size and rate only, for the default range
            info = source.info
        # `points` per streamcodec mode, so each mode's range holds as many classical points as its own.
        targets = classical_targets(ours_kbps, self.config.points * modes, info.width, info.height, info.frame_rate)
        return [RatePoint(f"{kbps:g}kbps", target_kbps=kbps) for kbps in targets]

    def _context(self, clip: PreparedClip | None) -> EncodeContext:
        kept_union = clip.kept_union if clip is not None else None
        return EncodeContext(gop=self.config.gop, model=self.config.model, ffmpeg=self.ffmpeg, kept_union=kept_union)

    def _cell(self, codec: Codec, point: RatePoint, path: Path, digest: str, clip: Callable[[], PreparedClip]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "clip": path.stem,
            "codec": codec.name,
            "point": point.label,
            "quality_level": point.quality,
            "target_kbps": point.target_kbps,
        }
        reason = codec.unavailable(self.masks_reason)
        if reason:
            self.counts["unavailable"] += 1
            return {**row, "status": "n/a", "detail": f"not available: {reason}", "cached": False}
        # The ROI (from masks) is part of x265-roi's settings, so only that codec prepares the clip here.
        ctx = self._context(clip() if codec.needs_masks else None)
        cell = self.cache.path(path.stem, digest, codec.name, point.label, codec.settings(ctx))
        cached = self.cache.load(cell, self.features)
        if cached is not None and cached.get("worst_image") and not (self.out / cached["worst_image"]).is_file():
            cached = None  # its picture was removed: measure again to draw it
        if cached is not None:
            self.counts["cached"] += 1
            return {**cached, "cached": True}
        row = self._compute(codec, point, clip(), row)
        with writing_errors(cell):
            self.cache.store(cell, row, self.features)
        return {**row, "cached": False}

    def _compute(self, codec: Codec, point: RatePoint, clip: PreparedClip, row: dict[str, Any]) -> dict[str, Any]:
        self.counts["computed"] += 1
        scratch = self.work / f"{codec.name}-{point.label}"
        scratch.mkdir(parents=True, exist_ok=True)
        base = {**row, "frames": clip.frames, "width": clip.width, "height": clip.height, "duration_s": clip.duration_s}
        image = f"{WORST_FOLDER}/{safe_name(row['clip'])}-{safe_name(codec.name)}-{safe_name(point.label)}.png"
        try:
            measured = measure_cell(
                codec, point, clip, self._context(clip), scratch, masks=self.masks, vmaf_exe=self.vmaf_exe,
                worst_image=self.out / image,
            )  # fmt: skip
        except Exception as exc:  # any failure of one cell is reported in the results, never fatal
            self.counts["failed"] += 1
            return {**base, "status": "failed", "detail": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        worst = image if measured.get("worst_frame") is not None else None
        return {**base, **measured, "worst_image": worst, "status": "ok", "detail": None}


def run_eval(config: EvalConfig) -> EvalRun:
    """Run the whole grid (cached cells are reused) and write every report into `config.out`.

    Returns:
        EvalRun with the rows and counts of computed / cached / failed / unavailable cells.
    """
    validate(config)
    check_outputs(config)
    with writing_errors(config.out):
        config.out.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(config.out / "work", scratch=True)  # left by a killed run: unlocked, ours by name
    scratch = Partial.create(config.out / "work", folder=True)
    try:
        grid = _Grid(config, scratch.path)
        try:
            for clip in config.clips:
                grid.run_clip(clip)
        finally:
            grid.bar.close()
    finally:
        scratch.discard()
    counts = grid.counts
    run = EvalRun(
        config,
        resolved_anchor(config),
        grid.rows,
        grid.not_available(),
        environment(grid.ffmpeg, grid.vmaf_exe, grid.masks),
        computed=counts["computed"],
        cached=counts["cached"],
        failed=counts["failed"],
        unavailable=counts["unavailable"],
    )
    run.outputs = write_reports(run)
    return run
