"""Rate decisions made before the first frame: the codec's quality for `--bitrate`, the preview's budget.

Both rest on `estimate_rates`: E runs once on the first frames of the clip, and each quality's
symbols are range coded as the stream would code them, so the estimate is in real packet bytes
(frame header and CRC included), not the model's entropy. Progressive mode encodes its first frames
once at every iteration: each quality's packet is a prefix of that packet (`bitstream.cut_packet`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType
from ..codec import Encoder
from ..entropy import context

# The preview gets at most this share of the codec track's rate, so it never dominates the file.
PREVIEW_SHARE = 0.5
# Progressive mode: a keyframe and a few inter frames estimate the rate (each costs a full encode).
PROGRESSIVE_PROBE_FRAMES = 4
# Bits per pixel the preview aims for when it picks its size: lower rates get a smaller picture
# rather than a blur of blocks at full size.
PREVIEW_BPP = 0.02
PREVIEW_MIN_WIDTH, PREVIEW_MAX_WIDTH = 160, 480


@dataclass(frozen=True)
class RateChoice:
    """What `choose_quality` decided: the quality, its estimated rate, and a warning if the target is out of reach."""

    quality: int
    kbps: float
    warning: str | None = None


def _packet_bits(payload: bytes, channels: int, keyframe: bool) -> int:
    sections = {bitstream.LATENTS: bitstream.pack_latents(channels, payload)}
    if not keyframe:
        sections[bitstream.REFERENCE] = b"\0"  # the reference check: one byte of every inter frame
    frame = Frame(FrameType.INTRA if keyframe else FrameType.INTER, sections, 0 if keyframe else 1)
    return 8 * len(bitstream.pack_frame(frame))


def estimate_rates(
    encoder: Encoder, frames: list[npt.NDArray[np.uint8]], frame_rate: Fraction, qualities: list[int] | None = None
) -> list[float]:
    """The codec track's rate at every quality, estimated on the first frames of a clip.

    Args:
        encoder: an encoder for the clip's size (its GOP weights intra against inter frames).
        frames: the first frames, (H, W, 3) uint8; at least one.
        frame_rate: frames per second.
        qualities: selective mode estimates only these (its probes cost real encodes); others read 0.

    Returns:
        kbps per quality, lowest quality first.
    """
    if encoder.config.mode == "sc":
        return encoder.estimate_rates(frames, qualities)
    if encoder.config.mode == "progressive":
        return _progressive_rates(encoder, frames[:PROGRESSIVE_PROBE_FRAMES], frame_rate)
    tables = encoder.model.tables
    symbols = [encoder.analyze(rgb) for rgb in frames]
    intra_share = 1.0 / min(encoder.config.gop, len(frames))
    rates = []
    for keep in encoder.model.config.quality_channels:
        intra = _packet_bits(context.encode_frame(symbols[0][:keep], None, tables)[0], keep, True)
        inter = [
            _packet_bits(context.encode_frame(s[:keep], r[:keep], tables)[0], keep, False) for r, s in itertools.pairwise(symbols)
        ]
        bits = intra_share * intra + (1 - intra_share) * (float(np.mean(inter)) if inter else intra)
        rates.append(bits * float(frame_rate) / 1000.0)
    return rates


def _progressive_rates(encoder: Encoder, frames: list[npt.NDArray[np.uint8]], frame_rate: Fraction) -> list[float]:
    """kbps per iteration count: each frame's packet at every iteration, cut after each (the same cut `thin` makes).

    A fresh encoder with `encoder`'s GOP sends every iteration whatever `encoder`'s quality is, and
    leaves `encoder` unused (its quality can still change). The first frame is a keyframe, the rest
    inter frames, weighted as the GOP weighs them (inter frames later in a GOP cost somewhat less
    than the first ones, so this errs high).
    """
    config = encoder.config
    full = Encoder(config.width, config.height, mode="progressive", model=config.model_name, gop=config.gop)
    levels = int(full.config.quality)
    bits = []
    for rgb in frames:
        packet = full.encode(rgb).packet
        bits.append([8 * len(bitstream.cut_packet(packet, k)) for k in range(1, levels + 1)])
    intra_share = 1.0 / min(config.gop, len(frames))
    per_frame = np.asarray(bits[0], dtype=np.float64) * intra_share
    if len(bits) > 1:
        per_frame += (1 - intra_share) * np.mean(np.asarray(bits[1:], dtype=np.float64), axis=0)
    return [float(b) * float(frame_rate) / 1000.0 for b in per_frame]


def choose_quality(rates: list[float], target_kbps: float) -> RateChoice:
    """The highest quality whose estimated rate fits `target_kbps`; the lowest, with a warning, if none does.

    Args:
        rates: kbps per quality, lowest first (from `estimate_rates`).
        target_kbps: the rate asked for the codec's own track.
    """
    fitting = [quality for quality, kbps in enumerate(rates, start=1) if kbps <= target_kbps]
    if fitting:
        return RateChoice(fitting[-1], rates[fitting[-1] - 1])
    warning = (
        f"target {target_kbps:g} kbps cannot be met: the lowest quality needs about {rates[0]:.1f} kbps "
        "on this clip; encoding at quality 1"
    )
    return RateChoice(1, rates[0], warning)


def preview_budget(codec_kbps: float, frame_rate: Fraction, width: int, height: int) -> tuple[float, int]:
    """The preview's rate and width for a codec track of `codec_kbps`.

    Args:
        codec_kbps: the codec track's (estimated) rate.
        frame_rate: frames per second.
        width: source width; height: source height (for the aspect ratio).

    Returns:
        (kbps, max_width): PREVIEW_SHARE of the codec's rate, and the width at which that rate
        gives about PREVIEW_BPP (within PREVIEW_MIN_WIDTH..PREVIEW_MAX_WIDTH, never above the source).
    """
    kbps = PREVIEW_SHARE * codec_kbps
    pixels = kbps * 1000 / float(frame_rate) / PREVIEW_BPP
    fitted = int((pixels * width / height) ** 0.5)
    # H.264 needs 2 pixels a side: a 1-pixel-wide source gets a 2-pixel preview (preview_size rounds up).
    return kbps, max(2, min(width, max(PREVIEW_MIN_WIDTH, min(PREVIEW_MAX_WIDTH, fitted))))
