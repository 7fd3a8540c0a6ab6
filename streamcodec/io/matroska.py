"""Matroska vocabulary shared by the writer and the reader.

Track descriptions (`TrackSpec` to write, `TrackInfo` as read), `Packet`, the encoders of the
small index elements the writer emits (EBML header, TrackEntry, Tag, Seek, CuePoint), and the
decoders the reader needs for TrackEntry and Tag fields and laced blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from streamcodec.errors import CorruptStreamError
from streamcodec.io import ebml
from streamcodec.io.ebml import ID

NS_PER_SECOND = 10**9
MAX_FRAME_NS = 3600 * NS_PER_SECOND  # a DefaultDuration or CodecDelay beyond an hour is damage, not a stream
MIN_FRAME_NS = 1_000
_DD = "DefaultDuration (ns)"
_TRACK_TYPES = {"video": 1, "audio": 2}
_TRACK_KINDS = {1: "video", 2: "audio", 3: "complex", 0x10: "logo", 0x11: "subtitle", 0x12: "buttons", 0x20: "control"}

_Fields = dict[int, bytes]


@dataclass(frozen=True)
class TrackSpec:
    """One track to write. Track 1 is the primary (our codec) track; Cues index its keyframes."""

    number: int
    kind: Literal["video", "audio"]
    codec_id: str
    codec_private: bytes | None = None
    default_duration_ns: int | None = None
    width: int | None = None
    height: int | None = None
    sampling_frequency: float | None = None
    channels: int | None = None
    bit_depth: int | None = None
    codec_delay_ns: int | None = None
    seek_preroll_ns: int | None = None
    name: str | None = None
    language: str = "und"
    default: bool = True
    rotation: float = 0.0  # display rotation, degrees counter-clockwise; written as ProjectionPoseRoll

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 126:  # one-byte track numbers in block headers
            raise ValueError(f"track number {self.number} is outside 1..126")
        if not self.codec_id.startswith({"video": "V_", "audio": "A_"}.get(self.kind, "?")):
            raise ValueError(f"track {self.number}: kind {self.kind!r} does not fit CodecID {self.codec_id!r}")
        for field in ("default_duration_ns", "codec_delay_ns", "seek_preroll_ns", "width", "height"):
            if (getattr(self, field) or 0) < 0:
                raise ValueError(f"track {self.number}: {field} must be >= 0, got {getattr(self, field)}")


def track_entry(spec: TrackSpec, uid: int, codec_delay_ns: int) -> bytes:
    """Encode one TrackEntry; an audio track's CodecDelay is 8 bytes wide so it can be patched."""
    children = [
        ebml.uint_element(ID.TRACK_NUMBER, spec.number),
        ebml.uint_element(ID.TRACK_UID, uid),
        ebml.uint_element(ID.TRACK_TYPE, _TRACK_TYPES[spec.kind]),
        ebml.uint_element(ID.FLAG_DEFAULT, int(spec.default)),
        ebml.uint_element(ID.FLAG_LACING, 0),
        ebml.string_element(ID.LANGUAGE, spec.language),
        ebml.string_element(ID.CODEC_ID, spec.codec_id),
    ]
    optional_uints = ((ID.DEFAULT_DURATION, spec.default_duration_ns), (ID.SEEK_PRE_ROLL, spec.seek_preroll_ns))
    children += [ebml.uint_element(i, v) for i, v in optional_uints if v is not None]
    if spec.kind == "audio" or spec.codec_delay_ns is not None:
        children.append(ebml.uint_element(ID.CODEC_DELAY, codec_delay_ns, 8 if spec.kind == "audio" else None))
    if spec.codec_private:
        children.append(ebml.binary_element(ID.CODEC_PRIVATE, spec.codec_private))
    if spec.name:
        children.append(ebml.string_element(ID.NAME, spec.name))
    if spec.kind == "video" and spec.width and spec.height:
        video = [ebml.uint_element(ID.PIXEL_WIDTH, spec.width), ebml.uint_element(ID.PIXEL_HEIGHT, spec.height)]
        if spec.rotation:  # a rectangular projection (ProjectionType's default) turned in the picture plane
            video.append(ebml.master_element(ID.PROJECTION, [ebml.float_element(ID.PROJECTION_POSE_ROLL, spec.rotation)]))
        children.append(ebml.master_element(ID.VIDEO, video))
    if spec.kind == "audio":
        audio = [ebml.float_element(ID.SAMPLING_FREQUENCY, spec.sampling_frequency or 8000.0)]
        audio += [ebml.uint_element(ID.CHANNELS, spec.channels)] if spec.channels else []
        audio += [ebml.uint_element(ID.BIT_DEPTH, spec.bit_depth)] if spec.bit_depth else []
        children.append(ebml.master_element(ID.AUDIO, audio))
    return ebml.master_element(ID.TRACK_ENTRY, children)


