"""`streamcodec info`: what is inside a streamcodec .mkv, read with our own (CRC-checking) reader."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig, unpack_frame
from ..errors import CorruptStreamError, StreamcodecError, TruncatedStreamError
from ..io.mkv_reader import MatroskaReader, Packet, TrackInfo
from .conceal import FrameSlots
from .decode import stream_track

#: The frame types of each stream mode: a frame of another mode is damage (a splice, say), as the decoders say.
MODE_FRAMES = {
    "gc": ("gc", (FrameType.INTRA, FrameType.INTER)),
    "sc": ("selective", (FrameType.SELECTIVE_INTRA, FrameType.SELECTIVE_INTER)),
    "progressive": ("progressive", (FrameType.INTRA, FrameType.INTER)),
}

#: Section tag → layer name; everything else in a packet (header, REFERENCE, checksum) is "header".
LAYERS = {
    bitstream.FIDELITY: "fidelity",
    bitstream.MASK: "mask",
    bitstream.PLATE: "plate",
    bitstream.PLATE_UPDATE: "plate",
    bitstream.LATENTS: "latents",
    bitstream.LABELS: "labels",
}

#: Progressive packets: section ITERATION + i is layer "iter<i + 1>" (iter1, iter2, …), each iteration's bits on their own.
ITERATION_LAYERS = {tag: f"iter{tag - bitstream.ITERATION + 1}" for tag in sorted(bitstream.ITERATIONS)}


def stream_layers(config: StreamConfig) -> dict[int, str]:
    """Section tag → layer name for a stream's packets.

    A progressive stream's are its iterations, as many as its quality; every other mode's are LAYERS.
    """
    if config.mode == "progressive":
        return {tag: name for tag, name in ITERATION_LAYERS.items() if tag < bitstream.ITERATION + config.quality}
    return LAYERS


def layer_bits(frame: Frame, packet_bytes: int, layers: dict[int, str] = LAYERS) -> dict[str, int]:
    """One packet's bits by layer: each section (tag and length included) to its layer, the rest to header+checksum."""
    bits = dict.fromkeys([*layers.values(), "header"], 0)
    for tag, data in frame.sections.items():
        if tag in layers:
            bits[layers[tag]] += 8 * bitstream.section_size(data)
    bits["header"] = 8 * packet_bytes - sum(bits.values())
    return bits


@dataclass
class StreamInfo:
    path: str
    file_bytes: int
    config: dict[str, Any]
    model_id: str
    format_version: int
    frames: int
    keyframes: int
    duration_s: float
    video_bytes: int
    kbps: float
    bpp: float
    frame_bits: dict[str, float]
    tracks: list[dict[str, Any]]
    tags: dict[str, str]
    damaged: list[str] = field(default_factory=list)
    lost_frames: int = 0  # frame slots that container damage emptied (counted in `frames`)
    layer_bits: dict[str, int] = field(default_factory=dict)  # whole stream, by layer (LAYERS)
    frames_by_layer: list[dict[str, int]] = field(default_factory=list)  # per frame: bits by layer
    #: Selective plate streams: keyframes carrying a full plate, an update, and an empty (unchanged) update.
    plates: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, per_frame: bool = False) -> str:
        """The summary as lines of text; `per_frame` adds one line of bits by layer for every frame."""
        c = self.config
        lines = [
            f"{self.path}: {self.file_bytes} bytes",
            f"  stream      {c['mode']} mode, model {c['model_name']} ({self.model_id}), format version {self.format_version}",
            f"  video       {c['width']}x{c['height']} (coded {c['coded_width']}x{c['coded_height']}), quality {c['quality']}, "
            f"{c['channels']} channels, GOP {c['gop']}",
            f"  frames      {self.frames} ({self.keyframes} keyframes), {self.duration_s:.3f} s"
            + (f", {self.lost_frames} lost to damage" if self.lost_frames else ""),
            f"  rate        {self.video_bytes} bytes, {self.kbps:.2f} kbps, {self.bpp:.5f} bpp (our track only)",
            "  frame bits  min {min:.0f} / median {median:.0f} / max {max:.0f}".format(**self.frame_bits),
        ]
        if c["mode"] in MODE_LINES:
            lines.append(MODE_LINES[c["mode"]](c))
        total = sum(self.layer_bits.values())
        shares = ", ".join(f"{name} {bits} ({100 * bits / total:.1f} %)" for name, bits in self.layer_bits.items() if bits)
        lines.append(f"  layer bits  {shares or 'none'}")
        if any(self.plates.values()):
            p = self.plates
            lines.append(f"  plates      {p['full']} full, {p['updates']} updates ({p['unchanged']} of them unchanged)")
        for index, layers in enumerate(self.frames_by_layer if per_frame else []):
            parts = " ".join(f"{name} {bits}" for name, bits in layers.items() if bits)
            lines.append(f"  frame {index:<5} {sum(layers.values())} bits: {parts}")
        for t in self.tracks:
            lines.append(f"  track {t['number']}     {t['kind']} {t['codec_id']}: {t['bytes']} bytes, {t['packets']} packets")
        lines += [f"  damage      {d}" for d in self.damaged]
        return "\n".join(lines)


