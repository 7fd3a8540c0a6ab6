#!/usr/bin/env python3
"""How much of a frame each background layer holds within the background bound, and at what rate.

Selective mode shows its background layer (a coded plate, or a picture the SC generator paints from
GC latents and a label map) wherever it does not keep a block. With the bound (`--max-background-error`)
every block whose background is more than the bound from the source is kept and coded from the source
instead, so a background layer earns its bits only in the blocks it holds within the bound. For each clip
and background layer this codes the clip with the bound on and splits every frame's 16x16 blocks:

    detectors   kept by the masks (person, face, motion; a GOP coded whole counts here where they found something)
    bound       kept, where the detectors found nothing: the background was over the bound there (or a whole GOP)
    held        shown from the background layer, within the bound

    clip  background  q  kbps  detectors %  bound %  held %  held of the rest %

`held of the rest` is held / (held + bound): the share of what the detectors leave to the background that
the layer can show within the bound.

    python scripts/benchmarks/synth_hold.py CLIP.mp4 [...] [--frames 40] [--qualities 2] [--latency zero]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamcodec import bitstream
from streamcodec.selective.codec import SelectiveEncoder, SelectiveOptions
from streamcodec.selective.maskcode import block_mask, decode_mask
from streamcodec.selective.masks import create_mask_source
from streamcodec.selective.options import BLOCK

BACKGROUNDS = ("plate", "synth")


def read(path: Path, frames: int) -> tuple[list[np.ndarray], Fraction]:
    """The first `frames` frames of a clip as RGB, and its frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rgb = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(frames), container.decode(stream), strict=False)]
        return rgb, Fraction(stream.average_rate or 25)


def split(frames: list[np.ndarray], options: SelectiveOptions, quality: int, gop: int, fps: float) -> list[float]:
    """[kbps, detectors %, bound %, held %] over the clip.

    The kept blocks are read from each packet's own MASK section (what the decoder keeps), the detectors'
    blocks from the same mask source run again on the clip (it is deterministic), so the split holds at
    either latency, with or without the offline plate look-ahead.
    """
    height, width = frames[0].shape[:2]
    encoder = SelectiveEncoder(width, height, quality=quality, gop=gop, options=options)
    try:
        packets = [out.packet for frame in frames for out in encoder.push(frame)]
        packets += [out.packet for out in encoder.flush()]
    finally:
        encoder.close()
    masks = create_mask_source(options.keep)
    try:
        detected = [block_mask(mask, BLOCK) for mask in masks.kept_masks(iter(frames))]
    finally:
        masks.close()
    counts, kept = np.zeros(3), None
    for packet, found in zip(packets, detected, strict=True):
        frame = bitstream.unpack_frame(packet)
        kept = decode_mask(frame.sections.get(bitstream.MASK, b""), found.shape, None if frame.is_key else kept)
        counts += [int((kept & found).sum()), int((kept & ~found).sum()), int((~kept).sum())]
    kbps = 8 * sum(map(len, packets)) * fps / len(packets) / 1000
    return [kbps, *(100 * counts / counts.sum())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--qualities", nargs="+", type=int, default=[2])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--latency", choices=["offline", "zero"], default="zero")
    args = parser.parse_args()
    print("| clip | background | q | kbps | detectors % | bound % | held % | held of the rest % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for clip in args.clips:
        frames, rate = read(clip, args.frames)
        for background in BACKGROUNDS:
            options = SelectiveOptions(background=background, latency=args.latency, frame_rate=rate)
            for quality in args.qualities:
                kbps, detectors, bound, held = split(frames, options, quality, args.gop, float(rate))
                rest = 100 * held / (held + bound) if held + bound else 0.0
                cells = [clip.stem, background, quality, *(f"{v:.1f}" for v in (kbps, detectors, bound, held, rest))]
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    main()
