"""Selective mode's fidelity layer: the kept region coded by a standard inter codec, one access unit per frame.

    RGB (H, W, 3) ─pad to even (edge repeat)─▶ yuv420p (swscale, BT.601 limited) ─▶ libx265 │ libsvtav1
        ─▶ one access unit (bytes) per frame, a section of our frame packet
    access unit ─▶ FFmpeg hevc │ libdav1d ─▶ yuv420p ─▶ RGB ─crop─▶ (H, W, 3)

Two latencies, the same bitstream rules for the decoder:
    zero     for live use: no lookahead, no B-frames, no frame threads, so each frame in gives its
             access unit back at once (`encode`).
    offline  for files: the codec looks ahead and keeps its access units until it has decided (`send`,
             then `drain` at the end). SVT-AV1 codes hierarchical mini-GOPs (pred-struct 2), x265 adds
             lookahead and cu-tree but still no B-frames. Either way every access unit still carries
             exactly one shown picture, in display order (AV1 shows a frame coded earlier with a 5-byte
             show-existing-frame unit), so the decoder below stays zero-delay, one picture per unit.

Keyframes come only when the caller asks (our packet's keyframe flag), never from the codec's own GOP
or scene-cut logic; each keyframe access unit repeats the parameter sets (VPS/SPS/PPS, or the AV1
sequence header), so a decoder can start or recover there. The decoders run
without frame threading (slice/tile threads only, or dav1d's max_frame_delay 1): one picture out per
access unit, and pixels that do not depend on the thread count.

Damage the codec's decoder notices (and empty access units) raise `CorruptStreamError`; after one the
decoder refuses every access unit until the next keyframe, then starts afresh. Damage it does not
notice (a flipped bit inside CABAC data decodes to wrong pixels) is caught by our packet's CRC.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import CorruptStreamError, UnsupportedStreamError
from .codec_specs import CODEC_OPTIONS, CODECS, LATENCIES, PRESETS, CodecSpec, codec_spec, offline_options
from .colour import MATRICES, even, frame_to_rgb, rgb_to_frame

__all__ = [
    "AV1_TEMPORAL_DELIMITER",
    "CODECS",
    "LATENCIES",
    "MATRICES",
    "PRESETS",
    "FidelityDecoder",
    "FidelityEncoder",
    "frame_to_rgb",
    "is_random_access",
    "offline_options",
    "rgb_to_frame",
]

Image = npt.NDArray[np.uint8]


def _check_rgb(rgb: Image, width: int, height: int) -> None:
    if rgb.dtype != np.uint8 or rgb.shape != (height, width, 3):
        raise ValueError(f"fidelity frame must be ({height}, {width}, 3) uint8, got {rgb.shape} {rgb.dtype}")


class FidelityEncoder:
    """Codes the (filled) frames of one stream: one access unit out per frame in, keyframes only when asked."""

    def __init__(
        self,
        width: int,
        height: int,
        frame_rate: Fraction | int,
        *,
        codec: str = "hevc",
        crf: int | None = None,
        qp: int | None = None,
        preset: str | None = None,
        threads: int = 1,
        latency: str = "zero",
        matrix: str = "bt601",
    ) -> None:
        """Open the codec.

        Args:
            width, height: frame size in pixels (odd sizes are padded to even, and cropped back by the decoder).
            frame_rate: frames per second (a rational); only rate control's notion of time.
            codec: "hevc" (libx265) or "av1" (libsvtav1), from `CODECS`.
            crf: constant rate factor (default `CodecSpec.default_crf`); exclusive with `qp`.
            qp: constant quantiser instead of CRF.
            preset: the codec's speed preset (x265 "ultrafast".."placebo", SVT-AV1 "0".."13").
            threads: encoder worker threads (x265 pools, SVT-AV1 lp); the bitstream does not depend on it.
            latency: "zero" (`encode`: one access unit back per frame) or "offline" (`send` and `drain`:
                lookahead, and for AV1 hierarchical prediction; the default preset is then `offline_preset`).
            matrix: the colour matrix RGB frames are converted with (MATRICES).
        """
        spec = codec_spec(codec)
        if crf is not None and qp is not None:
            raise ValueError("fidelity layer: give crf or qp, not both")
        rate = crf if qp is None else qp
        rate = spec.default_crf if rate is None else rate
        low, high = spec.crf_range
        if not low <= rate <= high or width < 2 or height < 2 or threads < 1 or latency not in LATENCIES:
            raise ValueError(
                f"fidelity {codec}: crf/qp {rate} (allowed {low}..{high}), size {width}x{height}, threads {threads}, "
                f"latency {latency!r} (one of {', '.join(LATENCIES)})"
            )
        if matrix not in MATRICES:
            raise ValueError(f"fidelity colour matrix {matrix!r} is not one of {', '.join(MATRICES)}")
        if preset is not None and preset not in PRESETS[codec]:
            raise ValueError(f"fidelity {codec} preset {preset!r} is not one of {', '.join(PRESETS[codec])}")
        self.codec, self.width, self.height, self.offline = codec, width, height, latency == "offline"
        self.matrix = matrix
        preset = preset or (spec.offline_preset if self.offline else spec.default_preset)
        self.config = {"codec": codec, "crf" if qp is None else "qp": rate, "preset": preset}
        options = CODEC_OPTIONS[codec](None if qp is not None else rate, qp, preset, threads, self.offline)
        self._context = self._open(spec, Fraction(frame_rate), options)
        self._index = 0
        self._roi = False  # the stream's frames carry ROI offsets (decided by its first frame)
        self._keyframes: list[bool] = []  # offline: the asked keyframe flag of each frame sent and not yet out

    def _open(self, spec: CodecSpec, frame_rate: Fraction, options: dict[str, str]) -> Any:
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its config banner to stderr otherwise
        context: Any = av.CodecContext.create(spec.encoder, "w")
        context.width, context.height, context.pix_fmt = even(self.width), even(self.height), "yuv420p"
        context.time_base, context.framerate = 1 / frame_rate, frame_rate
        context.options = options
        context.open()
        return context

    def encode(self, rgb: Image, keyframe: bool, roi: npt.NDArray[np.float32] | None = None) -> bytes:
        """Code the next frame (latency "zero").

        Args:
            rgb: (height, width, 3) uint8 RGB, its outside already filled (`fill_outside`).
            keyframe: make this access unit a keyframe (IDR / AV1 key frame with parameter sets); the
                first frame must be one.
            roi: optionally QP offsets per 16-px block ((⌈H/16⌉, ⌈W/16⌉) float32, negative: finer), hevc
                only: x265's ROI side data (`roi.py`), in quarter QP steps.
        Returns:
            This frame's access unit (Annex-B HEVC or AV1 low-overhead OBUs), never empty.
        """
        if self.offline:
            raise ValueError("fidelity layer: an offline encoder takes send() and drain(), not encode()")
        units = self.send(rgb, keyframe, roi)
        if len(units) != 1:
            # The options above make this impossible; if a codec build ignores them, say so loudly.
            raise RuntimeError(f"{self.codec} gave {len(units)} access units for frame {self._index - 1} (want 1)")
        return units[0]

    def send(self, rgb: Image, keyframe: bool, roi: npt.NDArray[np.float32] | None = None) -> list[bytes]:
        """Give the next frame; returns the access units the codec has finished, oldest first (offline: often none).

        Args:
            rgb, keyframe, roi: as for `encode`; `rgb` may also be the picture's I420 planes ((H * 3 // 2, W)
                uint8, `planes.py`), coded as they are.
        Returns:
            Access units of the frames sent so far and not yet returned, in display order.
        """
        import av

        if self._context is None:
            raise ValueError("fidelity layer: send() after close()")
        if rgb.ndim == 2:
            if rgb.dtype != np.uint8 or rgb.shape != (self.height * 3 // 2, self.width) or self.height % 4 or self.width % 2:
                raise ValueError(
                    f"fidelity planes must be ({self.height * 3 // 2}, {self.width}) uint8, got {rgb.shape} {rgb.dtype}"
                )
        else:
            _check_rgb(rgb, self.width, self.height)
        if self._index == 0 and not keyframe:
            raise ValueError("fidelity layer: the first frame of a stream must be a keyframe")
        frame = av.VideoFrame.from_ndarray(rgb, format="yuv420p") if rgb.ndim == 2 else rgb_to_frame(rgb, self.matrix)
        frame.pts = self._index
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        if self._index == 0:
            self._roi = roi is not None
        if roi is not None or self._roi:
            frame = self._with_roi(frame, roi)
        self._keyframes.append(keyframe)
        self._index += 1
        return self._checked(self._context.encode(frame))

    def _with_roi(self, frame: Any, roi: npt.NDArray[np.float32] | None) -> Any:
        """`frame` with `roi` as x265's regions of interest, in quarter QP steps.

        Every frame of a stream whose first frame has offsets carries them (None or an all-zero map: one
        region of offset 0), and a stream whose first frame has none refuses them later: x265
        reuses its picture buffers, and one first made for a picture without offsets has no room for them
        (a later picture with offsets then crashes it: seen at frame 24 of the sample, CRF 30-46).
        """
        from .roi import BLOCK, X265_QP_RANGE, RoiRegion, roi_regions, with_roi

        if self.codec != "hevc":
            raise ValueError(f"fidelity {self.codec}: per-block QP offsets (saliency) are for hevc only")
        if not self._roi:
            raise ValueError("fidelity hevc: ROI offsets must come from the stream's first frame on (x265 would crash)")
        if roi is None:
            return with_roi(frame, [RoiRegion(0, 0, min(BLOCK, frame.width), min(BLOCK, frame.height), Fraction(0))])
        steps = np.round(np.clip(roi, -X265_QP_RANGE, X265_QP_RANGE) * ROI_STEPS).astype(np.int16)
        regions = roi_regions(steps, frame.width, frame.height, BLOCK, X265_QP_RANGE * ROI_STEPS)
        return with_roi(frame, regions or [RoiRegion(0, 0, min(BLOCK, frame.width), min(BLOCK, frame.height), Fraction(0))])

    def drain(self) -> list[bytes]:
        """End the stream: the access units still held back (offline), oldest first; the encoder is then closed."""
        if self._context is None:
            return []
        units = self._checked(self._context.encode(None))
        self._context = None
        return units

    def _checked(self, packets: list[Any]) -> list[bytes]:
        """The packets' bytes, after checking each is the next frame and a keyframe exactly where one was asked."""
        units = []
        for packet in packets:
            first = self._index - len(self._keyframes)
            if not self._keyframes or packet.pts != first or packet.is_keyframe != self._keyframes[0]:
                raise RuntimeError(f"{self.codec} gave frame {packet.pts} (key={packet.is_keyframe}) where frame {first} was due")
            self._keyframes.pop(0)
            unit = bytes(packet)
            if self.codec == "av1" and unit.startswith(AV1_TEMPORAL_DELIMITER):
                unit = unit[len(AV1_TEMPORAL_DELIMITER) :]
            units.append(unit)
        return units

    def close(self) -> None:
        """End the stream, dropping what an offline codec still holds (`drain` first to keep it); idempotent."""
        if self._context is not None:
            self._context.encode(None)  # SVT-AV1 complains at teardown without its end-of-stream
            self._context = None

    def __enter__(self) -> FidelityEncoder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


