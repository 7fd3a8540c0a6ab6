#!/usr/bin/env python3
"""What the kept region costs when the fidelity layer's keyframe also carries the background.

Selective mode fills the fidelity layer's keyframe flat outside the kept region and sends the
background as a separate plate; blocks that enter the kept region later are then coded from that
flat fill. This experiment codes the same kept region (the eval's masks, 16-px blocks, GOP 25) with
the keyframe's outside filled in three ways and prints keyframe bits, inter-frame bits, the bits of
the background picture coded aside, and PSNR inside the kept region:

    flat      the shipped fill (grey at keyframes, the last input held between)
    lowbgN    the frame itself, first coded and decoded at CRF + N (a plate's quality), then held
    estN      the same from the clip's temporal median (a denoised background, like the plate's estimate)
    blurN     the frame scaled down N times and back up (smooth: cheap at the fidelity CRF)
    whole     the frame itself at the fidelity CRF (an upper bound for the inter frames)

    python scripts/keyframe_background.py CLIP CRF [av1|hevc] [variants...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from streamcodec.io.demux import Source, VideoFrame
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder
from streamcodec.selective.maskcode import block_mask, expand
from streamcodec.selective.masks import create_mask_source

GOP = 25


def coded(rgb: np.ndarray, codec: str, crf: int) -> tuple[np.ndarray, int]:
    """`rgb` as one intra picture at `crf` decodes to, and its bits."""
    height, width = rgb.shape[:2]
    with FidelityEncoder(width, height, 10, codec=codec, crf=min(63 if codec == "av1" else 51, crf)) as encoder:
        unit = encoder.encode(rgb, True)
    return FidelityDecoder(codec, width=width, height=height).decode(unit)[:height, :width].copy(), 8 * len(unit)


def run(frames: list[np.ndarray], masks: list[np.ndarray], codec: str, crf: int, variant: str) -> str:
    height, width = frames[0].shape[:2]
    background = np.median(np.stack(frames[::4]), axis=0).astype(np.uint8)
    encoder = FidelityEncoder(width, height, 10, codec=codec, crf=crf, latency="offline")
    units: list[bytes] = []
    aside, last = 0, frames[0]
    for index, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
        key = index % GOP == 0
        if not key:
            picture = last.copy()
        elif variant == "flat":
            picture = np.full_like(rgb, 128)
        elif variant == "whole":
            picture = rgb.copy()
        elif variant.startswith("blur"):
            factor = int(variant[4:])
            small = cv2.resize(rgb, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
            picture = np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))
        else:
            source, offset = (background, variant[3:]) if variant.startswith("est") else (rgb, variant[5:])
            picture, bits = coded(source, codec, crf + int(offset or 18))
            aside += bits
        picture[mask] = rgb[mask]
        last = picture
        units += encoder.send(picture, key)
    units += encoder.drain()
    decoder = FidelityDecoder(codec, width=width, height=height)
    squared = count = 0.0
    for index, unit in enumerate(units):
        diff = decoder.decode(unit)[:height, :width][masks[index]].astype(np.float64) - frames[index][masks[index]]
        squared, count = squared + float(np.sum(diff * diff)), count + diff.size
    key_bits = sum(8 * len(u) for i, u in enumerate(units) if i % GOP == 0)
    inter_bits = sum(8 * len(u) for i, u in enumerate(units) if i % GOP)
    psnr = 10 * np.log10(255**2 / (squared / count))
    return (
        f"{variant:8s} crf {crf}: keyframes {key_bits / 1000:.0f} kbit, inter {inter_bits / 1000:.0f} kbit, "
        f"background aside {aside / 1000:.0f} kbit, kept PSNR {psnr:.2f} dB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("crf", type=int)
    parser.add_argument("codec", nargs="?", default="av1", choices=["av1", "hevc"])
    parser.add_argument("variants", nargs="*", default=["flat", "lowbg", "whole"])
    args = parser.parse_args()
    with Source(args.clip) as source:
        frames = [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]
    height, width = frames[0].shape[:2]
    masks = [expand(block_mask(m, 16), height, width, 16) for m in create_mask_source().kept_masks(iter(frames))]
    print(f"{args.clip.name}: {len(frames)} frames, {np.mean([m.mean() for m in masks]) * 100:.1f} % kept")
    for variant in args.variants:
        print(run(frames, masks, args.codec, args.crf, variant), flush=True)


if __name__ == "__main__":
    main()
