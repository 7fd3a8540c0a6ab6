"""Streaming Matroska writer for the codec's own track plus copied audio and a preview track.

FFmpeg cannot mux a codec it does not know (see /work/shared/MATROSKA.md), so this writes the
container itself. Layout of the file:

    EBML header
    Segment (size patched at close)
      SeekHead (space reserved with a Void, filled in at close) → Info, Tracks, Tags, Cues
      Info (Duration patched at close)   Tracks   Tags
      Cluster … Cluster                  (written as packets arrive, each patched when it ends)
      Cues                               (one CuePoint per keyframe of track 1)

Every top-level element starts with a CRC-32 element. The file is written under a locked temporary
name next to `path` and renamed onto it only when `close()` succeeds; an existing `path` is refused
unless `force` is given (see safe_output: stale temporaries of killed writers are removed first).

Timestamps: `time` is a packet's presentation time in seconds; Matroska stores `time + CodecDelay`
rounded to the nearest tick (readers subtract CodecDelay again) and no stored time may be negative.
Negative times (audio priming: AAC from MP4 starts at -1024 samples) are handled per track. An
audio track whose TrackSpec leaves `codec_delay_ns` None gets CodecDelay = -(its first time) when
that is negative, patched into Tracks at close, so its times survive exactly and stay in sync.
A time still negative after adding CodecDelay (video, or audio before its declared delay) is
clamped to 0 and reads back as -CodecDelay.
"""

from __future__ import annotations

import collections
import contextlib
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import BinaryIO

from streamcodec.errors import EmptyOutputError, OutputError, StreamcodecError
from streamcodec.io import ebml
from streamcodec.io.ebml import ID
from streamcodec.io.matroska import NS_PER_SECOND, TrackSpec, cue_point, ebml_header, seek_entry, tag_element, track_entry
from streamcodec.io.safe_output import Partial, check_file_target, publish_file, remove_stale_partials

__all__ = ["MatroskaWriter", "TrackSpec"]  # TrackSpec lives in matroska; re-exported for callers

SEEK_HEAD_SPACE = 128  # SeekHead with 4 fixed-width entries is 95 bytes; the rest is a Void
CLUSTER_HEADER_SIZE = 12  # 4-byte id + 8-byte size, so the size can be patched in place
MAX_CLUSTER_NS = 5 * NS_PER_SECOND
MAX_BUFFERED_NS = 10 * NS_PER_SECOND
MAX_BUFFERED_BYTES = 64 << 20
_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_NO_TRACK_TAGS: Mapping[int, Mapping[str, str]] = MappingProxyType({})


_Pending = tuple[int, int, bytes, bool]  # (ticks, track, data, keyframe)


class _Interleaver:
    """Holds packets until every open track has reached their timestamp, then releases them.

    Each track keeps its own arrival order; across tracks the earliest head goes first (ties:
    lower track number). When the buffer exceeds its time span or byte budget, the earliest
    packets are released anyway, so a silent or lagging track cannot hold memory hostage.
    """

    def __init__(self, tracks: Sequence[int], max_span: int, max_bytes: int) -> None:
        self.queues: dict[int, collections.deque[_Pending]] = {t: collections.deque() for t in tracks}
        self.reached: dict[int, int | None] = {t: None for t in tracks}
        self.ended: set[int] = set()
        self.max_span, self.max_bytes, self.bytes = max_span, max_bytes, 0

    def push(self, packet: _Pending) -> list[_Pending]:
        ticks, track = packet[0], packet[1]
        self.queues[track].append(packet)
        self.bytes += len(packet[2])
        self.reached[track] = max(ticks, self.reached[track] or 0)
        return self._release(force=False)

    def end(self, track: int) -> list[_Pending]:
        self.ended.add(track)
        return self._release(force=False)

    def drain(self) -> list[_Pending]:
        return self._release(force=True)

    def _earliest(self) -> int | None:
        heads = [(q[0][0], track) for track, q in self.queues.items() if q]
        return min(heads)[1] if heads else None

    def _may_release(self, ticks: int) -> bool:
        return all(track in self.ended or (r is not None and r >= ticks) for track, r in self.reached.items())

    def _over_budget(self, ticks: int) -> bool:
        newest = max((r for r in self.reached.values() if r is not None), default=ticks)
        return self.bytes > self.max_bytes or newest - ticks > self.max_span

    def _release(self, force: bool) -> list[_Pending]:
        """The packets that may go to the file now, in order."""
        ready = []
        while (track := self._earliest()) is not None:
            ticks = self.queues[track][0][0]
            if not (force or self._may_release(ticks) or self._over_budget(ticks)):
                break
            ready.append(self.queues[track].popleft())
            self.bytes -= len(ready[-1][2])
        return ready