def _selective_line(config: dict[str, Any]) -> str:
    """Selective mode's layers and the background bound, as the stream configuration records them."""
    extra = config.get("extra", {})
    latency = f" ({extra['latency']} latency)" if "latency" in extra else ""
    bound = extra.get("max_background_error")
    promise = f"background within {bound:g} levels of the source (16x16 mean abs. luma)" if bound else "no background bound"
    return f"  selective   fidelity {extra.get('fidelity', '?')}{latency}, background {extra.get('background', '?')}, {promise}"


def _progressive_line(config: dict[str, Any]) -> str:
    """Progressive mode: the iterations every packet holds of the model's, and the entropy tables."""
    extra = config.get("extra", {})
    return (
        f"  progressive {config['quality']} of {extra.get('iterations', '?')} iterations per frame "
        f"(`streamcodec thin` cuts to fewer), entropy tables {extra.get('tables', '?')}"
    )


#: The line `info` adds for a mode, from the stream configuration (as a dict).
MODE_LINES = {"sc": _selective_line, "progressive": _progressive_line}


def stream_info(path: str | os.PathLike[str]) -> StreamInfo:
    """Read every packet (checking CRCs and frame checksums) and summarise the file (`path`: str or os.PathLike).

    Container damage, damaged frames and the count of frames the damage lost all go to `damaged`
    (the CLI exits non-zero when it is not empty).
    """
    path = Path(path)
    with MatroskaReader(path) as reader:
        track, config = stream_track(reader, path)
        tally = _Tally(track.number, FrameSlots.of(reader, track), [str(problem) for problem in reader.damage], config)
        for packet in reader.packets(on_error=tally.container_damage):
            tally.add(packet)
        tally.finish()
        tracks = [tally.track_row(t) for t in reader.tracks]
        tags = dict(reader.tags) | {f"track{n}:{k}": v for n, tt in reader.track_tags.items() for k, v in tt.items()}
        file_bytes = path.stat().st_size
    return _summary(path, file_bytes, config, track, tally, tracks, tags)