def tag_element(tags: Mapping[str, str], track_uid: int | None) -> bytes:
    """Encode one Tag: TargetTypeValue 50 (movie/track level), optionally for one track."""
    targets = [ebml.uint_element(ID.TARGET_TYPE_VALUE, 50)]
    if track_uid is not None:
        targets.append(ebml.uint_element(ID.TAG_TRACK_UID, track_uid))
    simple = [
        ebml.master_element(ID.SIMPLE_TAG, [ebml.string_element(ID.TAG_NAME, name), ebml.string_element(ID.TAG_STRING, value)])
        for name, value in tags.items()
    ]
    return ebml.master_element(ID.TAG, [ebml.master_element(ID.TARGETS, targets), *simple])


def seek_entry(element_id: int, position: int) -> bytes:
    """One Seek entry; the position is 8 bytes wide so that the SeekHead's size never changes."""
    children = [ebml.binary_element(ID.SEEK_ID, ebml.encode_id(element_id)), ebml.uint_element(ID.SEEK_POSITION, position, 8)]
    return ebml.master_element(ID.SEEK, children)


def cue_point(ticks: int, cluster: int, relative: int) -> bytes:
    """One CuePoint for track 1: cluster position in the Segment, block position in the Cluster."""
    fields = ((ID.CUE_TRACK, 1), (ID.CUE_CLUSTER_POSITION, cluster), (ID.CUE_RELATIVE_POSITION, relative))
    positions = ebml.master_element(ID.CUE_TRACK_POSITIONS, [ebml.uint_element(i, v) for i, v in fields])
    return ebml.master_element(ID.CUE_POINT, [ebml.uint_element(ID.CUE_TIME, ticks), positions])


def ebml_header() -> bytes:
    """The EBML header of a Matroska v4 file."""
    limits = ((ID.EBML_VERSION, 1), (ID.EBML_READ_VERSION, 1), (ID.EBML_MAX_ID_LENGTH, 4), (ID.EBML_MAX_SIZE_LENGTH, 8))
    versions = ((ID.DOC_TYPE_VERSION, 4), (ID.DOC_TYPE_READ_VERSION, 2))  # v4 elements; SimpleBlock needs v2 readers
    children = [ebml.uint_element(i, v) for i, v in limits] + [ebml.string_element(ID.DOC_TYPE, "matroska")]
    return ebml.master_element(ID.EBML, children + [ebml.uint_element(i, v) for i, v in versions])


@dataclass(frozen=True)
class TrackInfo:
    """One TrackEntry, with Matroska's defaults filled in for absent fields."""

    number: int
    kind: str  # "video", "audio", or Matroska's name for other track types
    codec_id: str
    codec_private: bytes | None
    default_duration_ns: int | None
    width: int | None
    height: int | None
    sampling_frequency: float | None
    channels: int | None
    name: str | None
    uid: int
    codec_delay_ns: int = 0
    bit_depth: int | None = None
    language: str = "eng"
    rotation: float = 0.0  # Video/Projection/ProjectionPoseRoll: degrees counter-clockwise


