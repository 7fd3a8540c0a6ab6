#!/usr/bin/env python3
"""Peak memory of `streamcodec encode` and `decode` on a short and a long clip.

Frames stream one at a time, so the peak resident set size should not grow with the clip's length.
The long clip is the bundled sample looped (default 10 minutes), scaled down so the run stays short.

    python scripts/benchmarks/memory_check.py [--minutes 10] [--size 320x180] [--mode sc|gc]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "bbb_640x360.mp4"


def looped(seconds: float, size: str, out: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(SAMPLE),
            "-t",
            str(seconds),
            "-vf",
            f"scale={size.replace('x', ':')}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "23",
            "-c:a",
            "copy",
            str(out),
        ],
        check=True,
    )
    return out


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run a child process; return (its peak RSS in MB, wall seconds)."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "streamcodec.cli", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"streamcodec {' '.join(args)} failed with status {status}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--mode", choices=["sc", "gc"], default="sc", help="codec mode (default sc, as encode's)")
    args = parser.parse_args()
    print(f"{'clip':>10} {'frames':>7} {'encode peak MB':>15} {'decode peak MB':>15} {'encode s':>9} {'decode s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (30.0, args.minutes * 60):
            clip = looped(seconds, args.size, Path(tmp) / f"loop{seconds:.0f}.mp4")
            mkv = Path(tmp) / f"loop{seconds:.0f}.mkv"
            enc_mb, enc_s = peak_rss_mb(["encode", str(clip), "-o", str(mkv), "--mode", args.mode, "--no-preview", "--json"])
            dec_mb, dec_s = peak_rss_mb(["decode", str(mkv), "-o", str(Path(tmp) / f"loop{seconds:.0f}.dec.mkv"), "--json"])
            frames = round(seconds * 25)
            print(f"{seconds:>9.0f}s {frames:>7} {enc_mb:>15.1f} {dec_mb:>15.1f} {enc_s:>9.1f} {dec_s:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
