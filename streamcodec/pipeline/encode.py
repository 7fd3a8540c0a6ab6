"""Files in, files out: `encode_file` (any video → .mkv) and `decode_file` (.mkv → video/PNGs).

Frames stream one at a time from the demuxer through the codec to the muxer, so memory does not
grow with the length of the clip.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..bitstream import FORMAT_VERSION, StreamConfig
from ..codec import DEFAULT_GOP, DEFAULT_MODE, EncodedFrame, Encoder, SelectiveOptions
from ..errors import OutputError, UnreadableInputError
from ..io.demux import AudioPacket, Source, SourceInfo, VideoFrame
from ..io.h264 import PreviewEncoder
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..io.safe_output import check_file_target
from ..models.registry import DEFAULT_MODEL
from ..progress import Progress
from ..selective.layers import FEATHER, WHOLE_ABOVE
from ..selective.masks import DEFAULT_KEEP
from ..selective.planes import source_matrix
from ..version import __version__
from .audio import AudioRoute
from .batch import encoded_in_batches
from .rate import choose_quality, estimate_rates, preview_budget

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


def _with_matrix(options: SelectiveOptions, head: list[VideoFrame | AudioPacket]) -> SelectiveOptions:
    """Selective options converting with the colour matrix the source's first frame was decoded with (BT.709 for most HD).

    Then that frame's own 4:2:0 planes give exactly its RGB, and the kept region is coded from them.
    """
    first = next(item for item in head if isinstance(item, VideoFrame))
    if first.source is None:
        return options
    return replace(options, matrix=source_matrix(first.source, first.rgb))


def _video_tracks(source: Source, encoder: Encoder, preview: PreviewEncoder | None, rotation: int) -> list[TrackSpec]:
    """The video TrackSpecs, preview first: players show the first default track they can decode.

    Both carry the source's display rotation (frames are coded as stored, e.g. a portrait phone
    clip as landscape pixels), so players and `decode` show them upright.
    """
    info = source.info
    frame_ns = round(1e9 / info.frame_rate)
    config = encoder.config
    # FlagDefault marks what a player may pick on its own. No player decodes V_STREAMCODEC, so
    # with a preview present only the preview is default (ffmpeg/ffplay/mpv then take it); our
    # own tools find our track by CodecID.
    ours = TrackSpec(
        number=VIDEO_TRACK,
        kind="video",
        codec_id=CODEC_ID,
        codec_private=config.pack(),
        default_duration_ns=frame_ns,
        width=info.width,
        height=info.height,
        name=f"streamcodec {config.mode} q{config.quality}",
        default=preview is None,
        rotation=rotation,
    )
    if preview is None:
        return [ours]
    shown = TrackSpec(
        number=PREVIEW_TRACK,
        kind="video",
        codec_id="V_MPEG4/ISO/AVC",
        codec_private=preview.codec_private,
        default_duration_ns=frame_ns,
        width=preview.width,
        height=preview.height,
        name="preview (H.264)",
        default=True,
        rotation=rotation,
    )
    return [shown, ours]


def _tags(config: StreamConfig) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    track_tags = {
        "STREAMCODEC_MODEL_ID": config.model_id,
        "STREAMCODEC_MODEL": config.model_name,
        "STREAMCODEC_FORMAT_VERSION": str(FORMAT_VERSION),
        "STREAMCODEC_MODE": config.mode,
        "STREAMCODEC_QUALITY": str(config.quality),
    }
    return {"ENCODER": f"streamcodec {__version__}"}, {VIDEO_TRACK: track_tags}


class _Muxing:
    """One encode in progress: every track's packets into the writer, with running totals."""

    def __init__(
        self, writer: MatroskaWriter, encoder: Encoder, preview: PreviewEncoder | None, audio: AudioRoute | None
    ) -> None:
        self.writer, self.encoder, self.preview, self.audio = writer, encoder, preview, audio
        self.sizes = {VIDEO_TRACK: 0, AUDIO_TRACK: 0, PREVIEW_TRACK: 0}
        self.frames, self.written, self.estimate = 0, 0, 0.0
        self._times: deque[Fraction] = deque()  # frames given to the encoder whose packets have not come out
        self.first: Fraction | None = None
        self.last = Fraction(0)
        self.masks_to: Path | None = None
        self.on_frame: Callable[[Fraction, Encoder], None] | None = None

    def _write(self, track: int, time: Fraction, data: bytes, keyframe: bool) -> None:
        self.writer.write(track, time, data, keyframe)
        self.sizes[track] += len(data)

    def add(self, item: VideoFrame | AudioPacket, encoded: EncodedFrame | None = None) -> None:
        """Write one item; a video frame is encoded here unless it comes `encoded` already."""
        if isinstance(item, AudioPacket):
            for packet in self.audio.packets(item) if self.audio else ():
                self._write(AUDIO_TRACK, *packet)
            return
        keyframe = self.frames % self.encoder.config.gop == 0
        self._times.append(item.time)
        # An offline selective encoder returns packets some frames late; a GC batch came with its packet.
        for ready in self.encoder.push(item.rgb, item.source) if encoded is None else [encoded]:
            self._video(ready)
        if self.on_frame is not None:
            self.on_frame(item.time, self.encoder)
        if self.masks_to is not None:
            _write_mask(self.masks_to / f"mask_{self.frames:06d}.png", self.encoder.last_mask)
        if self.preview is not None:
            for pts, data, key in self.preview.encode(item.rgb, round(item.time / MS), keyframe):
                self._write(PREVIEW_TRACK, pts * MS, data, key)
        self.first = item.time if self.first is None else self.first
        self.last = item.time
        self.frames += 1

    def _video(self, encoded: EncodedFrame) -> None:
        """One packet of our track, at the time of the oldest frame still waiting for its packet."""
        self._write(VIDEO_TRACK, self._times.popleft(), encoded.packet, encoded.keyframe)
        self.estimate += encoded.estimated_bits
        self.written += 1

    def duration(self, frame_rate: Fraction) -> float:
        return float(self.last - (self.first or 0)) + 1.0 / float(frame_rate)

    def finish(self) -> int:
        for encoded in self.encoder.flush():
            self._video(encoded)
        if self.written != self.frames:  # never lose a frame silently
            raise RuntimeError(f"the encoder returned {self.written} packets for {self.frames} frames")
        for packet in self.audio.flush() if self.audio else ():
            self._write(AUDIO_TRACK, *packet)
        for pts, data, key in self.preview.flush() if self.preview else ():
            self._write(PREVIEW_TRACK, pts * MS, data, key)
        return self.writer.close()