@dataclass(frozen=True)
class Packet:
    """One frame of one track; `time` is its presentation time in seconds.

    `suspect` marks a packet from a Cluster that failed its CRC-32: its bytes and its timestamp
    may be damaged (the frame's own checksum covers the bytes, nothing covers the timestamp).
    """

    track: int
    time: Fraction
    data: bytes
    keyframe: bool
    suspect: bool = False


def uint_field(fields: _Fields, element_id: int, default: int = 0) -> int:
    """An unsigned-integer child of a parsed master element, or `default` when absent."""
    return ebml.decode_uint(fields[element_id]) if element_id in fields else default


def optional_uint_field(fields: _Fields, element_id: int) -> int | None:
    """An unsigned-integer child of a parsed master element, or None when absent."""
    return ebml.decode_uint(fields[element_id]) if element_id in fields else None


def string_field(fields: _Fields, element_id: int, default: str = "") -> str:
    """A string child of a parsed master element, or `default` when absent."""
    return ebml.decode_string(fields[element_id]) if element_id in fields else default


def read_tag(data: memoryview, base: int, path: Path) -> tuple[list[int] | None, dict[str, str]]:
    """(TagTrackUIDs, {TagName: TagString}) of one Tag's payload (`base`: its file offset): no uids
    for the whole file, None for tags aimed at chapters, editions or attachments (not reported)."""
    uids: list[int] | None = []
    simple: dict[str, str] = {}
    for child, value in ebml.iter_children(data, base, path):
        if child.id == ID.TARGETS:
            targets = [(t.id, ebml.decode_uint(v)) for t, v in ebml.iter_children(value, child.data_offset, path)]
            if any(target not in (ID.TARGET_TYPE_VALUE, ID.TARGET_TYPE, ID.TAG_TRACK_UID) for target, _ in targets):
                uids = None
            elif uids is not None:
                uids = [uid for target, uid in targets if target == ID.TAG_TRACK_UID and uid]
        elif child.id == ID.SIMPLE_TAG:
            fields = ebml.children_dict(value, child.data_offset, path)
            simple[string_field(fields, ID.TAG_NAME)] = string_field(fields, ID.TAG_STRING)
    return uids, simple


def track_info(payload: bytes, base: int, path: Path, warn: Callable[[CorruptStreamError], None]) -> TrackInfo:
    """Parse one TrackEntry's payload (`base`: its file offset, for error messages).

    Hints that are out of range (DefaultDuration, CodecDelay, SamplingFrequency) are dropped with
    a warning through `warn`; a TrackEntry without a TrackNumber raises CorruptStreamError.
    """
    fields = ebml.children_dict(payload, base, path)
    video = ebml.children_dict(fields.get(ID.VIDEO, b""), 0, path)
    audio = ebml.children_dict(fields.get(ID.AUDIO, b""), 0, path) if ID.AUDIO in fields else None
    number, track_type = uint_field(fields, ID.TRACK_NUMBER), uint_field(fields, ID.TRACK_TYPE)
    if not number:
        raise CorruptStreamError("TrackEntry without a TrackNumber", path, base)

    def checked(value: int | float | None, low: float, high: float, what: str) -> bool:
        if value is None or (math.isfinite(value) and low <= value <= high):
            return True
        warn(CorruptStreamError(f"track {number}: {what} {value} is out of range ({low:g}..{high:g}); ignored", path, base))
        return False

    default_duration = optional_uint_field(fields, ID.DEFAULT_DURATION)
    codec_delay = uint_field(fields, ID.CODEC_DELAY)
    frequency = ebml.decode_float(audio[ID.SAMPLING_FREQUENCY]) if audio and ID.SAMPLING_FREQUENCY in audio else 8000.0
    projection = ebml.children_dict(video.get(ID.PROJECTION, b""), 0, path)
    roll = projection.get(ID.PROJECTION_POSE_ROLL)
    rotation = ebml.decode_float(roll) if roll else 0.0
    return TrackInfo(
        number=number,
        kind=_TRACK_KINDS.get(track_type, f"type {track_type}"),
        codec_id=string_field(fields, ID.CODEC_ID),
        codec_private=fields.get(ID.CODEC_PRIVATE),
        default_duration_ns=default_duration if checked(default_duration, MIN_FRAME_NS, MAX_FRAME_NS, _DD) else None,
        width=optional_uint_field(video, ID.PIXEL_WIDTH),
        height=optional_uint_field(video, ID.PIXEL_HEIGHT),
        sampling_frequency=None if audio is None else frequency if checked(frequency, 1, 1e7, "SamplingFrequency") else 8000.0,
        channels=None if audio is None else uint_field(audio, ID.CHANNELS, 1),
        name=string_field(fields, ID.NAME) if ID.NAME in fields else None,
        uid=uint_field(fields, ID.TRACK_UID),
        codec_delay_ns=codec_delay if checked(codec_delay, 0, MAX_FRAME_NS, "CodecDelay (ns)") else 0,
        bit_depth=None if audio is None else optional_uint_field(audio, ID.BIT_DEPTH),
        language=string_field(fields, ID.LANGUAGE, "eng"),
        rotation=rotation if checked(rotation, -360, 360, "ProjectionPoseRoll (degrees)") else 0.0,
    )


