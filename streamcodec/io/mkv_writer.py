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

To a stream (`-` for stdout, or a binary file object: a pipe that cannot seek back) the writer sends
a live-style Matroska stream instead, with nothing patched after it was sent:

    EBML header
    Segment (unknown size)
      SeekHead → Info, Tracks, Tags      (filled in before the first Cluster is sent)
      Info (no Duration)   Tracks   Tags
      Cluster … Cluster                  (each held in memory until it ends, then sent whole)
      Cues                               (at the end; no SeekHead entry points at them)

The head waits for the first Cluster: the CodecDelays of tracks whose first packet came by then are
known (and fixed from then on), and an encode that fails before its first frame sends nothing. A
Cluster spans at most one GOP of track 1 or MAX_CLUSTER_NS, so holding one costs little; it keeps
its size and CRC-32, and its bytes equal those of a file written from the same packets. Cues cannot
precede the Clusters without seeking back; sent last, they still give a saved stream its keyframe
index (our reader and mkvinfo find it by walking the Clusters) and tell a whole stream from a cut one.

Timestamps: `time` is a packet's presentation time in seconds; Matroska stores `time + CodecDelay`
rounded to the nearest tick (readers subtract CodecDelay again) and no stored time may be negative.
Negative times (audio priming: AAC from MP4 starts at -1024 samples) are handled per track. An
audio track whose TrackSpec leaves `codec_delay_ns` None gets CodecDelay = -(its first time) when
that is negative, patched into Tracks at close, so its times survive exactly and stay in sync.
A time still negative after adding CodecDelay (video, or audio before its declared delay) is
clamped to 0 and reads back as -CodecDelay.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType, TracebackType
from typing import BinaryIO

from streamcodec.errors import EmptyOutputError, OutputError, StreamcodecError
from streamcodec.io import ebml, matroska
from streamcodec.io.ebml import ID
from streamcodec.io.matroska import NS_PER_SECOND, TrackSpec, cue_point, ebml_header, seek_entry, tag_element, track_entry
from streamcodec.io.mkv_interleave import Interleaver
from streamcodec.io.safe_output import Partial, check_file_target, fsync_folder, publish_file, remove_stale_partials
from streamcodec.io.stdio import STDOUT_NAME, StreamOutput, StreamTail, display_name, is_stdio

__all__ = ["MatroskaWriter", "TrackSpec"]  # TrackSpec lives in matroska; re-exported for callers

SEEK_HEAD_SPACE = 128  # SeekHead with 4 fixed-width entries is 95 bytes; the rest is a Void
CLUSTER_HEADER_SIZE = 12  # 4-byte id + 8-byte size, so the size can be patched in place
MAX_CLUSTER_NS = 5 * NS_PER_SECOND
MAX_BUFFERED_NS = 10 * NS_PER_SECOND
MAX_BUFFERED_BYTES = 64 << 20
_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_NO_TRACK_TAGS: Mapping[int, Mapping[str, str]] = MappingProxyType({})


