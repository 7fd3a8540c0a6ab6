from __future__ import annotations

import struct
import zlib

import pytest

from streamcodec import bitstream
from streamcodec.bitstream import Frame, FrameType, StreamConfig
from streamcodec.errors import CorruptStreamError, UnsupportedStreamError

OPTIONAL = bitstream.OPTIONAL_TAG | 0x11


def _packet(sections: dict[int, bytes] | None = None) -> bytes:
    return bitstream.pack_frame(Frame(FrameType.INTRA, sections or {bitstream.LATENTS: b"abcd"}))


def _recrc(packet: bytearray) -> bytes:
    packet[-4:] = struct.pack(">I", zlib.crc32(bytes(packet[:-4])))
    return bytes(packet)


@pytest.mark.parametrize("size", [0, 1, 100, 115, 116, 117, 118, 16370, 16371, 16372, 70000])
def test_frame_round_trip_keeps_type_reference_and_sections(size: int) -> None:
    frame = Frame(FrameType.INTER, {bitstream.LATENTS: bytes(range(256)) * (size // 256) + b"x" * (size % 256)}, 1)
    packet = bitstream.pack_frame(frame)
    assert bitstream.unpack_frame(packet) == frame
    assert bitstream.packet_length(packet) == len(packet)


def test_header_overhead_is_small() -> None:
    assert len(_packet({bitstream.LATENTS: b""})) <= 15


def test_packets_are_self_delimiting() -> None:
    a, b = _packet({bitstream.LATENTS: b"x" * 5}), _packet({bitstream.LATENTS: b"y" * 900})
    joined = a + b
    first = bitstream.packet_length(joined)
    assert joined[:first] == a
    assert bitstream.packet_length(joined, first) == len(b)


@pytest.mark.parametrize("position", [0, 5, 8, 10, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    packet = bytearray(_packet({bitstream.LATENTS: b"payload!"}))
    packet[position] ^= 0x40
    with pytest.raises(CorruptStreamError):
        bitstream.unpack_frame(bytes(packet))


def test_truncated_packet_is_rejected() -> None:
    packet = _packet()
    for cut in (0, 3, 9, len(packet) - 1):
        with pytest.raises(CorruptStreamError):
            bitstream.unpack_frame(packet[:cut])


def test_decoder_rejects_newer_format_version() -> None:
    packet = bytearray(_packet())
    packet[4] = bitstream.FORMAT_VERSION + 1
    with pytest.raises(UnsupportedStreamError, match="newer than this decoder"):
        bitstream.unpack_frame(_recrc(packet))


def test_unknown_critical_section_is_refused_and_optional_one_skipped() -> None:
    with pytest.raises(UnsupportedStreamError, match="0x02"):
        bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", bitstream.MASK: b"m"}))
    frame = bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", OPTIONAL: b"ignored"}))
    assert frame.sections == {bitstream.LATENTS: b"a"}


def test_unexplained_bytes_after_sections_are_corruption() -> None:
    packet = bytearray(_packet({bitstream.LATENTS: b"abc"}))
    packet[7] = 0  # claim zero sections: the section bytes become unexplained
    with pytest.raises(CorruptStreamError, match="unexplained"):
        bitstream.unpack_frame(_recrc(packet))


def test_intra_frame_cannot_have_a_reference() -> None:
    with pytest.raises(ValueError):
        bitstream.pack_frame(Frame(FrameType.INTRA, {}, reference_distance=1))


def test_stream_config_round_trip_and_checks() -> None:
    config = StreamConfig("gc-abc", "gc-small", "gc", 641, 361, 656, 368, 3, 8, 25)
    assert StreamConfig.unpack(config.pack()) == config
    with pytest.raises(CorruptStreamError):
        StreamConfig.unpack(b"XXXX\x01{}")
    newer = bytearray(config.pack())
    newer[4] = bitstream.FORMAT_VERSION + 1
    with pytest.raises(UnsupportedStreamError):
        StreamConfig.unpack(bytes(newer))
