"""Encode one clip at one rate point with one codec, decode it back, and measure it.

The same steps for every codec: the encoded file's size on disk (all of it: container overhead is
part of what a decoder needs), the decoded frames compared with the source frames by the same
metric code, and wall-clock encode/decode speed (decode speed counts producing RGB frames). With
masks, the frame holding the worst block outside the kept region is written as a picture (`worst.py`).
The face region (the eval's own detector, `faces.py`) is measured for every codec, masks or not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StreamcodecError
from .clip import PreparedClip, frame_at
from .codecs import Codec, EncodeContext, RatePoint
from .masks import Frame, MaskSource
from .quality import ClipQuality, mask_iou
from .vmaf import vmaf_score
from .worst import write_worst_image

# A classical encoder off its target by more than this is reported (it could not reach the rate).
RATE_TOLERANCE = 0.15


class _Timed:
    """Wraps a frame iterator and adds up the time spent producing frames (the decode time)."""

    def __init__(self, frames: Iterator[Frame]) -> None:
        self.frames, self.seconds = frames, 0.0

    def __iter__(self) -> Iterator[Frame]:
        while True:
            started = time.perf_counter()
            frame = next(self.frames, None)
            self.seconds += time.perf_counter() - started
            if frame is None:
                return
            yield frame


def _compare(
    codec: Codec, encoded: Path, clip: PreparedClip, masks: MaskSource | None, raw_out: Path | None
) -> tuple[ClipQuality, float]:
    """Decode `encoded` and measure every frame against the source; returns metrics and decode seconds."""
    quality, timed = ClipQuality(), _Timed(codec.frames(encoded))
    source = clip.source_frames()
    count = 0
    with raw_out.open("wb") if raw_out is not None else _NoFile() as sink:
        for index, decoded in enumerate(timed):
            if index >= clip.frames:
                raise StreamcodecError(f"decodes to more frames than the source's {clip.frames}", encoded)
            reference = frame_at(source, index)
            if decoded.shape != reference.shape:
                raise StreamcodecError(f"frame {index} decodes to {decoded.shape}, the source is {reference.shape}", encoded)
            kept = iou = None
            if clip.masks is not None and masks is not None:
                kept = clip.masks.kept[index]
                iou = mask_iou(clip.masks.person[index], masks.person_mask(decoded))
            face = clip.faces[index] if clip.faces is not None else None
            quality.add(reference, decoded, kept, iou, face)
            sink.write(decoded.tobytes())
            count += 1
    if count != clip.frames:
        raise StreamcodecError(f"decodes to {count} frames, the source has {clip.frames}", encoded)
    return quality, timed.seconds


class _NoFile:
    """Stands in for the raw output file when VMAF is off."""

    def __enter__(self) -> _NoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)


def rate_note(target_kbps: float | None, kbps: float) -> str | None:
    """A note when an encoder missed its target bitrate by more than RATE_TOLERANCE."""
    if target_kbps is None or abs(kbps - target_kbps) <= RATE_TOLERANCE * target_kbps:
        return None
    verb = "could not go as low as" if kbps > target_kbps else "stayed below"
    return f"{verb} the {target_kbps:g} kbps target: {kbps:.1f} kbps ({(kbps / target_kbps - 1) * 100:+.0f} %)"


def measure_cell(
    codec: Codec,
    point: RatePoint,
    clip: PreparedClip,
    ctx: EncodeContext,
    work: Path,
    *,
    masks: MaskSource | None,
    vmaf_exe: str | None,
    worst_image: Path | None = None,
) -> dict[str, Any]:
    """Encode, decode and measure one cell.

    Args:
        codec, point: what to run.
        clip: the prepared source clip.
        ctx: run settings (GOP, model, ffmpeg, ROI region).
        work: scratch folder for the encoded file (removed by the caller).
        masks: the mask source (for person masks of decoded frames), or None.
        vmaf_exe: a libvmaf-enabled ffmpeg, or None to skip VMAF.
        worst_image: where to write source | decoded of the frame with the worst block outside the kept
            region (written only when there is one, i.e. with masks), or None.

    Returns:
        The measured values of a results row (kbps, bpp, metrics, speeds, notes).
    """
    encoded = codec.encode(clip.video, point, work, ctx)
    size = encoded.path.stat().st_size
    raw_out = work / f"{encoded.path.stem}.rgb" if vmaf_exe else None
    quality, decode_seconds = _compare(codec, encoded.path, clip, masks, raw_out)
    kbps = size * 8 / 1000 / clip.duration_s
    notes = list(encoded.notes)
    note = rate_note(point.target_kbps, kbps)
    if note:
        notes.append(note)
    notes += [f"{metric} n/a: {reason}" for metric, reason in quality.whole.reasons.items()]
    if quality.face_reason:
        notes.append(f"face region n/a: {quality.face_reason}")
    vmaf = None
    if vmaf_exe and raw_out is not None:
        vmaf = vmaf_score(raw_out, clip.raw, clip.width, clip.height, clip.frame_rate, exe=vmaf_exe)
        raw_out.unlink()
    if worst_image is not None and quality.bound.worst is not None:
        write_worst_image(quality.bound.worst, worst_image)
    return {
        "file_bytes": size,
        "kbps": kbps,
        "bpp": size * 8 / (clip.frames * clip.width * clip.height),
        **quality.summary(),
        "vmaf": vmaf,
        "encode_fps": clip.frames / encoded.seconds if encoded.seconds > 0 else None,
        "decode_fps": clip.frames / decode_seconds if decode_seconds > 0 else None,
        "notes": "; ".join(notes) or None,
    }
