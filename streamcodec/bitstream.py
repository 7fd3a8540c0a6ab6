"""Frame packets and the stream configuration (Matroska CodecPrivate).

Frame packet, big-endian, self-delimiting:

    offset  size  field
    0       4     magic b"SCFR"
    4       1     format version (FORMAT_VERSION)
    5       1     frame type (FrameType)
    6       1     reference distance in frames (0 for intra frames)
    7       1     number of sections
    8       4     total packet length in bytes, header and checksum included
    12      ...   sections: tag (4 ASCII bytes), length (u32), data
    end-4   4     CRC-32 of every byte before it

A section tag starting with an upper-case letter is critical: a decoder that does not know it
must refuse the frame. Lower-case tags may be skipped. This is how the selective mode's extra
sections (kept-region mask, semantic label map, latents inside the mask) and later inter-frame
tools can be added without breaking older streams: they are new tags or new frame types.

Stream configuration: b"SCST", a version byte, then UTF-8 JSON (`StreamConfig`).
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import asdict, dataclass, field

from .errors import CorruptStreamError, UnsupportedStreamError

FRAME_MAGIC = b"SCFR"
CONFIG_MAGIC = b"SCST"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sBBBBI")
_SECTION = struct.Struct(">4sI")
_CRC = struct.Struct(">I")
MIN_PACKET = _HEADER.size + _CRC.size

# Section tags of format version 1.
LATENTS = b"LATN"  # range-coded bottleneck symbols: LatentHeader + payload
MASK = b"MASK"  # reserved: kept-region mask (selective mode)
LABELS = b"LABL"  # reserved: semantic label map (selective mode)


class FrameType(enum.IntEnum):
    INTRA = 0  # decodable alone: starts a GOP
    INTER = 1  # entropy-coded with the symbols of the frame `reference distance` back
    SELECTIVE_INTRA = 2  # reserved for the selective mode
    SELECTIVE_INTER = 3  # reserved for the selective mode


@dataclass(frozen=True)
class Frame:
    frame_type: FrameType
    sections: dict[bytes, bytes]
    reference_distance: int = 0

    @property
    def is_key(self) -> bool:
        return self.reference_distance == 0


def pack_frame(frame: Frame) -> bytes:
    """Serialise a frame packet; sections are written in insertion order."""
    if frame.is_key != (frame.frame_type in (FrameType.INTRA, FrameType.SELECTIVE_INTRA)):
        raise ValueError(f"{frame.frame_type.name} frame with reference distance {frame.reference_distance}")
    body = b"".join(_SECTION.pack(tag, len(data)) + data for tag, data in frame.sections.items())
    total = _HEADER.size + len(body) + _CRC.size
    head = _HEADER.pack(FRAME_MAGIC, FORMAT_VERSION, frame.frame_type, frame.reference_distance, len(frame.sections), total)
    packet = head + body
    return packet + _CRC.pack(zlib.crc32(packet))


def packet_length(data: bytes, offset: int = 0) -> int:
    """Length of the packet starting at `offset` (for splitting concatenated packets)."""
    if len(data) - offset < _HEADER.size or data[offset : offset + 4] != FRAME_MAGIC:
        raise CorruptStreamError("no frame packet header", offset=offset)
    return int(_HEADER.unpack_from(data, offset)[5])


def unpack_frame(packet: bytes, known_sections: frozenset[bytes] = frozenset({LATENTS})) -> Frame:
    """Parse and check a frame packet: magic, version, length, checksum, section layout.

    Raises:
        CorruptStreamError: the bytes are not an intact packet.
        UnsupportedStreamError: a newer format version, frame type or critical section.
    """
    if len(packet) < MIN_PACKET:
        raise CorruptStreamError(f"frame packet of {len(packet)} bytes is shorter than its header")
    magic, version, ftype, ref, count, total = _HEADER.unpack_from(packet)
    if magic != FRAME_MAGIC:
        raise CorruptStreamError(f"bad frame magic {magic!r}")
    if total != len(packet):
        raise CorruptStreamError(f"frame packet says {total} bytes but holds {len(packet)}")
    if _CRC.unpack_from(packet, total - _CRC.size)[0] != zlib.crc32(packet[: total - _CRC.size]):
        raise CorruptStreamError("frame checksum mismatch")
    if version > FORMAT_VERSION:
        raise UnsupportedStreamError(f"frame format version {version} is newer than this decoder ({FORMAT_VERSION})")
    try:
        frame_type = FrameType(ftype)
    except ValueError:
        raise UnsupportedStreamError(f"unknown frame type {ftype}") from None
    sections, pos, end = {}, _HEADER.size, total - _CRC.size
    for _ in range(count):
        if pos + _SECTION.size > end:
            raise CorruptStreamError("section header runs past the frame")
        tag, length = _SECTION.unpack_from(packet, pos)
        pos += _SECTION.size
        if pos + length > end:
            raise CorruptStreamError(f"section {tag!r} runs past the frame")
        if tag in known_sections:
            sections[tag] = packet[pos : pos + length]
        elif tag[:1].isupper():
            raise UnsupportedStreamError(f"frame needs section {tag!r}, unknown to this decoder")
        pos += length
    if pos != end:
        raise CorruptStreamError(f"{end - pos} unexplained bytes after the last section")
    return Frame(frame_type, sections, ref)


_LATENT_HEADER = struct.Struct(">BHH")


def pack_latents(channels: int, height: int, width: int, payload: bytes) -> bytes:
    """LATN section: transmitted channels, latent height and width (u8, u16, u16), payload."""
    return _LATENT_HEADER.pack(channels, height, width) + payload


def unpack_latents(section: bytes) -> tuple[tuple[int, int, int], bytes]:
    if len(section) < _LATENT_HEADER.size:
        raise CorruptStreamError("latent section shorter than its header")
    shape = _LATENT_HEADER.unpack_from(section)
    return (int(shape[0]), int(shape[1]), int(shape[2])), section[_LATENT_HEADER.size :]


@dataclass(frozen=True)
class StreamConfig:
    """Everything a decoder needs besides the frame packets; stored as CodecPrivate."""

    model_id: str
    model_name: str
    mode: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    quality: int
    channels: int
    gop: int
    format_version: int = FORMAT_VERSION
    extra: dict[str, object] = field(default_factory=dict)

    def pack(self) -> bytes:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return CONFIG_MAGIC + bytes([self.format_version]) + text.encode()

    @classmethod
    def unpack(cls, data: bytes) -> StreamConfig:
        if len(data) < 5 or data[:4] != CONFIG_MAGIC:
            raise CorruptStreamError("CodecPrivate is not a streamcodec stream configuration")
        if data[4] > FORMAT_VERSION:
            raise UnsupportedStreamError(f"stream format version {data[4]} is newer than this decoder ({FORMAT_VERSION})")
        try:
            fields = json.loads(data[5:].decode())
            return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
            raise CorruptStreamError(f"unreadable stream configuration: {exc}") from None
