"""Frame packets and the stream configuration (Matroska CodecPrivate).

Frame packet, format version 2 (what this module writes), self-delimiting, integers big-endian,
`varint` = unsigned LEB128:

    size    field
    1       head: format version in the high nibble (2), frame type (FrameType) in the low one
    varint  total packet length in bytes, head and checksum included
    varint  inter frames only: reference distance in frames (>= 1)
    1       inter frames only: the reference check (see "Reference check" below)
    ...     sections, up to the checksum: tag (1 byte), length (varint), data
    4       CRC-32 of every byte before it

Every later format version keeps the head byte, the length after it and the CRC-32 at the end, so a
decoder checks any packet's integrity before it reads the version. An intra frame's packet costs 6
bytes besides its sections, an inter frame's 8. Format version 1 (every stream written before it; still
read, and a stream's configuration says which it holds) spent 13–16 bytes: a magic b"SCFR", version, frame type,
reference distance and section count bytes, the length, the sections and the CRC-32, with the
reference check as a 3-byte section 0x81 of inter frames. At 30 fps that is 3.8 kbps against
1.9 kbps, 4.9 % of the talking-head clip's stream at 80 kbps (`streamcodec info`).

Tags below 0x80 are critical: a decoder that does not know one must refuse the frame. Tags from
0x80 up may be skipped. This is how the selective mode's extra sections (kept-region mask,
semantic label map, latents inside the mask) and later inter-frame tools can be added without
breaking older streams: they are new tags or new frame types.

Reference check (format 2: the byte after an inter frame's reference distance; format 1: section
0x81, optional, written since 0.2.0): an inter frame carries one byte,
the low byte of the CRC-32 of its reference's symbols (`reference_hash`). The decoder compares it
with the symbols it holds and refuses the frame (CorruptStreamError) when they differ, e.g. after
a block was lost at the container level; it then conceals until the next intra frame. It costs
one byte per inter frame in format 2 (3 in format 1: tag, length, hash). Why a hash and not a frame counter: the hash needs no
counter in intra frames (a counter must be in every frame to be checked), it names what the
decoding depends on (the reference symbols), so it also catches reordered or spliced streams and
has no blind spot when exactly 256 frames (or whole GOPs) are lost; and when a different frame
happens to have identical symbols the decode is correct anyway. One byte leaves a 1/256 chance
that a wrong reference slips through; the decoder's exactness check (the payload must re-encode
to itself) then still catches most wrong-reference decodes (406 of 406 tried at 301x203, 22 of
24 at 64x48, where payloads are only a few words). The section is
skippable, so decoders of 0.1.0 read new streams, and streams without it (0.1.0) still decode,
checked as before (reference distance 1 and a held reference). Decoded packets of either format
hand the check over as `Frame.sections[REFERENCE]`, so the decoders see one shape.

Reference check per mode: in GC streams (mode "gc") 0x81 holds the reference symbols' hash as
above. In selective streams (mode "sc") it holds the low byte of the previous packet's CRC-32
trailer (its last byte): what a selective inter frame depends on is the whole previous packet
(mask, fidelity access unit), and its CRC is already there to name it. It is written on every
selective inter frame; a decoder refuses a selective inter frame without it or with the wrong one.

Selective mode (mode "sc"; frame types SELECTIVE_INTRA 2 / SELECTIVE_INTER 3):
    0x02 MASK      the 16-px block keep mask, maskcode payload (intra at keyframes, against the
                   previous frame's mask between); absent = empty payload (all dropped at a
                   keyframe, unchanged between)
    0x04 FIDELITY  one HEVC (Annex B) or AV1 (low-overhead OBU) access unit of the frame; IDR with
                   parameter sets at keyframes. AV1 units leave out the leading temporal delimiter
                   OBU (as Matroska's AV1 mapping does); streams written before keep it, and decode alike
                   With fidelity "learned" (new streams only): the LATENTS layout
                   (channel count u8 + range-coded GC symbols, intra tables at keyframes, inter
                   against the previous frame's symbols between), zero (center) outside the kept
                   cells; `extra` fg_crf then holds the GC quality level, and the PLATE is HEVC
    0x05 PLATE     keyframes with background "plate": the background picture as one intra access
                   unit of the same codec; the same bytes again while the background is unchanged
    0x06 PLATE_UPDATE  keyframes with background "plate", between full plates (`--plate-refresh`):
                   2 bytes, the low 16 bits big-endian of the CRC-32 of the last plate access unit
                   (PLATE's, or a non-empty PLATE_UPDATE's) that this one follows, then one inter
                   access unit of the plate's stream coded against it; no access unit: the background
                   is unchanged. A decoder that does not hold that access unit's picture (it started
                   after it, or lost it) cannot use the update: it shows the last background it has,
                   or none, until the next PLATE. Written since 0.3 (older decoders refuse it as an
                   unknown critical section)
    0x01 LATENTS   keyframes with background "synth": GC latents (as in a GC intra frame, at the
                   lowest quality) of the background
    0x03 LABELS    keyframes with background "synth": the labeler's map of the same background
                   (labelcode payload, intra; may be empty: an all-0 map); the decoder paints the
                   background with the SC generator named in `extra` from LATENTS and LABELS.
                   Synth streams written before it (no LABELS, no "synth_model" in `extra`) are
                   painted by the GC model's generator from LATENTS alone
    0x81 REFERENCE inter frames (a section in format 1, in the packet's head in format 2): see above
Every selective keyframe's kept region is self-contained, and so is its background where it carries a
PLATE (every keyframe with `--plate-refresh 0`, as live streams do). The configuration's `extra` holds the selective
settings (see SC_EXTRA; the synth generator's in SC_SYNTH_EXTRA), checked by `validate`.

Stream configuration: b"SCST", a version byte, then UTF-8 JSON (`StreamConfig`). `unpack` checks
every field's type and range (`StreamConfig.validate`) before anything is allocated from it.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import CorruptStreamError, UnsupportedStreamError

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
KNOWN_SECTIONS = frozenset({LATENTS, MASK, LABELS, FIDELITY, PLATE, PLATE_UPDATE, REFERENCE})
PLATE_CHECK = struct.Struct(">H")


def plate_check(access_unit: bytes) -> bytes:
    """What a PLATE_UPDATE names the plate access unit it follows by: the low 16 bits of its CRC-32."""
    return PLATE_CHECK.pack(zlib.crc32(access_unit) & 0xFFFF)


# Sane limits for a stream configuration: 16384 px a side, at most 8K UHD worth of pixels.
MAX_SIDE = 16384
MAX_PIXELS = 7680 * 4320
MAX_GOP = 1 << 20
MAX_NAME = 200  # characters of model_id, model_name, mode
KNOWN_MODES = frozenset({"gc", "sc"})
# Selective mode's `extra`: each key's allowed values (a set) or integer range (a tuple).
SC_EXTRA: dict[str, frozenset[str] | tuple[int, int]] = {
    "fidelity": frozenset({"hevc", "av1", "learned"}),
    "background": frozenset({"plate", "synth"}),
    "block": (16, 16),
    "fill": frozenset({"recon", "hold", "flat", "blur"}),  # the encoder's business; recorded for `info`
    "fg_crf": (0, 63),
    "bg_crf": (0, 63),
    "feather": (0, 16),
}
# Optional, absent in zero-latency streams (the decoder does not need it): how the fidelity codec ran.
# "matrix": the fidelity layer's RGB conversion when it is not BT.601 (absent: bt601, as every older stream).
SC_OPTIONAL_EXTRA: dict[str, frozenset[str] | tuple[int, int]] = {
    "latency": frozenset({"zero", "offline"}),
    "matrix": frozenset({"bt601", "bt709"}),
}
MAX_KEEP = 16
# Background "synth" since the SC generator: all of these or (older streams) none; never with "plate".
SC_SYNTH_EXTRA: dict[str, frozenset[str] | tuple[int, int] | type] = {
    "synth_model": str,  # registry name of the SC generator
    "synth_model_id": str,  # its content id, checked against the installation's at decode
    "labeler": frozenset({"builtin"}),
    "label_classes": (1, 256),
}


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
        """Parse and validate CodecPrivate bytes.

        Raises:
            CorruptStreamError: not a stream configuration, or a field of the wrong type or range.
            UnsupportedStreamError: a newer format version or an unknown mode.
        """
        if len(data) < 5 or data[:4] != CONFIG_MAGIC:
            raise CorruptStreamError("CodecPrivate is not a streamcodec stream configuration")
        if data[4] > FORMAT_VERSION:
            raise UnsupportedStreamError(f"stream format version {data[4]} is newer than this decoder ({FORMAT_VERSION})")
        try:
            fields = json.loads(data[5:].decode())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CorruptStreamError(f"unreadable stream configuration: {exc}") from None
        if not isinstance(fields, dict):
            raise CorruptStreamError(f"stream configuration is JSON {type(fields).__name__}, not an object")
        missing = [name for name in _TYPES if name not in fields and name not in _DEFAULTED]
        if missing:
            raise CorruptStreamError(f"stream configuration lacks {', '.join(missing)}")
        _check_types(fields)
        config = cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})
        config.validate()
        return config

    def validate(self) -> None:
        """Check every field's range (types were checked by `unpack`).

        Raises:
            CorruptStreamError: a size, quality, channel count or GOP outside its range.
            UnsupportedStreamError: a newer format version or an unknown mode.
        """
        _check_types(asdict(self))
        if self.format_version > FORMAT_VERSION:
            raise UnsupportedStreamError(
                f"stream format version {self.format_version} is newer than this decoder ({FORMAT_VERSION})"
            )
        if self.mode not in KNOWN_MODES:
            known = ", ".join(sorted(KNOWN_MODES))
            raise UnsupportedStreamError(f"stream mode {_show(self.mode)} is not supported by this decoder (known: {known})")
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise CorruptStreamError(f"stream configuration {name} {value} is outside {low}..{high}")
        for label, pixels in (("", self.width * self.height), ("coded ", self.coded_width * self.coded_height)):
            if pixels > MAX_PIXELS:
                raise CorruptStreamError(f"stream configuration {label}frame of {pixels} pixels exceeds {MAX_PIXELS}")
        if self.mode == "sc":
            _check_sc_extra(self.extra)


_DEFAULTED = frozenset({"format_version", "extra"})
_TYPES: dict[str, type] = {
    "model_id": str,
    "model_name": str,
    "mode": str,
    **dict.fromkeys(("width", "height", "coded_width", "coded_height", "quality", "channels", "gop", "format_version"), int),
    "extra": dict,
}
_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("width", "height", "coded_width", "coded_height"), (1, MAX_SIDE)),
    "quality": (1, 255),
    "channels": (1, 255),  # a u8 in the LATENTS section
    "gop": (1, MAX_GOP),
    "format_version": (1, FORMAT_VERSION),
}


def _check_types(fields: dict[str, Any]) -> None:
    for name, kind in _TYPES.items():
        if name not in fields:
            continue
        value = fields[name]
        # bool is an int subclass and 256.0 a float: neither is a size.
        if type(value) is not kind:
            raise CorruptStreamError(
                f"stream configuration {name} is {_show(value)} ({type(value).__name__}); expected {kind.__name__}"
            )
        if isinstance(value, str) and not 0 < len(value) <= MAX_NAME:
            raise CorruptStreamError(f"stream configuration {name} {_show(value)} must be 1..{MAX_NAME} characters")


def _check_sc_extra(extra: dict[str, Any]) -> None:
    """Selective mode's `extra`: exactly the keys of SC_EXTRA plus "keep", each of its type and range."""
    unknown = sorted(set(extra) - set(SC_EXTRA) - set(SC_SYNTH_EXTRA) - set(SC_OPTIONAL_EXTRA) - {"keep"})
    if unknown:
        raise UnsupportedStreamError(f"selective stream configuration has unknown field(s) {_show(unknown)}")
    missing = sorted(set(SC_EXTRA) - set(extra))
    if missing:
        raise CorruptStreamError(f"selective stream configuration lacks {', '.join(missing)}")
    for name, allowed in SC_EXTRA.items():
        _check_extra_field(name, extra[name], allowed)
    for name, optional in SC_OPTIONAL_EXTRA.items():
        if name in extra:
            _check_extra_field(name, extra[name], optional)
    _check_synth_extra(extra)
    keep = extra.get("keep", [])
    if type(keep) is not list or len(keep) > MAX_KEEP or any(type(k) is not str or not 0 < len(k) <= MAX_NAME for k in keep):
        raise CorruptStreamError(f"selective stream configuration keep {_show(keep)} is not a list of up to {MAX_KEEP} names")


