"""`thin_file`: a progressive .mkv rewritten at fewer iterations by cutting its packets, nothing decoded or encoded.

    MatroskaReader ──packets──► V_STREAMCODEC: bitstream.cut_packet(first K sections) ──► MatroskaWriter
                               every other track: copied as it is

Each progressive packet's first K iteration sections are a whole frame at K iterations (see
bitstream's package docstring), so cutting re-packs them with the packet's new length and CRC-32. Every
packet is checked whole before it is cut, so a damaged input is refused, never re-signed as intact.
The header follows: the stream configuration's `quality` (CodecPrivate), the track's STREAMCODEC_QUALITY
tag and its name say K. Every other track keeps its CodecID, CodecPrivate, timing, rotation, tags and
packets (keyframe flags included); the container around them (Segment UID, Cues, Cluster layout) is
written anew by MatroskaWriter, as `encode` writes it. The output appears only when complete, never
onto the input (by inode: through symlinks and hard links too), and an existing one only with `force`.

`-` reads stdin (held whole in a temporary file first: the reader seeks, see stdio.spool_stdin) and
writes stdout: the writer's live-style stream, with the same packets and Cluster bytes as a file
(its Segment has no size, Info no Duration, the Cues come last; see mkv_writer). What goes down a
pipe cannot be taken back, so to stdout every packet is checked in a first pass, and a damaged
input sends nothing.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..bitstream import StreamConfig, cut_packet
from ..errors import CorruptStreamError, UnsupportedStreamError
from ..io.mkv_reader import MatroskaReader, Packet, TrackInfo
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..io.safe_output import check_file_target, check_not_input
from ..io.stdio import STDIO, STDOUT_NAME, is_stdio
from ..progress import Progress
from ..version import __version__
from .decode import stream_track

QUALITY_TAG = "STREAMCODEC_QUALITY"
_TRACK_NAME = re.compile(r"streamcodec (\w+) q\d+")


@dataclass
class ThinSummary:
    """What `thin_file` did: frames cut, iterations before and after, the codec track's bytes and the time taken."""

    input: str
    output: str
    frames: int
    iterations_before: int
    iterations_after: int
    track_bytes_before: int
    track_bytes_after: int
    file_bytes: int
    seconds: float

    def line(self) -> str:
        share = self.track_bytes_after / max(1, self.track_bytes_before)
        return (
            f"{self.output}: {self.frames} frames cut from {self.iterations_before} to {self.iterations_after} iterations, "
            f"codec track {self.track_bytes_before / 1e3:.1f} → {self.track_bytes_after / 1e3:.1f} kB ({100 * share:.1f} %), "
            f"{self.seconds:.2f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def thin_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    iterations: int,
    *,
    force: bool = False,
    progress: bool = False,
) -> ThinSummary:
    """Rewrite the progressive .mkv `input` as `output` with every frame cut to its first `iterations` iterations.

    Args:
        input, output: paths, or `-`: stdin, stdout; `output` must not be `input` (by inode), nor exist unless `force`.
        iterations: 1..the stream's quality (the iterations its packets hold).
        force: replace an existing `output` (by one rename, once the new file is complete).
        progress: show a progress bar on stderr.
    Returns:
        The ThinSummary.
    Raises:
        UnsupportedStreamError: not a progressive stream, or a track kind the writer cannot copy.
        CorruptStreamError: the input is damaged (a Cluster or packet CRC, a truncated file): nothing is written.
        ValueError: `iterations` outside 1..the stream's quality.
        OutputError: the output is refused or cannot be written.
    """
    source, target = _name(input), _name(output)
    check_not_input(Path(target), (source,))
    if not is_stdio(target):
        check_file_target(Path(target), force)
    started = time.perf_counter()
    with MatroskaReader(source) as reader:
        track, config = stream_track(reader, reader.path)
        thinned = _thinned_config(config, iterations, reader.path)
        names = (str(reader.path), str(STDOUT_NAME if is_stdio(target) else target))
        summary = ThinSummary(*names, 0, config.quality, iterations, 0, 0, 0, 0.0)
        if is_stdio(target):  # nothing sent can be taken back: the whole input checked first
            _check(reader, track.number, iterations)
        writer = _writer(reader, target, track.number, thinned, force)
        frames = sum(1 for _, number, _ in reader.cues if number == track.number) or None
        bar = Progress(total=frames, unit="frame", enabled=progress, desc="thin")
        try:
            with writer:
                _copy(reader, writer, track.number, iterations, summary, bar)
                summary.file_bytes = writer.close()
        finally:
            bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _writer(reader: MatroskaReader, target: str | Path, ours: int, config: StreamConfig, force: bool) -> MatroskaWriter:
    """The writer of the thinned stream: every track, title and tag of `reader`, ours saying `config`."""
    return MatroskaWriter(
        target,
        [_spec(t, reader, ours, config) for t in reader.tracks],
        title=reader.title,
        writing_app=f"streamcodec {__version__}",
        tags=reader.tags,
        track_tags=_track_tags(reader, ours, config.quality),
        timestamp_scale_ns=reader.timestamp_scale_ns,
        force=force,
    )


