"""Frames from a camera, a file or a URL, always the newest: a slow consumer makes drops, never a queue.

A reader thread decodes the source through PyAV and leaves each frame in a one-frame slot; a frame
overwritten before the consumer took it is counted as dropped. A file (or URL) is paced at its own
frame rate, as if it were a camera, so a demo or a test sees what a live source would give.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from ..errors import media_errors

#: PyAV input format and default device of a camera, per platform.
CAMERA_FORMATS = {"linux": ("v4l2", "/dev/video0"), "darwin": ("avfoundation", "0"), "win32": ("dshow", "video=0")}


@dataclass(frozen=True)
class CapturedFrame:
    """One frame as captured."""

    rgb: npt.NDArray[np.uint8]  # (height, width, 3)
    index: int  # position in the source, counting dropped frames
    captured_us: int  # wall clock at capture, µs since the epoch


def open_input(source: str | None, camera: str | None, size: tuple[int, int] | None, fps: float | None) -> Any:
    """The PyAV container of a file/URL (`source`) or a camera (`camera`, or the platform's default).

    Args:
        source: file path or URL, played as a camera; None for a camera.
        camera: the camera device (e.g. /dev/video1); None for the platform default.
        size: capture size asked of a camera (width, height).
        fps: capture rate asked of a camera.
    Returns:
        An open av container with a video stream.
    """
    if source is not None:
        with media_errors(source):
            return av.open(source)
    fmt, default = CAMERA_FORMATS.get(sys.platform, CAMERA_FORMATS["linux"])
    options = {"framerate": str(fps or 30)}
    if size is not None:
        options["video_size"] = f"{size[0]}x{size[1]}"
    device = camera or default
    with media_errors(device):
        return av.open(device, format=fmt, options=options)


class Capture:
    """The newest frame of a source, read by a background thread.

    Args:
        container: an open PyAV input (see `open_input`).
        size: output (width, height); None keeps the source's size.
        paced: sleep to the frames' timestamps (files, URLs); False for a camera.
        loop: start a file again at its end (demos); False ends the capture there.
    """

    def __init__(self, container: Any, size: tuple[int, int] | None, *, paced: bool, loop: bool = False) -> None:
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.size = size or (self.stream.codec_context.width, self.stream.codec_context.height)
        self.paced, self.loop = paced, loop
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.frame_rate = float(rate) if rate else 30.0
        self.dropped = 0
        self.ended = False
        self.error: Exception | None = None
        self._slot: CapturedFrame | None = None
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _frames(self) -> Iterator[Any]:
        while True:
            yield from self.container.decode(self.stream)
            if not self.loop or self._stop.is_set():
                return
            self.container.seek(0)

    def _run(self) -> None:
        start_wall: float | None = None
        first_pts = last = offset = 0.0
        try:
            for index, frame in enumerate(self._frames()):
                if self._stop.is_set():
                    break
                when = (float(frame.time) if frame.time is not None else index / self.frame_rate) + offset
                if start_wall is None:
                    start_wall, first_pts = time.monotonic(), when
                elif when <= last:  # looped back to the start: carry on one frame after the last
                    offset += last + 1 / self.frame_rate - when
                    when = last + 1 / self.frame_rate
                if self.paced:
                    self._stop.wait(max(0.0, start_wall + (when - first_pts) - time.monotonic()))
                last = when
                rgb = frame.reformat(width=self.size[0], height=self.size[1], format="rgb24").to_ndarray()
                self._put(CapturedFrame(rgb, index, time.time_ns() // 1000))
        except Exception as exc:  # a camera unplugged or a stream cut: the consumer reports it
            self.error = exc
        finally:
            with self._ready:
                self.ended = True
                self._ready.notify_all()

    def _put(self, frame: CapturedFrame) -> None:
        with self._ready:
            if self._slot is not None:
                self.dropped += 1  # the consumer was busy: this frame is lost, not queued
            self._slot = frame
            self._ready.notify_all()

    def next_frame(self, timeout: float = 5.0) -> CapturedFrame | None:
        """The newest frame not yet taken, waiting for one; None once the source has ended (or timed out)."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._slot is not None or self.ended, timeout):
                return None
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=2.0)
        self.container.close()
