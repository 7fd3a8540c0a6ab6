"""Where decoded frames go: a video file (mp4/mkv/mov through libx264, raw y4m) or a folder of PNGs.

A decoder that gives its frames as 4:2:0 planes (selective mode: the fidelity codec's own planes in the
kept blocks) has them written as they are: y4m in 4:2:0, the H.264 of mp4/mkv/mov coded from them. Frames
that come as RGB only (global mode) go to y4m in 4:4:4 and to H.264 in 4:2:0 by the stream's matrix.
Every video file is tagged with that matrix and limited range (y4m: the range only, it has no matrix field).

Everything is written inside a locked partial folder (io/safe_output) and published at `close()`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from ..errors import OutputError, media_errors
from ..io.safe_output import (
    Partial,
    absolute,
    check_file_target,
    check_frames_folder,
    publish_file,
    publish_frames,
    remove_stale_partials,
    writing_errors,
)

CONTAINER_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
MS = Fraction(1, 1000)

#: The colour matrices a stream may record (its config's "matrix"; bt601 when absent), as swscale names them
#: and as FFmpeg tags them (AVColorSpace 6, SMPTE 170M, is BT.601's matrix).
MATRICES: dict[str, tuple[str, int]] = {"bt601": ("ITU601", 6), "bt709": ("ITU709", 1)}
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG ("tv", 16..235): the range of every conversion the decoder makes
#: The H.264 of mp4/mov outputs, which every player plays: at CRF 12 the PSNR against the source is 0.6-0.9 dB
#: below the decoder's own frames', at 2.3-2.8 times the stream's size; no lossy setting costs under 0.1 dB
#: (CRF 2: 0.1-0.2 dB at 7-9 times). .mkv, and mp4/mov with `lossless` (--lossless), are exact: lossless
#: H.264 (qp 0), 14-16 times the stream (FFV1 is 1.5-1.9 times larger still). Measured on bbb and carphone,
#: docs/format.md#decode-outputs.
H264_OPTIONS = {"crf": "12", "preset": "fast"}
H264_LOSSLESS = {"qp": "0", "preset": "fast"}
LOSSLESS_SUFFIXES = {".mkv"}


def is_frames_folder(output: Path | str) -> bool:
    # A name given as text keeps its trailing slash (Path drops it): `clip.v2/` is a folder, suffix or not.
    return str(output).endswith(("/", os.sep)) or Path(output).suffix == "" or Path(output).is_dir()


def check_output(output: Path | str, force: bool, inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Refuse a decode output before any work: an input, a wrong type, an existing file without `force`, a non-empty folder."""
    if is_frames_folder(output):
        check_frames_folder(Path(output))
        return
    output = Path(output)
    if output.suffix.lower() not in CONTAINER_SUFFIXES and output.suffix.lower() != ".y4m":
        raise OutputError(f"unsupported output type {output.suffix!r} (use .mp4, .mkv, .mov, .y4m or a folder/)", output)
    check_file_target(output, force, inputs)


