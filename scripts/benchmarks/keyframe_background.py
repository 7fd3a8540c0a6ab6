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
    roiN      (hevc, --latency zero) the frame itself, its blocks outside the kept region coded N QP
              coarser through FFmpeg's ROI side data (the `addroi` filter), which x265 turns into
              per-block offsets; the keyframe's reconstruction is held outside afterwards. With x265's
              lookahead (--latency offline) this build crashed in the encoder, hence zero latency only
    whole     the frame itself at the fidelity CRF (an upper bound for the inter frames)

    python scripts/benchmarks/keyframe_background.py CLIP CRF [av1|hevc] [variants...]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamcodec.io.demux import Source, VideoFrame
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder, rgb_to_frame
from streamcodec.selective.maskcode import block_mask, expand
from streamcodec.selective.masks import create_mask_source

GOP = 25


def coded(rgb: np.ndarray, codec: str, crf: int) -> tuple[np.ndarray, int]:
    """`rgb` as one intra picture at `crf` decodes to, and its bits."""
    height, width = rgb.shape[:2]
    with FidelityEncoder(width, height, 10, codec=codec, crf=min(63 if codec == "av1" else 51, crf)) as encoder:
        unit = encoder.encode(rgb, True)
    return FidelityDecoder(codec, width=width, height=height).decode(unit)[:height, :width].copy(), 8 * len(unit)


def kept_runs(mask: np.ndarray, block: int = 16) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) rectangles covering the kept `block`² cells, one per horizontal run of cells."""
    rows, cols = mask.shape[0] // block, mask.shape[1] // block
    cells = np.asarray(mask[: rows * block, : cols * block].reshape(rows, block, cols, block).any(axis=(1, 3)))
    runs = []
    for row in range(rows):
        col = 0
        while col < cols:
            if not cells[row, col]:
                col += 1
                continue
            start = col
            while col < cols and cells[row, col]:
                col += 1
            runs.append((start * block, row * block, (col - start) * block, block))
    return runs


_GRAPHS: list[Any] = []


def with_roi(frame: Any, mask: np.ndarray, offset: int) -> Any:
    """`frame` carrying ROI side data: the kept runs at offset 0, listed first (the first region wins), the rest +offset."""
    import av

    graph = av.filter.Graph()
    node = graph.add_buffer(
        template=None, width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 10)
    )
    head = node
    regions = [*kept_runs(mask), (0, 0, frame.width, frame.height)]
    for index, (x, y, w, h) in enumerate(regions):
        qoffset = f"{offset}/51" if index == len(regions) - 1 else "0"  # x265 scales the fraction by its QP range, 51
        step = graph.add("addroi", f"x={x}:y={y}:w={w}:h={h}:qoffset={qoffset}")
        node.link_to(step)
        node = step
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    frame.pts, frame.time_base = 0, Fraction(1, 10)
    head.push(frame)
    out = sink.pull()
    _GRAPHS.append(graph)  # the pulled frame's side data lives in the graph's buffers: keep it until encoded
    return out


def send(encoder: FidelityEncoder, picture: np.ndarray, key: bool, mask: np.ndarray | None, offset: int) -> list[bytes]:
    """`encoder.send`, with the ROI side data on a keyframe when `mask` is given (experiment only: private members)."""
    if mask is None or not key:
        return encoder.send(picture, key)
    import av

    frame = with_roi(rgb_to_frame(picture), mask, offset)
    frame.pts = encoder._index
    frame.pict_type = av.video.frame.PictureType.I
    encoder._keyframes.append(True)
    encoder._index += 1
    return encoder._checked(encoder._context.encode(frame))


def run(frames: list[np.ndarray], masks: list[np.ndarray], codec: str, crf: int, variant: str, latency: str) -> str:
    height, width = frames[0].shape[:2]
    background = np.median(np.stack(frames[::4]), axis=0).astype(np.uint8)
    encoder = FidelityEncoder(width, height, 10, codec=codec, crf=crf, latency=latency)
    units: list[bytes] = []
    if variant.startswith("roi") and latency != "zero":
        raise SystemExit("roiN needs --latency zero (the keyframe's reconstruction is held at once)")
    look = FidelityDecoder(codec, width=width, height=height)
    aside, last = 0, frames[0]
    for index, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
        key = index % GOP == 0
        if not key:
            picture = last.copy()
        elif variant == "flat":
            picture = np.full_like(rgb, 128)
        elif variant == "whole" or variant.startswith("roi"):
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
        roi = mask if variant.startswith("roi") else None
        units += send(encoder, picture, key, roi, int(variant[3:] or 8) if roi is not None else 0)
        if roi is not None and key:  # hold what the decoder has outside (coarser than the input), so it stays a skip
            last = look.decode(units[-1])[:height, :width].copy()
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
    parser.add_argument("--latency", choices=["offline", "zero"], default="offline", help="the fidelity codec's latency")
    args = parser.parse_args()
    with Source(args.clip) as source:
        frames = [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]
    height, width = frames[0].shape[:2]
    masks = [expand(block_mask(m, 16), height, width, 16) for m in create_mask_source().kept_masks(iter(frames))]
    print(f"{args.clip.name}: {len(frames)} frames, {np.mean([m.mean() for m in masks]) * 100:.1f} % kept")
    for variant in args.variants:
        print(run(frames, masks, args.codec, args.crf, variant, args.latency), flush=True)


if __name__ == "__main__":
    main()
