"""Selective mode's rate: the codec track's kbps per quality, estimated from a clip's first frames, and
`--bitrate`'s step of the fidelity CRF at the end of each GOP.

    first frames, kept pixels ─▶ fidelity layer probe (each frame's access unit) ┐
                                 background layer probe (one keyframe's)         ┴─▶ kbps per quality
    packets of a GOP ─▶ GopRate.count ─▶ kbps against the target ─▶ CRF ± RATE_STEP for the next GOP
                        (a GOP cut short by a scene cut, under half of `gop` frames, counts on into the next)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .layer import BackgroundLayer, FidelityLayer
from .options import SC_QUALITY_LEVELS, SelectiveOptions

__all__ = ["PACKET_OVERHEAD", "RATE_STEP", "GopRate", "estimate_rates"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

#: `--bitrate`: move the fidelity CRF by this much per GOP when the last GOP missed the target.
RATE_STEP = 2
#: Header, section headers, mask and CRC of a typical packet, for rate estimates (bytes): an inter
#: frame's 8 bytes of format 2, the FIDELITY tag and length, a few bytes of mask.
PACKET_OVERHEAD = 14


def estimate_rates(
    frames: list[Image],
    kept: list[Mask],
    options: SelectiveOptions,
    gop: int,
    layers: tuple[FidelityLayer, BackgroundLayer],
    qualities: Sequence[int] | None = None,
) -> list[float]:
    """The codec track's kbps at each quality (only `qualities` if given, the others 0).

    Args:
        frames: the clip's first frames, (H, W, 3) uint8; at least one.
        kept: each frame's (H, W) bool kept pixels.
        options: the encoder's options.
        gop: frames per GOP.
        layers: the encoder's fidelity and background layers (each probes on a coder of its own).
        qualities: the levels to estimate (default all).
    Returns:
        kbps per quality, lowest first.
    """
    fidelity, background = layers
    intra_share = 1.0 / gop  # a keyframe (IDR + background) is worth many inter frames
    rates = []
    for quality in range(1, SC_QUALITY_LEVELS + 1):
        if qualities is not None and quality not in qualities:
            rates.append(0.0)
            continue
        fg, bg = options.crfs(quality)
        sizes = [size + PACKET_OVERHEAD for size in fidelity.probe(frames, kept, fg)]
        # One full plate per refresh period; the updates between cost a few percent of one (left out).
        refresh = options.refresh_frames()
        keyframe_background = background.probe(frames[0], bg)
        sizes[0] += round(keyframe_background * min(1.0, gop / refresh)) if refresh else keyframe_background
        inter = float(np.mean(sizes[1:])) if len(sizes) > 1 else sizes[0]
        bits = 8 * (intra_share * sizes[0] + (1 - intra_share) * inter)
        rates.append(bits * float(options.frame_rate) / 1000.0)
    return rates


class GopRate:
    """`--bitrate` at the encoder: the bits of the GOP so far, and the fidelity CRF they call for next."""

    def __init__(self, options: SelectiveOptions, gop: int) -> None:
        self._options, self._gop = options, gop
        #: The target (None: no `--bitrate`, the CRF stays).
        self.target_kbps: float | None = None
        self._bits = 0
        self._frames = 0

    def count(self, packet: bytes) -> None:
        """Add a packet of the current GOP."""
        self._bits += 8 * len(packet)
        self._frames += 1

    def next_crf(self, crf: int) -> int:
        """At a GOP's end: `crf` moved toward the target (±RATE_STEP, within `crf_bounds`); starts the next GOP's count.

        A GOP of under half `gop` frames (a scene cut came early) leaves `crf` and counts on: its keyframe's
        share of its bits would overstate the rate.
        """
        assert self.target_kbps is not None
        if 2 * self._frames < self._gop:
            return crf
        kbps = self._bits * float(self._options.frame_rate) / self._frames / 1000
        self._bits = self._frames = 0
        step = RATE_STEP if kbps > 1.05 * self.target_kbps else -RATE_STEP if kbps < 0.8 * self.target_kbps else 0
        low, high = self._options.crf_bounds()
        return max(low, min(high, crf + step))