@dataclass
class _Tally:
    """What one pass over a file's packets counts: bytes per track, and our track's frames, layers and damage."""

    track: int
    slots: FrameSlots
    damaged: list[str]
    config: StreamConfig  # frames of another mode are damage; the mode names the layers
    sizes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    frame_bits: list[int] = field(default_factory=list)
    times: list[Fraction] = field(default_factory=list)
    keyframes: int = 0
    lost: list[Fraction] = field(default_factory=list)  # times of the frame slots damage emptied
    by_layer: list[dict[str, int]] = field(default_factory=list)
    plates: dict[str, int] = field(default_factory=lambda: {"full": 0, "updates": 0, "unchanged": 0})

    def container_damage(self, error: StreamcodecError) -> None:
        self.damaged.append(str(error))
        self.slots.damage(isinstance(error, TruncatedStreamError))

    def add(self, packet: Packet) -> None:
        self.sizes[packet.track] += len(packet.data)
        self.counts[packet.track] += 1
        if packet.track != self.track:
            return
        time, missing = self.slots.admit(packet.time, packet.suspect)
        self.lost += missing
        self.frame_bits.append(len(packet.data) * 8)
        self.times.append(time)
        try:
            frame = unpack_frame(packet.data)
            _check_frame(frame, self.config)
            self.keyframes += frame.frame_type in (FrameType.INTRA, FrameType.SELECTIVE_INTRA)
            self.by_layer.append(layer_bits(frame, len(packet.data), stream_layers(self.config)))
            _count_plates(frame, self.plates)
        except StreamcodecError as exc:
            self.damaged.append(f"frame {len(self.frame_bits) + len(self.lost) - 1} at {float(packet.time):.3f} s: {exc}")

    def track_row(self, track: TrackInfo) -> dict[str, Any]:
        """One track of the file with the bytes and packets counted in it."""
        number = track.number
        return {
            "number": number,
            "kind": track.kind,
            "codec_id": track.codec_id,
            "bytes": self.sizes[number],
            "packets": self.counts[number],
        }

    def finish(self) -> None:
        """Count the frames lost after the last packet; lost frames take their place in time and in `damaged`."""
        self.lost += self.slots.at_end()
        self.times += self.lost
        self.damaged += _lost_lines(self.lost, self.slots)


def _summary(
    path: Path,
    file_bytes: int,
    config: StreamConfig,
    track: TrackInfo,
    tally: _Tally,
    tracks: list[dict[str, Any]],
    tags: dict[str, str],
) -> StreamInfo:
    frames = len(tally.frame_bits) + len(tally.lost)
    frame_duration = (track.default_duration_ns or 0) / 1e9
    times = tally.times
    duration = float(max(times) - min(times)) + frame_duration if times else 0.0
    video_bytes = tally.sizes[track.number]
    bits = np.array(tally.frame_bits or [0])
    return StreamInfo(
        path=str(path),
        file_bytes=file_bytes,
        config=asdict(config),
        model_id=config.model_id,
        format_version=config.format_version,
        frames=frames,
        keyframes=tally.keyframes,
        duration_s=duration,
        video_bytes=video_bytes,
        kbps=video_bytes * 8 / 1000 / duration if duration else 0.0,
        bpp=video_bytes * 8 / (frames * config.width * config.height) if frames else 0.0,
        frame_bits={"min": float(bits.min()), "median": float(np.median(bits)), "max": float(bits.max())},
        tracks=tracks,
        tags=tags,
        damaged=tally.damaged,
        lost_frames=len(tally.lost),
        layer_bits={name: sum(layers[name] for layers in tally.by_layer) for name in [*stream_layers(config).values(), "header"]},
        frames_by_layer=tally.by_layer,
        plates=tally.plates,
    )


def _check_frame(frame: Frame, config: StreamConfig) -> None:
    """Refuse a frame the stream's decoder would refuse for its shape (CorruptStreamError).

    That is a frame of another mode's type, and a progressive frame whose sections are not iterations
    1, 2, … in order, or more of them than the stream's quality.
    """
    name, types = MODE_FRAMES.get(config.mode, (config.mode, tuple(FrameType)))
    if frame.frame_type not in types:
        raise CorruptStreamError(f"{frame.frame_type.name} frame in a {name}-mode stream (another mode's: damage or a splice)")
    if config.mode == "progressive":
        held = len(bitstream.iteration_sections(frame))
        if held > config.quality:
            raise CorruptStreamError(f"packet of {held} iterations in a stream of {config.quality}")


def _count_plates(frame: Frame, plates: dict[str, int]) -> None:
    if bitstream.PLATE in frame.sections:
        plates["full"] += 1
    update = frame.sections.get(bitstream.PLATE_UPDATE)
    if update is not None:
        plates["updates"] += 1
        plates["unchanged"] += len(update) <= bitstream.PLATE_CHECK.size


def _lost_lines(lost: list[Fraction], slots: FrameSlots) -> list[str]:
    """Damage lines for frames the container lost, counted or not."""
    lines = [f"{len(lost)} frames lost to container damage (first at {float(min(lost)):.3f} s)"] if lost else []
    for start, stop in slots.uncounted_gaps:
        lines.append(f"frames between {float(start):.3f} s and {float(stop):.3f} s may be lost (no DefaultDuration)")
    return lines
