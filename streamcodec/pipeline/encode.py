"""Files in, files out: `encode_file` (any video → .mkv); `decode_file` is its counterpart in decode.py.

Frames stream one at a time from the demuxer through the codec to the muxer (mux.py), so memory
does not grow with the length of the clip:

    Source ──peek (rate probe)──► Encoder ──► Muxing ──► MatroskaWriter ──► EncodeSummary
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import cast

import numpy as np

from ..codec import DEFAULT_GOP, DEFAULT_MODE, Encoder, SelectiveOptions
from ..errors import OutputError, UnreadableInputError
from ..io.demux import AudioPacket, Source, SourceInfo, VideoFrame
from ..io.h264 import PreviewEncoder
from ..io.mkv_writer import MatroskaWriter
from ..io.safe_output import check_file_target, writing_errors
from ..io.stdio import is_stdio
from ..progress import Progress
from ..selective.planes import source_matrix
from ..version import __version__
from .audio import AudioRoute
from .batch import encoded_in_batches
from .mux import AUDIO_TRACK, CODEC_ID, MS, VIDEO_TRACK, Muxing, tags, video_tracks
from .rate import choose_quality, estimate_rates, preview_budget
from .summary import EncodeSummary, encode_summary

__all__ = ["CODEC_ID", "EncodeSummary", "default_fidelity", "encode_file"]

RATE_PROBE_FRAMES = 8
Warn = Callable[[str], None]


def default_fidelity(latency: str) -> str:
    """The kept region's codec when none is asked (see `SelectiveOptions.default_fidelity`)."""
    return SelectiveOptions.default_fidelity(latency)


def encode_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = DEFAULT_MODE,
    model: str | None = None,
    quality: int | None = None,
    bitrate_kbps: float | None = None,
    gop: int = DEFAULT_GOP,
    preview: bool = True,
    backend: str = "auto",
    progress: bool = False,
    on_warning: Warn | None = None,
    force: bool = False,
    save_masks: str | os.PathLike[str] | None = None,
    on_frame: Callable[[Fraction, Encoder], None] | None = None,
    workers: int = 1,
    selective: SelectiveOptions | None = None,
) -> EncodeSummary:
    """Encode `input` (anything PyAV opens) into a Matroska file with a V_STREAMCODEC track.

    The file appears at `output` only when complete; on any error nothing is left there. An
    existing `output` is refused (OutputExistsError, before any work) unless `force` is set.
    Frames FFmpeg could not read from a damaged input are reported through `on_warning` (and the
    summary's `warnings`), never dropped silently.

    Args:
        input, output: paths (str or os.PathLike); `-` is stdin (y4m) as the input, stdout as the output.
        mode: "sc" (selective, the default), "gc" (every pixel generated) or "progressive" (all intra,
            its packets cut to fewer iterations later by `thin`).
        model: a registered model: gc's codec, sc's learned fidelity layer, progressive's network;
            None: the mode's default (`codec.MODES[mode].default_model`).
        quality: rate point, 1 (lowest rate) to the mode's number of levels (progressive: iterations sent);
            None: the highest.
        bitrate_kbps: target rate of the codec's own track (the preview and audio come on top), instead
            of `quality`; a target below the lowest quality's rate is reported through `on_warning`
            and encoded at quality 1.
        gop: an intra frame every `gop` frames.
        preview: add an H.264 preview track, its rate capped at `rate.PREVIEW_SHARE` of the codec track's.
        backend: inference engine ("auto", "torch", "onnxruntime@int8", ...).
        progress: show a progress bar on stderr.
        on_warning: called with each warning line.
        force: replace an existing `output`.
        save_masks: sc only: write each kept mask as mask_NNNNNN.png into this new or empty folder.
        on_frame: `on_frame(time, encoder)` after each video frame is encoded (the archive reads
            `encoder.masks.last_kinds` there); with `workers` > 1 it sees the encoder after the frame's batch.
        workers: gc: entropy-code frames on that many processes, `BATCH_PER_WORKER` frames per
            worker at a time (the same bytes).
        selective: sc's options (what to keep, the fidelity and background layers, their qualities,
            latency, threads); None: `SelectiveOptions.for_files()`, offline latency. The frame rate and
            colour matrix are the source's whatever they say. Must be None in the other modes.

    Returns:
        The EncodeSummary: sizes and rates per track, speed, warnings.
    """
    source_name, output_name = _name(input), _name(output)
    masks_to = None if save_masks is None else Path(save_masks)
    options = _checked(mode, quality, bitrate_kbps, workers, masks_to, selective)
    if not is_stdio(output_name):  # never onto the input, --force or not
        check_file_target(Path(output_name), force, (source_name,))
    started, rate = time.perf_counter(), _Rate(bitrate_kbps, [], on_warning)
    with Source(cast(Path, source_name)) as source:  # "-": stdin, for io.demux
        info, items = source.info, source.items()
        head, probe = _peek(source, items, source_name)
        options = _with_matrix(replace(options, frame_rate=info.frame_rate), head) if options else None
        encoder = Encoder(
            info.width, info.height, mode=mode, model=model, quality=quality, gop=gop, backend=backend, selective=options
        )
        try:
            preview_encoder = rate.plan(encoder, probe, info, preview)
            muxing = _open_muxing(output_name, source, encoder, preview_encoder, _rotation(head), force)
            muxing.on_frame, muxing.masks_to = on_frame, masks_to
            file_bytes = _mux(muxing, _prepared(_chain(head, items), encoder), info, workers, progress)
        finally:  # on a failure too: its codecs end their streams (SVT-AV1 prints to stderr otherwise)
            if mode == "sc" or workers > 1:
                encoder.close()
        damage = source.damage()
    for note in _mask_notes(encoder):  # e.g. a --mask video of another size, scaled to the input's
        rate.warn(note)
    elapsed = time.perf_counter() - started
    names = (str(source_name), str(output_name))
    summary = encode_summary(names, encoder, muxing, file_bytes, info.frame_rate, elapsed, muxing.audio)
    summary.target_kbps, summary.warnings, summary.rotation = bitrate_kbps, rate.warnings, _rotation(head)
    if damage:
        rate.warn(f"{source_name}: {damage}; encoded the {muxing.frames} frames that could be read")
    return summary