#: ROI offsets are given to x265 in steps of 1/ROI_STEPS QP (AVRegionOfInterest's qoffset is a fraction).
ROI_STEPS = 4


#: The temporal delimiter OBU (type 2, size 0) that starts each AV1 temporal unit SVT-AV1 gives. Our packet
#: delimits the unit already, so it is left out (Matroska's AV1 mapping leaves it out too; dav1d needs none):
#: 2 bytes a frame, 0.9 % of carphone's stream at quality 1. Units of streams written before keep it and
#: decode to the same pictures.
AV1_TEMPORAL_DELIMITER = b"\x12\x00"


def _hevc_random_access(data: bytes) -> bool:
    """An HEVC access unit a decoder can start at: carries a VPS and an IRAP slice."""
    types, position = set(), data.find(b"\x00\x00\x01")
    while 0 <= position < len(data) - 3:
        types.add(data[position + 3] >> 1 & 0x3F)
        position = data.find(b"\x00\x00\x01", position + 3)
    return 32 in types and bool(types & set(range(16, 22)))


def _av1_random_access(data: bytes) -> bool:
    """An AV1 temporal unit a decoder can start at: carries a sequence header OBU (ours come only with key frames)."""
    position = 0
    while position < len(data):
        header = data[position]
        has_extension, has_size = header >> 2 & 1, header >> 1 & 1
        if header >> 3 & 0xF == 1:
            return True
        position += 1 + has_extension
        if not has_size:
            return False
        size, shift = 0, 0
        while position < len(data):
            byte = data[position]
            position, size, shift = position + 1, size | (byte & 0x7F) << shift, shift + 7
            if not byte & 0x80:
                break
        position += size
    return False


