#!/usr/bin/env python3
"""Benchmark: the fidelity layer at zero latency (live) against offline (files), at equal kept-region PSNR.

The clip's keep masks come from `create_mask_source()` (16-px blocks, as the encoder codes them). Each
variant codes the filled frames with a keyframe every 25, decodes them, and measures bits per frame and
PSNR over the kept pixels; "ratio" is the BD-rate against x265 on the whole frames at preset medium
(B-frames, lookahead: x265 as people run it offline), turned into a bitrate ratio.

    x265 whole          the anchor: whole frames, preset medium, keyint 25
    zero hevc recon     the live path: x265 fast, zero latency, outside filled with the last reconstruction
    offline hevc hold   `--latency offline --fidelity hevc`: lookahead and cu-tree, no B-frames; outside holds the last input
    offline av1 hold    `--latency offline` (the file default): SVT-AV1 preset 6, hierarchical mini-GOPs
    offline av1 whole   SVT-AV1 the same way on the whole frames, for reference

    python scripts/benchmarks/bench_latency.py CLIP [--frames 100] [--size 640x480]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fidelity import FPS, GOP, Point, kept_psnr, ratio, run_x265_offline

from streamcodec.io.demux import first_frames
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder
from streamcodec.selective.fill import fill_outside
from streamcodec.selective.maskcode import block_mask, expand
from streamcodec.selective.masks import create_mask_source

Frames = list[np.ndarray]
CRFS = {"hevc": [24, 28, 32, 36], "av1": [30, 36, 42, 48]}


def held(frames: Frames, masks: Frames) -> Frames:
    """The offline fill: flat at keyframes, then the previous filled input wherever nothing is kept."""
    out: Frames = []
    for index, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
        key = index % GOP == 0 or not out
        out.append(fill_outside(rgb, mask, "flat") if key else fill_outside(rgb, mask, "background", out[-1]))
    return out


def offline(codec: str, crf: int, inputs: Frames, frames: Frames, masks: Frames) -> Point:
    """Code `inputs` with the fidelity layer's offline settings; quality against `frames` inside `masks`."""
    height, width = frames[0].shape[:2]
    units: list[bytes] = []
    with FidelityEncoder(width, height, FPS, codec=codec, crf=crf, latency="offline", threads=2) as encoder:
        for index, rgb in enumerate(inputs):
            units += encoder.send(rgb, index % GOP == 0)
        units += encoder.drain()
    decoder = FidelityDecoder(codec, width=width, height=height)
    decoded = [decoder.decode(unit) for unit in units]
    return Point(8 * sum(map(len, units)) / len(frames), kept_psnr(decoded, frames, masks), 0, 0, 0, 0)


def zero_recon(crf: int, frames: Frames, masks: Frames) -> Point:
    """The live path: zero-latency x265, outside the kept region the decoder's last picture."""
    height, width = frames[0].shape[:2]
    decoder = FidelityDecoder("hevc", width=width, height=height)
    decoded: Frames = []
    bits = 0
    with FidelityEncoder(width, height, FPS, codec="hevc", crf=crf, threads=2) as encoder:
        for index, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
            key = index % GOP == 0 or not decoded
            filled = fill_outside(rgb, mask, "flat") if key else fill_outside(rgb, mask, "background", decoded[-1])
            unit = encoder.encode(filled, index % GOP == 0)
            bits += 8 * len(unit)
            decoded.append(decoder.decode(unit))
    return Point(bits / len(frames), kept_psnr(decoded, frames, masks), 0, 0, 0, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = first_frames(args.clip, args.frames, width, height)
    masks = [expand(block_mask(m, 16), height, width, 16) for m in create_mask_source().kept_masks(iter(frames))]
    inputs = held(frames, masks)
    print(f"{args.clip.name}: {len(frames)} frames {width}x{height}, GOP {GOP}, kept {np.mean([m.mean() for m in masks]):.1%}")
    curves = {
        "x265 whole": [run_x265_offline(crf, frames, masks) for crf in CRFS["hevc"]],
        "zero hevc recon": [zero_recon(crf, frames, masks) for crf in CRFS["hevc"]],
        "offline hevc hold": [offline("hevc", crf, inputs, frames, masks) for crf in CRFS["hevc"]],
        "offline av1 hold": [offline("av1", crf, inputs, frames, masks) for crf in CRFS["av1"]],
        "offline av1 whole": [offline("av1", crf, frames, frames, masks) for crf in CRFS["av1"]],
    }
    for name, points in curves.items():
        cells = "  ".join(f"{p.bits_per_frame / 1000:6.2f} kbit {p.psnr:5.2f} dB" for p in points)
        print(f"  {name:<18} {cells}   ratio {ratio(curves['x265 whole'], points)}")


if __name__ == "__main__":
    main()
