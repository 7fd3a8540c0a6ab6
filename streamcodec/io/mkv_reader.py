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
hit keeps its frames, also when its id reads as another Segment child's (Cues, Info…): such an
element is never loaded as an index, and one that does not hold a Cluster but stands where the Cues
place one, or repeats an Info or Tracks, is reported (see mkv_clusters). A file our own writer
left unfinished (killed encode: Segment of unknown size) is reported as truncated before any
packet; our live-style stream (written to a pipe: Segment of unknown size, a SeekHead, Cues last)
that ends before its Cues was cut, and is reported so. Every walk over the file only moves
forward, and SeekHead chains are bounded, so damage can never make the reader loop.

Times are Fractions of seconds: stored timestamp × TimestampScale − the track's CodecDelay, the
inverse of what `MatroskaWriter` stores.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Container, Iterator
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
from streamcodec.io.matroska import NS_PER_SECOND, Packet, TrackInfo, read_tag, string_field, track_info, uint_field
from streamcodec.io.mkv_clusters import CLUSTER_BODY, ClusterReader, ErrorHandler
from streamcodec.io.stdio import STDIN_NAME, is_stdio, spool_stdin

__all__ = ["ErrorHandler", "MatroskaReader", "Packet", "TrackInfo"]  # Packet, TrackInfo live in matroska

MAX_INDEX_BYTES = 64 << 20
MAX_SEEKS = 1024  # Seek entries followed in all, however SeekHeads chain
MAX_TIMESTAMP_SCALE = NS_PER_SECOND
MAX_DURATION_S = 10**7  # about 116 days
OUR_MUXING_APP = "streamcodec"
_INDEX_NAMES = {ID.SEEK_HEAD: "SeekHead", ID.INFO: "Info", ID.TRACKS: "Tracks", ID.TAGS: "Tags", ID.CUES: "Cues"}
_HEAD_IDS = frozenset({*_INDEX_NAMES, ID.VOID, ID.CRC32, ID.CHAPTERS, ID.ATTACHMENTS})
_TOP_LEVEL = re.compile(b"|".join(re.escape(ebml.encode_id(i)) for i in (*_INDEX_NAMES, ID.CLUSTER)) + b"|" + CLUSTER_BODY)


class MatroskaReader(ClusterReader):
    """A Matroska file opened for reading: `tracks`, `tags`, `cues`, `damage`, then `packets()`."""

    def __init__(self, path: str | os.PathLike[str], *, salvage: bool = False) -> None:
        """Open `path` and read its header, Info, Tracks, Tags and Cues.

        Args:
            path: the file, or `-`: stdin, read whole into a temporary file first (see stdio.spool_stdin).
            salvage: read a Tracks element that fails its CRC-32 when its content parses (with a
                warning in `damage`) instead of refusing the file.

        Raises:
            InputNotFoundError: no such file.
            UnreadableInputError: a folder; for `-`, a terminal or an empty stdin.
            CorruptStreamError: not a Matroska file, no usable Tracks, an Info that holds an
                impossible TimestampScale, or the file is cut before its Tracks.
            UnsupportedStreamError: a Matroska version this reader does not know.
        """
        self.path = STDIN_NAME if is_stdio(path) else Path(path)
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
            self._file = spool_stdin() if is_stdio(path) else open(self.path, "rb")  # noqa: SIM115 (open until close())
        except FileNotFoundError:
            raise InputNotFoundError("no such file", self.path) from None
        except IsADirectoryError:
            raise UnreadableInputError("is a directory, not a Matroska file", self.path) from None
        try:
            self._ebml = ebml.EbmlFile(self._file, self.path, os.fstat(self._file.fileno()).st_size)
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
        self._cut_message = "file ends before its Segment does (truncated)"
        if segment.size is None and not self._unfinished and self._index_past_end():
            # A Segment of unknown size has no end to miss: its index tells that the file was cut.
            self._truncated, self._cut_message = True, "file ends before the index elements its SeekHead points at (truncated)"
        # Our stream to a pipe ends with its Cues (see mkv_writer): without them it was cut.
        self._cues_met = ID.CUES in self._loaded or any(i == ID.CUES for i, _ in self._seeks)
        self._stream_cut = segment.size is None and self.muxing_app == OUR_MUXING_APP and not self._unfinished
        self._resolve_index()

    def _second(self, element: ElementHeader) -> bool:
        return element.id in (ID.INFO, ID.TRACKS) and element.id in self._loaded

    def _index_past_end(self) -> bool:
        """Whether a SeekHead points at an index element at or past the end of the file."""
        return any(i in _INDEX_NAMES and self._segment_start + at >= self._ebml.size for i, at in self._seeks[:MAX_SEEKS])

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
            # A Cluster, one whose id was hit, or a second Info or Tracks (for packets() to report).
            if element.id == ID.CLUSTER or self._is_cluster_body(pos) or self._holds_cluster(element) or self._second(element):
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
        repeat = element.id in self._loaded and element.id != ID.SEEK_HEAD
        if name is None or element.offset in self._visited or repeat or self._holds_cluster(element):
            return True  # not an index element, a second one, or a Cluster whose id was hit
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
                tags.append(read_tag(data, header.data_offset, self.path))
            elif header.id == ID.CUE_POINT:
                cues += self._cue_point(header, data)
        self._raw_tags += tags
        self._raw_cues += cues
        if element.id == ID.CUES:
            self._cues_end = element.end

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
        self._consumed, self._met = 0, {}  # _consumed: the end of the last Cluster read (never read one twice)
        while pos is not None and pos < self._segment_end:
            start = pos
            try:
                pos = yield from self._element_packets(start, tracks, report)
            except CorruptStreamError as exc:
                report(exc)
                pos = self._resync(max(start + 1, self._consumed))
        if self._truncated and not self._cut_reported:
            report(TruncatedStreamError(self._cut_message, self.path, self._ebml.size))
        elif self._stream_cut and not self._cues_met and not self._cut_reported:
            report(TruncatedStreamError("stream ends before its Cues (truncated: a cut pipe?)", self.path, self._ebml.size))

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> MatroskaReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()


def _raise(error: CorruptStreamError) -> None:
    raise error
