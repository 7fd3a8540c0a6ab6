#!/usr/bin/env python3
"""`streamcodec thin` against decoding and encoding again, on one clip: time, and the codec track's size.

A progressive encode of CLIP at every iteration (no preview), then for each K in --iterations:
    thin       thin_file(full, K)
    re-encode  decode_file(full → .y4m) + encode_file(.y4m → K iterations): what thinning replaces
    direct     encode_file(CLIP → K iterations): the rate the model needs for K iterations coded directly
and whether thin's video packets are byte for byte the direct encode's (they should be: a section
depends only on the iterations before it).

PYTHONPATH=. python scripts/benchmarks/thin_speed.py CLIP [--iterations 1,4] [--frames 12] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.thin import thin_file

MODEL = "progressive-small"


def video_packets(path: Path) -> list[bytes]:
    with MatroskaReader(path) as reader:
        return [packet.data for packet in reader.packets() if packet.track == 1]


def timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--iterations", default="1,4")
    parser.add_argument("--frames", type=int, default=12, help="frames of CLIP used (cut with a y4m first)")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="thin-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.y4m"
    decode_frames(args.clip, source, args.frames)
    full = work / "full.mkv"
    seconds = timed(lambda: encode_file(source, full, mode="progressive", model=MODEL, preview=False))
    print(f"encode, all iterations: {seconds:.2f} s, {sum(map(len, video_packets(full))) / 1e3:.1f} kB")
    for k in (int(text) for text in args.iterations.split(",")):
        thin_s = timed(lambda k=k: thin_file(full, work / f"thin{k}.mkv", k, force=True))
        decoded = work / f"decoded{k}.y4m"
        redo_s = timed(lambda k=k, d=decoded: (decode_file(full, d, force=True),
                                               encode_file(d, work / f"redo{k}.mkv", mode="progressive", model=MODEL,
                                                           quality=k, preview=False, force=True)))  # fmt: skip
        encode_file(source, work / f"direct{k}.mkv", mode="progressive", model=MODEL, quality=k, preview=False, force=True)
        thin, direct = video_packets(work / f"thin{k}.mkv"), video_packets(work / f"direct{k}.mkv")
        print(
            f"K={k}: thin {thin_s * 1e3:.1f} ms, decode+encode {redo_s:.2f} s ({redo_s / thin_s:.0f}x); "
            f"thin {sum(map(len, thin)) / 1e3:.2f} kB vs direct {sum(map(len, direct)) / 1e3:.2f} kB, "
            f"packets identical: {thin == direct}"
        )


def decode_frames(clip: Path, target: Path, frames: int) -> None:
    """The first `frames` frames of `clip` as a y4m (ffmpeg), so every run codes the same pictures."""
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-frames:v", str(frames), str(target)], check=True)


if __name__ == "__main__":
    main()
