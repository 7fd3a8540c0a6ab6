"""`decode_file`: a streamcodec .mkv back to a video file (mp4/mkv/mov/y4m) or a folder of PNGs.

Damaged frames are reported through `on_warning` and replaced by the last good frame until the
next intra frame, so the rest of the file is not lost. Audio is carried over into mp4/mkv/mov.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from ..bitstream import StreamConfig
from ..codec import Decoder
from ..errors import (
    CorruptStreamError,
    OutputError,
    TruncatedStreamError,
    UnreadableInputError,
    UnsupportedStreamError,
    media_errors,
)
from ..io.demux import Source
from ..io.mkv_reader import MatroskaReader, TrackInfo
from ..io.safe_output import (
    Partial,
    absolute,
    check_file_target,
    check_frames_folder,
    publish_file,
    publish_frames,
    remove_stale_partials,
)
from ..metrics import QualityAccumulator
from ..progress import Progress
from .conceal import FrameSlots
from .encode import CODEC_ID

CONTAINER_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
MS = Fraction(1, 1000)


@dataclass
class DecodeSummary:
    input: str
    output: str | None
    frames: int
    damaged_frames: int
    width: int
    height: int
    seconds: float
    fps: float
    quality: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    quality_notes: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        text = f"{self.frames} frames {self.width}x{self.height} decoded in {self.seconds:.1f} s ({self.fps:.1f} fps)"
        if self.damaged_frames:
            text += f", {self.damaged_frames} damaged frames concealed"
        if self.quality:
            text += ", " + ", ".join(self._metric(name, value) for name, value in self.quality.items())
        return text + (f" → {self.output}" if self.output else "")

    def _metric(self, name: str, value: float | None) -> str:
        if value is None:
            return f"{name} n/a ({self.quality_notes.get(name, 'not measured')})"
        return f"{name} {value:.4f}" if name == "ms_ssim" else f"{name} {value:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream_track(reader: MatroskaReader, path: Path) -> tuple[TrackInfo, StreamConfig]:
    """The V_STREAMCODEC track of a file and its stream configuration."""
    for track in reader.tracks:
        if track.codec_id == CODEC_ID:
            if not track.codec_private:
                raise UnsupportedStreamError("V_STREAMCODEC track has no CodecPrivate", path)
            try:
                return track, StreamConfig.unpack(track.codec_private)
            except (CorruptStreamError, UnsupportedStreamError) as exc:
                raise type(exc)(str(exc), path) from None
    raise UnsupportedStreamError("has no V_STREAMCODEC track (not made by streamcodec encode)", path)


def _is_frames_folder(output: Path) -> bool:
    return output.suffix == "" or output.is_dir() or str(output).endswith(os.sep)


def check_output(output: Path, force: bool) -> None:
    """Refuse a decode output before any work: wrong type, existing file without `force`, non-empty folder."""
    if _is_frames_folder(output):
        check_frames_folder(output)
        return
    if output.suffix.lower() not in CONTAINER_SUFFIXES and output.suffix.lower() != ".y4m":
        raise OutputError(f"unsupported output type {output.suffix!r} (use .mp4, .mkv, .mov, .y4m or a folder/)", output)
    check_file_target(output, force)


class _VideoSink:
    """Where decoded frames go: a PyAV container (with optional audio copy) or PNG files.

    Everything is written inside a locked partial folder (see io/safe_output) and published by a
    rename at `close()`: a file replaces an existing one only with `force`; frames go only into a
    new or empty folder.
    """

    def __init__(
        self, output: Path, width: int, height: int, audio_from: Path | None, frame_rate: Fraction, force: bool = False
    ) -> None:
        self.output, self.force = output, force
        self.target = absolute(output)
        # Nominal rate for the codec's rate control (and the y4m header); every frame keeps its own timestamp.
        self.frame_rate = frame_rate
        self.suffix = output.suffix.lower()
        self.is_folder = _is_frames_folder(output)
        check_output(output, force)
        remove_stale_partials(self.target)
        # An existing (empty) folder is filled from inside: renaming over it would move the
        # user's working directory or a mount point.
        inside = self.is_folder and self.target.is_dir()
        self.partial = Partial.create(self.target, folder=True, where=self.target if inside else None)
        self.tmp = self.partial.path
        self.count = 0
        self.container: Any = None
        self.audio_in: Any = None
        self.audio_out: Any = None
        if not self.is_folder:
            try:
                self._open_container(width, height, audio_from)
            except BaseException:
                self.abort()
                raise

    def _open_container(self, width: int, height: int, audio_from: Path | None) -> None:
        target = self.tmp / self.output.name
        with media_errors(self.output, writing=True):
            if self.suffix == ".y4m":
                self.container = av.open(str(target), "w", format="yuv4mpegpipe")
                self.video = self.container.add_stream("rawvideo", rate=self.frame_rate)
                self.video.pix_fmt = "yuv444p"
            else:
                self.container = av.open(str(target), "w", format=CONTAINER_SUFFIXES[self.suffix])
                self.video = self.container.add_stream("libx264", rate=self.frame_rate)
                even = width % 2 == 0 and height % 2 == 0
                self.video.pix_fmt = "yuv420p" if even else "yuv444p"
                self.video.options = {"crf": "12", "preset": "fast"}
                if audio_from is not None:
                    self.audio_in = av.open(str(audio_from))
                    if self.audio_in.streams.audio:
                        self.audio_out = self.container.add_stream_from_template(self.audio_in.streams.audio[0])
            self.video.width, self.video.height = width, height
            # y4m has no timestamps: its header's F comes from the time base, so that is the frame rate.
            self.video.time_base = 1 / self.frame_rate if self.suffix == ".y4m" else MS

    def set_rotation(self, degrees: float) -> str | None:
        """Carry the stream's display rotation (before the first frame); returns a note where it cannot be.

        .mp4/.mkv/.mov get a display matrix, so players turn the picture as they did the source.
        PNG and y4m have no such field: their frames are written as coded, and the note says so.
        """
        if not degrees:
            return None
        if self.suffix in CONTAINER_SUFFIXES and not self.is_folder:
            self.video.set_display_rotation(degrees)
            return None
        kind = "PNG" if self.is_folder else "y4m"
        return f"the stream is shown rotated {degrees:g}° counter-clockwise; the {kind} frames are written as coded, unrotated"

    def write(self, rgb: npt.NDArray[np.uint8], time: Fraction) -> None:
        self.count += 1
        if self.is_folder:
            Image.fromarray(rgb).save(self.tmp / f"frame_{self.count:06d}.png", compress_level=1)
            return
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self.suffix == ".y4m":
            frame.pts, frame.time_base = self.count - 1, 1 / self.frame_rate
        else:
            frame.pts, frame.time_base = round(time / MS), MS
        with media_errors(self.output, writing=True):
            for packet in self.video.encode(frame):
                self.container.mux(packet)

    def write_audio(self, data: bytes, time: Fraction) -> None:
        if self.audio_out is None:
            return
        packet = av.Packet(data)
        packet.stream = self.audio_out
        packet.time_base = MS
        packet.pts = packet.dts = round(time / MS)
        with media_errors(self.output, writing=True):
            self.container.mux(packet)

    def close(self) -> None:
        """Finish the file (or frames) and move it into place."""
        if self.is_folder:
            publish_frames(self.partial, self.target)
            self.partial.release()
            return
        with media_errors(self.output, writing=True):
            for packet in self.video.encode(None):
                self.container.mux(packet)
            self.container.close()
        self.container = None
        self._close_audio()
        publish_file(self.tmp / self.output.name, self.output, self.force)
        self.partial.discard()  # the partial folder is empty now

    def _close_audio(self) -> None:
        if self.audio_in is not None:
            self.audio_in.close()
            self.audio_in = None

    def abort(self) -> None:
        """Drop everything written so far; the output is left as it was."""
        if self.container is not None:
            with contextlib.suppress(av.error.FFmpegError):
                self.container.close()
            self.container = None
        self._close_audio()
        if self.partial.fd >= 0:  # not yet published
            self.partial.discard()


def decode_file(
    input: Path,
    output: Path | None,
    *,
    reference: Path | None = None,
    backend: str = "auto",
    progress: bool = False,
    on_warning: Callable[[str], None] | None = None,
    salvage: bool = False,
    force: bool = False,
) -> DecodeSummary:
    """Decode a streamcodec .mkv; with `reference`, also measure PSNR/MS-SSIM against that source.

    `output` may be None to decode without writing (for measuring). A truncated file is refused
    (TruncatedStreamError) unless `salvage` is set: then everything before the cut is decoded
    and the truncation is reported through `on_warning`. An existing output file is refused
    (OutputExistsError, before any work) unless `force` is set; a folder of frames is written
    only into a new or empty folder, whatever `force` says.
    """
    if output is not None:
        check_output(output, force)
    started = time.perf_counter()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning:
            on_warning(message)

    slots: FrameSlots | None = None

    def container_damage(error: CorruptStreamError) -> None:
        # Damage inside the file is concealed; a file that simply stops is refused whole,
        # unless the caller asked to salvage what is there.
        if isinstance(error, TruncatedStreamError) and not salvage:
            raise error
        if slots is not None:
            slots.damage(isinstance(error, TruncatedStreamError))
        warn(f"container damage: {error}")

    with MatroskaReader(input, salvage=salvage) as reader:
        track, config = stream_track(reader, input)
        for problem in reader.damage:
            warn(f"container damage: {problem}")
        slots = FrameSlots.of(reader, track)
        decoder = Decoder(config, backend=backend)
        audio = [t.number for t in reader.tracks if t.kind == "audio"]
        frame_rate = _frame_rate(track)
        ref_frames = _reference_frames(reference, config) if reference else None
        sink = _VideoSink(output, config.width, config.height, input if audio else None, frame_rate, force) if output else None
        if sink and (note := sink.set_rotation(track.rotation)):
            warn(note)
        quality = QualityAccumulator()
        bar = Progress(total=None, unit="frame", enabled=progress, desc="decode")
        last_good: npt.NDArray[np.uint8] | None = None
        frames = damaged = 0

        def emit(rgb: npt.NDArray[np.uint8], at: Fraction) -> None:
            nonlocal frames
            if sink:
                sink.write(rgb, at)
            if ref_frames is not None:
                source_rgb = next(ref_frames, None)
                if source_rgb is not None:
                    quality.add(source_rgb, rgb)
            frames += 1
            bar.update(1)

        def conceal_lost(missing: list[Fraction]) -> None:
            nonlocal damaged, last_good
            if not missing:
                return
            warn(_lost_frames_message(len(missing), missing))
            last_good = last_good if last_good is not None else np.zeros((config.height, config.width, 3), dtype=np.uint8)
            for at in missing:
                emit(last_good, at)
            damaged += len(missing)

        try:
            for packet in reader.packets({track.number, *audio}, on_error=container_damage):
                if packet.track != track.number:
                    if sink:
                        sink.write_audio(packet.data, packet.time)
                    continue
                shown_at, missing = slots.admit(packet.time, packet.suspect)
                conceal_lost(missing)
                try:
                    rgb = decoder.decode(packet.data)
                    last_good = rgb
                except CorruptStreamError as exc:
                    damaged += 1
                    warn(
                        f"frame {frames} at {float(packet.time):.3f} s is damaged ({exc}); "
                        "showing the last good frame until the next keyframe"
                    )
                    if last_good is None:
                        last_good = np.zeros((config.height, config.width, 3), dtype=np.uint8)
                    rgb = last_good
                emit(rgb, shown_at)
            if frames == 0:
                raise CorruptStreamError("holds no frames of the streamcodec track", input)
            conceal_lost(slots.at_end())
            _report_timeline(slots, warn)
            if sink:
                sink.close()
        except BaseException:
            if sink:
                sink.abort()
            raise
        finally:
            bar.close()
    elapsed = time.perf_counter() - started
    return DecodeSummary(
        input=str(input),
        output=str(output) if output else None,
        frames=frames,
        damaged_frames=damaged,
        width=config.width,
        height=config.height,
        seconds=elapsed,
        fps=frames / elapsed,
        quality=quality.summary(),
        warnings=warnings,
        quality_notes=quality.reasons,
    )


def _frame_rate(track: TrackInfo) -> Fraction:
    """The output's nominal rate from DefaultDuration (ns, so 29.97 fps reads back as 30000/1001); else 25.

    Kept to terms FFmpeg's 32-bit rationals hold: the reader bounds DefaultDuration to 1 µs .. 1 h.
    """
    if not track.default_duration_ns:
        return Fraction(25)
    return Fraction(1_000_000_000, track.default_duration_ns).limit_denominator(1001) or Fraction(1, 3600)
def _lost_frames_message(count: int, missing: list[Fraction]) -> str:
    span = f"{float(missing[0]):.3f}–{float(missing[-1]):.3f} s" if count > 1 else f"{float(missing[0]):.3f} s"
    frames = f"{count} frame{'s' if count > 1 else ''}"
    return f"{frames} lost to container damage at {span}; showing the last good frame in their place"


def _report_timeline(slots: FrameSlots, warn: Callable[[str], None]) -> None:
    """Warn about what concealment could not do: uncountable gaps and retimed frames."""
    for start, stop in slots.uncounted_gaps:
        span = f"{float(start):.3f} s and {float(stop):.3f} s"
        warn(f"frames between {span} may be lost (the track has no DefaultDuration to count them)")
    if slots.retimed:
        count = f"{slots.retimed} frame{'s' if slots.retimed > 1 else ''}"
        warn(f"{count} had an impossible timestamp (damage) and went one frame after the previous one")


def _reference_frames(path: Path, config: StreamConfig) -> Any:
    source = Source(path)
    if (source.info.width, source.info.height) != (config.width, config.height):
        source.close()
        raise UnreadableInputError(
            f"reference is {source.info.width}x{source.info.height}, the stream {config.width}x{config.height}", path
        )

    def frames() -> Any:
        with source:
            for item in source.items(with_audio=False):
                yield item.rgb  # type: ignore[union-attr]

    return frames()