def _mask_notes(encoder: Encoder) -> list[str]:
    """What selective mode's mask kinds have to tell the user, as warnings; none in GC mode."""
    masks = getattr(encoder, "masks", None)
    return masks.take_notes() if masks is not None else []


def _name(path: str | os.PathLike[str]) -> Path | str:
    """A path argument as a Path; `-` (stdin or stdout) stays the text `-`."""
    return os.fspath(path) if is_stdio(path) else Path(path)


def _checked(
    mode: str,
    quality: int | None,
    bitrate_kbps: float | None,
    workers: int,
    masks_to: Path | None,
    selective: SelectiveOptions | None,
) -> SelectiveOptions | None:
    """Refuse arguments that do not go together, before any work; returns sc's options (None for gc)."""
    if workers < 1:
        raise ValueError(f"workers {workers} must be at least 1")
    if mode != "sc" and selective is not None:
        raise ValueError(f"selective options apply only to mode 'sc', not {mode!r}")
    if masks_to is not None:
        if mode != "sc":
            raise ValueError("--save-masks needs selective mode (--mode sc)")
        _check_masks_folder(masks_to)
    if quality is not None and bitrate_kbps is not None:
        raise ValueError("give either quality or bitrate, not both")
    if bitrate_kbps is not None and bitrate_kbps <= 0:
        raise ValueError(f"bitrate {bitrate_kbps} kbps must be positive")
    if mode != "sc":
        return None
    return selective if selective is not None else SelectiveOptions.for_files()


