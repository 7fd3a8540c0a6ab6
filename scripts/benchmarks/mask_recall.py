#!/usr/bin/env python3
"""Benchmark: how much of each person the keep masks cover, on a clip with ground truth, and at what cost.

The clip and its truth come from `scripts/data/make_still_camera_clip.py OUT.mp4 --scene crowd --truth DIR`
(real photos of people pasted on a real photo: the truth is every pasted person's pixels). Per frame and
person, recall is the share of the person's pixels inside the mask; people are grouped by their height in
the frame (40-120 px, the distant pedestrians of issue 21, and taller). For each kind alone (raw, before
dilation) and for the stabilised keep mask of `--keep`, it prints:

    recall     mean over person-frames, and the share of person-frames under half covered ("missed")
    precision  the share of the mask's pixels on a person
    area       the mean share of the frame in the mask
    ms         per frame, that kind alone (the keep mask: all its kinds and the stabiliser), wall clock, then
               the process's CPU time (all threads; steadier than the wall clock on a shared machine)

    python scripts/benchmarks/mask_recall.py CLIP DIR [--frames 80] [--kinds person,motion]
        [--keep person,face,motion] [--last 30]

`--kinds` takes `mog2` too (the motion kind as it was before it held people who stop), `motion-noshadow` (the
motion kind without what MOG2 labels shadow), and `hog`, `hog-daimler`:
OpenCV's HOG people detectors on every frame, measured for the pedestrian kind and not chosen.

`--last N` also reports recall over the clip's last N frames alone (`--scene stops`: the person who stopped).
Timings on shared machines drift; compare rows within one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamcodec.io.demux import first_frames
from streamcodec.selective.base import FrameMasker, Mask
from streamcodec.selective.masks import KINDS, MOTION_HOLD, create_mask_source, parse_keep
from streamcodec.selective.motion import MotionMasker

BANDS = ((40, 120, "40-120 px"), (121, 10_000, ">120 px"))
MIN_PIXELS = 100  # a person almost out of the frame is left out: a sliver has no height to speak of


class HogPeople:
    """OpenCV's HOG people detector (Dalal and Triggs 2005) on every frame, its boxes filled: a candidate kind.

    `daimler`: the Daimler model's 48x96 window (people from about 70 px tall) instead of the default 64x128.
    """

    def __init__(self, daimler: bool = False) -> None:
        if daimler:
            self._hog = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
            self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDaimlerPeopleDetector()))
        else:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))
        self.name = "hog-daimler" if daimler else "hog"

    def reset(self) -> None:
        """Stateless."""

    def mask(self, frame: np.ndarray) -> Mask:
        boxes, _ = self._hog.detectMultiScale(frame, winStride=(8, 8), padding=(8, 8), scale=1.05)
        mask = np.zeros(frame.shape[:2], dtype=bool)
        for x, y, width, height in np.asarray(boxes, dtype=int).reshape(-1, 4):
            mask[max(y, 0) : y + height, max(x, 0) : x + width] = True
        return mask


#: Rows for comparison that are not kinds: "mog2", the motion kind before it held movers that stop
#: (sc-masks-v1), the motion kind without what MOG2 calls shadows, and OpenCV's HOG people detectors.
BASELINES: dict[str, Callable[[], FrameMasker]] = {
    "mog2": MotionMasker,
    "motion-noshadow": lambda: MotionMasker(hold=MOTION_HOLD, drop_shadows=True),
    "hog": HogPeople,
    "hog-daimler": lambda: HogPeople(daimler=True),
}


@dataclass
class Tally:
    """Recall per person-frame by height band, and the mask's pixels on and off people."""

    recalls: dict[str, list[float]] = field(default_factory=lambda: {band: [] for *_, band in BANDS})
    last: list[float] = field(default_factory=list)
    on_person: int = 0
    kept: int = 0
    pixels: int = 0

    def add(self, mask: Mask, labels: np.ndarray, in_last: bool) -> None:
        self.on_person += int((mask & (labels > 0)).sum())
        self.kept += int(mask.sum())
        self.pixels += mask.size
        for label in np.unique(labels[labels > 0]):
            person = labels == label
            if person.sum() < MIN_PIXELS:
                continue
            rows = np.flatnonzero(person.any(axis=1))
            height, recall = int(rows[-1] - rows[0] + 1), float((mask & person).sum() / person.sum())
            for low, high, band in BANDS:
                if low <= height <= high:
                    self.recalls[band].append(recall)
            if in_last:
                self.last.append(recall)

    def row(self, name: str, ms: tuple[float, float], last: int) -> str:
        cells = [f"{name:<15}"]
        for *_, band in BANDS:
            values = np.array(self.recalls[band])
            missed = f"{(values < 0.5).mean():5.1%} missed, n {len(values):3d}" if len(values) else ""
            cells.append(f"{values.mean():6.1%} ({missed})" if len(values) else f"{'–':>28}")
        if last:
            cells.append(f"{np.mean(self.last):6.1%} (min {min(self.last):5.1%})" if self.last else f"{'–':>18}")
        precision = self.on_person / max(self.kept, 1)
        cells.append(f"{precision:6.1%} {self.kept / max(self.pixels, 1):6.1%} {ms[0]:7.2f} {ms[1]:7.2f}")
        return "  ".join(cells)


