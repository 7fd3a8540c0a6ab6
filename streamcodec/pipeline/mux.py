"""The encode side's Matroska layout: our V_STREAMCODEC track, the H.264 preview and the audio, packet by packet.

    video frame ──Encoder.push──► packet ──► track 1 (V_STREAMCODEC)
                └─PreviewEncoder──────────► track 3 (H.264, the one players show)
    audio packet ──AudioRoute──────────────► track 2 (copied untouched)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..bitstream import FORMAT_VERSION, StreamConfig
from ..codec import EncodedFrame, Encoder
from ..errors import OutputError
from ..io.demux import AudioPacket, SourceInfo, VideoFrame
from ..io.h264 import PreviewEncoder
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..io.safe_output import writing_errors
from ..version import __version__
from .audio import AudioRoute

CODEC_ID = "V_STREAMCODEC"
VIDEO_TRACK, AUDIO_TRACK, PREVIEW_TRACK = 1, 2, 3
MS = Fraction(1, 1000)


def video_tracks(info: SourceInfo, encoder: Encoder, preview: PreviewEncoder | None, rotation: int) -> list[TrackSpec]:
    """The video TrackSpecs, preview first: players show the first default track they can decode.

    Both carry the source's display rotation (frames are coded as stored, e.g. a portrait phone
    clip as landscape pixels), so players and `decode` show them upright.
    """
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


def tags(config: StreamConfig) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """The file's tags and our track's (model, format version, mode, quality)."""
    track_tags = {
        "STREAMCODEC_MODEL_ID": config.model_id,
        "STREAMCODEC_MODEL": config.model_name,
        "STREAMCODEC_FORMAT_VERSION": str(FORMAT_VERSION),
        "STREAMCODEC_MODE": config.mode,
        "STREAMCODEC_QUALITY": str(config.quality),
    }
    return {"ENCODER": f"streamcodec {__version__}"}, {VIDEO_TRACK: track_tags}


class Muxing:
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
            write_mask(self.masks_to / f"mask_{self.frames:06d}.png", self.encoder.last_mask)
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
        """Flush every track and close the writer; returns the file's size in bytes."""
        for encoded in self.encoder.flush():
            self._video(encoded)
        if self.written != self.frames:  # never lose a frame silently
            raise RuntimeError(f"the encoder returned {self.written} packets for {self.frames} frames")
        for packet in self.audio.flush() if self.audio else ():
            self._write(AUDIO_TRACK, *packet)
        for pts, data, key in self.preview.flush() if self.preview else ():
            self._write(PREVIEW_TRACK, pts * MS, data, key)
        return self.writer.close()


def write_mask(path: Path, mask: np.ndarray) -> None:
    """One kept mask as a black-and-white PNG (`--save-masks`), as a new file.

    Encoded in memory and written by Python, not by `cv2.imwrite`, which reports success on a full
    disk and leaves an empty file. On a failure the file is removed (it is ours: created here) and the
    error names it.
    """
    import cv2

    done, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not done:
        raise OutputError("cannot encode the mask as PNG", path)
    with writing_errors(path):
        stream = path.open("xb")  # never over a file that appeared meanwhile
        try:
            with stream:
                stream.write(png.tobytes())
        except OSError:
            path.unlink(missing_ok=True)  # the partial PNG just created here, never someone's file
            raise
