#!/usr/bin/env python3
"""What the background bound (`--max-background-error`) costs: bits, phantoms and encode speed, with and without.

For each clip and quality, the clip is coded in selective mode without the bound and with it, decoded by
the real decoder, and every 16x16 block outside the decoded keep mask is compared with the source (mean
absolute BT.601 luma error):

    clip  q  bound  kbps  kept %  frames over  blocks over  worst  kept dB  outside dB  keyframes  enc fps

`frames over` counts the frames with a block over `--limit` (20 levels: the issue's measure) outside the
kept region; `kept %` is the share of blocks the stream keeps; `kept dB` / `outside dB` the PSNR of the
decoded frames inside / outside the decoded keep mask; `keyframes` the frames that start a GOP (every
`--gop`, and scene cuts). `--scene-cut` and `--plate-lookahead` set those options (0: off, the encoder
before issue 21 item 2). `--x265 CRF ...` also codes each clip with ffmpeg's libx265 (preset medium,
keyint `--gop`, its own scene-cut keyframes on) and prints its kbps, whole-frame PSNR and PSNR inside
the keep masks of the last selective encode (the same pixels as that row's `kept dB`).
`--speed` times zero-latency encoding (masks found one frame ahead, as `streamcodec bench --mode sc`
and the webcam do) instead.

    python scripts/benchmarks/bound_cost.py CLIP.mp4 [...] [--qualities 1 2 3 4] [--bound 20] [--latency offline]
        [--scene-cut 0.5] [--plate-lookahead 2.5] [--x265 28 32 36]
    python scripts/benchmarks/bound_cost.py CLIP.mp4 --speed [--frames 100]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamcodec import bitstream
from streamcodec.gc.codec import DEFAULT_GOP
from streamcodec.metrics import psnr_from_mse
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
    kept_db: float
    outside_db: float
    keyframes: list[int]
    masks: list[np.ndarray]  # each frame's decoded keep blocks


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
    squares = {True: [0.0, 0], False: [0.0, 0]}  # inside / outside the keep mask: sum of squared errors, samples
    keyframes, masks = [], []
    for index, (packet, source) in enumerate(zip(packets, frames, strict=True)):
        decoded = decoder.decode(packet)
        frame = bitstream.unpack_frame(packet)
        blocks = decode_mask(frame.sections.get(bitstream.MASK, b""), shape, None if frame.is_key else previous)
        previous = blocks
        keyframes += [index] if frame.is_key else []
        masks.append(blocks)
        add_squares(squares, decoded, source, blocks)
        errors = block_errors(luma(decoded), luma(source))[~blocks]
        over = int((errors > limit).sum())
        kept += int(blocks.sum())
        frames_over += over > 0
        blocks_over += over
        worst = max(worst, float(errors.max()) if errors.size else 0.0)
    kbps = 8 * sum(map(len, packets)) * float(rate) / len(packets) / 1000
    share = 100 * kept / (len(packets) * shape[0] * shape[1])
    db = {inside: psnr_from_mse(total / max(count, 1)) for inside, (total, count) in squares.items()}
    return Row(kbps, share, frames_over, blocks_over, worst, len(frames) / seconds, db[True], db[False], keyframes, masks)


def add_squares(squares: dict[bool, list], decoded: np.ndarray, source: np.ndarray, blocks: np.ndarray) -> None:
    """Add one frame's squared errors inside and outside the (block) keep mask to `squares`."""
    height, width = source.shape[:2]
    kept = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width]
    errors = (decoded.astype(np.float64) - source) ** 2
    for inside in (True, False):
        region = errors[kept == inside]
        squares[inside][0] += float(region.sum())
        squares[inside][1] += region.size


def x265(clip: Path, frames: list[np.ndarray], rate: Fraction, crf: int, gop: int, masks: list[np.ndarray]) -> str:
    """One libx265 point of the clip's first frames: kbps, whole-frame PSNR, PSNR inside `masks`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "x265.mkv"
        command = ["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-frames:v", str(len(frames)), "-an", "-c:v", "libx265"]
        command += ["-crf", str(crf), "-preset", "medium", "-x265-params", f"keyint={gop}:log-level=error", str(out)]
        subprocess.run(command, check=True)
        decoded, _ = read(out, len(frames))
        keys = sum(packet.is_keyframe for packet in av.open(str(out)).demux(video=0) if packet.size)
        kbps = 8 * out.stat().st_size * float(rate) / len(frames) / 1000
    squares = {True: [0.0, 0], False: [0.0, 0]}
    whole = 0.0
    for picture, source, blocks in zip(decoded, frames, masks, strict=True):
        add_squares(squares, picture, source, blocks)
        whole += float(np.mean((picture.astype(np.float64) - source) ** 2))
    kept = psnr_from_mse(squares[True][0] / max(squares[True][1], 1))
    whole_db = psnr_from_mse(whole / len(frames))
    return f"{clip.stem} | x265 crf {crf} | | {kbps:.1f} | whole {whole_db:.2f} dB | kept {kept:.2f} dB | {keys} keyframes"


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
    parser.add_argument("--scene-cut", type=float, help="SelectiveOptions.scene_cut (0: off; default the encoder's)")
    parser.add_argument("--plate-lookahead", type=float, help="offline: SelectiveOptions.plate_lookahead s (0: off)")
    parser.add_argument("--x265", type=int, nargs="*", default=[], metavar="CRF", help="also code with libx265 at these CRFs")
    args = parser.parse_args()
    extra = {name: getattr(args, name) for name in ("scene_cut", "plate_lookahead") if getattr(args, name) is not None}
    print("clip | q | bound | kbps | kept % | frames over | blocks over | worst | kept dB | outside dB | keyframes | enc fps")
    for clip in args.clips:
        frames, rate = read(clip, args.frames)
        latency = "zero" if args.speed else args.latency
        for quality in [2] if args.speed else args.qualities:
            for bound in (None, args.bound):
                options = SelectiveOptions.for_files(latency=latency, frame_rate=rate, max_background_error=bound, **extra)
                if args.speed:
                    encoder, _, seconds = encode(frames, options, quality, args.gop)
                    check = 1000 * encoder.timings.get("bound", 0.0) / len(frames)
                    fps = len(frames) / seconds
                    print(f"{clip.stem} | {quality} | {bound or 'off'} | | | | | | {fps:.1f} (bound {check:.2f} ms/frame)")
                    continue
                row = measure(frames, options, quality, args.gop, args.limit, rate)
                print(
                    f"{clip.stem} | {quality} | {bound or 'off'} | {row.kbps:.1f} | {row.kept:.1f} | {row.frames_over} | "
                    f"{row.blocks_over} | {row.worst:.1f} | {row.kept_db:.2f} | {row.outside_db:.2f} | "
                    f"{' '.join(map(str, row.keyframes))} | {row.fps:.1f}",
                    flush=True,
                )
        for crf in args.x265:
            print(x265(clip, frames, rate, crf, args.gop, row.masks), flush=True)


if __name__ == "__main__":
    main()
