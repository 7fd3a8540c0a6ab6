"""Frame packets: the self-delimiting, checksummed unit of one frame, and its sections (see the package docstring)."""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import CorruptStreamError, UnsupportedStreamError

FRAME_MAGIC = b"SCFR"
CONFIG_MAGIC = b"SCST"
FORMAT_VERSION = 2
FORMATS = (1, 2)  # packet formats this module reads and writes
_HEADER = struct.Struct(">4sBBBB")  # format 1: magic, version, frame type, reference distance, section count
_CRC = struct.Struct(">I")
MIN_PACKET = 1 + 1 + _CRC.size  # format 2: head, length, checksum
_MIN_FORMAT_1 = _HEADER.size + 1 + _CRC.size
OPTIONAL_TAG = 0x80

# Section tags of format version 1.
LATENTS = 0x01  # range-coded bottleneck symbols: transmitted channel count (u8) + payload
MASK = 0x02  # selective: the 16-px block keep mask (maskcode payload; absent = empty/unchanged)
LABELS = 0x03  # selective, keyframes with background "synth": the label map (labelcode payload)
FIDELITY = 0x04  # selective: the kept region's HEVC/AV1 access unit
PLATE = 0x05  # selective, keyframes with background "plate": the background as one intra access unit
PLATE_UPDATE = 0x06  # selective, keyframes between full plates: a check of the last plate unit, one inter unit
REFERENCE = 0x81  # optional: which reference an inter frame was coded against (per mode, see above)
ITERATION = 0x20  # progressive (INTRA frames): iteration i's range-coded codes are section ITERATION + i
MAX_ITERATIONS = 32
ITERATIONS = frozenset(range(ITERATION, ITERATION + MAX_ITERATIONS))
KNOWN_SECTIONS = frozenset({LATENTS, MASK, LABELS, FIDELITY, PLATE, PLATE_UPDATE, REFERENCE}) | ITERATIONS
PLATE_CHECK = struct.Struct(">H")


def plate_check(access_unit: bytes) -> bytes:
    """What a PLATE_UPDATE names the plate access unit it follows by: the low 16 bits of its CRC-32."""
    return PLATE_CHECK.pack(zlib.crc32(access_unit) & 0xFFFF)




class FrameType(enum.IntEnum):
    INTRA = 0  # decodable alone: starts a GOP
    INTER = 1  # entropy-coded with the symbols of the frame `reference distance` back
    SELECTIVE_INTRA = 2  # selective mode keyframe: mask, fidelity IDR, plate or latents
    SELECTIVE_INTER = 3  # selective mode: mask vs the previous frame's, fidelity inter access unit


_INTRA_TYPES = (FrameType.INTRA, FrameType.SELECTIVE_INTRA)


