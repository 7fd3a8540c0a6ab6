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


@pytest.mark.parametrize("version", bitstream.FORMATS)
@pytest.mark.parametrize("size", [0, 1, 100, 115, 116, 117, 118, 16370, 16371, 16372, 70000])
def test_frame_round_trip_keeps_type_reference_and_sections(size: int, version: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    frame = Frame(FrameType.INTER, {bitstream.REFERENCE: b"\x5a", bitstream.LATENTS: payload}, 1)
    packet = bitstream.pack_frame(frame, version)
    assert bitstream.unpack_frame(packet) == frame
    assert bitstream.packet_length(packet) == len(packet)


def test_header_overhead_is_small() -> None:
    assert len(_packet({bitstream.LATENTS: b""})) == 6 + 2  # head, length, CRC-32 + the section's tag and length
    inter = Frame(FrameType.SELECTIVE_INTER, {bitstream.REFERENCE: b"\x01", bitstream.FIDELITY: b"au"}, 1)
    assert len(bitstream.pack_frame(inter)) == 8 + 4
    assert len(bitstream.pack_frame(inter, 1)) == 13 + 3 + 4  # format 1: magic, four bytes, section 0x81


def test_inter_frames_of_format_2_must_carry_their_reference_check() -> None:
    with pytest.raises(ValueError, match="1-byte reference check"):
        bitstream.pack_frame(Frame(FrameType.INTER, {bitstream.LATENTS: b"a"}, 1))
    legacy = bitstream.pack_frame(Frame(FrameType.INTER, {bitstream.LATENTS: b"a"}, 1), 1)  # as 0.1.0 wrote it
    assert bitstream.unpack_frame(legacy).sections == {bitstream.LATENTS: b"a"}


def test_format_2_packets_begin_with_their_version_and_frame_type() -> None:
    for frame_type in FrameType:
        distance = 0 if frame_type in (FrameType.INTRA, FrameType.SELECTIVE_INTRA) else 3
        sections = {bitstream.REFERENCE: b"\x09"} if distance else {}
        packet = bitstream.pack_frame(Frame(frame_type, sections, distance))
        assert packet[0] == 0x20 | frame_type
        assert bitstream.unpack_frame(packet) == Frame(frame_type, sections, distance)


@pytest.mark.parametrize("version", bitstream.FORMATS)
def test_packets_are_self_delimiting(version: int) -> None:
    a = bitstream.pack_frame(Frame(FrameType.INTRA, {bitstream.LATENTS: b"x" * 5}), version)
    b = bitstream.pack_frame(Frame(FrameType.INTRA, {bitstream.LATENTS: b"y" * 900}), version)
    joined = a + b
    first = bitstream.packet_length(joined)
    assert joined[:first] == a
    assert bitstream.packet_length(joined, first) == len(b)


@pytest.mark.parametrize("version", bitstream.FORMATS)
def test_any_flipped_byte_is_detected(version: int) -> None:
    frame = Frame(FrameType.INTER, {bitstream.REFERENCE: b"\x33", bitstream.LATENTS: b"payload!"}, 1)
    original = bitstream.pack_frame(frame, version)
    for position in range(len(original)):
        for flip in (0x01, 0x40, 0x80):
            packet = bytearray(original)
            packet[position] ^= flip
            with pytest.raises(CorruptStreamError):
                bitstream.unpack_frame(bytes(packet))


@pytest.mark.parametrize("version", bitstream.FORMATS)
def test_truncated_packet_is_rejected(version: int) -> None:
    packet = bitstream.pack_frame(Frame(FrameType.INTRA, {bitstream.LATENTS: b"abcd"}), version)
    for cut in range(len(packet)):
        with pytest.raises(CorruptStreamError):
            bitstream.unpack_frame(packet[:cut])


def test_decoder_rejects_newer_format_version() -> None:
    packet = bytearray(_packet())
    packet[0] = (bitstream.FORMAT_VERSION + 1) << 4 | FrameType.INTRA
    with pytest.raises(UnsupportedStreamError, match="newer than this decoder"):
        bitstream.unpack_frame(_recrc(packet))
    packet[-1] ^= 1  # a damaged packet is corrupt whatever its head says
    with pytest.raises(CorruptStreamError, match="checksum"):
        bitstream.unpack_frame(bytes(packet))


def test_unknown_critical_section_is_refused_and_optional_one_skipped() -> None:
    with pytest.raises(UnsupportedStreamError, match="0x07"):  # no section 0x07 yet
        bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", 0x07: b"m"}))
    assert bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", bitstream.LABELS: b"m"})).sections[bitstream.LABELS] == b"m"
    # A decoder that predates PLATE_UPDATE refuses it the same way: as newer, not as damage.
    older = bitstream.KNOWN_SECTIONS - {bitstream.PLATE_UPDATE}
    with pytest.raises(UnsupportedStreamError, match="0x06"):
        bitstream.unpack_frame(_packet({bitstream.FIDELITY: b"a", bitstream.PLATE_UPDATE: b"m"}), older)
    frame = bitstream.unpack_frame(_packet({bitstream.LATENTS: b"a", OPTIONAL: b"ignored"}))
    assert frame.sections == {bitstream.LATENTS: b"a"}


def test_unexplained_bytes_after_sections_are_corruption() -> None:
    packet = bytearray(bitstream.pack_frame(Frame(FrameType.INTRA, {bitstream.LATENTS: b"abc"}), 1))
    packet[7] = 0  # claim zero sections: the section bytes become unexplained
    with pytest.raises(CorruptStreamError, match="unexplained"):
        bitstream.unpack_frame(_recrc(packet))
    packet = bytearray(_packet({bitstream.LATENTS: b"abc"}))
    packet[3] = 9  # the section claims more bytes than there are before the checksum
    with pytest.raises(CorruptStreamError, match="runs past"):
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


def test_old_decoders_skip_the_format_1_reference_section() -> None:
    frame = Frame(FrameType.INTER, {bitstream.LATENTS: b"abcd", bitstream.REFERENCE: b"\x5a"}, 1)
    packet = bitstream.pack_frame(frame, 1)
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
        ({"format_version": 0}, r"format_version 0 is outside 1..2"),
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
    with pytest.raises(UnsupportedStreamError, match="format version 3 is newer"):
        StreamConfig.unpack(_config_bytes(format_version=3))


def test_stream_config_ignores_unknown_fields_and_defaults_optional_ones() -> None:
    assert StreamConfig.unpack(_config_bytes(future_field=[1, 2])) == CONFIG
    fields = json.loads(CONFIG.pack()[5:])
    del fields["extra"], fields["format_version"]
    assert StreamConfig.unpack(b"SCST\x01" + json.dumps(fields).encode()) == CONFIG
