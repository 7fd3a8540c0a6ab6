"""What `encode_file` reports: sizes and rates per track, speed, and the warnings on the way."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from ..codec import Encoder
from .audio import AudioRoute
from .mux import AUDIO_TRACK, PREVIEW_TRACK, VIDEO_TRACK, Muxing


@dataclass
class EncodeSummary:
    input: str
    output: str
    frames: int
    width: int
    height: int
    duration_s: float
    quality: int
    model_id: str
    file_bytes: int
    video_bytes: int
    preview_bytes: int
    audio_bytes: int
    kbps: float  # the codec's own track, which is what --bitrate targets
    file_kbps: float  # the whole file: codec track, preview, audio and container
    preview_kbps: float
    bpp: float
    seconds: float
    fps: float
    estimated_bits: float
    audio: str | None = None
    target_kbps: float | None = None
    warnings: list[str] = field(default_factory=list)
    rotation: int = 0  # display rotation carried from the source, degrees counter-clockwise

    def line(self) -> str:
        preview = f"; preview {self.preview_kbps:.1f} kbps" if self.preview_bytes else ""
        rotated = f", rotated {self.rotation}°" if self.rotation else ""
        return (
            f"{self.frames} frames {self.width}x{self.height}, {self.video_bytes / 1e3:.1f} kB video "
            f"({self.kbps:.1f} kbps, {self.bpp:.4f} bpp, quality {self.quality}{rotated}), "
            f"file {self.file_bytes / 1e3:.1f} kB ({self.file_kbps:.1f} kbps{preview}), "
            f"{self.seconds:.1f} s ({self.fps:.1f} fps) → {self.output}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_summary(
    names: tuple[str, str],
    encoder: Encoder,
    muxing: Muxing,
    file_bytes: int,
    frame_rate: Fraction,
    elapsed: float,
    audio: AudioRoute | None,
) -> EncodeSummary:
    """The summary of a finished encode; `names` are the input's and the output's, as given."""
    config, sizes, frames = encoder.config, muxing.sizes, muxing.frames
    duration = muxing.duration(frame_rate)
    return EncodeSummary(
        input=names[0],
        output=names[1],
        frames=frames,
        width=config.width,
        height=config.height,
        duration_s=duration,
        quality=config.quality,
        model_id=config.model_id,
        file_bytes=file_bytes,
        video_bytes=sizes[VIDEO_TRACK],
        preview_bytes=sizes[PREVIEW_TRACK],
        audio_bytes=sizes[AUDIO_TRACK],
        kbps=sizes[VIDEO_TRACK] * 8 / 1000 / duration,
        file_kbps=file_bytes * 8 / 1000 / duration,
        preview_kbps=sizes[PREVIEW_TRACK] * 8 / 1000 / duration,
        bpp=sizes[VIDEO_TRACK] * 8 / (frames * config.width * config.height),
        seconds=elapsed,
        fps=frames / elapsed,
        estimated_bits=muxing.estimate,
        audio=audio.description if audio else None,
    )