@dataclass(frozen=True)
class Frame:
    frame_type: FrameType
    sections: dict[int, bytes]
    reference_distance: int = 0

    @property
    def is_key(self) -> bool:
        return self.reference_distance == 0


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it); at most 5 bytes (< 2**35)."""
    value = 0
    for shift in range(0, 35, 7):
        if pos >= end:
            raise CorruptStreamError("length field runs past the frame")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise CorruptStreamError("length field is too long")


def pack_frame(frame: Frame, version: int = FORMAT_VERSION) -> bytes:
    """Serialise a frame packet; sections are written in insertion order.

    Args:
        frame: the frame; in format 2 an inter frame must carry its REFERENCE check (one byte).
        version: the packet format, 2 (new streams) or 1 (how streams were written before it).
    """
    if frame.is_key != (frame.frame_type in _INTRA_TYPES):
        raise ValueError(f"{frame.frame_type.name} frame with reference distance {frame.reference_distance}")
    if version not in FORMATS:
        raise ValueError(f"packet format {version} is not one of {FORMATS}")
    sections = dict(frame.sections)
    inter = b""  # format 2: an inter frame's distance and reference check, after the length
    if version == 1:
        head = _HEADER.pack(FRAME_MAGIC, 1, frame.frame_type, frame.reference_distance, len(sections))
    else:
        head = bytes([version << 4 | frame.frame_type])
        if not frame.is_key:
            check = sections.pop(REFERENCE, b"")
            if len(check) != 1:
                raise ValueError(f"format {version} inter frame needs a 1-byte reference check, got {len(check)} bytes")
            inter = _varint(frame.reference_distance) + check
    body = inter + b"".join(bytes([tag]) + _varint(len(data)) + data for tag, data in sections.items())
    size_bytes = 1  # the total length counts its own varint: find the width that fits
    while len(_varint(len(head) + len(body) + _CRC.size + size_bytes)) != size_bytes:
        size_bytes += 1
    packet = head + _varint(len(head) + len(body) + _CRC.size + size_bytes) + body
    return packet + _CRC.pack(zlib.crc32(packet))


def _is_format_1(data: bytes, offset: int = 0) -> bool:
    return data[offset : offset + 4] == FRAME_MAGIC


def packet_length(data: bytes, offset: int = 0) -> int:
    """Length of the packet starting at `offset` (for splitting concatenated packets)."""
    if _is_format_1(data, offset):
        if len(data) - offset < _MIN_FORMAT_1:
            raise CorruptStreamError("no frame packet header", offset=offset)
        return _read_varint(data, offset + _HEADER.size, len(data))[0]
    if len(data) - offset < MIN_PACKET or data[offset] >> 4 < 2:
        raise CorruptStreamError("no frame packet header", offset=offset)
    return _read_varint(data, offset + 1, len(data))[0]


def unpack_frame(packet: bytes, known_sections: frozenset[int] = KNOWN_SECTIONS) -> Frame:
    """Parse and check a frame packet of either format: length, checksum, version, section layout.

    Raises:
        CorruptStreamError: the bytes are not an intact packet.
        UnsupportedStreamError: a newer format version, frame type or critical section.
    """
    if _is_format_1(packet):
        return _unpack_format_1(packet, known_sections)
    if len(packet) < MIN_PACKET:
        raise CorruptStreamError(f"frame packet of {len(packet)} bytes is shorter than its header")
    version, ftype = packet[0] >> 4, packet[0] & 0x0F
    if version < 2:
        raise CorruptStreamError(f"bad frame packet head 0x{packet[0]:02x}")
    end, pos = _checked_end(packet, 1)
    if version > FORMAT_VERSION:
        raise UnsupportedStreamError(f"frame format version {version} is newer than this decoder ({FORMAT_VERSION})")
    frame_type = _frame_type(ftype)
    sections, distance = {}, 0
    if frame_type not in _INTRA_TYPES:
        distance, pos = _read_varint(packet, pos, end)
        if distance < 1 or pos >= end:
            raise CorruptStreamError(f"inter frame with reference distance {distance} and no reference check")
        sections[REFERENCE], pos = packet[pos : pos + 1], pos + 1
    sections.update(_read_sections(packet, pos, end, None, known_sections))
    return Frame(frame_type, sections, distance)


def _unpack_format_1(packet: bytes, known_sections: frozenset[int]) -> Frame:
    if len(packet) < _MIN_FORMAT_1:
        raise CorruptStreamError(f"frame packet of {len(packet)} bytes is shorter than its header")
    _, version, ftype, ref, count = _HEADER.unpack_from(packet)
    end, pos = _checked_end(packet, _HEADER.size)
    if version != 1:  # format 2 and later packets have no magic
        raise CorruptStreamError(f"format-1 packet with version byte {version}")
    return Frame(_frame_type(ftype), _read_sections(packet, pos, end, count, known_sections), ref)


def _checked_end(packet: bytes, length_at: int) -> tuple[int, int]:
    """(where the checksum starts, position after the length field), once length and checksum hold."""
    total, pos = _read_varint(packet, length_at, len(packet))
    if total != len(packet):
        raise CorruptStreamError(f"frame packet says {total} bytes but holds {len(packet)}")
    end = total - _CRC.size
    if end < pos or _CRC.unpack_from(packet, end)[0] != zlib.crc32(packet[:end]):
        raise CorruptStreamError("frame checksum mismatch")
    return end, pos


def _frame_type(value: int) -> FrameType:
    try:
        return FrameType(value)
    except ValueError:
        raise UnsupportedStreamError(f"unknown frame type {value}") from None


def _read_sections(packet: bytes, pos: int, end: int, count: int | None, known_sections: frozenset[int]) -> dict[int, bytes]:
    """Sections from `pos` to `end` (format 2: as many as fit; format 1: exactly `count`)."""
    sections = {}
    index = 0
    while (pos < end) if count is None else (index < count):
        if pos >= end:
            raise CorruptStreamError("section header runs past the frame")
        tag = packet[pos]
        length, pos = _read_varint(packet, pos + 1, end)
        if pos + length > end:
            raise CorruptStreamError(f"section 0x{tag:02x} runs past the frame")
        if tag in known_sections:
            sections[tag] = packet[pos : pos + length]
        elif not tag & OPTIONAL_TAG:
            raise UnsupportedStreamError(f"frame needs section 0x{tag:02x}, unknown to this decoder")
        pos += length
        index += 1
    if pos != end:
        raise CorruptStreamError(f"{end - pos} unexplained bytes after the last section")
    return sections


def section_size(data: bytes) -> int:
    """Bytes one section takes in a packet: tag, length field and data."""
    return 1 + len(_varint(len(data))) + len(data)


def pack_latents(channels: int, payload: bytes) -> bytes:
    """LATENTS section: number of transmitted channels (u8), then the range-coded payload."""
    return bytes([channels]) + payload


def unpack_latents(section: bytes) -> tuple[int, bytes]:
    if not section:
        raise CorruptStreamError("empty latent section")
    return section[0], section[1:]


def reference_hash(symbols: npt.NDArray[np.int64]) -> int:
    """The REFERENCE section's value for a reference frame: low byte of CRC-32 of its symbols.

    Args:
        symbols: (K, h, w) integer symbols in [0, 256), as decoded.
    Returns:
        An integer in 0..255.
    """
    return zlib.crc32(np.ascontiguousarray(symbols, dtype=np.uint8).tobytes()) & 0xFF


def unpack_reference(section: bytes) -> int:
    if len(section) != 1:
        raise CorruptStreamError(f"reference section of {len(section)} bytes; expected 1")
    return section[0]


def iteration_sections(frame: Frame) -> list[bytes]:
    """A progressive frame's iteration sections, in order (an INTRA or INTER frame of those sections; an
    INTER frame's REFERENCE check is not one of them).

    Raises:
        CorruptStreamError: not an intra or inter frame, or its sections are not ITERATION, ITERATION + 1, …
            (at least one) in that order and nothing else.
    """
    if frame.frame_type not in (FrameType.INTRA, FrameType.INTER):
        raise CorruptStreamError(f"{frame.frame_type.name} frame where a progressive frame belongs")
    tags = [tag for tag in frame.sections if not (tag == REFERENCE and frame.frame_type == FrameType.INTER)]
    if not tags or tags != list(range(ITERATION, ITERATION + len(tags))):
        raise CorruptStreamError(f"progressive frame with sections {[hex(t) for t in tags]}; expected 0x20, 0x21, … in order")
    return [frame.sections[tag] for tag in tags]


def cut_packet(packet: bytes, iterations: int) -> bytes:
    """A progressive packet cut to its first `iterations` sections: checked, re-packed, its length and CRC-32 new.

    Nothing is decoded. The input is checked whole first (its CRC-32 included), so a damaged packet
    is refused, never re-signed as intact. A packet that holds `iterations` or fewer comes back as it is.

    Raises:
        CorruptStreamError: `packet` is not an intact progressive packet.
        ValueError: `iterations` is below 1.
    """
    if iterations < 1:
        raise ValueError(f"cannot cut a packet to {iterations} iterations (at least 1)")
    frame = unpack_frame(packet)
    sections = iteration_sections(frame)
    if iterations >= len(sections):
        return bytes(packet)
    kept = {ITERATION + index: sections[index] for index in range(iterations)}
    if REFERENCE in frame.sections and frame.frame_type == FrameType.INTER:  # an inter frame keeps its reference check
        kept = {REFERENCE: frame.sections[REFERENCE]} | kept
    cut = Frame(frame.frame_type, kept, frame.reference_distance)
    return pack_frame(cut, 1 if _is_format_1(packet) else packet[0] >> 4)
