#!/usr/bin/env python3
"""Archive throughput and compression: `streamcodec archive` on still-camera footage, vs x265.

footage   scripts/data/make_still_camera_clip.py (a fixed camera, two people walking), retimed to
          10 fps and cut into --clips clips of --seconds each, written as H.264 CRF 23 (what a
          camera stores); 640x480 by default
runs      the same set archived (selective mode), each into a fresh folder: the default (--jobs 1,
          the worker given every core), then one thread per worker (--threads-per-job 1) with
          --jobs 1 and --jobs 2, and on a local Ray 1 and 2 tasks of 1 CPU each (when Ray is
          installed); throughput is hours of footage per hour of wall clock (= x real time), whole
          run included (start-up, hashing, commits); per worker = throughput / workers. With the
          workers' threads summed no higher than the cores, N workers at 1 thread should reach
          about N times one worker's throughput if the cores are free (the load average is printed)
matched   per clip, the kept-region PSNR of the archived file (decoded, against the source, on
          the encoder's own kept masks) and the smallest x265 (medium, same GOP, CRF search) at
          or above it: bytes compared at matched quality in the kept region

PYTHONPATH=. python scripts/benchmarks/bench_archive.py [--clips 4] [--seconds 8] [--size 640x480] [--quality Q]
    [--jobs-1-only] [--no-ray] [--no-match] [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamcodec.archive import ArchiveOptions, Catalogue, archive
from streamcodec.eval.codecs import CODECS
from streamcodec.eval.quality import masked_psnr
from streamcodec.gc.codec import DEFAULT_GOP
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.selective.masks import create_mask_source

FPS = 10
X265_CRFS = range(16, 46)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_footage(work: Path, clips: int, seconds: float, size: str) -> list[Path]:
    """`clips` distinct still-camera clips of `seconds` at 10 fps, H.264 CRF 23."""
    frames = int(clips * seconds * FPS)
    long_clip = work / "still-25fps.mp4"
    script = Path(__file__).parent.parent / "data" / "make_still_camera_clip.py"
    subprocess.run([sys.executable, str(script), str(long_clip), "--frames", str(frames), "--size", size], check=True)
    footage = work / "footage"
    footage.mkdir()
    paths = []
    for index in range(clips):
        path = footage / f"cam{index + 1}.mp4"
        # setpts retimes the 25 fps frames to 10 fps: every frame kept, the walkers just slower.
        ffmpeg("-i", str(long_clip), "-vf", f"setpts=PTS*2.5,trim=start={index * seconds}:duration={seconds},setpts=PTS-STARTPTS",
               "-r", str(FPS), "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", "-an", str(path))  # fmt: skip
        paths.append(path)
    return paths


def frames_of(path: Path) -> list[np.ndarray]:
    with Source(path) as source:
        return [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]


@dataclass(frozen=True)
class Config:
    """One archive run: its label, workers, threads per worker (None: the cores shared) and Ray or not."""

    name: str
    jobs: int
    threads: int | None
    ray: str | None = None

    @property
    def folder(self) -> str:
        return "archive-" + "".join(c for c in self.name if c.isalnum())


def run_config(config: Config, footage: Path, out: Path, quality: int | None) -> float:
    """Archive `footage` into `out` as `config` says; print and return the throughput (h footage per h)."""
    options = ArchiveOptions([footage], out, jobs=config.jobs, threads=config.threads, ray=config.ray, quality=quality)
    load = os.getloadavg()[0]
    cpu = cpu_seconds()
    summary = archive(options)
    cpu = cpu_seconds() - cpu
    threads = config.threads or max(1, (os.cpu_count() or 1) // config.jobs)
    speed = summary.footage_s / summary.seconds
    # CPU time counts this process and its reaped children: the local pool's workers, not Ray's (the raylet's).
    per_cpu = "n/a (Ray's workers are not our children)" if config.ray is not None else f"{summary.footage_s / cpu:.2f}"
    print(
        f"{config.name:<22} {summary.done} files, {summary.footage_s:.0f} s footage in {summary.seconds:5.1f} s: "
        f"{speed:.2f} h footage/h, {speed / config.jobs:.2f} per worker ({config.jobs} x {threads} thread"
        f"{'s' if threads > 1 else ''}; {summary.engine}); footage per CPU hour {per_cpu}; load before {load:.1f}",
        flush=True,
    )
    return speed


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def kept_psnr(source: list[np.ndarray], decoded: list[np.ndarray], kept: list[np.ndarray]) -> float:
    """Kept-region PSNR of the clip: the mean of the frames' kept-region PSNR (streamcodec.eval.quality.masked_psnr)."""
    values = [masked_psnr(a, b, m) for a, b, m in zip(source, decoded, kept, strict=True)]
    return float(np.mean([v for v in values if v is not None]))


