"""The codecs the evaluation compares, behind one small interface.

    Codec.points(...)  ──► RatePoint per cell
    Codec.encode(clip, point, ctx) ──► one file (the whole file its decoder needs)
    Codec.frames(file) ──► decoded RGB frames at the source size

streamcodec runs through the public pipeline (`encode_file`, `Decoder`); x264, x265, x265-roi and
SVT-AV1 run through ffmpeg (command lines built with ffmpeg-python) into Matroska, video only, and
are decoded back with PyAV — so every codec is measured by the same code on the same frames.

Rate points: streamcodec's are its quality levels. The classical codecs aim at target bitrates
(two-pass ABR for x264/x265, one-pass VBR for SVT-AV1) spread geometrically over streamcodec's
measured range on the same clip, widened by `RANGE_MARGIN` each way so their curves overlap ours;
a codec that cannot reach a target (too low for its headers and keyframes) is reported with the
rate it did reach.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from ..bitstream import FORMAT_VERSION
from ..codec import Decoder, SelectiveOptions, quality_levels, saliency_spec, selective_fingerprint
from ..io.demux import Source, VideoFrame
from ..io.mkv_reader import MatroskaReader
from ..models.registry import REGISTRY
from ..pipeline.decode import stream_track
from ..pipeline.encode import default_fidelity, encode_file
from ..version import __version__
from .ffmpeg_tools import FfmpegError, ffmpeg_version, run_ffmpeg
from .masks import Frame, Mask
from .roi import ROI_QOFFSET, roi_rectangles

RANGE_MARGIN = 2.0
_X264_MINIMUM = re.compile(r"bitrate is too low\. estimated minimum is (\d+(?:\.\d+)?) kbps")
# Without streamcodec results on a clip: 0.002–0.03 bpp, about 11–170 kbps at 640x360, 25 fps.
DEFAULT_BPP_RANGE = (0.002, 0.03)
MIN_DEFAULT_KBPS = 8.0


@dataclass(frozen=True)
class RatePoint:
    """One rate point of one codec: a quality level or a target bitrate."""

    label: str
    quality: int | None = None
    target_kbps: float | None = None


@dataclass(frozen=True)
class EncodeContext:
    """What every codec needs to know about the run (and, for x265-roi, the clip's kept region)."""

    gop: int
    model: str
    ffmpeg: str
    kept_union: Mask | None = None  # union over the clip of the kept region, for x265-roi


@dataclass
class Encoded:
    path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)


class Codec(ABC):
    """A codec under evaluation."""

    name: str
    description: str
    needs_masks: bool = False

    def unavailable(self, masks_reason: str | None) -> str | None:
        """Why this codec cannot run now (None when it can); `masks_reason` is why masks are missing."""
        return masks_reason if self.needs_masks else None

    @abstractmethod
    def settings(self, ctx: EncodeContext) -> dict[str, Any]:
        """Everything besides clip and point that changes the result: part of the cache key."""

    @abstractmethod
    def encode(self, clip: Path, point: RatePoint, out_dir: Path, ctx: EncodeContext) -> Encoded:
        """Encode `clip` (video only) at `point` into a file in `out_dir`."""

    @abstractmethod
    def frames(self, path: Path) -> Iterator[Frame]:
        """Decode a file made by `encode` into (H, W, 3) uint8 RGB frames at the source size."""


def spread_qualities(levels: int, points: int) -> list[int]:
    """`points` quality levels spread evenly over 1..levels (all of them when points ≥ levels)."""
    if points >= levels:
        return list(range(1, levels + 1))
    return sorted({round(q) for q in np.linspace(1, levels, points)})


def _round3(value: float) -> float:
    """Three significant digits, so that target rates (and cache keys) stay stable across runs."""
    return float(f"{value:.3g}")


def classical_targets(reference_kbps: list[float], points: int, width: int, height: int, frame_rate: Fraction) -> list[float]:
    """Target bitrates (kbps) for the classical codecs on one clip.

    Args:
        reference_kbps: streamcodec's measured rates on this clip, every mode evaluated (may be empty).
        points: how many targets.
        width, height, frame_rate: the clip's, for the default range when there is no reference.

    Returns:
        `points` increasing rates, geometrically spaced.
    """
    if len(reference_kbps) >= 2 and min(reference_kbps) > 0:
        low, high = min(reference_kbps) / RANGE_MARGIN, max(reference_kbps) * RANGE_MARGIN
    else:
        pixels_per_second = width * height * float(frame_rate)
        low, high = (bpp * pixels_per_second / 1000 for bpp in DEFAULT_BPP_RANGE)
        # Tiny frames: stay above what headers alone cost, and keep the range as wide.
        low, high = max(low, MIN_DEFAULT_KBPS), max(high, MIN_DEFAULT_KBPS * high / low)
    if points == 1:
        return [_round3(math.sqrt(low * high))]
    return [_round3(rate) for rate in np.geomspace(low, high, points)]