def is_random_access(codec: str, access_unit: bytes) -> bool:
    """Whether a decoder can start (or recover) at this access unit: a keyframe with its parameter sets."""
    codec_spec(codec)
    return _hevc_random_access(access_unit) if codec == "hevc" else _av1_random_access(access_unit)


class FidelityDecoder:
    """Decodes one stream's access units back to RGB; deterministic, zero delay, recovers at keyframes."""

    def __init__(
        self, codec: str = "hevc", *, width: int | None = None, height: int | None = None, threads: int = 1, matrix: str = "bt601"
    ) -> None:
        """Prepare a decoder (opened lazily, and afresh after damage).

        Args:
            codec: the stream's fidelity codec, "hevc" or "av1".
            width, height: the encoder's frame size, to crop the even padding back off (None: keep the coded size).
            threads: decoder threads (slice/WPP for HEVC, dav1d tile threads); pixels do not depend on it.
            matrix: the colour matrix pictures are converted to RGB with (MATRICES; the stream's).
        """
        if matrix not in MATRICES:
            raise UnsupportedStreamError(f"fidelity colour matrix {matrix!r} is not one of {', '.join(MATRICES)}")
        self.codec, self._spec, self.matrix = codec, codec_spec(codec), matrix
        self.width, self.height, self.threads = width, height, threads
        self._context: Any = None
        self._waiting_for_keyframe = False
        #: The last decoded picture as the codec gave it (an av.VideoFrame, coded size): its own planes.
        self.last_picture: Any = None

    def _open(self) -> Any:
        import av

        context = av.CodecContext.create(self._spec.decoder, "r")
        context.thread_count = self.threads
        if self.codec == "hevc":
            context.thread_type = "SLICE"  # frame threads would hold pictures back (delay)
            context.options = {"err_detect": "crccheck+bitstream+buffer+explode"}
        else:
            context.options = {"max_frame_delay": "1"}
        return context

    def decode(self, access_unit: bytes) -> Image:
        """Decode the next access unit.

        Args:
            access_unit: one frame's bytes from `FidelityEncoder.encode`, in stream order.
        Returns:
            (height, width, 3) uint8 RGB.
        Raises:
            CorruptStreamError: the access unit is empty or damaged, or follows a damaged one before the next keyframe.
        """
        if not access_unit:
            self._waiting_for_keyframe = True  # a lost frame: what follows predicts from it
            raise CorruptStreamError(f"fidelity {self.codec} access unit is empty")
        if self._context is None or self._waiting_for_keyframe:
            if not is_random_access(self.codec, access_unit):
                raise CorruptStreamError(
                    f"fidelity {self.codec} access unit needs an earlier frame that is missing or "
                    "damaged; decoding resumes at the next keyframe"
                )
            self._context, self._waiting_for_keyframe = self._open(), False
        try:
            pictures = self._decode(access_unit)
        except CorruptStreamError:
            self._waiting_for_keyframe = True
            raise
        return pictures

    def _decode(self, access_unit: bytes) -> Image:
        import av

        try:
            frames = self._context.decode(av.Packet(access_unit))
        except av.error.FFmpegError as exc:
            raise CorruptStreamError(
                f"fidelity {self.codec} access unit of {len(access_unit)} bytes is damaged ({exc.strerror or exc})"
            ) from exc
        if len(frames) != 1:
            raise CorruptStreamError(f"fidelity {self.codec} access unit gave {len(frames)} pictures, not 1")
        self.last_picture = frames[0]
        rgb = frame_to_rgb(frames[0], self.matrix)
        width, height = self.width or rgb.shape[1], self.height or rgb.shape[0]
        if rgb.shape[:2] != (even(height), even(width)) and rgb.shape[:2] != (height, width):
            raise CorruptStreamError(
                f"fidelity {self.codec} picture is {rgb.shape[1]}x{rgb.shape[0]}, the stream's is {width}x{height}"
            )
        return np.ascontiguousarray(rgb[:height, :width])