def read_truth(folder: Path, count: int) -> list[np.ndarray]:
    """The first `count` label images (uint8, 0 none, k the k-th person pasted), scaled to 640x480 like the frames."""
    labels = []
    for path in sorted(folder.glob("*.png"))[:count]:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise SystemExit(f"{path}: not an image")
        labels.append(cv2.resize(image, (640, 480), interpolation=cv2.INTER_NEAREST) if image.shape != (480, 640) else image)
    return labels


def timed(masks: Iterator[Mask]) -> tuple[list[Mask], tuple[float, float]]:
    """Every mask of `masks`, and the mean ms each took: wall clock, CPU time of the process."""
    result, start, cpu = [], time.perf_counter(), time.process_time()
    for mask in masks:
        result.append(mask)
    count = max(len(result), 1)
    return result, ((time.perf_counter() - start) * 1000 / count, (time.process_time() - cpu) * 1000 / count)


def measure(frames: list[np.ndarray], labels: list[np.ndarray], kinds: tuple[str, ...], keep: tuple[str, ...], last: int) -> None:
    bands = [f"recall {band}" for *_, band in BANDS]
    header = ["mask", *bands, *([f"recall last {last}"] if last else []), "precision area ms/frame wall cpu"]
    print("  ".join(header))
    start_last = len(frames) - last if last else len(frames)
    for name in kinds:
        kind = BASELINES[name]() if name in BASELINES else KINDS[name]("selfie", 1)
        kind.reset()
        masks, ms = timed(kind.mask(frame) for frame in frames)
        print(tally(masks, labels, start_last).row(name, ms, last))
    source = create_mask_source(keep)
    masks, ms = timed(source.kept_masks(iter(frames)))
    print(tally(masks, labels, start_last).row("kept", ms, last) + f"   (--keep {','.join(keep)}, stabilised)")


def tally(masks: list[Mask], labels: list[np.ndarray], start_last: int) -> Tally:
    result = Tally()
    for i, (mask, frame_labels) in enumerate(zip(masks, labels, strict=True)):
        result.add(mask, frame_labels, i >= start_last)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("truth", type=Path, help="the clip's --truth folder")
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--kinds", default="person,motion", help="kinds measured alone, from: " + ",".join([*KINDS, *BASELINES]))
    parser.add_argument("--keep", default="person,face,motion", help="the keep mask measured, stabilised")
    parser.add_argument("--last", type=int, default=0, help="also recall over the last N frames")
    args = parser.parse_args()
    frames = first_frames(args.clip, args.frames)
    labels = read_truth(args.truth, len(frames))
    print(f"{args.clip.name}: {len(frames)} frames at 640x480")
    kinds = tuple(kind.strip() for kind in args.kinds.split(","))
    parse_keep(",".join(kind for kind in kinds if kind not in BASELINES))
    measure(frames, labels, kinds, parse_keep(args.keep), args.last)


if __name__ == "__main__":
    main()
