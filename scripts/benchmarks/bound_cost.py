#!/usr/bin/env python3
"""What the background bound (`--max-background-error`) costs: bits, phantoms and encode speed, with and without.

For each clip and quality, the clip is coded in selective mode without the bound and with it, decoded by
the real decoder, and every 16x16 block outside the decoded keep mask is compared with the source (mean
absolute BT.601 luma error):

    clip  q  bound  kbps  kept %  frames over  blocks over  worst  enc fps

`frames over` counts the frames with a block over `--limit` (20 levels: the issue's measure) outside the
kept region; `kept %` is the share of blocks the stream keeps. `--speed` times zero-latency encoding
(masks found one frame ahead, as `streamcodec bench --mode sc` and the webcam do) instead.

    python scripts/benchmarks/bound_cost.py CLIP.mp4 [...] [--qualities 1 2 3 4] [--bound 20] [--latency offline]
    python scripts/benchmarks/bound_cost.py CLIP.mp4 --speed [--frames 100]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamcodec import bitstream
from streamcodec.gc.codec import DEFAULT_GOP
from streamcodec.selective.bound import block_errors, luma
from streamcodec.selective.codec import SelectiveDecoder, SelectiveEncoder, SelectiveOptions
from streamcodec.selective.maskcode import decode_mask


@dataclass
class Row:
    kbps: float
    kept: float
    frames_over: int
    blocks_over: int
    worst: float
    fps: float


def read(path: Path, frames: int) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 25)
        out = []
        for frame in container.decode(stream):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    return out, rate


def encode(
    frames: list[np.ndarray], options: SelectiveOptions, quality: int, gop: int
) -> tuple[SelectiveEncoder, list[bytes], float]:
    height, width = frames[0].shape[:2]
    encoder = SelectiveEncoder(width, height, quality=quality, gop=gop, options=options)
    started = time.perf_counter()
    packets: list[bytes] = []
    live = options.latency == "zero"
    if live:  # masks found one frame ahead, as the bench and the webcam do
        encoder.prepare(frames[0])
    for index, frame in enumerate(frames):
        if live and index + 1 < len(frames):
            encoder.prepare(frames[index + 1])
        packets += [out.packet for out in encoder.push(frame)]
    packets += [out.packet for out in encoder.flush()]
    seconds = time.perf_counter() - started
    encoder.close()
    return encoder, packets, seconds


def measure(frames: list[np.ndarray], options: SelectiveOptions, quality: int, gop: int, limit: float, rate: Fraction) -> Row:
    encoder, packets, seconds = encode(frames, options, quality, gop)
    decoder = SelectiveDecoder(encoder.config)
    height, width = frames[0].shape[:2]
    shape = (-(-height // 16), -(-width // 16))
    previous = None
    kept = frames_over = blocks_over = 0
    worst = 0.0
    for packet, source in zip(packets, frames, strict=True):
        decoded = decoder.decode(packet)
        frame = bitstream.unpack_frame(packet)
        blocks = decode_mask(frame.sections.get(bitstream.MASK, b""), shape, None if frame.is_key else previous)
        previous = blocks
        errors = block_errors(luma(decoded), luma(source))[~blocks]
        over = int((errors > limit).sum())
        kept += int(blocks.sum())
        frames_over += over > 0
        blocks_over += over
        worst = max(worst, float(errors.max()) if errors.size else 0.0)
    kbps = 8 * sum(map(len, packets)) * float(rate) / len(packets) / 1000
    share = 100 * kept / (len(packets) * shape[0] * shape[1])
    return Row(kbps, share, frames_over, blocks_over, worst, len(frames) / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--bound", type=float, default=20.0, help="the bound to measure (levels)")
    parser.add_argument("--limit", type=float, default=20.0, help="what counts as a block over (levels)")
    parser.add_argument("--latency", choices=["offline", "zero"], default="offline")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--gop", type=int, default=DEFAULT_GOP)
    parser.add_argument("--speed", action="store_true", help="only time zero-latency encoding (q2), without and with")
    args = parser.parse_args()
    print("clip | q | bound | kbps | kept % | frames over | blocks over | worst | enc fps")
    for clip in args.clips:
        frames, rate = read(clip, args.frames)
        latency = "zero" if args.speed else args.latency
        for quality in [2] if args.speed else args.qualities:
            for bound in (None, args.bound):
                options = SelectiveOptions.for_files(latency=latency, frame_rate=rate, max_background_error=bound)
                if args.speed:
                    encoder, _, seconds = encode(frames, options, quality, args.gop)
                    check = 1000 * encoder.timings.get("bound", 0.0) / len(frames)
                    fps = len(frames) / seconds
                    print(f"{clip.stem} | {quality} | {bound or 'off'} | | | | | | {fps:.1f} (bound {check:.2f} ms/frame)")
                    continue
                row = measure(frames, options, quality, args.gop, args.limit, rate)
                print(
                    f"{clip.stem} | {quality} | {bound or 'off'} | {row.kbps:.1f} | {row.kept:.1f} | {row.frames_over} | "
                    f"{row.blocks_over} | {row.worst:.1f} | {row.fps:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
