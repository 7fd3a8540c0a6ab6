"""Reading Clusters: packets of one Cluster at a time, and resynchronising after damage.

The packet half of `MatroskaReader` (see mkv_reader for the whole story). A Cluster whose header
was hit is found again by its body (a CRC-32 element, then the Cluster Timestamp, as our writer
starts one) when that body's CRC-32 matches; a Cluster whose size was hit is re-measured from
its children; a child that does not parse is skipped up to the next SimpleBlock that fits. A
Cluster that fails (or lacks) its CRC-32 ends where an intact Cluster starts inside it (a splice
cut it), and so does any other top-level element that runs over one. A Cluster whose id was hit
into another Segment child's (Cues, Info…) is read as a Cluster when its content begins as one;
otherwise a Segment child where the Cues place a Cluster, or a second one of a kind that occurs
once, is reported, so that the frames missing around it are counted. Every search only moves
forward.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Callable, Container, Generator, Iterator
from fractions import Fraction
from pathlib import Path

from streamcodec.errors import CorruptStreamError, TruncatedStreamError
from streamcodec.io import ebml
from streamcodec.io.ebml import ID, ElementHeader
from streamcodec.io.matroska import NS_PER_SECOND, Packet, TrackInfo, unlace

MAX_CLUSTER_BYTES = 512 << 20  # a larger size is taken for damage rather than read into memory
# How our writer starts a Cluster's payload: a CRC-32 element, then the Cluster Timestamp.
CLUSTER_BODY = rb"\xbf\x84[\x00-\xff]{4}\xe7"
_CLUSTER_OR_BODY = re.compile(re.escape(ebml.encode_id(ID.CLUSTER)) + b"|" + CLUSTER_BODY)
_CLUSTER_ID = ebml.encode_id(ID.CLUSTER)
_UNFINISHED_CRC = bytes(ebml.CRC_ELEMENT_SIZE)  # the writer's placeholder before a Cluster is patched
_SEGMENT_CHILDREN = frozenset(
    {ID.SEEK_HEAD, ID.INFO, ID.TRACKS, ID.TAGS, ID.CUES, ID.VOID, ID.CRC32, ID.CHAPTERS, ID.ATTACHMENTS, ID.CLUSTER}
)
# Segment children with a 4-byte id, as a hit Cluster id can read; all but Tags occur once (SeekHead: once
# more, pointed at by the first).
NAMES = {
    ID.SEEK_HEAD: "SeekHead",
    ID.INFO: "Info",
    ID.TRACKS: "Tracks",
    ID.TAGS: "Tags",
    ID.CUES: "Cues",
    ID.CHAPTERS: "Chapters",
    ID.ATTACHMENTS: "Attachments",
}
_ONCE = frozenset(NAMES) - {ID.TAGS}

ErrorHandler = Callable[[CorruptStreamError], None]


class ClusterReader:
    """Cluster-by-Cluster packet reading; `MatroskaReader` provides the file and the track table."""

    path: Path
    timestamp_scale_ns: int
    _ebml: ebml.EbmlFile
    _segment_end: int
    _by_number: dict[int, TrackInfo]
    _consumed: int
    _cut_reported: bool
    _cues_met: bool  # a Cues element was seen (at open, or while walking the Clusters)
    cues: list[tuple[Fraction, int, int]]  # (time, track, file offset of the Cluster)
    _loaded: dict[int, int]  # index element id → offset of the one read at open
    _met: dict[int, int]  # element id → offset of the first of its kind met while walking the Clusters

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
        if self._holds_cluster(element):
            name = NAMES[element.id]
            message = f"Cluster id is damaged (reads 0x{element.id:X}, {name}'s, over a Cluster's content); read as a Cluster"
            report(CorruptStreamError(message, self.path, pos))
            return (yield from self._cluster_packets(element.data_offset, element.end, pos, tracks, report))
        if element.end is None or element.end > self._ebml.size:
            self._cut_reported = element.end is not None
            raise TruncatedStreamError(f"element 0x{element.id:X} runs past the end of the file (truncated)", self.path, pos)
        inner = self._intact_cluster_within(element.data_offset, element.end)
        self._cues_met = self._cues_met or (element.id == ID.CUES and inner is None)
        if inner is not None:  # a false element (a top-level id inside a spliced-in SeekHead, say) swallowing a Cluster
            report(CorruptStreamError(f"element 0x{element.id:X} runs over an intact Cluster; reading on there", self.path, pos))
            return inner
        if (suspicion := self._out_of_place(element)) is not None:
            report(CorruptStreamError(suspicion, self.path, pos))
        return element.end

    def _holds_cluster(self, element: ElementHeader) -> bool:
        """Whether a Segment child of another kind holds a Cluster's content, so its id was hit: its payload
        begins as our writer begins a Cluster's (CRC-32, then the Cluster Timestamp) or with the Timestamp."""
        start = element.data_offset
        if element.id not in NAMES or start >= self._ebml.size:
            return False
        return self._is_cluster_body(start) or self._ebml.read(start, 1)[0] == ID.CLUSTER_TIMESTAMP

    def _out_of_place(self, element: ElementHeader) -> str | None:
        """Why a Segment child met among the Clusters is taken for a Cluster whose id was hit, or None.

        It stands where the Cues place a Cluster, or it is a second one of a kind that occurs once
        (not the one read at open): either way, frames may be missing around it.
        """
        assert element.end is not None
        if self._loaded.get(element.id) == element.offset:
            return None
        name = NAMES.get(element.id, f"element 0x{element.id:X}")
        covered = sorted(at for _, _, at in self.cues if element.offset <= at < element.end)
        if covered:
            return f"{name} covers the Cluster the Cues place at byte {covered[0]} (a damaged Cluster id?); its frames are lost"
        first = self._met.setdefault(element.id, self._loaded.get(element.id, element.offset))
        if element.id in _ONCE and first != element.offset:
            return f"a second {name} (the first at byte {first}) among the Clusters: a damaged Cluster id?"
        return None

    def _cluster_packets(
        self, start: int, declared_end: int | None, pos: int, tracks: Container[int] | None, report: ErrorHandler
    ) -> Generator[Packet, None, int | None]:
        """Packets of the Cluster whose payload starts at `start`; returns where the next element starts."""
        end = self._cluster_end(start, declared_end, pos, report)
        data = self._ebml.read(start, min(end, self._ebml.size) - start)
        self._consumed = max(self._consumed, min(end, self._ebml.size))
        try:
            intact, mismatch = ebml.check_crc(data, start, self.path, "Cluster"), None
        except CorruptStreamError as exc:
            intact, mismatch = False, exc
        walked = self._unknown_size_end(start) if mismatch is not None and end <= self._ebml.size else end
        if walked != end and walked <= self._ebml.size and self._crc_matches(start, walked):
            # The size was hit, not the content: read up to where the children end.
            report(CorruptStreamError("Cluster size is damaged; its content is intact", self.path, pos))
            data, end, intact, mismatch = self._ebml.read(start, walked - start), walked, True, None
            self._consumed = max(self._consumed, end)
        # No CRC-32 where our writer puts one, or a wrong one: a splice may have cut this Cluster
        # and its size run over the next, intact one, which is read on its own.
        inner = None if intact else self._intact_cluster_inside(start, data)
        if inner is not None:
            if mismatch is not None:
                report(mismatch)
            report(CorruptStreamError("Cluster is cut short by the next Cluster", self.path, pos))
            data, end, mismatch = data[: inner - start], inner, None
            self._consumed = inner  # that Cluster is still to be read
            suspect = True
        elif end > self._ebml.size:
            with contextlib.suppress(CorruptStreamError):  # the cut-off block is the truncation itself
                yield from self._blocks(data, start, tracks)
            self._cut_reported = True
            raise TruncatedStreamError("Cluster runs past the end of the file (truncated)", self.path, pos)
        else:
            suspect = mismatch is not None
            if mismatch is not None:
                report(mismatch)  # the blocks still come out: per-frame checks tell which are damaged
        inner = yield from self._blocks(data, start, tracks, suspect, report)
        if inner is not None:
            report(CorruptStreamError("Cluster size runs into the next element", self.path, pos))
            return inner
        return end

    def _cluster_end(self, start: int, declared_end: int | None, pos: int, report: ErrorHandler) -> int:
        """Where the Cluster whose payload starts at `start` ends: its declared size unless that is damaged."""
        end = declared_end if declared_end is not None else self._unknown_size_end(start)
        if end - start > MAX_CLUSTER_BYTES:
            end = self._unknown_size_end(start)  # a damaged size: the children say where it ends
            report(CorruptStreamError("implausibly large Cluster size; reading its children", self.path, pos))
        if end > self._ebml.size and declared_end is not None:
            walked = self._unknown_size_end(start)
            if walked <= self._ebml.size and self._crc_matches(start, walked):  # the size was hit, not the file
                report(CorruptStreamError("Cluster size is damaged; its content is intact", self.path, pos))
                end = walked
            elif walked < self._ebml.size and self._element_fits(walked):  # its children lead to the next element
                report(CorruptStreamError("Cluster size is damaged; reading its children", self.path, pos))
                end = walked
        return end

    def _element_fits(self, pos: int) -> bool:
        """Whether a whole Segment child starts at `pos`: a Cluster that begins as one does, or another that ends in the file."""
        try:
            header = self._ebml.header(pos, self._segment_end)
            if header.id == ID.CLUSTER:
                return self._ebml.read(header.data_offset, 1)[0] in (ID.CRC32, ID.CLUSTER_TIMESTAMP)
        except CorruptStreamError:
            return False
        return header.id in _SEGMENT_CHILDREN and header.end is not None and header.end <= self._ebml.size

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
        return re.fullmatch(CLUSTER_BODY, self._ebml.read(pos, 7)) is not None

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
                try:
                    blocks = list(self._block_packets(header, payload, cluster_ticks, tracks))
                except CorruptStreamError as exc:
                    if report is None:
                        raise
                    report(exc)  # its size is sound: skip just this block, and its frame counts as lost
                    blocks, suspect = [], False
                for packet in blocks:
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
        another child starts (or the Cluster ends), or of a Cluster that begins before it (a
        damaged Cluster size can swallow the next Cluster: that one is read whole, with its own
        timestamp), or None."""
        raw = bytes(view)
        cluster = self._next_cluster_header(view, raw, pos)
        hit = pos
        while (hit := raw.find(b"\xa3", hit + 1)) >= 0 and (cluster is None or hit < cluster):
            with contextlib.suppress(CorruptStreamError, ValueError):
                header, stop = self._child(view, hit, 0)
                track, _ = ebml.read_vint(view, hit + header.header_size, keep_marker=False)
                if header.size is not None and track in self._by_number and (stop == len(view) or self._fits(view, stop)):
                    return hit
        return cluster

    def _intact_cluster_inside(self, start: int, data: bytes) -> int | None:
        """File offset of the first Cluster inside `data` (a Cluster's payload from `start`) whose own CRC-32 matches."""
        view, pos = memoryview(data), 0
        while (hit := self._next_cluster_header(view, data, pos)) is not None:
            with contextlib.suppress(CorruptStreamError):
                header = ebml.parse_header(view, hit, start, self.path)
                if header.end is not None and self._crc_matches(header.data_offset, header.end):
                    return start + hit
            pos = hit
        return None

    def _intact_cluster_within(self, start: int, end: int, window: int = 1 << 20) -> int | None:
        """File offset of the first Cluster in [start, end) whose own CRC-32 matches, read a window at a time."""
        for pos in range(start, end, window):
            data = self._ebml.read(pos, min(window + len(_CLUSTER_ID) - 1, self._ebml.size - pos, end - pos + 3))
            hit = data.find(_CLUSTER_ID)
            while hit >= 0 and pos + hit < end:
                if self._intact_cluster_at(pos + hit):
                    return pos + hit
                hit = data.find(_CLUSTER_ID, hit + 1)
        return None

    def _intact_cluster_at(self, pos: int) -> bool:
        try:
            header = self._ebml.header(pos, self._segment_end)
        except CorruptStreamError:
            return False
        return header.end is not None and self._crc_matches(header.data_offset, header.end)

    def _next_cluster_header(self, view: memoryview, raw: bytes, pos: int) -> int | None:
        """Offset in `view` of the next Cluster id after `pos` whose payload begins as a Cluster's does."""
        hit = pos
        while (hit := raw.find(_CLUSTER_ID, hit + 1)) >= 0:
            with contextlib.suppress(CorruptStreamError, IndexError):
                header = ebml.parse_header(view, hit, 0, self.path)
                if view[hit + header.header_size] in (ID.CRC32, ID.CLUSTER_TIMESTAMP):
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
        if track not in self._by_number:  # Tracks declares every track: this number was hit
            raise CorruptStreamError(f"block of undeclared track {track}", self.path, offset)
        if tracks is not None and track not in tracks:
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
