"""Files in, files out: `encode_file` (any video → .mkv) and `decode_file` (.mkv → video/PNGs).

Frames stream one at a time from the demuxer through the codec to the muxer, so memory does not
grow with the length of the clip.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bitstream import FORMAT_VERSION
from ..codec import DEFAULT_GOP, Encoder
from ..entropy import context
from ..errors import UnreadableInputError
from ..io.audio_codecs import matroska_audio_track, strip_adts
from ..io.demux import AudioPacket, Source, VideoFrame
from ..io.h264 import PreviewEncoder
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..models.registry import DEFAULT_MODEL
from ..progress import Progress

CODEC_ID = "V_STREAMCODEC"
VIDEO_TRACK, AUDIO_TRACK, PREVIEW_TRACK = 1, 2, 3
RATE_PROBE_FRAMES = 8
MS = Fraction(1, 1000)


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
    kbps: float
    bpp: float
    seconds: float
    fps: float
    estimated_bits: float
    audio: str | None = None
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.frames} frames {self.width}x{self.height}, {self.video_bytes / 1e3:.1f} kB video "
            f"({self.kbps:.1f} kbps, {self.bpp:.4f} bpp, quality {self.quality}), file {self.file_bytes / 1e3:.1f} kB, "
            f"{self.seconds:.1f} s ({self.fps:.1f} fps) → {self.output}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_quality(encoder: Encoder, frames: list[np.ndarray], fps: Fraction, kbps: float) -> int:
    """Highest quality whose estimated rate on the first frames fits `kbps` (else the lowest).

    E runs once per probe frame; each quality's rate is the model's entropy estimate of its
    leading channels, weighting intra and inter frames as the GOP will.
    """
    config = encoder.model.config
    symbols = [encoder.analyze(rgb) for rgb in frames]
    intra_share = 1.0 / min(encoder.config.gop, max(len(frames), 1))
    best = 1
    for quality, keep in enumerate(config.quality_channels, start=1):
        intra = context.encode_frame(symbols[0][:keep], None, encoder.model.tables)[1]
        inter = [context.encode_frame(s[:keep], r[:keep], encoder.model.tables)[1] for r, s in itertools.pairwise(symbols)]
        bits = intra_share * intra + (1 - intra_share) * (float(np.mean(inter)) if inter else intra)
        if bits * float(fps) / 1000.0 <= kbps:
            best = quality
    return best


def _peek(items: Iterator[VideoFrame | AudioPacket], frames: int) -> tuple[list[VideoFrame | AudioPacket], list[np.ndarray]]:
    head: list[VideoFrame | AudioPacket] = []
    video: list[np.ndarray] = []
    for item in items:
        head.append(item)
        if isinstance(item, VideoFrame):
            video.append(item.rgb)
            if len(video) == frames:
                break
    return head, video


def _tracks(source: Source, encoder: Encoder, preview: PreviewEncoder | None) -> tuple[list[TrackSpec], bool]:
    info = source.info
    tracks = [
        TrackSpec(
            number=VIDEO_TRACK,
            kind="video",
            codec_id=CODEC_ID,
            codec_private=encoder.config.pack(),
            default_duration_ns=round(1e9 / info.frame_rate),
            width=info.width,
            height=info.height,
            name=f"streamcodec {encoder.config.mode} q{encoder.config.quality}",
        )
    ]
    audio = matroska_audio_track(source.audio, AUDIO_TRACK) if source.audio else None
    if audio:
        tracks.append(audio)
    if preview:
        tracks.append(
            TrackSpec(
                number=PREVIEW_TRACK,
                kind="video",
                codec_id="V_MPEG4/ISO/AVC",
                codec_private=preview.codec_private,
                default_duration_ns=round(1e9 / info.frame_rate),
                width=preview.width,
                height=preview.height,
                name="preview (H.264)",
                default=False,
            )
        )
    return tracks, audio is not None


def encode_file(
    input: Path,
    output: Path,
    *,
    model: str = DEFAULT_MODEL,
    quality: int | None = None,
    bitrate_kbps: float | None = None,
    gop: int = DEFAULT_GOP,
    preview: bool = True,
    backend: str = "auto",
    progress: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> EncodeSummary:
    """Encode `input` (anything PyAV opens) into a Matroska file with a V_STREAMCODEC track.

    The file appears at `output` only when complete; on any error nothing is left there.
    """
    if quality is not None and bitrate_kbps is not None:
        raise ValueError("give either quality or bitrate, not both")
    if bitrate_kbps is not None and bitrate_kbps <= 0:
        raise ValueError(f"bitrate {bitrate_kbps} kbps must be positive")
    started = time.perf_counter()
    with Source(input) as source:
        info = source.info
        encoder = Encoder(info.width, info.height, model=model, quality=quality, gop=gop, backend=backend)
        items = source.items()
        head, probe = _peek(items, RATE_PROBE_FRAMES)
        if not probe:
            raise UnreadableInputError("holds no decodable video frames", input)
        if bitrate_kbps is not None:
            encoder.with_quality(choose_quality(encoder, probe, info.frame_rate, bitrate_kbps))
        preview_encoder = PreviewEncoder(info.width, info.height, MS) if preview else None
        tracks, audio_copied = _tracks(source, encoder, preview_encoder)
        notes = []
        audio_name = source.audio.codec_context.name if source.audio is not None else None
        aac = audio_copied and tracks[1].codec_id == "A_AAC"
        if audio_name is not None and not audio_copied:
            notes.append(f"audio codec {audio_name} cannot be copied into Matroska; not included")
        config = encoder.config
        tags = {"ENCODER": f"streamcodec {__version__}"}
        track_tags = {
            VIDEO_TRACK: {
                "STREAMCODEC_MODEL_ID": config.model_id,
                "STREAMCODEC_MODEL": config.model_name,
                "STREAMCODEC_FORMAT_VERSION": str(FORMAT_VERSION),
                "STREAMCODEC_MODE": config.mode,
                "STREAMCODEC_QUALITY": str(config.quality),
            }
        }
        sizes = {VIDEO_TRACK: 0, AUDIO_TRACK: 0, PREVIEW_TRACK: 0}
        frames, estimate, first, last = 0, 0.0, None, None
        bar = Progress(total=info.frames, unit="frame", enabled=progress, desc="encode")
        with MatroskaWriter(output, tracks, writing_app=f"streamcodec {__version__}", tags=tags, track_tags=track_tags) as writer:
            for item in _chain(head, items):
                if isinstance(item, AudioPacket):
                    if audio_copied:
                        data = strip_adts(item.data) if aac else item.data
                        writer.write(AUDIO_TRACK, item.time, data, item.keyframe)
                        sizes[AUDIO_TRACK] += len(data)
                    continue
                encoded = encoder.encode(item.rgb)
                writer.write(VIDEO_TRACK, item.time, encoded.packet, encoded.keyframe)
                sizes[VIDEO_TRACK] += len(encoded.packet)
                estimate += encoded.estimated_bits
                if preview_encoder is not None:
                    for pts, data, key in preview_encoder.encode(item.rgb, round(item.time / MS), encoded.keyframe):
                        writer.write(PREVIEW_TRACK, pts * MS, data, key)
                        sizes[PREVIEW_TRACK] += len(data)
                first = item.time if first is None else first
                last = item.time
                frames += 1
                seconds = float(last - first) + 1.0 / float(info.frame_rate)
                bar.update(1, kbps=sizes[VIDEO_TRACK] * 8 / 1000 / seconds)
                if on_frame:
                    on_frame(frames, len(encoded.packet))
            if preview_encoder is not None:
                for pts, data, key in preview_encoder.flush():
                    writer.write(PREVIEW_TRACK, pts * MS, data, key)
                    sizes[PREVIEW_TRACK] += len(data)
            file_bytes = writer.close()
        bar.close()
    assert first is not None and last is not None
    duration = float(last - first) + 1.0 / float(info.frame_rate)
    elapsed = time.perf_counter() - started
    return EncodeSummary(
        input=str(input),
        output=str(output),
        frames=frames,
        width=info.width,
        height=info.height,
        duration_s=duration,
        quality=config.quality,
        model_id=config.model_id,
        file_bytes=file_bytes,
        video_bytes=sizes[VIDEO_TRACK],
        preview_bytes=sizes[PREVIEW_TRACK],
        audio_bytes=sizes[AUDIO_TRACK],
        kbps=sizes[VIDEO_TRACK] * 8 / 1000 / duration,
        bpp=sizes[VIDEO_TRACK] * 8 / (frames * info.width * info.height),
        seconds=elapsed,
        fps=frames / elapsed,
        estimated_bits=estimate,
        audio=audio_name if audio_copied else None,
        notes=notes,
    )


def _chain(head: list[VideoFrame | AudioPacket], rest: Iterator[VideoFrame | AudioPacket]) -> Iterator[VideoFrame | AudioPacket]:
    yield from head
    yield from rest
