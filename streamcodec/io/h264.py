"""A small H.264 preview track, and the Annex B → Matroska (AVC1) conversion it needs.

libx264 emits Annex B (NAL units behind 00 00 01 start codes); Matroska's V_MPEG4/ISO/AVC wants
4-byte big-endian lengths before each NAL unit in blocks and an AVCDecoderConfigurationRecord
("avcC", ISO/IEC 14496-15 §5.3.3) built from the SPS and PPS in CodecPrivate.
"""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

NAL_SPS, NAL_PPS = 7, 8
_START_CODE = re.compile(b"\x00\x00\x01")
# Profiles whose avcC carries chroma format and bit depths (ISO/IEC 14496-15 §5.3.3.1.2).
_HIGH_PROFILES = frozenset({100, 110, 122, 144})
_SPS_EXTENDED_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (start codes and trailing zeros removed).

    Raises:
        ValueError: `data` does not begin with a start code.
    """
    starts = [m.end() for m in _START_CODE.finditer(data)]
    if not starts or data[: starts[0] - 3].strip(b"\x00"):
        raise ValueError("not an Annex B stream: no start code at the beginning")
    ends = [s - 3 for s in starts[1:]] + [len(data)]
    # A 4-byte start code (or trailing_zero_8bits) leaves zeros at the end of the previous unit.
    return [data[s:e].rstrip(b"\x00") for s, e in zip(starts, ends, strict=True) if data[s:e].rstrip(b"\x00")]


def annexb_to_length_prefixed(data: bytes) -> bytes:
    """Convert an Annex B access unit to 4-byte length-prefixed NAL units (Matroska AVC blocks).

    Args:
        data: one access unit with start codes.

    Returns:
        The same NAL units, each behind its 4-byte big-endian length.
    """
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in split_annexb(data))


def _unescape(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 → 00 00) to read the RBSP."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    """Big-endian bit reader with Exp-Golomb codes, enough for the start of an SPS."""

    def __init__(self, data: bytes) -> None:
        self.value, self.length, self.pos = int.from_bytes(data, "big"), len(data) * 8, 0

    def bits(self, count: int) -> int:
        if self.pos + count > self.length:
            raise ValueError("SPS is shorter than its fields")
        self.pos += count
        return (self.value >> (self.length - self.pos)) & ((1 << count) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)


def _chroma_and_depths(sps: bytes) -> tuple[int, int, int]:
    """(chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8) from an SPS."""
    if sps[1] not in _SPS_EXTENDED_PROFILES:
        return 1, 0, 0  # other profiles are 4:2:0, 8 bit
    reader = _Bits(_unescape(sps[4:]))
    reader.ue()  # seq_parameter_set_id
    chroma = reader.ue()
    if chroma == 3:
        reader.bits(1)  # separate_colour_plane_flag
    return chroma, reader.ue(), reader.ue()


def avcc_from_annexb(extradata_or_first_packet: bytes) -> bytes:
    """Build an avcC record from the SPS and PPS NAL units in Annex B data.

    Args:
        extradata_or_first_packet: encoder extradata or a keyframe carrying SPS and PPS.

    Returns:
        The AVCDecoderConfigurationRecord for Matroska CodecPrivate.

    Raises:
        ValueError: no SPS or no PPS in the data.
    """
    nals = split_annexb(extradata_or_first_packet)
    sps = [nal for nal in nals if nal[0] & 0x1F == NAL_SPS]
    pps = [nal for nal in nals if nal[0] & 0x1F == NAL_PPS]
    if not sps or not pps or len(sps[0]) < 4:
        raise ValueError(f"need an SPS and a PPS to build avcC, found {len(sps)} SPS and {len(pps)} PPS")
    profile, compatibility, level = sps[0][1], sps[0][2], sps[0][3]
    record = bytes((1, profile, compatibility, level, 0xFF, 0xE0 | len(sps)))  # 0xFF: 4-byte lengths
    record += b"".join(len(nal).to_bytes(2, "big") + nal for nal in sps)
    record += bytes((len(pps),)) + b"".join(len(nal).to_bytes(2, "big") + nal for nal in pps)
    if profile in _HIGH_PROFILES:
        chroma, luma_depth, chroma_depth = _chroma_and_depths(sps[0])
        record += bytes((0xFC | chroma, 0xF8 | luma_depth, 0xF8 | chroma_depth, 0))
    return record


def preview_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """Preview frame size: at most `max_width` wide, same aspect, both sides even (≥ 2)."""
    scale = min(1.0, max_width / width)
    return max(2, int(width * scale) // 2 * 2), max(2, round(height * scale / 2) * 2)


class PreviewEncoder:
    """Encode RGB frames to a small H.264 track that any player can show.

    libx264 with `tune=zerolatency` returns each frame's packet at once and uses no B-frames, so
    packets come out in presentation order and the muxer's interleaving buffer stays small.
    """

    def __init__(
        self,
        width: int,
        height: int,
        time_base: Fraction,
        max_width: int = 480,
        *,
        kbps: float | None = None,
        frame_rate: Fraction | None = None,
    ) -> None:
        """Open the encoder.

        Args:
            width: width of the RGB frames to be given to `encode`.
            height: their height.
            time_base: unit of the `pts` given to `encode` and returned with packets.
            max_width: the preview is scaled down to at most this width.
            kbps: cap the preview's rate (ABR with a 2-second VBV buffer); None: constant
                quality (CRF 32), whatever rate that takes.
            frame_rate: the nominal frame rate; required with `kbps`, since x264's rate
                control budgets bits per frame from it.
        """
        # H.264 4:2:0 needs even sizes of at least 2x2: `preview_size` rounds up, so a 1x1 source
        # gets a 2x2 preview rather than none.
        if width < 1 or height < 1 or max_width < 2:
            raise ValueError(f"preview of a {width}x{height} frame at most {max_width} wide: need a frame >= 1x1, max_width >= 2")
        if kbps is not None and (not kbps > 0 or frame_rate is None or not frame_rate > 0):
            raise ValueError(f"a preview rate cap needs kbps > 0 and a frame rate > 0, got {kbps} kbps at {frame_rate} fps")
        self.source_size = (width, height)
        self.width, self.height = preview_size(width, height, max_width)
        self.time_base = time_base
        self._context = av.CodecContext.create("libx264", "w")
        self._context.width, self._context.height = self.width, self.height
        self._context.pix_fmt = "yuv420p"
        self._context.time_base = time_base
        if frame_rate is not None:
            self._context.framerate = frame_rate
        self._context.max_b_frames = 0
        self._context.flags |= av.codec.context.Flags.global_header  # SPS/PPS in extradata, for avcC
        options = {"preset": "veryfast", "tune": "zerolatency", "forced-idr": "1"}
        if kbps is None:
            options["crf"] = "32"
        else:
            bits = str(max(1, round(kbps * 1000)))
            options |= {"b": bits, "maxrate": bits, "bufsize": str(max(1, round(kbps * 2000)))}
        self._context.options = options
        self._context.open()
        self._codec_private = avcc_from_annexb(bytes(self._context.extradata or b""))

    @property
    def codec_private(self) -> bytes:
        """The avcC record for the Matroska track's CodecPrivate."""
        return self._codec_private

    def encode(self, rgb: npt.NDArray[np.uint8], pts: int, keyframe: bool) -> list[tuple[int, bytes, bool]]:
        """Encode one frame.

        Args:
            rgb: (height, width, 3) uint8 frame at the source size.
            pts: its timestamp in `time_base` units.
            keyframe: force an IDR frame (where the main track has a keyframe).

        Returns:
            Packets ready so far: (pts, length-prefixed NAL units, keyframe).
        """
        if rgb.shape != (self.source_size[1], self.source_size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a {self.source_size[1]}x{self.source_size[0]}x3 uint8 frame, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        return self._packets(self._context.encode(frame))

    def flush(self) -> list[tuple[int, bytes, bool]]:
        """Drain the encoder at the end of the stream; same packets as `encode` returns."""
        return self._packets(self._context.encode(None))

    def _packets(self, packets: list[av.Packet]) -> list[tuple[int, bytes, bool]]:
        return [
            (packet.pts if packet.pts is not None else 0, annexb_to_length_prefixed(bytes(packet)), packet.is_keyframe)
            for packet in packets
        ]
