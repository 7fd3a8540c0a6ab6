"""`decode_file`: a streamcodec .mkv back to a video file (mp4/mkv/mov/y4m) or a folder of PNGs.

A selective stream's frames go to video files as the decoder's own 4:2:0 planes (`VideoSink`): y4m holds
them as they are, .mkv in lossless H.264, .mp4/.mov in H.264 at CRF 12 (or lossless); PNGs hold its RGB.

Damaged frames are reported through `on_warning` and replaced by the last good frame until the
next intra frame, so the rest of the file is not lost. Audio is carried over into mp4/mkv/mov.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..bitstream import StreamConfig
from ..codec import Decoder
from ..errors import (
    CorruptStreamError,
    StreamcodecError,
    TruncatedStreamError,
    UnreadableInputError,
    UnsupportedStreamError,
)
from ..io.demux import Source
from ..io.mkv_reader import MatroskaReader, TrackInfo
from ..metrics import QualityAccumulator
from ..progress import Progress
from .batch import decode_many
from .conceal import FrameSlots
from .mux import CODEC_ID
from .sink import VideoSink, check_output, is_frames_folder


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


def decode_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    *,
    reference: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    progress: bool = False,
    on_warning: Callable[[str], None] | None = None,
    salvage: bool = False,
    force: bool = False,
    workers: int = 1,
    lossless: bool = False,
) -> DecodeSummary:
    """Decode a streamcodec .mkv; with `reference`, also measure PSNR/MS-SSIM against that source.

    Paths are str or os.PathLike. `output` may be None to decode without writing (for measuring); a name ending in a slash
    (text, not a Path, which drops it) is a folder of frames whatever its suffix. A truncated file is refused
    (TruncatedStreamError) unless `salvage` is set: then everything before the cut is decoded
    and the truncation is reported through `on_warning`. An existing output file is refused
    (OutputExistsError, before any work) unless `force` is set; a folder of frames is written
    only into a new or empty folder, whatever `force` says. `workers` > 1 entropy-decodes a GC
    stream's GOPs on that many processes (same frames and warnings; selective mode ignores it).
    `lossless` codes .mp4/.mov outputs as lossless H.264 (qp 0), as .mkv always is, instead of CRF 12.
    """
    if workers < 1:
        raise ValueError(f"workers {workers} must be at least 1")
    # Paths as str or os.PathLike; an output given as text keeps its trailing slash (a folder of frames).
    source, target = Path(input), output if output is None or isinstance(output, (str, Path)) else os.fspath(output)
    if target is not None:  # never onto the stream or the reference, --force or not
        check_output(target, force, (source, reference))
    started = time.perf_counter()
    with MatroskaReader(source, salvage=salvage) as reader:
        decoding = _Decoding(reader, source, backend, salvage, on_warning, workers)
        sink = decoding.open_sink(target, None if reference is None else Path(reference), force, lossless) if target else None
        bar = Progress(total=None, unit="frame", enabled=progress, desc="decode")
        try:
            decoding.run(sink, bar)
        except BaseException:
            if sink:
                sink.abort()
            raise
        finally:
            bar.close()
            if workers > 1 and decoding.config.mode == "gc":
                decoding.decoder.close()  # its worker processes
    return decoding.summary(target, time.perf_counter() - started)


class _Decoding:
    """One decode in progress: packets in, frames (decoded, concealed or filled in) out, in order.

    Every frame slot of the stream gives exactly one output frame: a frame that fails its checks
    is replaced by the last good one until the next keyframe, and slots the container lost
    (`FrameSlots`) are filled the same way, so outputs keep the stream's count and timestamps.
    """

    def __init__(
        self,
        reader: MatroskaReader,
        input: Path,
        backend: str,
        salvage: bool,
        on_warning: Callable[[str], None] | None,
        workers: int = 1,
    ) -> None:
        self.reader, self.input, self.salvage, self.on_warning = reader, input, salvage, on_warning
        self.workers = workers
        self.warnings: list[str] = []
        self.track, self.config = stream_track(reader, input)
        for problem in reader.damage:
            self.warn(f"container damage: {problem}")
        self.slots = FrameSlots.of(reader, self.track)
        self.decoder = Decoder(self.config, backend=backend)  # checks the configuration against the model first
        self.audio = [t.number for t in reader.tracks if t.kind == "audio"]
        self.quality = QualityAccumulator()
        self.sink: VideoSink | None = None
        self.reference: Iterator[npt.NDArray[np.uint8]] | None = None
        self.last_good: npt.NDArray[np.uint8] | None = None
        self.last_good_planes: npt.NDArray[np.uint8] | None = None  # the same frame's 4:2:0 planes, when given
        self.planes = False  # whether the decoder gives each frame's 4:2:0 planes (`_want_planes`)
        self.frames = self.damaged = 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning:
            self.on_warning(message)

    def open_sink(self, output: Path | str, reference: Path | None, force: bool, lossless: bool = False) -> VideoSink:
        config, audio_from = self.config, self.input if self.audio else None
        self.reference = _reference_frames(reference, config) if reference else None
        self.planes = not is_frames_folder(output) and self._want_planes()
        matrix = str(config.extra.get("matrix", "bt601"))
        sink = VideoSink(
            output, config.width, config.height, audio_from, _frame_rate(self.track), force,
            matrix=matrix, planes=self.planes, lossless=lossless,
        )  # fmt: skip
        if note := sink.set_rotation(self.track.rotation):
            self.warn(note)
        return sink

    def _want_planes(self) -> bool:
        """Ask the decoder for its frames' own 4:2:0 planes too (selective mode with a standard codec, even sizes)."""
        give_planes = getattr(self.decoder, "give_planes", None)  # the mode's decoder has it, or not
        return bool(give_planes is not None and give_planes())

    def run(self, sink: VideoSink | None, bar: Progress) -> None:
        """Decode every packet, conceal what is damaged or lost, and finish the output.

        Reading runs ahead of decoding (with workers, by a few GOPs), so what reading finds (audio,
        lost frames, container damage) waits in `pending` and is handled in file order, each video
        packet when its frame comes back: the sink and the warnings see the same sequence whatever
        `workers` is.
        """
        self.sink, self.bar = sink, bar
        self.pending: deque[tuple[str, Any]] = deque()
        for outcome in decode_many(self.decoder, self._video_packets(), self.workers):
            self._handle_pending(until_video=True)
            self._emit(self._decoded(outcome), self._video_at)
        self._handle_pending(until_video=False)
        if self.frames == 0:
            raise CorruptStreamError("holds no frames of the streamcodec track", self.input)
        self._conceal_lost(self.slots.at_end())
        _report_timeline(self.slots, self.warn)
        if sink:
            sink.close()

    def _video_packets(self) -> Iterator[bytes]:
        """The codec track's packets; the rest of what reading finds is queued in `pending`."""
        for packet in self.reader.packets({self.track.number, *self.audio}, on_error=self._container_damage):
            if packet.track != self.track.number:
                self.pending.append(("audio", packet))
                continue
            shown_at, missing = self.slots.admit(packet.time, packet.suspect)
            self.pending.append(("video", (packet.time, shown_at, missing)))
            yield packet.data

    def _handle_pending(self, until_video: bool) -> None:
        """Write queued audio, warnings and lost frames in file order, up to the next video packet."""
        while self.pending:
            kind, value = self.pending.popleft()
            if kind == "audio":
                if self.sink:
                    self.sink.write_audio(value.data, value.time)
            elif kind == "warning":
                self.warn(value)
            else:
                self._packet_at, self._video_at, missing = value
                self._conceal_lost(missing)
                if until_video:
                    return

    def _container_damage(self, error: CorruptStreamError) -> None:
        # Damage inside the file is concealed; a file that simply stops is refused whole,
        # unless the caller asked to salvage what is there.
        if isinstance(error, TruncatedStreamError) and not self.salvage:
            raise error
        self.slots.damage(isinstance(error, TruncatedStreamError))
        self.pending.append(("warning", f"container damage: {error}"))

    def _decoded(self, outcome: npt.NDArray[np.uint8] | StreamcodecError) -> npt.NDArray[np.uint8]:
        if not isinstance(outcome, StreamcodecError):
            self.last_good = outcome
            self.last_good_planes = self.decoder.last_planes if self.planes else None
            if notes := getattr(self.decoder.impl, "notes", None):  # selective: a plate update it could not use
                for note in notes:
                    self.warn(f"frame {self.frames} at {float(self._packet_at):.3f} s: {note}")
                notes.clear()
            return outcome
        where = f"frame {self.frames} at {float(self._packet_at):.3f} s"
        if not isinstance(outcome, CorruptStreamError):  # a stream this build cannot decode: no concealment helps
            raise outcome if outcome.path is not None else type(outcome)(f"{where}: {outcome}", self.input) from None
        self.damaged += 1
        self.warn(f"{where} is damaged ({outcome}); showing the last good frame until the next keyframe")
        return self._last_good()

    def _last_good(self) -> npt.NDArray[np.uint8]:
        if self.last_good is None:  # nothing decoded yet: black
            self.last_good = np.zeros((self.config.height, self.config.width, 3), dtype=np.uint8)
        return self.last_good

    def _conceal_lost(self, missing: list[Fraction]) -> None:
        if not missing:
            return
        self.warn(_lost_frames_message(len(missing), missing))
        for at in missing:
            self._emit(self._last_good(), at)
        self.damaged += len(missing)

    def _emit(self, rgb: npt.NDArray[np.uint8], at: Fraction) -> None:
        if self.sink:  # rgb is the last good frame (decoded or concealing), and the planes are its own
            self.sink.write(rgb, at, self.last_good_planes if rgb is self.last_good else None)
        if self.reference is not None and (source_rgb := next(self.reference, None)) is not None:
            self.quality.add(source_rgb, rgb)
        self.frames += 1
        self.bar.update(1)

    def summary(self, output: Path | str | None, elapsed: float) -> DecodeSummary:
        return DecodeSummary(
            input=str(self.input),
            output=str(output) if output else None,
            frames=self.frames,
            damaged_frames=self.damaged,
            width=self.config.width,
            height=self.config.height,
            seconds=elapsed,
            fps=self.frames / elapsed,
            quality=self.quality.summary(),
            warnings=self.warnings,
            quality_notes=self.quality.reasons,
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