def _write_mask(path: Path, mask: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OutputError("cannot write PNG", path)


def _check_masks_folder(folder: Path) -> None:
    """`--save-masks` writes only into a new or empty folder: a user's files are never overwritten."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError("is not a new or empty folder; --save-masks never writes into one that holds files", folder)


def default_fidelity(latency: str) -> str:
    """The kept region's codec when none is asked: SVT-AV1 offline (18-27 % fewer bits than x265 at equal
    kept-region PSNR on every clip of the README's evaluation), x265 at zero latency (fast enough for live)."""
    return "av1" if latency == "offline" else "hevc"


@dataclass(frozen=True)
class SelectiveSettings:
    """`encode_file`'s selective-mode arguments, gathered (see SelectiveOptions for their meaning)."""

    keep: tuple[str, ...] = DEFAULT_KEEP
    mask_video: Path | None = None
    segmenter: str = "selfie"
    fidelity: str = "hevc"
    background: str = "plate"
    fg_quality: int | None = None
    bg_quality: int | None = None
    labels: str = "builtin"
    threads: int | None = None
    latency: str = "offline"
    feather: int = FEATHER
    whole_above: float = WHOLE_ABOVE
    preset: str | None = None
    plate_refresh: float | None = None

    def options(self, frame_rate: Fraction) -> SelectiveOptions:
        options = SelectiveOptions(
            keep=tuple(self.keep),
            mask_video=self.mask_video,
            segmenter=self.segmenter,
            fidelity=self.fidelity,
            background=self.background,
            fg_crf=self.fg_quality,
            bg_crf=self.bg_quality,
            labels=self.labels,
            frame_rate=frame_rate,
            latency=self.latency,
            feather=self.feather,
            whole_above=self.whole_above,
            preset=self.preset,
            plate_refresh=self.plate_refresh,
        )
        if self.threads is None:
            return options
        # A thread budget: x265 gets that many threads, and one thread means no work beside the caller's.
        return replace(options, codec_threads=self.threads, parallel=self.threads > 1)


def encode_file(
    input: Path,
    output: Path,
    *,
    mode: str = DEFAULT_MODE,
    model: str = DEFAULT_MODEL,
    quality: int | None = None,
    bitrate_kbps: float | None = None,
    gop: int = DEFAULT_GOP,
    preview: bool = True,
    backend: str = "auto",
    progress: bool = False,
    on_warning: Callable[[str], None] | None = None,
    force: bool = False,
    keep: tuple[str, ...] | list[str] = DEFAULT_KEEP,
    mask_video: Path | None = None,
    segmenter: str = "selfie",
    fidelity: str | None = None,
    background: str = "plate",
    fg_quality: int | None = None,
    bg_quality: int | None = None,
    labels: str = "builtin",
    save_masks: Path | None = None,
    on_frame: Callable[[Fraction, Encoder], None] | None = None,
    threads: int | None = None,
    latency: str = "offline",
    feather: int = FEATHER,
    whole_above: float = WHOLE_ABOVE,
    preset: str | None = None,
    plate_refresh: float | None = None,
    workers: int = 1,
) -> EncodeSummary:
    """Encode `input` (anything PyAV opens) into a Matroska file with a V_STREAMCODEC track.

    The file appears at `output` only when complete; on any error nothing is left there.
    `bitrate_kbps` targets the codec's own track (the preview and audio come on top); a target
    below the lowest quality's rate is reported through `on_warning` and encoded at quality 1.
    The preview's rate is capped at `rate.PREVIEW_SHARE` of the codec track's estimated rate. An
    existing `output` is refused (OutputExistsError, before any work) unless `force` is set. Frames
    FFmpeg could not read from a damaged input are reported through `on_warning` (and the
    summary's `warnings`), never dropped silently.

    `mode` "sc" (selective, the default) keeps `keep` (and `mask_video`'s white pixels) at the
    `fidelity` codec's quality and shows a `background` layer elsewhere; `fg_quality`/`bg_quality`
    are CRFs overriding `quality`'s; `labels` is the synth background's labeler (only "builtin" has a
    trained generator); `save_masks` writes each kept mask as a PNG into a new or
    empty folder. `mode` "gc" ignores these. `on_frame(time, encoder)` is called after each video
    frame is encoded (the archive reads `encoder.masks.last_kinds` there). `threads` is sc's CPU
    budget (x265 threads; 1: masks, plate and reconstruction in turn on this thread); None: the
    defaults (two x265 threads, work side by side). The bytes are the same whatever it is. `latency`
    "offline" (the default for files) lets sc's fidelity codec look ahead, for fewer bits; "zero" codes
    each frame at once, as the live sender does ("learned" fidelity always runs at zero latency).
    `feather` is the composite's blend width in pixels inside the kept region; a GOP whose keyframe keeps
    more than `whole_above` of the picture is coded whole, with no plate; `preset` is the fidelity codec's
    speed preset (None: the codec's for the latency, `fidelity.CODECS`); `plate_refresh` the seconds between
    full plates, plate updates between (None: `layers.PLATE_REFRESH` offline, 0 live). `fidelity` None picks
    `default_fidelity(latency)`. `workers` > 1 (gc)
    entropy-codes frames on that many processes, `BATCH_PER_WORKER` frames per worker at a time
    (same bytes; `on_frame` then sees the encoder after the frame's batch).
    """
    if workers < 1:
        raise ValueError(f"workers {workers} must be at least 1")
    fidelity = fidelity or default_fidelity(latency)
    latency = "zero" if fidelity == "learned" else latency
    settings = SelectiveSettings(
        tuple(keep),
        mask_video,
        segmenter,
        fidelity,
        background,
        fg_quality,
        bg_quality,
        labels,
        threads,
        latency,
        feather,
        whole_above,
        preset,
        plate_refresh,
    )
    if save_masks is not None:
        if mode != "sc":
            raise ValueError("--save-masks needs selective mode (--mode sc)")
        _check_masks_folder(save_masks)
    if quality is not None and bitrate_kbps is not None:
        raise ValueError("give either quality or bitrate, not both")
    if bitrate_kbps is not None and bitrate_kbps <= 0:
        raise ValueError(f"bitrate {bitrate_kbps} kbps must be positive")
    check_file_target(Path(output), force)
    started = time.perf_counter()
    warnings: list[str] = []
    with Source(input) as source:
        info = source.info
        items = source.items()
        head, probe = _peek(items, RATE_PROBE_FRAMES)
        if not probe:
            damage = source.damage()
            raise UnreadableInputError("holds no decodable video frames" + (f"; {damage}" if damage else ""), input)
        selective = _with_matrix(settings.options(info.frame_rate), head) if mode == "sc" else None
        encoder = Encoder(
            info.width, info.height, mode=mode, model=model, quality=quality, gop=gop, backend=backend, selective=selective
        )
        wanted = None if bitrate_kbps is not None else [encoder.config.quality]
        rates = estimate_rates(encoder, probe, info.frame_rate, wanted) if bitrate_kbps is not None or preview else []
        if bitrate_kbps is not None:
            _choose(encoder, rates, bitrate_kbps, warnings, on_warning)
        preview_encoder = _preview_encoder(info, rates[encoder.config.quality - 1]) if preview else None
        audio = AudioRoute(source.audio, AUDIO_TRACK) if source.audio else None
        rotation = next(item.rotation for item in head if isinstance(item, VideoFrame))
        tracks = _video_tracks(source, encoder, preview_encoder, rotation) + ([audio.track] if audio else [])
        tags, track_tags = _tags(encoder.config)
        bar = Progress(total=info.frames, unit="frame", enabled=progress, desc="encode")
        app = f"streamcodec {__version__}"
        with MatroskaWriter(output, tracks, writing_app=app, tags=tags, track_tags=track_tags, force=force) as writer:
            muxing = _Muxing(writer, encoder, preview_encoder, audio)
            muxing.on_frame = on_frame
            if save_masks is not None:
                save_masks.mkdir(parents=True, exist_ok=True)
                muxing.masks_to = save_masks
            for item, encoded in encoded_in_batches(_prepared(_chain(head, items), encoder), encoder, workers):
                muxing.add(item, encoded)
                if isinstance(item, VideoFrame):
                    bar.update(1, kbps=muxing.sizes[VIDEO_TRACK] * 8 / 1000 / muxing.duration(info.frame_rate))
            file_bytes = muxing.finish()
        bar.close()
        if mode == "sc" or workers > 1:
            encoder.close()
        damage = source.damage()
    summary = _summary(input, output, encoder, muxing, file_bytes, info.frame_rate, time.perf_counter() - started, audio)
    summary.target_kbps, summary.warnings, summary.rotation = bitrate_kbps, warnings, rotation
    if damage:
        summary.warnings.append(f"{input}: {damage}; encoded the {muxing.frames} frames that could be read")
        if on_warning:
            on_warning(summary.warnings[-1])
    return summary


def _choose(
    encoder: Encoder, rates: list[float], kbps: float, warnings: list[str], on_warning: Callable[[str], None] | None
) -> None:
    """`--bitrate`: start at the quality whose estimate fits; selective mode then holds the rate GOP by GOP."""
    choice = choose_quality(rates, kbps)
    encoder.with_quality(choice.quality)
    if encoder.config.mode == "sc":
        encoder.with_target(kbps)
    if choice.warning:
        warnings.append(choice.warning)
        if on_warning:
            on_warning(choice.warning)


def _preview_encoder(info: SourceInfo, codec_kbps: float) -> PreviewEncoder:
    """An H.264 preview sized and rate-capped from the codec track's estimated rate."""
    kbps, max_width = preview_budget(codec_kbps, info.frame_rate, info.width, info.height)
    return PreviewEncoder(info.width, info.height, MS, max_width, kbps=kbps, frame_rate=info.frame_rate)


def _summary(
    input: Path,
    output: Path,
    encoder: Encoder,
    muxing: _Muxing,
    file_bytes: int,
    frame_rate: Fraction,
    elapsed: float,
    audio: AudioRoute | None,
) -> EncodeSummary:
    config, sizes, frames = encoder.config, muxing.sizes, muxing.frames
    duration = muxing.duration(frame_rate)
    return EncodeSummary(
        input=str(input),
        output=str(output),
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


def _chain(head: list[VideoFrame | AudioPacket], rest: Iterator[VideoFrame | AudioPacket]) -> Iterator[VideoFrame | AudioPacket]:
    yield from head
    yield from rest


def _prepared(items: Iterator[VideoFrame | AudioPacket], encoder: Encoder) -> Iterator[VideoFrame | AudioPacket]:
    """The items in their order, each video frame given to `encoder.prepare` before the one before it is yielded.

    So selective mode finds frame n + 1's keep mask on its worker while frame n is encoded (same packets).
    """
    held: list[VideoFrame | AudioPacket] = []
    for item in items:
        if isinstance(item, VideoFrame):
            encoder.prepare(item.rgb)
            yield from held
            held = []
        held.append(item)
    yield from held
