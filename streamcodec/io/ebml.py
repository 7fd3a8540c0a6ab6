"""EBML primitives: element ids, variable-size integers, element encoders and a parser.

EBML (RFC 8794) is the binary format under Matroska: every element is an id (a vint that keeps
its length marker), a size (a vint without it; all ones means "unknown") and a payload. Encoders
return whole elements as bytes; the parser reads headers from an in-memory buffer or a file and
raises `CorruptStreamError` with the absolute byte offset of whatever does not parse.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from streamcodec.errors import CorruptStreamError, TruncatedStreamError


class ID:
    """Element ids used by the Matroska writer and reader (ids keep their vint marker bits)."""

    EBML = 0x1A45DFA3
    EBML_VERSION = 0x4286
    EBML_READ_VERSION = 0x42F7
    EBML_MAX_ID_LENGTH = 0x42F2
    EBML_MAX_SIZE_LENGTH = 0x42F3
    DOC_TYPE = 0x4282
    DOC_TYPE_VERSION = 0x4287
    DOC_TYPE_READ_VERSION = 0x4285
    VOID = 0xEC
    CRC32 = 0xBF
    SEGMENT = 0x18538067
    SEEK_HEAD = 0x114D9B74
    SEEK = 0x4DBB
    SEEK_ID = 0x53AB
    SEEK_POSITION = 0x53AC
    INFO = 0x1549A966
    TIMESTAMP_SCALE = 0x2AD7B1
    DURATION = 0x4489
    MUXING_APP = 0x4D80
    WRITING_APP = 0x5741
    SEGMENT_UUID = 0x73A4
    TITLE = 0x7BA9
    TRACKS = 0x1654AE6B
    TRACK_ENTRY = 0xAE
    TRACK_NUMBER = 0xD7
    TRACK_UID = 0x73C5
    TRACK_TYPE = 0x83
    FLAG_DEFAULT = 0x88
    FLAG_LACING = 0x9C
    DEFAULT_DURATION = 0x23E383
    NAME = 0x536E
    LANGUAGE = 0x22B59C
    CODEC_ID = 0x86
    CODEC_PRIVATE = 0x63A2
    CODEC_DELAY = 0x56AA
    SEEK_PRE_ROLL = 0x56BB
    VIDEO = 0xE0
    PIXEL_WIDTH = 0xB0
    PIXEL_HEIGHT = 0xBA
    PROJECTION = 0x7670
    PROJECTION_POSE_ROLL = 0x7675  # degrees, counter-clockwise (FFmpeg maps it to a display matrix)
    AUDIO = 0xE1
    SAMPLING_FREQUENCY = 0xB5
    CHANNELS = 0x9F
    BIT_DEPTH = 0x6264
    CLUSTER = 0x1F43B675
    CLUSTER_TIMESTAMP = 0xE7
    SIMPLE_BLOCK = 0xA3
    BLOCK_GROUP = 0xA0
    BLOCK = 0xA1
    REFERENCE_BLOCK = 0xFB
    CUES = 0x1C53BB6B
    CUE_POINT = 0xBB
    CUE_TIME = 0xB3
    CUE_TRACK_POSITIONS = 0xB7
    CUE_TRACK = 0xF7
    CUE_CLUSTER_POSITION = 0xF1
    CUE_RELATIVE_POSITION = 0xF0
    TAGS = 0x1254C367
    TAG = 0x7373
    TARGETS = 0x63C0
    TARGET_TYPE_VALUE = 0x68CA
    TARGET_TYPE = 0x63CA
    TAG_TRACK_UID = 0x63C5
    SIMPLE_TAG = 0x67C8
    TAG_NAME = 0x45A3
    TAG_STRING = 0x4487
    CHAPTERS = 0x1043A770
    ATTACHMENTS = 0x1941A469


# Children of the Segment: meeting one of these ends a Cluster of unknown size.
TOP_LEVEL_IDS = frozenset(
    {ID.EBML, ID.SEGMENT, ID.SEEK_HEAD, ID.INFO, ID.TRACKS, ID.CLUSTER, ID.CUES, ID.TAGS, ID.CHAPTERS, ID.ATTACHMENTS}
)
CRC_ELEMENT_SIZE = 6  # id 0xBF, size 0x84, four bytes of CRC
MAX_HEADER_SIZE = 12  # a 4-byte id and an 8-byte size


# --- encoding -------------------------------------------------------------------------------


def encode_id(element_id: int) -> bytes:
    """Encode an element id (its marker bits are part of the id, so this is plain big-endian)."""
    return element_id.to_bytes(max(1, (element_id.bit_length() + 7) // 8), "big")


def encode_size(size: int | None, length: int | None = None) -> bytes:
    """Encode a payload size as a vint; `None` encodes "unknown size".

    Args:
        size: payload size in bytes, or None for unknown.
        length: fixed vint length (1..8); the shortest fitting length when None.

    Returns:
        The vint bytes.
    """
    if size is None:
        width = length or 1
        return ((1 << (7 * width + 1)) - 1).to_bytes(width, "big")
    # All ones is reserved for "unknown", hence the "- 1" in the capacity of each length.
    width = length or ((size + 1).bit_length() + 6) // 7
    if not 1 <= width <= 8 or not 0 <= size < (1 << (7 * width)) - 1:
        raise ValueError(f"size {size} does not fit a {width}-byte vint")
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def element(element_id: int, payload: bytes) -> bytes:
    """Return a whole element: id, shortest size vint, payload."""
    return encode_id(element_id) + encode_size(len(payload)) + payload


def uint_element(element_id: int, value: int, length: int | None = None) -> bytes:
    """Encode an unsigned integer element, in `length` bytes or the fewest that hold it."""
    width = length or max(1, (value.bit_length() + 7) // 8)
    return element(element_id, value.to_bytes(width, "big"))


def int_element(element_id: int, value: int) -> bytes:
    """Encode a signed (two's complement) integer element in the fewest bytes."""
    width = max(1, (value.bit_length() + 8) // 8)
    return element(element_id, value.to_bytes(width, "big", signed=True))


def float_element(element_id: int, value: float) -> bytes:
    """Encode a float element as an 8-byte IEEE double (fixed size, so it can be patched)."""
    return element(element_id, struct.pack(">d", value))


def string_element(element_id: int, value: str) -> bytes:
    """Encode a UTF-8 string element."""
    return element(element_id, value.encode("utf-8"))


def binary_element(element_id: int, value: bytes) -> bytes:
    """Encode a binary element."""
    return element(element_id, bytes(value))


def master_element(element_id: int, children: Iterable[bytes], *, crc: bool = False) -> bytes:
    """Encode a master element from encoded children.

    Args:
        element_id: the master's id.
        children: encoded child elements, in order.
        crc: put a CRC-32 element over the other children first (for top-level elements).

    Returns:
        The whole element.
    """
    payload = b"".join(children)
    if crc:
        payload = crc32_element(payload) + payload
    return element(element_id, payload)


def crc32_element(data: bytes) -> bytes:
    """The CRC-32 element for a parent whose remaining payload is `data` (IEEE, little-endian)."""
    return bytes((ID.CRC32, 0x84)) + struct.pack("<I", zlib.crc32(data))


def void_element(total_size: int) -> bytes:
    """A Void element occupying exactly `total_size` bytes (at least 2)."""
    if total_size < 2:
        raise ValueError(f"a Void element needs at least 2 bytes, got {total_size}")
    width = 1 if total_size - 2 < 127 else 8
    return bytes((ID.VOID,)) + encode_size(total_size - 1 - width, width) + bytes(total_size - 1 - width)


# --- decoding -------------------------------------------------------------------------------


def decode_uint(data: bytes | memoryview) -> int:
    """Decode an unsigned integer payload (an empty payload is 0).

    Raises:
        CorruptStreamError: more than 8 bytes (EBML's limit; a damaged size would give a number
            no timestamp arithmetic can hold).
    """
    _check_integer_size(data)
    return int.from_bytes(data, "big")


def decode_int(data: bytes | memoryview) -> int:
    """Decode a signed integer payload (CorruptStreamError over 8 bytes)."""
    _check_integer_size(data)
    return int.from_bytes(data, "big", signed=True)


def _check_integer_size(data: bytes | memoryview) -> None:
    if len(data) > 8:
        raise CorruptStreamError(f"integer element of {len(data)} bytes (EBML allows at most 8)")


def decode_float(data: bytes | memoryview) -> float:
    """Decode a float payload of 0, 4 or 8 bytes."""
    if len(data) == 0:
        return 0.0
    if len(data) not in (4, 8):
        raise ValueError(f"a float element has {len(data)} bytes, expected 4 or 8")
    return float(struct.unpack(">f" if len(data) == 4 else ">d", data)[0])


def decode_string(data: bytes | memoryview) -> str:
    """Decode a string payload; trailing NUL padding is allowed by EBML and dropped."""
    return bytes(data).rstrip(b"\x00").decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ElementHeader:
    """Where an element sits: id, absolute offset, header length and payload size."""

    id: int
    offset: int
    header_size: int
    size: int | None  # None: unknown size (runs to the end of its parent)

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def end(self) -> int | None:
        return None if self.size is None else self.data_offset + self.size


def _vint_length(first: int) -> int:
    return 9 - first.bit_length() if first else 9


def read_vint(data: bytes | memoryview, pos: int, *, keep_marker: bool) -> tuple[int | None, int]:
    """Read one vint at `data[pos]`.

    Args:
        data: the buffer.
        pos: where the vint starts.
        keep_marker: True for element ids (marker bits kept), False for sizes.

    Returns:
        (value, length); value is None for an all-ones size ("unknown").

    Raises:
        ValueError: the vint is longer than 8 bytes or runs past the buffer.
    """
    if pos >= len(data):
        raise ValueError("vint runs past the end of the data")
    length = _vint_length(data[pos])
    if length > 8 or pos + length > len(data):
        raise ValueError("invalid or truncated vint")
    raw = int.from_bytes(data[pos : pos + length], "big")
    if keep_marker:
        return raw, length
    value = raw & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), length


def parse_header(data: bytes | memoryview, pos: int, base: int, path: Path) -> ElementHeader:
    """Parse the element header at `data[pos]`; `base` is the file offset of `data[0]`.

    Raises:
        CorruptStreamError: bad or truncated id/size vint, or an id longer than 4 bytes.
    """
    try:
        element_id, id_length = read_vint(data, pos, keep_marker=True)
        if id_length > 4:
            raise ValueError("element id longer than 4 bytes")
        size, size_length = read_vint(data, pos + id_length, keep_marker=False)
    except ValueError as exc:
        raise CorruptStreamError(f"bad EBML element header ({exc})", path, base + pos) from None
    assert element_id is not None  # ids keep their marker, so they are never "unknown"
    return ElementHeader(element_id, base + pos, id_length + size_length, size)


def iter_children(data: bytes | memoryview, base: int, path: Path) -> Iterator[tuple[ElementHeader, memoryview]]:
    """Yield (header, payload) for each child in a master element's payload `data`.

    Args:
        data: the master's payload.
        base: file offset of `data[0]`, for error offsets.
        path: the file, for error messages.

    Raises:
        CorruptStreamError: a child's header is bad or its size runs past the parent.
    """
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        header = parse_header(view, pos, base, path)
        start = pos + header.header_size
        # An unknown size inside an in-memory parent can only mean "to the end of the parent".
        stop = len(view) if header.size is None else start + header.size
        if stop > len(view):
            raise CorruptStreamError(f"element 0x{header.id:X} runs past its parent", path, header.offset)
        yield header, view[start:stop]
        pos = stop


def children_dict(data: bytes | memoryview, base: int, path: Path) -> dict[int, bytes]:
    """Map child id → payload of the first child with that id (for flat masters like Info)."""
    found: dict[int, bytes] = {}
    for header, payload in iter_children(data, base, path):
        found.setdefault(header.id, bytes(payload))
    return found


def check_crc(data: bytes | memoryview, base: int, path: Path, what: str) -> bool:
    """Check a master payload whose first child may be a CRC-32 element.

    Returns:
        True when a CRC-32 element is present and matches, False when there is none.

    Raises:
        CorruptStreamError: the CRC-32 does not match (offset of the master's payload).
    """
    if len(data) < CRC_ELEMENT_SIZE or data[0] != ID.CRC32 or data[1] != 0x84:
        return False
    stored = struct.unpack("<I", bytes(data[2:CRC_ELEMENT_SIZE]))[0]
    if zlib.crc32(data[CRC_ELEMENT_SIZE:]) != stored:
        raise CorruptStreamError(f"{what} CRC-32 mismatch", path, base)
    return True


class EbmlFile:
    """Random-access reads of element headers and payloads from an open file.

    Every read that falls short of the file raises `CorruptStreamError`, so truncation shows up
    as a reported error instead of a short buffer further down.
    """

    def __init__(self, file: BinaryIO, path: Path, size: int) -> None:
        self.file = file
        self.path = path
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        """Read exactly `length` bytes at `offset`, or raise CorruptStreamError (truncated)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise TruncatedStreamError("data runs past the end of the file (truncated)", self.path, offset)
        self.file.seek(offset)
        data = self.file.read(length)
        if len(data) != length:
            raise CorruptStreamError("short read (file truncated?)", self.path, offset)
        return data

    def header(self, offset: int, limit: int | None = None) -> ElementHeader:
        """Parse the element header at `offset`, which must fit before `limit` (default: EOF)."""
        limit = self.size if limit is None else min(limit, self.size)
        if offset >= limit:
            raise CorruptStreamError("element header past the end of its parent", self.path, offset)
        self.file.seek(offset)
        window = self.file.read(min(MAX_HEADER_SIZE, limit - offset))
        return parse_header(window, 0, offset, self.path)

    def payload(self, header: ElementHeader) -> bytes:
        """Read an element's payload (known size only)."""
        if header.size is None:
            raise CorruptStreamError(f"element 0x{header.id:X} has unknown size", self.path, header.offset)
        return self.read(header.data_offset, header.size)

    def find(self, pattern: bytes, start: int, chunk: int = 1 << 20) -> int | None:
        """Offset of the next occurrence of `pattern` at or after `start`, or None."""
        return self.search(re.compile(re.escape(pattern)), start, len(pattern), chunk)

    def search(self, pattern: re.Pattern[bytes], start: int, longest: int, chunk: int = 1 << 20) -> int | None:
        """Offset of the next match of `pattern` (at most `longest` bytes) at or after `start`, or None."""
        pos = max(start, 0)
        while pos < self.size:
            self.file.seek(pos)
            match = pattern.search(self.file.read(chunk + longest - 1))
            if match is not None:
                return pos + match.start()
            pos += chunk
        return None