class MatroskaWriter:
    """Write packets of several tracks into a Matroska file, streaming clusters to disk.

    Use as a context manager: leaving the block normally calls `close()`, an exception calls
    `abort()`. Memory holds only the interleaving buffer, the open cluster's bookkeeping and one
    small Cues entry per keyframe of track 1.
    """

    def __init__(
        self,
        path: Path,
        tracks: Sequence[TrackSpec],
        *,
        title: str | None = None,
        writing_app: str,
        tags: Mapping[str, str] = _NO_TAGS,
        track_tags: Mapping[int, Mapping[str, str]] = _NO_TRACK_TAGS,
        timestamp_scale_ns: int = 1_000_000,
        force: bool = False,
    ) -> None:
        """Create the temporary file and write everything up to the first Cluster.

        Args:
            path: final file; written only by a successful `close()`.
            tracks: the tracks, in the order their TrackEntries are written; numbers unique,
                1..126, including track 1.
            title: Segment title.
            writing_app: the application name written as WritingApp.
            tags: global tags (TargetTypeValue 50).
            track_tags: per-track tags, keyed by track number.
            timestamp_scale_ns: nanoseconds per timestamp tick (Matroska's default 1 ms).
            force: replace an existing `path` (else OutputExistsError, here and again at close).
        """
        numbers = [spec.number for spec in tracks]
        if len(set(numbers)) != len(numbers) or 1 not in numbers:
            raise ValueError(f"track numbers must be unique and include 1, got {numbers}")
        if timestamp_scale_ns <= 0:
            raise ValueError(f"timestamp_scale_ns must be > 0, got {timestamp_scale_ns}")
        if unknown := set(track_tags) - {spec.number for spec in tracks}:
            raise ValueError(f"track_tags name unknown tracks {sorted(unknown)}")
        self.path = Path(path)
        self._force = force
        with self._io_errors():
            check_file_target(self.path, force)
        self.scale = timestamp_scale_ns
        self.specs = {spec.number: spec for spec in tracks}
        self.uids = {spec.number: int.from_bytes(os.urandom(8), "big") | 1 for spec in tracks}
        self._title, self._writing_app = title, writing_app
        self._segment_uuid = os.urandom(16)
        self._interleaver = _Interleaver(list(self.specs), MAX_BUFFERED_NS // self.scale, MAX_BUFFERED_BYTES)
        self._delays = {spec.number: spec.codec_delay_ns or 0 for spec in tracks}
        self._seen: set[int] = set()  # tracks that have had their first packet
        self._cues: list[tuple[int, int, int]] = []
        self._cluster: tuple[int, int] | None = None  # (file offset, timestamp in ticks)
        self._cluster_crc = 0
        self._end_ticks = Fraction(0)
        self._primary_packets = 0
        self._closed = False
        with self._io_errors():
            self._file = self._create_temporary()
        try:
            with self._io_errors():
                self._write_head(tags, track_tags)
        except BaseException:
            self.abort()
            raise

    def _create_temporary(self) -> BinaryIO:
        """Create `.NAME.partial-XXXXXXXX` next to `path`, locked while we write, after removing stale ones."""
        remove_stale_partials(self.path)
        self._partial = Partial.create(self.path)
        self._temp = self._partial.path
        return os.fdopen(self._partial.fd, "w+b", closefd=False)  # the lock lives on the partial's fd

    def _write_head(self, tags: Mapping[str, str], track_tags: Mapping[int, Mapping[str, str]]) -> None:
        self._file.write(ebml_header())
        self._file.write(ebml.encode_id(ID.SEGMENT))
        self._segment_size_at = self._file.tell()
        self._file.write(ebml.encode_size(None, 8))
        self._segment_start = self._file.tell()
        self._file.write(ebml.void_element(SEEK_HEAD_SPACE))
        self._info_at = self._file.tell()
        self._file.write(self._info(0.0))
        self._tracks_at = self._file.tell()
        self._seek_entries = [(ID.INFO, self._info_at - self._segment_start), (ID.TRACKS, self._tracks_at - self._segment_start)]
        self._file.write(self._tracks())
        tag_elements = [tag_element(tags, None)] if tags else []
        tag_elements += [tag_element(t, self.uids[number]) for number, t in sorted(track_tags.items()) if t]
        if tag_elements:
            self._seek_entries.append((ID.TAGS, self._file.tell() - self._segment_start))
            self._file.write(ebml.master_element(ID.TAGS, tag_elements, crc=True))

    def _tracks(self) -> bytes:
        # In the caller's order: readers number streams by TrackEntry order, and players that
        # ignore FlagDefault pick the first video track.
        entries = [track_entry(spec, self.uids[number], self._delays[number]) for number, spec in self.specs.items()]
        return ebml.master_element(ID.TRACKS, entries, crc=True)

    def _info(self, duration_ticks: float) -> bytes:
        children = [
            ebml.uint_element(ID.TIMESTAMP_SCALE, self.scale),
            ebml.string_element(ID.MUXING_APP, "streamcodec"),
            ebml.string_element(ID.WRITING_APP, self._writing_app),
            ebml.binary_element(ID.SEGMENT_UUID, self._segment_uuid),
            ebml.float_element(ID.DURATION, duration_ticks),
        ]
        if self._title:
            children.append(ebml.string_element(ID.TITLE, self._title))
        return ebml.master_element(ID.INFO, children, crc=True)

    @contextlib.contextmanager
    def _io_errors(self) -> Iterator[None]:
        """Turn OS failures (disk full, missing folder, permissions) into OutputError."""
        try:
            yield
        except StreamcodecError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", self.path) from exc

    def _check_open(self, track: int | None = None) -> None:
        if self._closed:
            raise ValueError(f"MatroskaWriter for {self.path} is closed")
        if track is not None and track not in self.specs:
            raise ValueError(f"track {track} is not one of {sorted(self.specs)}")
        if track in self._interleaver.ended:
            raise ValueError(f"track {track} was ended; no more packets allowed")

    def _ticks(self, track: int, time: Fraction) -> int:
        """Stored timestamp in ticks: time + CodecDelay, rounded half up, clamped at 0."""
        time_ns = Fraction(time) * NS_PER_SECOND
        if track not in self._seen:
            self._seen.add(track)
            if time_ns < 0 and self.specs[track].kind == "audio" and self.specs[track].codec_delay_ns is None:
                self._delays[track] = -int(time_ns // 1)  # ceil(-time_ns): the first packet lands at 0
        ticks = (time_ns + self._delays[track]) / self.scale
        return max(0, int((ticks + Fraction(1, 2)) // 1))

    def write(self, track: int, time: Fraction, data: bytes, keyframe: bool) -> None:
        """Queue one packet; it reaches the file once the other tracks have caught up.

        Args:
            track: track number.
            time: presentation time in seconds (exact rational; see the module note on
                negative times and CodecDelay).
            data: the packet payload.
            keyframe: whether the packet can be decoded without earlier ones.
        """
        self._check_open(track)
        if not isinstance(time, (Fraction, int)):
            raise TypeError(f"time must be a Fraction of seconds, got {type(time).__name__}")
        packet = (self._ticks(track, time), track, bytes(data), bool(keyframe))
        with self._io_errors():
            for ready in self._interleaver.push(packet):
                self._write_block(*ready)

    def end_track(self, track: int) -> None:
        """Declare that `track` gets no more packets, so the others need not wait for it."""
        self._check_open(track)
        with self._io_errors():
            for ready in self._interleaver.end(track):
                self._write_block(*ready)

    def _write_block(self, ticks: int, track: int, data: bytes, keyframe: bool) -> None:
        primary_key = track == 1 and keyframe
        if self._cluster is not None:
            relative = ticks - self._cluster[1]
            if primary_key or not -32768 <= relative <= 32767 or relative * self.scale > MAX_CLUSTER_NS:
                self._end_cluster()
        if self._cluster is None:
            self._start_cluster(ticks)
        assert self._cluster is not None
        block_at = self._file.tell()
        if primary_key:
            cluster_at = self._cluster[0]
            self._cues.append((ticks, cluster_at - self._segment_start, block_at - cluster_at - CLUSTER_HEADER_SIZE))
        prefix = bytes((0x80 | track,)) + struct.pack(">hB", ticks - self._cluster[1], 0x80 if keyframe else 0)
        header = ebml.encode_id(ID.SIMPLE_BLOCK) + ebml.encode_size(len(prefix) + len(data)) + prefix
        self._append(header)
        self._append(data)
        duration = Fraction(self.specs[track].default_duration_ns or 0, self.scale)
        self._end_ticks = max(self._end_ticks, ticks + duration)
        self._primary_packets += track == 1

    def _append(self, data: bytes) -> None:
        """Write cluster content, folding it into the cluster's running CRC."""
        self._file.write(data)
        self._cluster_crc = zlib.crc32(data, self._cluster_crc)

    def _start_cluster(self, ticks: int) -> None:
        self._cluster = (self._file.tell(), ticks)
        self._file.write(ebml.encode_id(ID.CLUSTER) + ebml.encode_size(None, 8) + bytes(ebml.CRC_ELEMENT_SIZE))
        self._cluster_crc = 0
        self._append(ebml.uint_element(ID.CLUSTER_TIMESTAMP, ticks))

    def _end_cluster(self) -> None:
        """Patch the open cluster's size and CRC-32 now that its content is on disk."""
        if self._cluster is None:
            return
        end = self._file.tell()
        self._file.seek(self._cluster[0] + 4)
        self._file.write(ebml.encode_size(end - self._cluster[0] - CLUSTER_HEADER_SIZE, 8))
        self._file.write(bytes((ID.CRC32, 0x84)) + struct.pack("<I", self._cluster_crc))
        self._file.seek(end)
        self._cluster = None

    def close(self) -> int:
        """Flush every packet, write Cues, patch sizes, SeekHead and Duration, and publish the file.

        Returns:
            Size of the finished file in bytes.

        Raises:
            EmptyOutputError: no packet was written on track 1 (a ValueError; the temporary file
                is removed).
            OutputError: the file could not be written or renamed (nothing is left at `path`).
        """
        self._check_open()
        try:
            with self._io_errors():
                return self._finish()
        except BaseException:
            self.abort()
            raise

    def _finish(self) -> int:
        for ready in self._interleaver.drain():
            self._write_block(*ready)
        if self._primary_packets == 0:
            raise EmptyOutputError("no packet on track 1; a Matroska file without frames is not written", self.path)
        self._end_cluster()
        entries = list(self._seek_entries)
        if self._cues:
            entries.append((ID.CUES, self._file.tell() - self._segment_start))
            self._file.write(ebml.master_element(ID.CUES, [cue_point(*cue) for cue in self._cues], crc=True))
        size = self._file.tell()
        self._patch(self._segment_size_at, ebml.encode_size(size - self._segment_start, 8))
        seek_head = ebml.master_element(ID.SEEK_HEAD, [seek_entry(*entry) for entry in entries], crc=True)
        self._patch(self._segment_start, seek_head + ebml.void_element(SEEK_HEAD_SPACE - len(seek_head)))
        self._patch(self._info_at, self._info(float(self._end_ticks)))
        self._patch(self._tracks_at, self._tracks())  # same size: CodecDelay has a fixed width
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        publish_file(self._temp, self.path, self._force)  # still locked: no cleaner can take it first
        self._partial.release()
        self._fsync_folder()
        self._closed = True
        return size

    def _patch(self, offset: int, data: bytes) -> None:
        self._file.seek(offset)
        self._file.write(data)

    def _fsync_folder(self) -> None:
        """Make the rename durable; some filesystems refuse to fsync a folder, which is fine."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def abort(self) -> None:
        """Discard the temporary file; `path` is left as it was. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._file.close()
        self._partial.discard()

    def __enter__(self) -> MatroskaWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        if self._closed:
            return  # closed or aborted inside the block already
        if exc_type is None:
            self.close()
        else:
            self.abort()