def _name(path: str | os.PathLike[str]) -> str | Path:
    """A path argument as a Path; `-` (stdin or stdout) stays the text `-`."""
    return STDIO if is_stdio(path) else Path(path)


def _thinned_config(config: StreamConfig, iterations: int, source: Path) -> StreamConfig:
    if config.mode != "progressive":
        raise UnsupportedStreamError(f"is a {config.mode!r} stream; only progressive streams can be thinned", source)
    if not 1 <= iterations <= config.quality:
        raise ValueError(f"--iterations {iterations} is outside 1..{config.quality} (the iterations {source} holds)")
    thinned = replace(config, quality=iterations)
    thinned.validate()
    return thinned


def _spec(track: TrackInfo, reader: MatroskaReader, ours: int, config: StreamConfig) -> TrackSpec:
    """The TrackSpec that writes `track` again; ours with the thinned configuration and name."""
    if track.kind not in ("video", "audio"):
        raise UnsupportedStreamError(f"track {track.number} is a {track.kind} track, which thin cannot copy", reader.path)
    name = track.name
    if track.number == ours:
        name = _TRACK_NAME.sub(lambda match: f"streamcodec {match.group(1)} q{config.quality}", name or "") or name
    other_video = any(t.kind == "video" and t.number != track.number for t in reader.tracks)
    return TrackSpec(
        number=track.number,
        kind="video" if track.kind == "video" else "audio",
        codec_id=track.codec_id,
        codec_private=config.pack() if track.number == ours else track.codec_private,
        default_duration_ns=track.default_duration_ns,
        width=track.width,
        height=track.height,
        sampling_frequency=track.sampling_frequency,
        channels=track.channels,
        bit_depth=track.bit_depth,
        codec_delay_ns=track.codec_delay_ns,
        name=name,
        language=track.language,
        default=not (track.number == ours and other_video),  # as encode writes it: a preview is the default video
        rotation=track.rotation,
    )


def _track_tags(reader: MatroskaReader, ours: int, iterations: int) -> dict[int, dict[str, str]]:
    tags = {number: dict(values) for number, values in reader.track_tags.items()}
    if QUALITY_TAG in tags.get(ours, {}):
        tags[ours][QUALITY_TAG] = str(iterations)
    return tags


def _copy(
    reader: MatroskaReader, writer: MatroskaWriter, ours: int, iterations: int, summary: ThinSummary, bar: Progress
) -> None:
    """Every packet into `writer`, ours cut; the first damage met raises (nothing is published)."""
    for packet in reader.packets():
        data = packet.data
        if packet.track == ours:
            data = _cut(packet, iterations, reader.path)
            summary.frames += 1
            summary.track_bytes_before += len(packet.data)
            summary.track_bytes_after += len(data)
            bar.update(1)
        writer.write(packet.track, packet.time, data, packet.keyframe)


def _check(reader: MatroskaReader, ours: int, iterations: int) -> None:
    """Read every packet and cut ours, writing nothing: the first damage met raises."""
    for packet in reader.packets():
        if packet.track == ours:
            _cut(packet, iterations, reader.path)


def _cut(packet: Packet, iterations: int, source: Path) -> bytes:
    """The packet's first `iterations` sections, re-packed; a damaged packet raises, saying when it was."""
    try:
        return cut_packet(packet.data, iterations)
    except CorruptStreamError as exc:
        raise CorruptStreamError(f"frame at {_seconds(packet.time)} s: {exc}", source) from None


def _seconds(time: Fraction) -> str:
    return f"{float(time):.3f}"
