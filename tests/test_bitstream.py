from __future__ import annotations

import json
import struct
import zlib

import numpy as np
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
    with pytest.raises(UnsupportedStreamError, match="0x06"):  # no section 0x06 yet
        bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", 0x06: b"m"}))
    assert bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", bitstream.LABELS: b"m"})).sections[bitstream.LABELS] == b"m"
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


def test_old_decoders_skip_the_reference_section() -> None:
    frame = Frame(FrameType.INTER, {bitstream.LATENTS: b"abcd", bitstream.REFERENCE: b"\x5a"}, 1)
    packet = bitstream.pack_frame(frame)
    assert bitstream.unpack_frame(packet) == frame
    assert bitstream.unpack_frame(packet, frozenset({bitstream.LATENTS})).sections == {bitstream.LATENTS: b"abcd"}


def test_reference_section_must_be_one_byte() -> None:
    assert bitstream.unpack_reference(b"\x07") == 7
    with pytest.raises(CorruptStreamError, match="reference section of 2 bytes"):
        bitstream.unpack_reference(b"\x07\x08")


def test_reference_hash_depends_on_every_symbol() -> None:
    sym = np.zeros((4, 3, 5), dtype=np.int64)
    base = bitstream.reference_hash(sym)
    assert 0 <= base <= 255 and bitstream.reference_hash(sym.copy()) == base
    sym[3, 2, 4] = 1
    assert bitstream.reference_hash(sym) != base


CONFIG = StreamConfig("gc-abc", "gc-small", "gc", 641, 361, 656, 368, 3, 8, 25)


def _config_bytes(**changes: object) -> bytes:
    fields = json.loads(CONFIG.pack()[5:])
    fields.update(changes)
    return CONFIG.pack()[:5] + json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": "256"}, r"width is '256' \(str\); expected int"),
        ({"width": 256.5}, r"width is 256.5 \(float\); expected int"),
        ({"width": 256.0}, r"width is 256.0 \(float\); expected int"),
        ({"height": True}, r"height is True \(bool\); expected int"),
        ({"width": -5}, r"width -5 is outside 1..16384"),
        ({"width": 100000}, r"width 100000 is outside 1..16384"),
        ({"height": 0}, r"height 0 is outside 1..16384"),
        ({"coded_width": 16 * 65535}, r"coded_width 1048560 is outside 1..16384"),
        ({"width": 16384, "height": 16384, "coded_width": 16384, "coded_height": 16384}, "exceeds 33177600"),
        ({"gop": -1}, r"gop -1 is outside 1..1048576"),
        ({"gop": 0}, r"gop 0 is outside"),
        ({"channels": 300}, r"channels 300 is outside 1..255"),
        ({"quality": None}, r"quality is None \(NoneType\)"),
        ({"model_id": 7}, r"model_id is 7 \(int\); expected str"),
        ({"model_id": ""}, r"model_id '' must be 1..200 characters"),
        ({"extra": []}, r"extra is \[\] \(list\); expected dict"),
        ({"format_version": 0}, r"format_version 0 is outside 1..1"),
    ],
)
def test_stream_config_fields_are_validated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CorruptStreamError, match=message):
        StreamConfig.unpack(_config_bytes(**changes))


@pytest.mark.parametrize("text", [b"[]", b"null", b"1", b'"gc"', b"{}", b'{"width": 5}', b"\xff\xfe", b"[" * 100000])
def test_stream_config_that_is_not_an_object_with_every_field_is_corrupt(text: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="stream configuration"):
        StreamConfig.unpack(b"SCST\x01" + text)


def test_stream_config_unknown_mode_or_newer_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedStreamError, match="stream mode 'selective' is not supported"):
        StreamConfig.unpack(_config_bytes(mode="selective"))
    with pytest.raises(UnsupportedStreamError, match="format version 2 is newer"):
        StreamConfig.unpack(_config_bytes(format_version=2))


def test_stream_config_ignores_unknown_fields_and_defaults_optional_ones() -> None:
    assert StreamConfig.unpack(_config_bytes(future_field=[1, 2])) == CONFIG
    fields = json.loads(CONFIG.pack()[5:])
    del fields["extra"], fields["format_version"]
    assert StreamConfig.unpack(b"SCST\x01" + json.dumps(fields).encode()) == CONFIG