class VideoSink:
    """Where decoded frames go: a PyAV container (with optional audio copy) or PNG files.

    Everything is written inside a locked partial folder (see io/safe_output) and published by a
    rename at `close()`: a file replaces an existing one only with `force`; frames go only into a
    new or empty folder.
    """

    def __init__(
        self,
        output: Path | str,
        width: int,
        height: int,
        audio_from: Path | None,
        frame_rate: Fraction,
        force: bool = False,
        *,
        matrix: str = "bt601",
        planes: bool = False,
        lossless: bool = False,
    ) -> None:
        """Open the output (in its partial folder).

        Args:
            output: a .mp4/.mkv/.mov/.y4m file, or a folder for PNGs (see `check_output`).
            width, height: the frames' size.
            audio_from: a Matroska file whose first audio track goes into mp4/mkv/mov (None: no audio).
            frame_rate: the nominal rate (the y4m header's; the codec's rate control).
            force: replace an existing file.
            matrix: the stream's colour matrix (MATRICES): how RGB frames are converted, and the files' tag.
            planes: `write` will get each frame's 4:2:0 planes too: y4m is then 4:2:0 (else 4:4:4).
            lossless: mp4/mov in lossless H.264 (qp 0) instead of CRF 12, as .mkv always is.
        """
        if matrix not in MATRICES:
            raise ValueError(f"colour matrix {matrix!r} is not one of {', '.join(MATRICES)}")
        self.is_folder = is_frames_folder(output)  # before Path(): `name.v2/` is a folder
        check_output(output, force)
        self.output, self.force = Path(output), force
        self.matrix, self.planes = matrix, planes
        self.lossless = lossless or self.output.suffix.lower() in LOSSLESS_SUFFIXES
        self.target = absolute(self.output)
        # Nominal rate for the codec's rate control (and the y4m header); every frame keeps its own timestamp.
        self.frame_rate = frame_rate
        self.suffix = self.output.suffix.lower()
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
                self.video.pix_fmt = "yuv420p" if self.planes else "yuv444p"
            else:
                self.container = av.open(str(target), "w", format=CONTAINER_SUFFIXES[self.suffix])
                self.video = self.container.add_stream("libx264", rate=self.frame_rate)
                even = width % 2 == 0 and height % 2 == 0
                self.video.pix_fmt = "yuv420p" if even else "yuv444p"
                self.video.options = dict(H264_LOSSLESS if self.lossless else H264_OPTIONS)
                if audio_from is not None:
                    self.audio_in = av.open(str(audio_from))
                    if self.audio_in.streams.audio:
                        self.audio_out = self.container.add_stream_from_template(self.audio_in.streams.audio[0])
            self.video.width, self.video.height = width, height
            context = self.video.codec_context
            context.colorspace, context.color_range = MATRICES[self.matrix][1], LIMITED_RANGE
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

    def write(self, rgb: npt.NDArray[np.uint8], time: Fraction, planes: npt.NDArray[np.uint8] | None = None) -> None:
        """Write one frame shown at `time`: (H, W, 3) uint8 RGB, and where the decoder gives them, the same frame's
        (H * 3 // 2, W) uint8 I420 planes, which 4:2:0 outputs take as they are (PNGs take the RGB)."""
        self.count += 1
        if self.is_folder:
            with writing_errors(self.output):  # PIL's OSError on a full disk
                Image.fromarray(rgb).save(self.tmp / f"frame_{self.count:06d}.png", compress_level=1)
            return
        frame = self._video_frame(rgb, planes)
        if self.suffix == ".y4m":
            frame.pts, frame.time_base = self.count - 1, 1 / self.frame_rate
        else:
            frame.pts, frame.time_base = round(time / MS), MS
        with media_errors(self.output, writing=True):
            for packet in self.video.encode(frame):
                self.container.mux(packet)

    def _video_frame(self, rgb: npt.NDArray[np.uint8], planes: npt.NDArray[np.uint8] | None) -> Any:
        """The frame to code: the decoder's own planes as they are, else its RGB converted by the stream's matrix."""
        space, tag = MATRICES[self.matrix]
        if planes is not None and self.video.pix_fmt == "yuv420p":
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        else:  # limited range, as the decoder's own conversions (swscale's default for YUV)
            rgb_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = rgb_frame.reformat(format=self.video.pix_fmt, dst_colorspace=space, dst_color_range="MPEG")
        frame.colorspace, frame.color_range = tag, LIMITED_RANGE
        return frame

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
            with writing_errors(self.output):
                publish_frames(self.partial, self.target)
            self.partial.release()
            return
        with media_errors(self.output, writing=True):
            for packet in self.video.encode(None):
                self.container.mux(packet)
            self.container.close()
        self.container = None
        self._close_audio()
        with writing_errors(self.output):
            publish_file(self.tmp / self.output.name, self.output, self.force)
        self.partial.discard()  # the partial folder is empty now

    def _close_audio(self) -> None:
        if self.audio_in is not None:
            self.audio_in.close()
            self.audio_in = None

    def abort(self) -> None:
        """Drop everything written so far; the output is left as it was."""
        if self.container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):  # a full disk fails the close again
                self.container.close()
            self.container = None
        self._close_audio()
        if self.partial.fd >= 0:  # not yet published
            self.partial.discard()
