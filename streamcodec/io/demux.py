"""Reading a source file with PyAV: video frames as RGB with exact timestamps, audio packets.

Timestamps are rationals in seconds (`Fraction`), computed from each frame's pts and its
stream's time_base, so variable-frame-rate sources keep every timestamp.

`-` reads stdin (see stdio): y4m (`ffmpeg … -f yuv4mpegpipe -`) by its signature, anything else as
FFmpeg probes it from the first bytes. A pipe has no frame count and cannot seek; nothing here seeks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.logging
import numpy as np
import numpy.typing as npt

from ..errors import InputNotFoundError, UnreadableInputError, UnsupportedStreamError, media_errors
from .stdio import STDIN_NAME, display_name, is_stdio, stdin_stream

OWN_TAG = "STREAMCODEC_MODEL_ID"  # track tag every streamcodec file carries (PyAV cannot see CodecPrivate)
Y4M_SIGNATURE = b"YUV4MPEG2"


@dataclass(frozen=True)
class VideoFrame:
    rgb: npt.NDArray[np.uint8]  # as coded: not turned by the display rotation
    time: Fraction
    rotation: int = 0  # display matrix rotation, degrees counter-clockwise (PyAV's VideoFrame.rotation)
    source: av.VideoFrame | None = field(default=None, repr=False, compare=False)  # the decoded frame `rgb` is from


@dataclass(frozen=True)
class AudioPacket:
    data: bytes
    time: Fraction
    keyframe: bool
    packet: av.Packet  # the demuxed packet itself, for decoding when the audio is re-encoded


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    frame_rate: Fraction
    frames: int | None
    duration: Fraction | None
    audio: av.audio.stream.AudioStream | None


@contextlib.contextmanager
def ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """Collect FFmpeg's error-level log lines (from every thread) while the block runs.

    PyAV drops FFmpeg's log by default; its error lines are how a damaged input shows itself when
    the decoder conceals the damage instead of failing.

    Returns:
        A list that fills with (level, component, message) while the block runs.
    """
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def _last_message(logs: list[tuple[int, str, str]]) -> str | None:
    lines = [message.strip() for _, _, message in logs if message.strip()]
    return lines[-1] if lines else None


class Source:
    """A video file (or stdin) opened for reading; iterate `items()` for frames and audio packets in order.

    After `items()` is exhausted, `damage()` says what (if anything) was lost or concealed on the way.
    """

    def __init__(self, path: str | os.PathLike[str] | BinaryIO) -> None:
        """Open `path`: a file, `-` for stdin, or a binary file object (read from where it is, never closed here).

        Raises:
            InputNotFoundError: no such file.
            UnreadableInputError: not a video FFmpeg can read (an empty or garbage stream included).
            UnsupportedStreamError: a streamcodec file (decode it first).
        """
        stream = _input_stream(path)
        self.path = display_name(path, STDIN_NAME)
        if stream is None and not self.path.exists():
            raise InputNotFoundError("no such file", self.path)
        if stream is None and self.path.is_dir():
            raise UnreadableInputError("is a directory, not a video file", self.path)
        self.errors: list[str] = []
        self.container = self._open(self.path, self.errors, stream)
        if not self.container.streams.video:
            self.close()
            raise UnreadableInputError("has no video stream", self.path)
        self.video = self.container.streams.video[0]
        # A file of ours has an H.264 preview first, which FFmpeg would happily decode: refuse by our track.
        if self.video.codec_context is None or self._is_streamcodec_file():
            error = self._undecodable_error()
            self.close()
            raise error
        self.video.thread_type = "AUTO"
        audio = self.container.streams.audio
        self.audio = audio[0] if audio else None
        self.info = self._info()
        if not self.info.width or not self.info.height:
            self.close()
            raise UnreadableInputError("video stream has no frame size", self.path)
        self.decoded = self.failed_packets = self.null_frames = 0

    @staticmethod
    def _open(path: Path, errors: list[str], stream: BinaryIO | None) -> av.container.InputContainer:
        """Open `path` (or `stream`), keeping FFmpeg's error lines (a damaged header shows there first) in `errors`."""
        with ffmpeg_log() as logs:
            try:
                with media_errors(path):
                    return av.open(str(path)) if stream is None else av.open(stream, "r", format=_stream_format(stream, path))
            except UnreadableInputError as exc:
                reason = _last_message(logs)
                if reason is None:
                    raise
                raise UnreadableInputError(f"not a readable media file (FFmpeg: {reason})", path) from exc
            finally:
                errors += [message.strip() for _, _, message in logs if message.strip()]

    def _is_streamcodec_file(self) -> bool:
        # Our own V_STREAMCODEC track: FFmpeg sees a video stream with no codec, carrying our tag.
        return any(OWN_TAG in stream.metadata for stream in self.container.streams.video)

    def _undecodable_error(self) -> UnreadableInputError | UnsupportedStreamError:
        if self._is_streamcodec_file():
            return UnsupportedStreamError(
                f"is already a streamcodec file; decode it first (streamcodec decode {self.path})", self.path
            )
        return UnreadableInputError("its video stream's codec is unknown to FFmpeg", self.path)

    def _info(self) -> SourceInfo:
        rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        duration = None
        if self.video.duration is not None and self.video.time_base is not None:
            duration = self.video.duration * self.video.time_base or None  # a pipe's 0: unknown
        elif self.container.duration is not None:
            duration = Fraction(self.container.duration, av.time_base)
        return SourceInfo(
            width=self.video.codec_context.width,
            height=self.video.codec_context.height,
            frame_rate=Fraction(rate),
            frames=self.video.frames or None,
            duration=duration,
            audio=self.audio,
        )

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _frame_time(self, frame: av.VideoFrame, index: int) -> Fraction:
        if frame.pts is not None and frame.time_base is not None:
            return frame.pts * frame.time_base
        return index / self.info.frame_rate

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        """The packet's frames; a packet the decoder rejects is counted and skipped, as FFmpeg does."""
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
            self.failed_packets += 1
            when = f" at {float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None and packet.time_base else ""
            self.errors.append(f"video packet{when}: {exc.strerror or exc}")
            return []
        return [frame for frame in frames if isinstance(frame, av.VideoFrame)]

    def _count_null_frames(self, frame: av.VideoFrame, previous_pts: int | None) -> None:
        # AVI counts its empty "dropped frame" chunks in the declared length; they show as pts gaps
        # (its time_base is one frame), and are not lost frames.
        if self.container.format.name == "avi" and frame.pts is not None and previous_pts is not None:
            self.null_frames += max(0, frame.pts - previous_pts - 1)

    def items(self, with_audio: bool = True) -> Iterator[VideoFrame | AudioPacket]:
        """Decoded video frames (RGB, source size) and raw audio packets, in demux order."""
        streams = [self.video] + ([self.audio] if with_audio and self.audio else [])
        previous_pts: int | None = None
        with media_errors(self.path), ffmpeg_log() as logs:
            for packet in self.container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.size and packet.pts is not None and packet.time_base is not None:
                        yield AudioPacket(bytes(packet), packet.pts * packet.time_base, packet.is_keyframe, packet)
                    continue
                for frame in self._decode(packet):
                    yield VideoFrame(self._rgb(frame), self._frame_time(frame, self.decoded), frame.rotation, frame)
                    self._count_null_frames(frame, previous_pts)
                    previous_pts = frame.pts
                    self.decoded += 1
            self.errors += [message.strip() for _, _, message in logs if message.strip()]

    def _rgb(self, frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
        rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
        if rgb.shape[:2] != (self.info.height, self.info.width):
            raise UnreadableInputError(
                f"frame {self.decoded} is {rgb.shape[1]}x{rgb.shape[0]}, the stream is "
                f"{self.info.width}x{self.info.height} (resolution changes are not supported)",
                self.path,
            )
        return rgb

    def damage(self) -> str | None:
        """After `items()`: one sentence on frames lost or concealed while reading, None for a clean read."""
        first = f" (FFmpeg: {self.errors[0]})" if self.errors else ""
        count = f"{len(self.errors)} error{'s' if len(self.errors) > 1 else ''}"
        expected = self.info.frames - self.null_frames if self.info.frames else None
        if expected is not None and self.decoded < expected:
            return (
                f"the input is truncated or damaged: only {self.decoded} of the {expected} video frames "
                f"the container declares could be read{first}"
            )
        if self.failed_packets:
            return f"the input is damaged: {self.failed_packets} video packet(s) could not be decoded and were skipped{first}"
        if self.errors:
            return f"the input is truncated or damaged: FFmpeg reported {count}, the first: {self.errors[0]}{self._estimate()}"
        return None

    def _estimate(self) -> str:
        # Without a declared frame count (Matroska, WebM), the duration gives a rough one.
        if self.info.frames or not self.info.duration:
            return ""
        about = int(self.info.duration * self.info.frame_rate)
        return f"; the container's duration implies about {about} frames" if about > self.decoded else ""


def _input_stream(path: str | os.PathLike[str] | BinaryIO) -> BinaryIO | None:
    """The stream to read: stdin for `-`, the caller's file object, or None for a file path."""
    if is_stdio(path):
        return stdin_stream()
    return None if isinstance(path, (str, os.PathLike)) else path


def _stream_format(stream: BinaryIO, name: Path) -> str | None:
    """The FFmpeg format of a y4m stream ("yuv4mpegpipe"), None (FFmpeg probes) for anything else; refuses an empty stream.

    Looks at the bytes already buffered (`peek`), so nothing is consumed from a pipe.
    """
    peek = getattr(stream, "peek", None)
    if peek is None:
        return None
    head = bytes(peek(len(Y4M_SIGNATURE)))[: len(Y4M_SIGNATURE)]
    if not head:
        raise UnreadableInputError("is empty: no video came through (is the command before the | failing?)", name)
    return "yuv4mpegpipe" if head == Y4M_SIGNATURE else None


def first_frames(path: Path, count: int, width: int = 640, height: int = 480) -> list[npt.NDArray[np.uint8]]:
    """The first `count` frames of `path` scaled to width x height, as (H, W, 3) uint8 RGB (for benchmarks).

    Args:
        path: any video PyAV opens.
        count: how many frames at most.
        width, height: the size to scale to.
    """
    frames: list[npt.NDArray[np.uint8]] = []
    with media_errors(path), av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(np.asarray(frame.to_ndarray(format="rgb24", width=width, height=height), dtype=np.uint8))
            if len(frames) == count:
                break
    return frames