def _check_extra_field(name: str, value: Any, allowed: frozenset[str] | tuple[int, int] | type) -> None:
    """One `extra` field: a name from a set, an integer in a range, or a string of 1..MAX_NAME characters."""
    if isinstance(allowed, frozenset):
        if type(value) is not str or value not in allowed:
            raise UnsupportedStreamError(f"selective stream configuration {name} {_show(value)} is not one of {sorted(allowed)}")
    elif isinstance(allowed, tuple):
        if type(value) is not int or not allowed[0] <= value <= allowed[1]:
            raise CorruptStreamError(
                f"selective stream configuration {name} {_show(value)} is outside {allowed[0]}..{allowed[1]}"
            )
    elif not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise CorruptStreamError(f"selective stream configuration {name} {_show(value)} is not a name of 1..{MAX_NAME} chars")


def _check_synth_extra(extra: dict[str, Any]) -> None:
    """The SC generator's fields: all or none, and only with background "synth"."""
    present = sorted(set(SC_SYNTH_EXTRA) & set(extra))
    if not present:
        return
    if extra["background"] != "synth":
        where = f"with background {extra['background']!r}"
        raise CorruptStreamError(f"selective stream configuration has {', '.join(present)} {where}")
    missing = sorted(set(SC_SYNTH_EXTRA) - set(extra))
    if missing:
        raise CorruptStreamError(f"selective stream configuration lacks {', '.join(missing)}")
    for name, allowed in SC_SYNTH_EXTRA.items():
        _check_extra_field(name, extra[name], allowed)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