class MatroskaWriter:
    """Write packets of several tracks into a Matroska file (or a live-style stream to a pipe), cluster by cluster.

    Use as a context manager: leaving the block normally calls `close()`, an exception calls
    `abort()`. Memory holds only the interleaving buffer, the open cluster's bookkeeping and one
    small Cues entry per keyframe of track 1.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | BinaryIO,
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
            path: final file; written only by a successful `close()`. Or a stream: `-` for stdout
                (fd 1 goes to stderr meanwhile, see stdio.StdoutClaim; a terminal is refused
                unless `force`), or a binary file object; no target checks then, and a live-style
                stream (see the module note). The caller keeps a file object open.
            tracks: the tracks, in the order their TrackEntries are written; numbers unique,
                1..126, including track 1.
            title: Segment title.
            writing_app: the application name written as WritingApp.
            tags: global tags (TargetTypeValue 50).
            track_tags: per-track tags, keyed by track number.
            timestamp_scale_ns: nanoseconds per timestamp tick (Matroska's default 1 ms).
            force: replace an existing `path` (else OutputExistsError, here and again at close).

        Raises:
            OutputError: the target cannot be written (OutputExistsError: exists, no `force`).
        """
        matroska.check_writer_arguments(tracks, track_tags, timestamp_scale_ns)
        self._force = force
        self._tail: StreamTail | None = None  # set when writing to a stream
        streaming = is_stdio(path) or not isinstance(path, (str, os.PathLike))
        self.path = display_name(path, STDOUT_NAME)
        if not streaming:
            with self._io_errors():
                check_file_target(self.path, force)
        self.scale = timestamp_scale_ns
        self.specs = {spec.number: spec for spec in tracks}
        self.uids = {spec.number: int.from_bytes(os.urandom(8), "big") | 1 for spec in tracks}
        self._title, self._writing_app = title, writing_app
        self._segment_uuid = os.urandom(16)
        self._interleaver = Interleaver(list(self.specs), MAX_BUFFERED_NS // self.scale, MAX_BUFFERED_BYTES)
        self._delays = {spec.number: spec.codec_delay_ns or 0 for spec in tracks}
        self._start_bookkeeping()
        with self._io_errors():
            self._file = self._open_stream(path) if streaming else self._create_temporary()
        try:
            with self._io_errors():
                self._write_head(tags, track_tags)
        except BaseException:
            self.abort()
            raise

    def _start_bookkeeping(self) -> None:
        """What the writer tracks as packets come: first packets, Cues, the open Cluster and the end time."""
        self._seen: set[int] = set()  # tracks that have had their first packet
        self._cues: list[tuple[int, int, int]] = []
        self._cluster: tuple[int, int] | None = None  # (file offset, timestamp in ticks)
        self._cluster_crc = 0
        self._end_ticks = Fraction(0)
        self._primary_packets = 0
        self._closed = False

    def _create_temporary(self) -> BinaryIO:
        """Create `.NAME.partial-XXXXXXXX` next to `path`, locked while we write, after removing stale ones."""
        remove_stale_partials(self.path)
        self._partial = Partial.create(self.path)
        self._temp = self._partial.path
        self._disk = os.fdopen(self._partial.fd, "w+b", closefd=False)  # the lock lives on the partial's fd
        return self._disk

    def _open_stream(self, target: str | os.PathLike[str] | BinaryIO) -> StreamTail:
        """The stream to send to: stdout (claimed) for `-`, else the caller's file object."""
        self._output = StreamOutput(target, self._force)
        self._tail, self._head_sent = StreamTail(self._output.stream), False
        return self._tail

    def _write_head(self, tags: Mapping[str, str], track_tags: Mapping[int, Mapping[str, str]]) -> None:
        self._file.write(ebml_header())
        self._file.write(ebml.encode_id(ID.SEGMENT))
        self._segment_size_at = self._file.tell()
        self._file.write(ebml.encode_size(None, 8))
        self._segment_start = self._file.tell()
        self._file.write(ebml.void_element(SEEK_HEAD_SPACE))
        self._info_at = self._file.tell()
        self._file.write(self._info(None if self._tail else 0.0))
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

    def _info(self, duration_ticks: float | None) -> bytes:
        """Info; a stream's has no Duration (unknown until the end, and never patched)."""
        children = [
            ebml.uint_element(ID.TIMESTAMP_SCALE, self.scale),
            ebml.string_element(ID.MUXING_APP, "streamcodec"),
            ebml.string_element(ID.WRITING_APP, self._writing_app),
            ebml.binary_element(ID.SEGMENT_UUID, self._segment_uuid),
        ]
        if duration_ticks is not None:
            children.append(ebml.float_element(ID.DURATION, duration_ticks))
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
        if self._tail is not None and not self._head_sent:
            self._send_head(self._tail)
        self._cluster = (self._file.tell(), ticks)
        self._file.write(ebml.encode_id(ID.CLUSTER) + ebml.encode_size(None, 8) + bytes(ebml.CRC_ELEMENT_SIZE))
        self._cluster_crc = 0
        self._append(ebml.uint_element(ID.CLUSTER_TIMESTAMP, ticks))

    def _end_cluster(self) -> None:
        """Patch the open cluster's size and CRC-32 now that its content is written (on a stream: then send it)."""
        if self._cluster is None:
            return
        end = self._file.tell()
        self._file.seek(self._cluster[0] + 4)
        self._file.write(ebml.encode_size(end - self._cluster[0] - CLUSTER_HEADER_SIZE, 8))
        self._file.write(bytes((ID.CRC32, 0x84)) + struct.pack("<I", self._cluster_crc))
        self._file.seek(end)
        self._cluster = None
        if self._tail is not None:
            self._tail.commit()

    def _send_head(self, tail: StreamTail) -> None:
        """A stream's SeekHead and Tracks (CodecDelays as known now, fixed from here on), then send it all."""
        seek_head = ebml.master_element(ID.SEEK_HEAD, [seek_entry(*entry) for entry in self._seek_entries], crc=True)
        end = tail.tell()
        self._patch(self._segment_start, seek_head + ebml.void_element(SEEK_HEAD_SPACE - len(seek_head)))
        self._patch(self._tracks_at, self._tracks())  # same size: CodecDelay has a fixed width
        tail.seek(end)
        self._seen.update(self.specs)  # a track's first packet may no longer set its CodecDelay
        tail.commit()
        self._head_sent = True

    def close(self) -> int:
        """Flush every packet, write Cues, patch sizes, SeekHead and Duration, and publish the file
        (on a stream: flush every packet and send the Cues; nothing is patched, see the module note).

        Returns:
            Size of the finished file (or the bytes sent) in bytes.

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
        if self._tail is not None:
            return self._finish_stream(self._tail)
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
        self._disk.flush()
        os.fsync(self._disk.fileno())
        self._disk.close()
        publish_file(self._temp, self.path, self._force)  # still locked: no cleaner can take it first
        self._partial.release()
        fsync_folder(self.path.parent)
        self._closed = True
        return size

    def _finish_stream(self, tail: StreamTail) -> int:
        """Send the Cues after the last Cluster; nothing before them changes."""
        if self._cues:
            self._file.write(ebml.master_element(ID.CUES, [cue_point(*cue) for cue in self._cues], crc=True))
        tail.commit()
        self._output.release()
        self._closed = True
        return tail.sent

    def _patch(self, offset: int, data: bytes) -> None:
        self._file.seek(offset)
        self._file.write(data)

    def abort(self) -> None:
        """Discard the temporary file; `path` is left as it was. Safe to call more than once.

        On a stream, what was sent stays sent (a reader sees it end without its Cues: cut) and the
        unfinished Cluster is dropped.
        """
        if self._closed:
            return
        self._closed = True
        if self._tail is not None:
            self._output.release()
            return
        try:  # closing flushes the buffer: on a full disk that fails again, and the bytes are dropped anyway
            with contextlib.suppress(OSError):
                self._disk.close()
        finally:
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
