"""Matroska reader: track headers, tags and cues up front, then packets cluster by cluster.

Damage is reported, never hidden, and recovered from where the file allows. Tracks (it holds
CodecPrivate) is essential: a Tracks element that fails its CRC-32 refuses the file unless the
reader is opened with `salvage`, which reads it anyway when its content parses. SeekHead, Info,
Tags and Cues are hints: a damaged one is ignored with a warning in `damage` (Info's defaults are
used, index elements are found by scanning). While packets stream, a bad Cluster CRC, a broken
structure or a truncated file each give a `CorruptStreamError` to the caller's `on_error` (raised
when there is none). Packets that still parse are yielded anyway — the caller's per-frame checks
decide — and after a broken structure the reader resynchronises on the next Cluster id or on the
next Cluster body (CRC-32 then Timestamp, as our writer starts one), so a Cluster whose header was
hit keeps its frames. A file our own writer left unfinished (killed encode: Segment of unknown
size) is reported as truncated before any packet. Every walk over the file only moves forward,
and SeekHead chains are bounded, so damage can never make the reader loop.

Times are Fractions of seconds: stored timestamp × TimestampScale − the track's CodecDelay, the
inverse of what `MatroskaWriter` stores.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
from collections.abc import Callable, Container, Generator, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

from streamcodec.errors import (
    CorruptStreamError,
    InputNotFoundError,
    TruncatedStreamError,
    UnreadableInputError,
    UnsupportedStreamError,
)
from streamcodec.io import ebml
from streamcodec.io.ebml import ID, ElementHeader
from streamcodec.io.matroska import NS_PER_SECOND, Packet, TrackInfo, string_field, track_info, uint_field, unlace

__all__ = ["ErrorHandler", "MatroskaReader", "Packet", "TrackInfo"]  # Packet, TrackInfo live in matroska

MAX_CLUSTER_BYTES = 512 << 20  # a larger size is taken for damage rather than read into memory
MAX_INDEX_BYTES = 64 << 20
MAX_SEEKS = 1024  # Seek entries followed in all, however SeekHeads chain
MAX_TIMESTAMP_SCALE = NS_PER_SECOND
MAX_DURATION_S = 10**7  # about 116 days
OUR_MUXING_APP = "streamcodec"
_INDEX_NAMES = {ID.SEEK_HEAD: "SeekHead", ID.INFO: "Info", ID.TRACKS: "Tracks", ID.TAGS: "Tags", ID.CUES: "Cues"}
_HEAD_IDS = frozenset({*_INDEX_NAMES, ID.VOID, ID.CRC32, ID.CHAPTERS, ID.ATTACHMENTS})
_SEGMENT_CHILDREN = _HEAD_IDS | {ID.CLUSTER}
# How our writer starts a Cluster's payload: a CRC-32 element, then the Cluster Timestamp.
_CLUSTER_BODY = rb"\xbf\x84[\x00-\xff]{4}\xe7"
_CLUSTER_OR_BODY = re.compile(re.escape(ebml.encode_id(ID.CLUSTER)) + b"|" + _CLUSTER_BODY)
_TOP_LEVEL = re.compile(b"|".join(re.escape(ebml.encode_id(i)) for i in (*_INDEX_NAMES, ID.CLUSTER)) + b"|" + _CLUSTER_BODY)
_UNFINISHED_CRC = bytes(ebml.CRC_ELEMENT_SIZE)  # the writer's placeholder before a Cluster is patched

ErrorHandler = Callable[[CorruptStreamError], None]


class MatroskaReader:
    """A Matroska file opened for reading: `tracks`, `tags`, `cues`, `damage`, then `packets()`."""

    def __init__(self, path: Path, *, salvage: bool = False) -> None:
        """Open `path` and read its header, Info, Tracks, Tags and Cues.

        Args:
            path: the file.
            salvage: read a Tracks element that fails its CRC-32 when its content parses (with a
                warning in `damage`) instead of refusing the file.

        Raises:
            InputNotFoundError: no such file.
            CorruptStreamError: not a Matroska file, no usable Tracks, an Info that holds an
                impossible TimestampScale, or the file is cut before its Tracks.
            UnsupportedStreamError: a Matroska version this reader does not know.
        """
        self.path = Path(path)
        self.salvage = salvage
        self.tracks: list[TrackInfo] = []
        self.tags: dict[str, str] = {}
        self.track_tags: dict[int, dict[str, str]] = {}
        self.timestamp_scale_ns = 1_000_000
        self.duration: Fraction | None = None
        self.title: str | None = None
        self.muxing_app: str | None = None
        self.cues: list[tuple[Fraction, int, int]] = []  # (time, track, file offset of the Cluster)
        self.damage: list[CorruptStreamError] = []  # problems met at open that did not stop reading
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 (kept open until close())
        except FileNotFoundError:
            raise InputNotFoundError("no such file", self.path) from None
        except IsADirectoryError:
            raise UnreadableInputError("is a directory, not a Matroska file", self.path) from None
        try:
            self._ebml = ebml.EbmlFile(self._file, self.path, self.path.stat().st_size)
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        segment = self._find_segment()
        self._segment_start = segment.data_offset
        self._segment_end = self._ebml.size
        self._truncated = segment.end is not None and segment.end > self._ebml.size
        if segment.end is not None and segment.end < self._ebml.size:
            # One Segment per file is all anyone writes; a short one is a damaged size, not the end.
            short = CorruptStreamError("Segment size ends before the file does; reading on", self.path, segment.offset)
            self.damage.append(short)
        self._loaded: dict[int, int] = {}  # index element id → offset
        self._visited: set[int] = set()  # offsets of index elements tried (SeekHeads may chain, or loop)
        self._seeks: list[tuple[int, int]] = []
        self._raw_tags: list[tuple[list[int] | None, dict[str, str]]] = []  # resolved once Tracks are known
        self._raw_cues: list[tuple[int, int, int]] = []
        self._cues_end: int | None = None
        self._first_cluster = self._scan_head(self._segment_start)
        self._follow_seeks()
        if not {ID.SEEK_HEAD, ID.CUES} <= set(self._loaded) and self._first_cluster is not None:
            with contextlib.suppress(CorruptStreamError):  # damaged clusters are for packets() to report
                self._scan(self._first_cluster)
        if ID.TRACKS not in self._loaded:
            raise CorruptStreamError("no usable Tracks element", self.path, self._segment_start)
        # Our writer fills in the Segment size and SeekHead only at close: without both, it was stopped.
        self._unfinished = segment.size is None and self.muxing_app == OUR_MUXING_APP and ID.SEEK_HEAD not in self._loaded
        if self._truncated and ID.CUES in self._loaded and self._cues_end == self._ebml.size:
            self._truncated = False  # our files end with their Cues: the Segment size is what broke
            self.damage.append(CorruptStreamError("Segment size runs past the end of a complete file", self.path, segment.offset))
        self._resolve_index()

    def _note(self, error: CorruptStreamError) -> None:
        self.damage.append(error)

    def _find_segment(self) -> ElementHeader:
        if self._ebml.size < 4 or self._ebml.read(0, 4) != ebml.encode_id(ID.EBML):
            raise CorruptStreamError("not a Matroska file", self.path, 0)
        header = self._ebml.header(0)
        fields = ebml.children_dict(self._ebml.payload(header), header.data_offset, self.path)
        doc_type = string_field(fields, ID.DOC_TYPE, "matroska")
        if doc_type not in ("matroska", "webm"):
            raise CorruptStreamError(f"not a Matroska file (EBML DocType {doc_type!r})", self.path, 0)
        if uint_field(fields, ID.DOC_TYPE_READ_VERSION, 1) > 4:
            raise UnsupportedStreamError("needs a newer Matroska reader (DocTypeReadVersion > 4)", self.path)
        element = header
        while element.id != ID.SEGMENT:
            if element.end is None:
                raise CorruptStreamError("no Segment element", self.path, element.offset)
            element = self._ebml.header(element.end)
        return element

    def _scan_head(self, pos: int) -> int | None:
        """Load the index elements before the first Cluster; returns where the Clusters start.

        After a header that does not parse, an unknown id or an index element that fails its checks
        the walk resumes at the next top-level id found by searching, so one damaged element never
        hides the ones after it. Returns the first Cluster's offset, or an earlier damaged
        element's, which `packets()` then walks through (and reports).
        """
        first: int | None = None
        at: int | None = pos
        while at is not None and at < self._segment_end:
            pos = at
            try:
                element = self._ebml.header(pos, self._segment_end)
            except CorruptStreamError:  # packets() walks from `first` and reports it
                first, at = first if first is not None else pos, self._next_top_level(pos + 1)
                continue
            if element.id == ID.CLUSTER or self._is_cluster_body(pos):
                return first if first is not None else pos
            if element.id not in _HEAD_IDS:
                first, at = first if first is not None else pos, self._next_top_level(pos + 1)
                continue
            intact = self._load(element) and element.end is not None
            at = element.end if intact else self._next_top_level(element.data_offset)
        return first

    def _next_top_level(self, start: int) -> int | None:
        return self._ebml.search(_TOP_LEVEL, start, 7)

    def _scan(self, pos: int) -> None:
        """Hop over Clusters by their sizes to find index elements after them (no usable SeekHead)."""
        while pos < self._segment_end:
            element = self._ebml.header(pos, self._segment_end)
            self._load(element)
            if element.end is None:
                return
            pos = element.end

    def _follow_seeks(self) -> None:
        """Load what the SeekHeads point at; the list grows while SeekHeads chain, up to MAX_SEEKS."""
        index = 0
        while index < min(len(self._seeks), MAX_SEEKS):
            element_id, position = self._seeks[index]
            index += 1
            at = self._segment_start + position
            if element_id in _INDEX_NAMES and at not in self._visited and at < self._ebml.size:
                self._load_at(at, element_id)

    def _load_at(self, offset: int, expected: int) -> None:
        """Load the index element a SeekHead points at; a bad pointer is ignored, not fatal.

        An element whose id was hit is still taken for what the SeekHead says when its CRC-32
        matches its payload (the id is outside the CRC, the payload is intact).
        """
        try:
            element = self._ebml.header(offset, self._segment_end)
        except CorruptStreamError:
            return
        if element.id != expected and element.size is not None and element.size <= MAX_INDEX_BYTES:
            try:
                intact = ebml.check_crc(self._ebml.payload(element), element.data_offset, self.path, "element")
            except CorruptStreamError:
                intact = False
            if not intact:
                return
            name = _INDEX_NAMES[expected]
            self._note(CorruptStreamError(f"{name} has a damaged id (0x{element.id:X}); read as {name}", self.path, offset))
            element = ElementHeader(expected, element.offset, element.header_size, element.size)
        self._load(element)

    def _load(self, element: ElementHeader) -> bool:
        """Read, CRC-check and parse one index element; others, and repeats, are skipped.

        Returns:
            False when the element is damaged (noted in `damage`), so its size is not trusted.
        """
        name = _INDEX_NAMES.get(element.id)
        if name is None or element.offset in self._visited or (element.id in self._loaded and element.id != ID.SEEK_HEAD):
            return True
        self._visited.add(element.offset)
        if element.id != ID.TRACKS and (element.end is None or element.end > self._ebml.size):
            return True  # cut off by a truncated file: packets() reports the truncation
        if element.size is not None and element.size > MAX_INDEX_BYTES:
            self._note(CorruptStreamError(f"implausibly large {name} ({element.size} bytes); ignored", self.path, element.offset))
            return False
        payload = self._ebml.payload(element)
        try:
            crc = ebml.check_crc(payload, element.data_offset, self.path, name)
        except CorruptStreamError as exc:
            if element.id == ID.TRACKS and not self.salvage:
                message = f"{exc}: the track headers cannot be trusted (--salvage reads them anyway)"
                raise CorruptStreamError(message, self.path) from None
            self._note(CorruptStreamError(f"{exc}; {'read anyway' if element.id == ID.TRACKS else 'ignored'}", self.path))
            if element.id != ID.TRACKS:
                return False
            crc = False
        return self._parse(element, payload, crc)

    def _parse(self, element: ElementHeader, payload: bytes, crc: bool) -> bool:
        """Parse a loaded index element; what does not parse is noted and dropped, unless its CRC-32
        vouches for it (then Tracks or Info holds impossible values, and that is raised)."""
        read = {ID.SEEK_HEAD: self._read_seek_head, ID.INFO: self._read_info, ID.TRACKS: self._read_tracks}
        try:
            read.get(element.id, self._read_tags_or_cues)(element, ebml.iter_children(payload, element.data_offset, self.path))
        except (CorruptStreamError, ValueError, OverflowError) as exc:
            error = exc if isinstance(exc, CorruptStreamError) else CorruptStreamError(str(exc), self.path, element.offset)
            if element.id in (ID.TRACKS, ID.INFO) and crc:  # intact, yet impossible: no guess would be better
                raise error from None
            self._note(CorruptStreamError(f"unreadable {_INDEX_NAMES[element.id]} ({error}); ignored", self.path))
            return False
        self._loaded[element.id] = element.offset
        return True

    def _read_seek_head(self, _: ElementHeader, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        seeks = []
        for header, seek in children:
            fields = ebml.children_dict(seek, header.data_offset, self.path) if header.id == ID.SEEK else {}
            if ID.SEEK_ID in fields and ID.SEEK_POSITION in fields:
                seeks.append((ebml.decode_uint(fields[ID.SEEK_ID]), ebml.decode_uint(fields[ID.SEEK_POSITION])))
        self._seeks += seeks[: max(0, MAX_SEEKS - len(self._seeks))]

    def _read_info(self, element: ElementHeader, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        fields = {header.id: bytes(data) for header, data in children}
        scale = uint_field(fields, ID.TIMESTAMP_SCALE, 1_000_000) or 1_000_000
        if scale > MAX_TIMESTAMP_SCALE:
            message = f"TimestampScale {scale} ns is out of range (1..{MAX_TIMESTAMP_SCALE})"
            raise CorruptStreamError(message, self.path, element.offset)
        self.timestamp_scale_ns = scale
        self.title = string_field(fields, ID.TITLE) if ID.TITLE in fields else None
        self.muxing_app = string_field(fields, ID.MUXING_APP) if ID.MUXING_APP in fields else None
        if ID.DURATION in fields:
            seconds = ebml.decode_float(fields[ID.DURATION]) * scale / NS_PER_SECOND
            if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_S):
                self._note(CorruptStreamError(f"Info Duration {seconds} s is out of range; ignored", self.path, element.offset))
            else:
                self.duration = Fraction(round(ebml.decode_float(fields[ID.DURATION]) * scale), NS_PER_SECOND)

    def _read_tracks(self, _: ElementHeader, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        entries = [(header, bytes(entry)) for header, entry in children if header.id == ID.TRACK_ENTRY]
        self.tracks = [track_info(entry, header.data_offset, self.path, self._note) for header, entry in entries]

    def _read_tags_or_cues(self, element: ElementHeader, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        tags, cues = [], []
        for header, data in children:
            if header.id == ID.TAG:
                tags.append(self._tag(header, data))
            elif header.id == ID.CUE_POINT:
                cues += self._cue_point(header, data)
        self._raw_tags += tags
        self._raw_cues += cues
        if element.id == ID.CUES:
            self._cues_end = element.end

    def _tag(self, header: ElementHeader, data: memoryview) -> tuple[list[int] | None, dict[str, str]]:
        """(TagTrackUIDs, {TagName: TagString}) of one Tag: no uids for the whole file, None for
        tags aimed at chapters, editions or attachments (not reported)."""
        uids: list[int] | None = []
        simple: dict[str, str] = {}
        for child, value in ebml.iter_children(data, header.data_offset, self.path):
            if child.id == ID.TARGETS:
                targets = [(t.id, ebml.decode_uint(v)) for t, v in ebml.iter_children(value, child.data_offset, self.path)]
                if any(target not in (ID.TARGET_TYPE_VALUE, ID.TARGET_TYPE, ID.TAG_TRACK_UID) for target, _ in targets):
                    uids = None
                elif uids is not None:
                    uids = [uid for target, uid in targets if target == ID.TAG_TRACK_UID and uid]
            elif child.id == ID.SIMPLE_TAG:
                fields = ebml.children_dict(value, child.data_offset, self.path)
                simple[string_field(fields, ID.TAG_NAME)] = string_field(fields, ID.TAG_STRING)
        return uids, simple

    def _cue_point(self, header: ElementHeader, data: memoryview) -> list[tuple[int, int, int]]:
        ticks, positions = 0, []
        for child, value in ebml.iter_children(data, header.data_offset, self.path):
            if child.id == ID.CUE_TIME:
                ticks = ebml.decode_uint(value)
            elif child.id == ID.CUE_TRACK_POSITIONS:
                where = ebml.children_dict(value, child.data_offset, self.path)
                cluster = self._segment_start + uint_field(where, ID.CUE_CLUSTER_POSITION)
                positions.append((uint_field(where, ID.CUE_TRACK), cluster))
        return [(ticks, track, cluster) for track, cluster in positions]

    def _resolve_index(self) -> None:
        by_uid = {track.uid: track.number for track in self.tracks}
        for uids, simple in self._raw_tags:
            if uids == []:
                self.tags.update(simple)
            for uid in uids or []:
                if uid in by_uid:
                    self.track_tags.setdefault(by_uid[uid], {}).update(simple)
        delays = {track.number: track.codec_delay_ns for track in self.tracks}
        for ticks, track, position in self._raw_cues:
            time = Fraction(ticks * self.timestamp_scale_ns - delays.get(track, 0), NS_PER_SECOND)
            self.cues.append((time, track, position))
        self._by_number = {track.number: track for track in self.tracks}

    def track(self, number: int) -> TrackInfo:
        """The track with this number; KeyError when there is none."""
        if number not in self._by_number:
            raise KeyError(f"{self.path}: no track {number} (tracks: {sorted(self._by_number)})")
        return self._by_number[number]

    def packets(self, tracks: Container[int] | None = None, on_error: ErrorHandler | None = None) -> Iterator[Packet]:
        """Stream the packets in file order, holding one Cluster in memory at a time.

        Args:
            tracks: track numbers to return; all tracks when None.
            on_error: called with each CorruptStreamError (bad CRC, broken structure, truncation),
                after which reading goes on; when None, the first error is raised. An unfinished
                file (an encode that was killed) is reported first, as a TruncatedStreamError.

        Returns:
            An iterator of Packets.
        """
        report = on_error if on_error is not None else _raise
        if self._unfinished:
            message = "unfinished encode: the writer was stopped before it wrote the Segment size, SeekHead and Cues"
            report(TruncatedStreamError(message, self.path))
        pos, self._cut_reported = self._first_cluster, self._unfinished
        self._consumed = 0  # the end of the last Cluster read: resynchronising never reads one twice
        while pos is not None and pos < self._segment_end:
            start = pos
            try:
                pos = yield from self._element_packets(start, tracks, report)
            except CorruptStreamError as exc:
                report(exc)
                pos = self._resync(max(start + 1, self._consumed))
        if self._truncated and not self._cut_reported:
            report(TruncatedStreamError("file ends before its Segment does (truncated)", self.path, self._ebml.size))

    def _element_packets(
        self, pos: int, tracks: Container[int] | None, report: ErrorHandler
    ) -> Generator[Packet, None, int | None]:
        """Packets of the top-level element at `pos`; returns where the next element starts."""
        if self._is_cluster_body(pos):  # a Cluster whose header was damaged, found by _resync
            return (yield from self._cluster_packets(pos, None, pos, tracks, report))
        element = self._ebml.header(pos, self._segment_end)
        if element.id == ID.CLUSTER:
            return (yield from self._cluster_packets(element.data_offset, element.end, pos, tracks, report))
        if element.id not in _SEGMENT_CHILDREN:  # the spec allows no other child: its size cannot be trusted
            raise CorruptStreamError(f"unknown element 0x{element.id:X} where a Cluster should be", self.path, pos)
        if element.end is None or element.end > self._ebml.size:
            self._cut_reported = element.end is not None
            raise TruncatedStreamError(f"element 0x{element.id:X} runs past the end of the file (truncated)", self.path, pos)
        return element.end

    def _cluster_packets(
        self, start: int, declared_end: int | None, pos: int, tracks: Container[int] | None, report: ErrorHandler
    ) -> Generator[Packet, None, int | None]:
        """Packets of the Cluster whose payload starts at `start`; returns where the next element starts."""
        end = declared_end if declared_end is not None else self._unknown_size_end(start)
        if end - start > MAX_CLUSTER_BYTES:
            end = self._unknown_size_end(start)  # a damaged size: the children say where it ends
            report(CorruptStreamError("implausibly large Cluster size; reading its children", self.path, pos))
        if end > self._ebml.size and declared_end is not None:
            walked = self._unknown_size_end(start)
            if walked <= self._ebml.size and self._crc_matches(start, walked):  # the size was hit, not the file
                report(CorruptStreamError("Cluster size is damaged; its content is intact", self.path, pos))
                end = walked
        data = self._ebml.read(start, min(end, self._ebml.size) - start)
        self._consumed = max(self._consumed, min(end, self._ebml.size))
        if end > self._ebml.size:
            with contextlib.suppress(CorruptStreamError):  # the cut-off block is the truncation itself
                yield from self._blocks(data, start, tracks)
            self._cut_reported = True
            raise TruncatedStreamError("Cluster runs past the end of the file (truncated)", self.path, pos)
        suspect = False
        try:
            ebml.check_crc(data, start, self.path, "Cluster")
        except CorruptStreamError as exc:
            walked = self._unknown_size_end(start)
            suspect = walked == end or walked > self._ebml.size or not self._crc_matches(start, walked)
            if suspect:
                report(exc)  # the blocks still come out: per-frame checks tell which are damaged
            else:  # the size was hit, not the content: read up to where the children end
                report(CorruptStreamError("Cluster size is damaged; its content is intact", self.path, pos))
                data, end = self._ebml.read(start, walked - start), walked
                self._consumed = max(self._consumed, end)
        inner = yield from self._blocks(data, start, tracks, suspect, report)
        if inner is not None:
            report(CorruptStreamError("Cluster size runs into the next element", self.path, pos))
            return inner
        return end

    def _crc_matches(self, start: int, end: int) -> bool:
        if end - start > MAX_CLUSTER_BYTES:
            return False
        try:
            return ebml.check_crc(self._ebml.read(start, end - start), start, self.path, "Cluster")
        except CorruptStreamError:
            return False

    def _is_cluster_body(self, pos: int) -> bool:
        if pos + 7 > self._ebml.size:
            return False
        return re.fullmatch(_CLUSTER_BODY, self._ebml.read(pos, 7)) is not None

    def _unknown_size_end(self, start: int) -> int:
        """End of a Cluster payload of unknown size: the first top-level element after its children."""
        pos = start + (len(_UNFINISHED_CRC) if self._unfinished_crc_at(start) else 0)
        with contextlib.suppress(CorruptStreamError):  # a broken child is reported by _blocks
            while pos < self._segment_end:
                if pos > start and self._is_cluster_body(pos):
                    break
                child = self._ebml.header(pos, self._segment_end)
                if child.id in ebml.TOP_LEVEL_IDS or child.end is None:
                    break
                pos = child.end
        return min(pos, self._segment_end) if pos <= self._ebml.size else pos

    def _unfinished_crc_at(self, start: int) -> bool:
        return start + len(_UNFINISHED_CRC) <= self._ebml.size and self._ebml.read(start, len(_UNFINISHED_CRC)) == _UNFINISHED_CRC

    def _blocks(
        self, data: bytes, base: int, tracks: Container[int] | None, suspect: bool = False, report: ErrorHandler | None = None
    ) -> Generator[Packet, None, int | None]:
        """Packets of a Cluster's payload; returns the offset of a top-level element met inside.

        With `report`, a child that does not parse is reported and reading resumes at the next
        SimpleBlock that fits the Cluster (the packets after it are no longer `suspect`: frames
        were skipped, so the gap before them is real); without, it is raised.
        """
        view, cluster_ticks = memoryview(data), None
        pos = len(_UNFINISHED_CRC) if view[: len(_UNFINISHED_CRC)] == _UNFINISHED_CRC else 0  # an unpatched Cluster
        while pos < len(view):
            try:
                header, stop = self._child(view, pos, base)
            except CorruptStreamError as exc:
                resume = self._next_block(view, pos) if report is not None and cluster_ticks is not None else None
                if resume is None or report is None:
                    raise
                report(exc)
                pos, suspect = resume, False
                continue
            if header.id in ebml.TOP_LEVEL_IDS:
                return base + pos
            payload = view[pos + header.header_size : stop]
            if header.id == ID.CLUSTER_TIMESTAMP:
                cluster_ticks = ebml.decode_uint(payload)
            elif header.id in (ID.SIMPLE_BLOCK, ID.BLOCK_GROUP):
                if cluster_ticks is None:
                    raise CorruptStreamError("block before the Cluster Timestamp", self.path, header.offset)
                for packet in self._block_packets(header, payload, cluster_ticks, tracks):
                    yield Packet(packet.track, packet.time, packet.data, packet.keyframe, suspect) if suspect else packet
            pos = stop
        return None

    def _child(self, view: memoryview, pos: int, base: int) -> tuple[ElementHeader, int]:
        """The header of the Cluster child at `view[pos]` and where it ends; raises if it does not fit."""
        header = ebml.parse_header(view, pos, base, self.path)
        stop = len(view) if header.size is None else pos + header.header_size + header.size
        if stop > len(view) and header.id not in ebml.TOP_LEVEL_IDS:
            raise CorruptStreamError(f"element 0x{header.id:X} runs past its Cluster", self.path, header.offset)
        return header, stop

    def _next_block(self, view: memoryview, pos: int) -> int | None:
        """Offset in `view` of the next SimpleBlock after `pos` of a known track that ends where
        another child starts (or the Cluster ends), or None."""
        raw = bytes(view)
        hit = pos
        while (hit := raw.find(b"\xa3", hit + 1)) >= 0:
            with contextlib.suppress(CorruptStreamError, ValueError):
                header, stop = self._child(view, hit, 0)
                track, _ = ebml.read_vint(view, hit + header.header_size, keep_marker=False)
                if header.size is not None and track in self._by_number and (stop == len(view) or self._fits(view, stop)):
                    return hit
        return None

    def _fits(self, view: memoryview, pos: int) -> bool:
        header, _ = self._child(view, pos, 0)
        return header.id in (ID.SIMPLE_BLOCK, ID.BLOCK_GROUP, ID.VOID) or header.id in ebml.TOP_LEVEL_IDS

    def _block_packets(
        self, header: ElementHeader, payload: memoryview, cluster_ticks: int, tracks: Container[int] | None
    ) -> Iterator[Packet]:
        keyframe, offset = None, header.data_offset  # None: SimpleBlock, whose flags say
        if header.id == ID.BLOCK_GROUP:
            children = list(ebml.iter_children(payload, header.data_offset, self.path))
            blocks = [(child, data) for child, data in children if child.id == ID.BLOCK]
            if not blocks:
                return
            payload, offset = blocks[0][1], blocks[0][0].data_offset
            keyframe = all(child.id != ID.REFERENCE_BLOCK for child, _ in children)
        try:
            track, length = ebml.read_vint(payload, 0, keep_marker=False)
            relative, flags = struct.unpack_from(">hB", payload, length)
        except (ValueError, struct.error):
            raise CorruptStreamError("bad block header", self.path, offset) from None
        if track is None or (tracks is not None and track not in tracks):
            return
        info = self._by_number.get(track)
        step = (info.default_duration_ns or 0) if info else 0
        start = (cluster_ticks + relative) * self.timestamp_scale_ns - (info.codec_delay_ns if info else 0)
        keyframe = bool(flags & 0x80) if keyframe is None else keyframe
        for index, frame in enumerate(unlace(payload[length + 3 :], (flags >> 1) & 3, offset, self.path)):
            yield Packet(track, Fraction(start + index * step, NS_PER_SECOND), bytes(frame), keyframe)

    def _resync(self, start: int) -> int | None:
        """Offset of the next plausible Cluster (id, or a body whose CRC-32 matches) at or after `start`, or None."""
        while (hit := self._ebml.search(_CLUSTER_OR_BODY, start, 7)) is not None:
            if self._is_cluster_body(hit):
                if self._crc_matches(hit, self._unknown_size_end(hit)):
                    return hit
            else:
                try:
                    header = self._ebml.header(hit, self._segment_end)
                    first = self._ebml.read(header.data_offset, 1)[0]
                except CorruptStreamError:
                    first = -1
                if first in (ID.CRC32, ID.CLUSTER_TIMESTAMP, 0):  # how a real (or unfinished) Cluster begins
                    return hit
            start = hit + 1
        return None

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> MatroskaReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()


def _raise(error: CorruptStreamError) -> None:
    raise error