def _check_masks_folder(folder: Path) -> None:
    """`--save-masks` writes only into a new or empty folder: a user's files are never overwritten."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError("is not a new or empty folder; --save-masks never writes into one that holds files", folder)


def _peek(
    source: Source, items: Iterator[VideoFrame | AudioPacket], name: Path | str
) -> tuple[list[VideoFrame | AudioPacket], list[np.ndarray]]:
    """The items up to the RATE_PROBE_FRAMES-th video frame, and those frames (the rate probe); none is refused."""
    head: list[VideoFrame | AudioPacket] = []
    video: list[np.ndarray] = []
    for item in items:
        head.append(item)
        if isinstance(item, VideoFrame):
            video.append(item.rgb)
            if len(video) == RATE_PROBE_FRAMES:
                break
    if not video:
        damage = source.damage()
        raise UnreadableInputError("holds no decodable video frames" + (f"; {damage}" if damage else ""), name)
    return head, video


def _rotation(head: list[VideoFrame | AudioPacket]) -> int:
    return next(item.rotation for item in head if isinstance(item, VideoFrame))


def _with_matrix(options: SelectiveOptions, head: list[VideoFrame | AudioPacket]) -> SelectiveOptions:
    """Selective options converting with the colour matrix the source's first frame was decoded with (BT.709 for most HD).

    Then that frame's own 4:2:0 planes give exactly its RGB, and the kept region is coded from them.
    """
    first = next(item for item in head if isinstance(item, VideoFrame))
    if first.source is None:
        return options
    return replace(options, matrix=source_matrix(first.source, first.rgb))


class _Rate:
    """The rate plan: `--bitrate`'s starting quality, the preview's budget, and the warnings on the way."""

    def __init__(self, kbps: float | None, warnings: list[str], on_warning: Warn | None) -> None:
        self.kbps, self.warnings, self.on_warning = kbps, warnings, on_warning

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning:
            self.on_warning(message)

    def plan(self, encoder: Encoder, probe: list[np.ndarray], info: SourceInfo, preview: bool) -> PreviewEncoder | None:
        """Set the encoder's quality for `--bitrate`; returns the preview encoder sized from the estimated rate."""
        if self.kbps is None and not preview:
            return None
        wanted = None if self.kbps is not None else [encoder.config.quality]
        rates = estimate_rates(encoder, probe, info.frame_rate, wanted)
        if self.kbps is not None:
            self._choose(encoder, rates, self.kbps)
        return _preview_encoder(info, rates[encoder.config.quality - 1]) if preview else None

    def _choose(self, encoder: Encoder, rates: list[float], kbps: float) -> None:
        """Start at the quality whose estimate fits; selective mode then holds the rate GOP by GOP."""
        choice = choose_quality(rates, kbps)
        encoder.with_quality(choice.quality)
        if encoder.config.mode == "sc":
            encoder.with_target(kbps)
        if choice.warning:
            self.warn(choice.warning)


def _preview_encoder(info: SourceInfo, codec_kbps: float) -> PreviewEncoder:
    """An H.264 preview sized and rate-capped from the codec track's estimated rate."""
    kbps, max_width = preview_budget(codec_kbps, info.frame_rate, info.width, info.height)
    return PreviewEncoder(info.width, info.height, MS, max_width, kbps=kbps, frame_rate=info.frame_rate)


def _open_muxing(
    output: Path | str, source: Source, encoder: Encoder, preview: PreviewEncoder | None, rotation: int, force: bool
) -> Muxing:
    """The writer with every track (preview, ours, the audio copied) and the muxing into it."""
    audio = AudioRoute(source.audio, AUDIO_TRACK) if source.audio else None
    tracks = video_tracks(source.info, encoder, preview, rotation) + ([audio.track] if audio else [])
    file_tags, track_tags = tags(encoder.config)
    app = f"streamcodec {__version__}"
    writer = MatroskaWriter(output, tracks, writing_app=app, tags=file_tags, track_tags=track_tags, force=force)
    return Muxing(writer, encoder, preview, audio)


def _mux(muxing: Muxing, items: Iterator[VideoFrame | AudioPacket], info: SourceInfo, workers: int, progress: bool) -> int:
    """Encode and write every item, then close the file; returns its size in bytes. On any error nothing is left."""
    with muxing.writer:
        bar = Progress(total=info.frames, unit="frame", enabled=progress, desc="encode")
        if muxing.masks_to is not None:
            with writing_errors(muxing.masks_to):  # a read-only or full disk: one line, and the file is not published
                muxing.masks_to.mkdir(parents=True, exist_ok=True)
        for item, encoded in encoded_in_batches(items, muxing.encoder, workers):
            muxing.add(item, encoded)
            if isinstance(item, VideoFrame):
                bar.update(1, kbps=muxing.sizes[VIDEO_TRACK] * 8 / 1000 / muxing.duration(info.frame_rate))
        file_bytes = muxing.finish()
    bar.close()
    return file_bytes


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