def _streamcodec_frames(path: Path) -> Iterator[Frame]:
    with MatroskaReader(path) as reader:
        track, config = stream_track(reader, path)
        decoder = Decoder(config)
        for packet in reader.packets({track.number}):
            yield decoder.decode(packet.data)


class StreamcodecCodec(Codec):
    """streamcodec in GC mode (whole frame generated) or selective mode (kept region coded)."""

    def __init__(self, mode: str, fidelity: str | None = None, saliency: str | None = None) -> None:
        self.mode, self.fidelity, self.saliency = mode, fidelity, saliency
        self.name = f"streamcodec-{mode}" + (f"-{fidelity}" if fidelity else "") + ("-saliency" if saliency else "")
        self.needs_masks = mode == "sc"
        self.description = {"gc": "streamcodec, global generative compression", "sc": "streamcodec, selective mode"}[mode]
        if fidelity:
            self.description += f", {fidelity} fidelity layer"
        if saliency:
            self.description += f", --saliency {saliency}"

    def points(self, model: str, count: int) -> list[RatePoint]:
        return [RatePoint(f"q{q}", quality=q) for q in spread_qualities(quality_levels(model), count)]

    def settings(self, ctx: EncodeContext) -> dict[str, Any]:
        # The package version and format version too: the bitstream can change under the same weights.
        model_id = REGISTRY.entry(ctx.model).model_id
        return {
            "mode": self.mode,
            **({"fidelity": self.fidelity or default_fidelity("offline")} if self.mode == "sc" else {}),
            **({"saliency": saliency_spec(self.saliency)} if self.saliency else {}),
            # encode_file's default latency for files: "offline" since 0.x (lookahead); older cells were zero latency.
            **(
                {
                    "latency": "zero" if self.fidelity == "learned" else "offline",
                    **selective_fingerprint(),  # feather, bg_offset, offline presets/options, whole_above, plate_refresh
                    "plate": "unseen-blur",
                    "fidelity_input": "source-planes",  # the kept blocks from the source's 4:2:0 planes
                    "av1_units": "no-temporal-delimiter",
                }
                if self.mode == "sc"
                else {}
            ),
            "model": ctx.model,
            "model_id": model_id,
            "gop": ctx.gop,
            "format": FORMAT_VERSION,
            "version": __version__,
        }

    def encode(self, clip: Path, point: RatePoint, out_dir: Path, ctx: EncodeContext) -> Encoded:
        out = out_dir / f"{self.name}-{point.label}.mkv"
        extra: dict[str, Any] = {"mode": self.mode, **({"fidelity": self.fidelity} if self.fidelity else {})}
        # No preview track and an audio-free input: the file holds only what our decoder needs.
        saliency = {"saliency": self.saliency} if self.saliency else {}
        options = SelectiveOptions.for_files(fidelity=extra.get("fidelity"), **saliency) if self.mode == "sc" else None
        summary = encode_file(
            clip, out, model=ctx.model, quality=point.quality, gop=ctx.gop, preview=False, mode=extra["mode"], selective=options
        )
        return Encoded(out, summary.seconds, [])

    def frames(self, path: Path) -> Iterator[Frame]:
        return _streamcodec_frames(path)


