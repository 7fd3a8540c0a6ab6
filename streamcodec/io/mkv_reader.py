"""Matroska reader: track headers, tags and cues up front, then packets cluster by cluster.

Damage is reported, never hidden. Every index element read at open (SeekHead, Info, Tracks,
Tags, Cues) must pass its CRC-32 or opening fails. While packets stream, a bad Cluster CRC, a
broken structure or a truncated file each give a `CorruptStreamError` to the caller's `on_error`
(raised when there is none). Packets that still parse are yielded anyway — the caller's per-frame
checks decide — and after a broken structure the reader resynchronises on the next Cluster id.

Times are Fractions of seconds: stored timestamp × TimestampScale − the track's CodecDelay, the
inverse of what `MatroskaWriter` stores.
"""

from __future__ import annotations

import contextlib
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
_INDEX_NAMES = {ID.SEEK_HEAD: "SeekHead", ID.INFO: "Info", ID.TRACKS: "Tracks", ID.TAGS: "Tags", ID.CUES: "Cues"}

ErrorHandler = Callable[[CorruptStreamError], None]


class MatroskaReader:
    """A Matroska file opened for reading: `tracks`, `tags`, `cues`, then `packets()`."""

    def __init__(self, path: Path) -> None:
        """Open `path` and read its header, Info, Tracks, Tags and Cues.

        Raises:
            InputNotFoundError: no such file.
            CorruptStreamError: not a Matroska file, an index element fails its CRC-32, or the
                file is cut before its Tracks.
            UnsupportedStreamError: a Matroska version this reader does not know.
        """
        self.path = Path(path)
        self.tracks: list[TrackInfo] = []
        self.tags: dict[str, str] = {}
        self.track_tags: dict[int, dict[str, str]] = {}
        self.timestamp_scale_ns = 1_000_000
        self.duration: Fraction | None = None
        self.title: str | None = None
        self.cues: list[tuple[Fraction, int, int]] = []  # (time, track, file offset of the Cluster)
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
        declared_end = segment.end if segment.end is not None else self._ebml.size
        self._truncated = declared_end > self._ebml.size
        self._segment_end = min(declared_end, self._ebml.size)
        self._loaded: dict[int, int] = {}  # index element id → offset (SeekHeads may chain)
        self._seeks: list[tuple[int, int]] = []
        self._raw_tags: list[tuple[list[int] | None, dict[str, str]]] = []  # resolved once Tracks are known
        self._raw_cues: list[tuple[int, int, int]] = []
        self._first_cluster = self._scan(self._segment_start, past_clusters=False)
        for element_id, position in self._seeks:  # the list grows while iterating if SeekHeads chain
            at = self._segment_start + position
            if element_id in _INDEX_NAMES and at not in self._loaded.values() and at < self._ebml.size:
                self._load_at(at)
        if ID.SEEK_HEAD not in self._loaded and self._first_cluster is not None:
            with contextlib.suppress(CorruptStreamError):  # damaged clusters are for packets() to report
                self._scan(self._first_cluster, past_clusters=True)
        if ID.TRACKS not in self._loaded:
            raise CorruptStreamError("no Tracks element", self.path, self._segment_start)
        self._resolve_index()

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

    def _scan(self, pos: int, past_clusters: bool) -> int | None:
        """Read the index elements from `pos` on; returns the first Cluster's offset (or None).

        Stops at the first Cluster unless `past_clusters`, which hops over Clusters by their sizes
        to find index elements after them (for files without a SeekHead).
        """
        while pos < self._segment_end:
            element = self._ebml.header(pos, self._segment_end)
            if element.id == ID.CLUSTER and not past_clusters:
                return pos
            self._load(element)
            if element.end is None:
                break
            pos = element.end
        return None

    def _load_at(self, offset: int) -> None:
        """Load the index element a SeekHead points at; a bad pointer is ignored, not fatal."""
        try:
            element = self._ebml.header(offset, self._segment_end)
        except CorruptStreamError:
            return
        self._load(element)

    def _load(self, element: ElementHeader) -> None:
        """Read, CRC-check and parse one index element; others, and repeats, are skipped."""
        name = _INDEX_NAMES.get(element.id)
        if name is None or (element.id in self._loaded and element.id != ID.SEEK_HEAD):
            return
        if element.id != ID.TRACKS and (element.end is None or element.end > self._ebml.size):
            return  # cut off by a truncated file: packets() reports the truncation
        payload = self._ebml.payload(element)
        ebml.check_crc(payload, element.data_offset, self.path, name)
        self._loaded[element.id] = element.offset
        read = {ID.SEEK_HEAD: self._read_seek_head, ID.INFO: self._read_info, ID.TRACKS: self._read_tracks}
        read.get(element.id, self._read_tags_or_cues)(element.id, ebml.iter_children(payload, element.data_offset, self.path))

    def _read_seek_head(self, _: int, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        for header, seek in children:
            fields = ebml.children_dict(seek, header.data_offset, self.path) if header.id == ID.SEEK else {}
            if ID.SEEK_ID in fields and ID.SEEK_POSITION in fields:
                self._seeks.append((ebml.decode_uint(fields[ID.SEEK_ID]), ebml.decode_uint(fields[ID.SEEK_POSITION])))

    def _read_info(self, _: int, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        fields = {header.id: bytes(data) for header, data in children}
        self.timestamp_scale_ns = uint_field(fields, ID.TIMESTAMP_SCALE, 1_000_000) or 1_000_000
        self.title = string_field(fields, ID.TITLE) if ID.TITLE in fields else None
        if ID.DURATION in fields:
            ticks = ebml.decode_float(fields[ID.DURATION])
            self.duration = Fraction(round(ticks * self.timestamp_scale_ns), NS_PER_SECOND)

    def _read_tracks(self, _: int, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        for header, entry in children:
            if header.id == ID.TRACK_ENTRY:
                self.tracks.append(track_info(bytes(entry), header.data_offset, self.path))

    def _read_tags_or_cues(self, _: int, children: Iterator[tuple[ElementHeader, memoryview]]) -> None:
        for header, data in children:
            if header.id == ID.TAG:
                self._raw_tags.append(self._tag(header, data))
            elif header.id == ID.CUE_POINT:
                self._cue_point(header, data)

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

    def _cue_point(self, header: ElementHeader, data: memoryview) -> None:
        ticks, positions = 0, []
        for child, value in ebml.iter_children(data, header.data_offset, self.path):
            if child.id == ID.CUE_TIME:
                ticks = ebml.decode_uint(value)
            elif child.id == ID.CUE_TRACK_POSITIONS:
                where = ebml.children_dict(value, child.data_offset, self.path)
                cluster = self._segment_start + uint_field(where, ID.CUE_CLUSTER_POSITION)
                positions.append((uint_field(where, ID.CUE_TRACK), cluster))
        self._raw_cues += [(ticks, track, cluster) for track, cluster in positions]

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
                after which reading goes on; when None, the first error is raised.

        Returns:
            An iterator of Packets.
        """
        report = on_error if on_error is not None else _raise
        pos, self._cut_reported = self._first_cluster, False
        while pos is not None and pos < self._segment_end:
            start = pos
            try:
                pos = yield from self._element_packets(start, tracks, report)
            except CorruptStreamError as exc:
                report(exc)
                pos = self._resync(start + 1)
        if self._truncated and not self._cut_reported:
            report(TruncatedStreamError("file ends before its Segment does (truncated)", self.path, self._ebml.size))

    def _element_packets(
        self, pos: int, tracks: Container[int] | None, report: ErrorHandler
    ) -> Generator[Packet, None, int | None]:
        """Packets of the top-level element at `pos`; returns where the next element starts."""
        element = self._ebml.header(pos, self._segment_end)
        if element.id != ID.CLUSTER:
            if element.end is None or element.end > self._ebml.size:
                self._cut_reported = element.end is not None
                raise TruncatedStreamError(f"element 0x{element.id:X} runs past the end of the file (truncated)", self.path, pos)
            return element.end
        end = element.end if element.end is not None else self._unknown_size_end(element)
        if end - element.data_offset > MAX_CLUSTER_BYTES:
            raise CorruptStreamError("implausibly large Cluster", self.path, pos)
        data = self._ebml.read(element.data_offset, min(end, self._ebml.size) - element.data_offset)
        if end > self._ebml.size:
            with contextlib.suppress(CorruptStreamError):  # the cut-off block is the truncation itself
                yield from self._blocks(data, element.data_offset, tracks)
            self._cut_reported = True
            raise TruncatedStreamError("Cluster runs past the end of the file (truncated)", self.path, pos)
        try:
            ebml.check_crc(data, element.data_offset, self.path, "Cluster")
        except CorruptStreamError as exc:
            report(exc)  # the blocks still come out: per-frame checks tell which are damaged
        inner = yield from self._blocks(data, element.data_offset, tracks)
        if inner is not None:
            report(CorruptStreamError("Cluster size runs into the next element", self.path, pos))
            return inner
        return end

    def _unknown_size_end(self, cluster: ElementHeader) -> int:
        """End of a Cluster of unknown size: the first top-level element after its children."""
        pos = cluster.data_offset
        with contextlib.suppress(CorruptStreamError):  # a broken child is reported by _blocks
            while pos < self._segment_end:
                child = self._ebml.header(pos, self._segment_end)
                if child.id in ebml.TOP_LEVEL_IDS or child.end is None:
                    break
                pos = child.end
        return min(pos, self._segment_end) if pos <= self._ebml.size else pos

    def _blocks(self, data: bytes, base: int, tracks: Container[int] | None) -> Generator[Packet, None, int | None]:
        """Packets of a Cluster's payload; returns the offset of a top-level element met inside."""
        view, pos, cluster_ticks = memoryview(data), 0, None
        while pos < len(view):
            header = ebml.parse_header(view, pos, base, self.path)
            if header.id in ebml.TOP_LEVEL_IDS:
                return base + pos
            stop = len(view) if header.size is None else pos + header.header_size + header.size
            if stop > len(view):
                raise CorruptStreamError(f"element 0x{header.id:X} runs past its Cluster", self.path, header.offset)
            payload = view[pos + header.header_size : stop]
            if header.id == ID.CLUSTER_TIMESTAMP:
                cluster_ticks = ebml.decode_uint(payload)
            elif header.id in (ID.SIMPLE_BLOCK, ID.BLOCK_GROUP):
                if cluster_ticks is None:
                    raise CorruptStreamError("block before the Cluster Timestamp", self.path, header.offset)
                yield from self._block_packets(header, payload, cluster_ticks, tracks)
            pos = stop
        return None

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
        """Offset of the next plausible Cluster at or after `start`, or None."""
        while (hit := self._ebml.find(ebml.encode_id(ID.CLUSTER), start)) is not None:
            try:
                header = self._ebml.header(hit, self._segment_end)
                first = self._ebml.read(header.data_offset, 1)[0]
            except CorruptStreamError:
                first = -1
            if first in (ID.CRC32, ID.CLUSTER_TIMESTAMP):  # how a real Cluster begins
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
