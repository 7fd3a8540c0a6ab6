"""Reading a source file with PyAV: video frames as RGB with exact timestamps, audio packets.

Timestamps are rationals in seconds (`Fraction`), computed from each frame's pts and its
stream's time_base, so variable-frame-rate sources keep every timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ..errors import InputNotFoundError, UnreadableInputError, media_errors


@dataclass(frozen=True)
class VideoFrame:
    rgb: npt.NDArray[np.uint8]  # as coded: not turned by the display rotation
    time: Fraction
    rotation: int = 0  # display matrix rotation, degrees counter-clockwise (PyAV's VideoFrame.rotation)


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


class Source:
    """A video file opened for reading; iterate `items()` for frames and audio packets in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise InputNotFoundError("no such file", path)
        if path.is_dir():
            raise UnreadableInputError("is a directory, not a video file", path)
        with media_errors(path):
            self.container = av.open(str(path))
        if not self.container.streams.video:
            self.container.close()
            raise UnreadableInputError("has no video stream", path)
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        audio = self.container.streams.audio
        self.audio = audio[0] if audio else None
        rate = self.video.average_rate or self.video.guessed_rate or Fraction(25)
        duration = None
        if self.video.duration is not None and self.video.time_base is not None:
            duration = self.video.duration * self.video.time_base
        elif self.container.duration is not None:
            duration = Fraction(self.container.duration, av.time_base)
        self.info = SourceInfo(
            width=self.video.codec_context.width,
            height=self.video.codec_context.height,
            frame_rate=Fraction(rate),
            frames=self.video.frames or None,
            duration=duration,
            audio=self.audio,
        )
        if not self.info.width or not self.info.height:
            self.close()
            raise UnreadableInputError("video stream has no frame size", path)

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

    def items(self, with_audio: bool = True) -> Iterator[VideoFrame | AudioPacket]:
        """Decoded video frames (RGB, source size) and raw audio packets, in demux order."""
        streams = [self.video] + ([self.audio] if with_audio and self.audio else [])
        index = 0
        with media_errors(self.path):
            for packet in self.container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.size and packet.pts is not None and packet.time_base is not None:
                        yield AudioPacket(bytes(packet), packet.pts * packet.time_base, packet.is_keyframe, packet)
                    continue
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    if rgb.shape[:2] != (self.info.height, self.info.width):
                        raise UnreadableInputError(
                            f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, the stream is "
                            f"{self.info.width}x{self.info.height} (resolution changes are not supported)",
                            self.path,
                        )
                    yield VideoFrame(rgb, self._frame_time(frame, index), frame.rotation)
                    index += 1