def x265_at(clip: Path, source: list[np.ndarray], kept: list[np.ndarray], target: float, work: Path) -> tuple[int, int, float]:
    """The highest CRF (smallest file) whose kept-region PSNR is at least `target`: (crf, bytes, psnr)."""
    low, high, best = X265_CRFS.start, X265_CRFS.stop - 1, None
    while low <= high:  # PSNR falls as CRF rises: binary search for the last CRF still at the target
        crf = (low + high) // 2
        out = work / f"{clip.stem}-x265-crf{crf}.mkv"
        ffmpeg("-i", str(clip), "-c:v", "libx265", "-preset", "medium", "-crf", str(crf), "-g", str(DEFAULT_GOP),
               "-x265-params", "log-level=error:info=0", "-pix_fmt", "yuv420p", "-an", str(out))  # fmt: skip
        psnr = kept_psnr(source, list(CODECS["x265"].frames(out)), kept)
        if psnr >= target:
            best, low = (crf, out.stat().st_size, psnr), crf + 1
        else:
            high = crf - 1
    if best is None:
        raise SystemExit(f"{clip}: x265 does not reach {target:.2f} dB in the kept region even at CRF {X265_CRFS.start}")
    return best


def matched(footage: list[Path], archive_dir: Path, work: Path) -> None:
    with Catalogue(archive_dir) as catalogue:
        rows = {Path(row.source).name: row for row in catalogue.rows("done")}
    total = {"source": 0, "sc": 0, "x265": 0}
    print(f"{'clip':<10} {'source kB':>10} {'archive kB':>10} {'kept PSNR':>9} {'x265 CRF':>8} {'x265 kB':>8} {'x265 PSNR':>9}")
    for clip in footage:
        row = rows[clip.name]
        assert row.output is not None
        source = frames_of(clip)
        kept = list(create_mask_source().kept_masks(iter(source)))
        sc_psnr = kept_psnr(source, list(CODECS["streamcodec-sc"].frames(archive_dir / row.output)), kept)
        crf, x265_bytes, x265_psnr = x265_at(clip, source, kept, sc_psnr, work)
        total["source"] += row.size
        total["sc"] += row.output_size or 0
        total["x265"] += x265_bytes
        print(
            f"{clip.name:<10} {row.size / 1e3:10.1f} {(row.output_size or 0) / 1e3:10.1f} {sc_psnr:9.2f} "
            f"{crf:8d} {x265_bytes / 1e3:8.1f} {x265_psnr:9.2f}",
            flush=True,
        )
    print(
        f"total: sources {total['source'] / 1e6:.2f} MB, archive {total['sc'] / 1e6:.3f} MB "
        f"(ratio {total['source'] / total['sc']:.1f}), x265 at matched kept-region PSNR {total['x265'] / 1e6:.3f} MB "
        f"(the archive is {total['sc'] / total['x265']:.2f}x the size of x265)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--jobs-1-only", action="store_true", help="only the --jobs 1 run (no scaling figures)")
    parser.add_argument("--no-match", action="store_true", help="skip the x265 comparison at matched kept-region PSNR")
    parser.add_argument("--quality", type=int, help="archive quality, 1..4 (default: the codec's, the highest)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    footage = make_footage(work, args.clips, args.seconds, args.size)
    made = time.perf_counter() - started
    print(f"footage: {args.clips} clips x {args.seconds:g} s, {args.size}, {FPS} fps ({made:.0f} s to make)")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} (other work shares the cores)")
    configs = [Config("default, jobs 1", 1, None)]
    if not args.jobs_1_only:
        configs += [Config("jobs 1 x 1 thread", 1, 1), Config("jobs 2 x 1 thread", 2, 1)]
    if not args.no_ray and not args.jobs_1_only and importlib.util.find_spec("ray") is not None:
        configs += [Config("ray 1 x 1 CPU", 1, 1, ""), Config("ray 2 x 1 CPU", 2, 1, "")]
    speeds = {config.name: run_config(config, work / "footage", work / config.folder, args.quality) for config in configs}
    print_scaling(speeds)
    if not args.no_match:
        matched(footage, work / configs[0].folder, work)


def print_scaling(speeds: dict[str, float]) -> None:
    """N workers at one thread each against one: near N when the cores are free."""
    for one, two in (("jobs 1 x 1 thread", "jobs 2 x 1 thread"), ("ray 1 x 1 CPU", "ray 2 x 1 CPU")):
        if one in speeds and two in speeds:
            print(f"scaling, 1 thread per worker: {two} / {one} = {speeds[two] / speeds[one]:.2f}x (2 workers; 2.00x is linear)")
    if "jobs 2 x 1 thread" in speeds:
        default = speeds["default, jobs 1"]
        print(f"jobs 2 x 1 thread / default jobs 1 (both use every core) = {speeds['jobs 2 x 1 thread'] / default:.2f}x")


if __name__ == "__main__":
    main()