def _lace_sizes(data: memoryview, lacing: int, count: int) -> tuple[list[int], int]:
    """Sizes of all but the last laced frame, and where the frames start (1 Xiph, 2 fixed, 3 EBML)."""
    if lacing == 2:
        return [(len(data) - 1) // count] * (count - 1), 1
    sizes, pos = [], 1
    for _ in range(count - 1):
        if lacing == 1:  # Xiph: a run of 255s plus a final byte
            size = 0
            while data[pos] == 255:
                size, pos = size + 255, pos + 1
            sizes.append(size + data[pos])
            pos += 1
        else:  # EBML: first size, then signed differences in biased vints
            raw, length = ebml.read_vint(data, pos, keep_marker=False)
            bias = 0 if not sizes else (1 << (7 * length - 1)) - 1
            sizes.append((sizes[-1] if sizes else 0) + (raw or 0) - bias)
            pos += length
    return sizes, pos


def unlace(data: memoryview, lacing: int, offset: int, path: Path) -> list[memoryview]:
    """Split a block's data into frames (the flags' lacing bits: 0 none, 1 Xiph, 2 fixed-size, 3 EBML)."""
    if lacing == 0:
        return [data]
    try:
        count = data[0] + 1
        sizes, pos = _lace_sizes(data, lacing, count)
    except (IndexError, ValueError):
        raise CorruptStreamError("bad lacing header", path, offset) from None
    last = len(data) - pos - sum(sizes)
    if last < 0 or min(sizes, default=0) < 0 or (lacing == 2 and sizes and last != sizes[0]):
        raise CorruptStreamError("laced frame sizes do not fit the block", path, offset)
    frames = []
    for size in [*sizes, last]:
        frames.append(data[pos : pos + size])
        pos += size
    return frames


def check_writer_arguments(
    tracks: Sequence[TrackSpec], track_tags: Mapping[int, Mapping[str, str]], timestamp_scale_ns: int
) -> None:
    """Refuse a MatroskaWriter's tracks, tags or timestamp scale that would make a broken file (ValueError)."""
    numbers = [spec.number for spec in tracks]
    if len(set(numbers)) != len(numbers) or 1 not in numbers:
        raise ValueError(f"track numbers must be unique and include 1, got {numbers}")
    if timestamp_scale_ns <= 0:
        raise ValueError(f"timestamp_scale_ns must be > 0, got {timestamp_scale_ns}")
    if unknown := set(track_tags) - set(numbers):
        raise ValueError(f"track_tags name unknown tracks {sorted(unknown)}")