class FfmpegCodec(Codec):
    """A classical encoder run by ffmpeg at a target bitrate, written as video-only Matroska."""

    def __init__(
        self, name: str, encoder: str, description: str, *, options: dict[str, Any], two_pass: str | None, roi: bool = False
    ) -> None:
        self.name, self.encoder, self.description = name, encoder, description
        self.options, self.two_pass, self.roi, self.needs_masks = options, two_pass, roi, roi

    def settings(self, ctx: EncodeContext) -> dict[str, Any]:
        roi = roi_rectangles(ctx.kept_union) if self.roi and ctx.kept_union is not None else None
        return {
            "encoder": self.encoder,
            "options": self.options,
            "two_pass": self.two_pass,
            "gop": ctx.gop,
            "roi": roi,
            "roi_qoffset": ROI_QOFFSET if self.roi else None,
            "ffmpeg": ffmpeg_version(ctx.ffmpeg),  # another build may encode differently
        }

    def _command(self, clip: Path, target: str, kbps: float, ctx: EncodeContext, extra: dict[str, Any]) -> list[str]:
        video = ffmpeg.input(str(clip)).video
        if self.roi and ctx.kept_union is not None:
            for x, y, w, h in roi_rectangles(ctx.kept_union):
                video = video.filter("addroi", x=x, y=y, w=w, h=h, qoffset=ROI_QOFFSET)
        options = {
            "c:v": self.encoder,
            "b:v": f"{round(kbps * 1000)}",
            "g": ctx.gop,
            "pix_fmt": "yuv420p",
            "an": None,
            "sn": None,
            "dn": None,
            "map_metadata": -1,
            **self.options,
            **extra,
        }
        if target == "-":
            options["format"] = "null"
        else:
            options["format"] = "matroska"
        stream = ffmpeg.output(video, target, **options).global_args("-nostdin", "-hide_banner", "-v", "error")
        return list(stream.compile(cmd=ctx.ffmpeg, overwrite_output=True))

    def _pass_options(self, number: int, stats: Path) -> dict[str, Any]:
        if self.two_pass == "x265":
            params = f"{self.options.get('x265-params', 'log-level=error')}:pass={number}:stats={stats}"
            return {"x265-params": params}
        return {"pass": number, "passlogfile": str(stats)}

    def encode(self, clip: Path, point: RatePoint, out_dir: Path, ctx: EncodeContext) -> Encoded:
        assert point.target_kbps is not None
        out = out_dir / f"{self.name}-{point.label}.mkv"
        try:
            return Encoded(out, self._encode_at(clip, out, point.target_kbps, ctx))
        except FfmpegError as exc:
            # x264 refuses ABR targets under its own estimate of the minimum for the frame size;
            # encode at that minimum instead, and say so, rather than lose the point.
            found = _X264_MINIMUM.search(str(exc))
            if found is None or float(found.group(1)) <= point.target_kbps:
                raise
            # x264 prints the minimum rounded to whole kbps: aim a little above it.
            retry = _round3(float(found.group(1)) + 1.0)
            note = (
                f"{self.encoder} refuses targets under its estimated minimum of {found.group(1)} kbps; encoded at {retry:g} kbps"
            )
            return Encoded(out, self._encode_at(clip, out, retry, ctx), [note])

    def _encode_at(self, clip: Path, out: Path, kbps: float, ctx: EncodeContext) -> float:
        """One- or two-pass encode at `kbps`; returns the seconds all passes took."""
        if self.two_pass is None:
            return run_ffmpeg(self._command(clip, str(out), kbps, ctx, {}), path=out)
        stats = out.with_suffix(".stats")
        first = self._command(clip, "-", kbps, ctx, self._pass_options(1, stats))
        second = self._command(clip, str(out), kbps, ctx, self._pass_options(2, stats))
        return run_ffmpeg(first, path=out) + run_ffmpeg(second, path=out)

    def frames(self, path: Path) -> Iterator[Frame]:
        with Source(path) as source:
            for item in source.items(with_audio=False):
                assert isinstance(item, VideoFrame)
                yield item.rgb


def _registry() -> dict[str, Codec]:
    # info=0: x265 otherwise writes ~2 kB of its settings as SEI text, which no decoder needs and
    # which would cost it several kbps at the rates compared here.
    x265 = {"preset": "medium", "x265-params": "log-level=error:info=0"}
    codecs: list[Codec] = [
        StreamcodecCodec("sc"),
        StreamcodecCodec("sc", "hevc"),  # the kept region by x265 instead of the default SVT-AV1
        StreamcodecCodec("sc", "hevc", saliency="on"),  # faces first (x265's per-block QP offsets)
        StreamcodecCodec("sc", "learned"),  # the kept region as masked GC latents (Agustsson et al.'s own SC)
        StreamcodecCodec("gc"),
        FfmpegCodec("x264", "libx264", "H.264 (x264 medium, 2-pass)", options={"preset": "medium"}, two_pass="x264"),
        FfmpegCodec("x265", "libx265", "HEVC (x265 medium, 2-pass)", options=x265, two_pass="x265"),
        FfmpegCodec(
            "x265-roi",
            "libx265",
            f"HEVC 2-pass, QP offset {ROI_QOFFSET} on the kept region (addroi)",
            options=x265,
            two_pass="x265",
            roi=True,
        ),
        FfmpegCodec("svtav1", "libsvtav1", "AV1 (SVT-AV1 preset 8, 1-pass VBR)", options={"preset": 8}, two_pass=None),
        # The preset selective mode codes files with (fidelity.CODECS): the same codec at the same effort, whole frames.
        FfmpegCodec("svtav1-p2", "libsvtav1", "AV1 (SVT-AV1 preset 2, 1-pass VBR)", options={"preset": 2}, two_pass=None),
    ]
    return {codec.name: codec for codec in codecs}


CODECS: dict[str, Codec] = _registry()
#: What `streamcodec eval` runs without --codecs: all but the other fidelity layers and SVT-AV1's slow preset (run when named).
DEFAULT_CODECS: list[str] = [
    name
    for name in CODECS
    if name not in ("streamcodec-sc-learned", "streamcodec-sc-hevc", "streamcodec-sc-hevc-saliency", "svtav1-p2")
]
