"""Selective mode's keep masks: the union of the chosen kinds, dilated and held steady over time.

Meets the contract of `streamcodec.eval.masks.MaskSource` (`name`, `kept_masks`, `person_mask`), so
the evaluation measures x265-roi and the kept-region metrics on the very masks the encoder keeps.

    frame ─┬─ person (selfie segmentation, or the user's onnx:PATH) ─┐
           ├─ face (BlazeFace boxes)                                   │
           ├─ motion (MOG2, held while a mover stays)                  ├─ ∪ ─▶ Stabilizer ─▶ kept (H, W) bool
           ├─ pedestrian (selfie segmenter on tiles, opt-in)           │
           ├─ text (PP-OCR detector, opt-in)                           │
           └─ the user's mask video (--mask)                           ─┘
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Frame, FrameMasker, Mask
from .face import FaceDetector
from .mask_video import MaskVideo, save_masks
from .motion import MotionMasker
from .pedestrian import TiledPersonSegmenter
from .person import create_segmenter
from .stabilize import Stabilizer
from .text import TextDetector

__all__ = ["DEFAULT_KEEP", "KINDS", "SelectiveMasks", "create_mask_source", "parse_keep", "save_masks"]

DEFAULT_KEEP = ("person", "face", "motion")
#: v2: the motion kind holds a mover that stops until its place looks as before (`MOTION_HOLD`).
VERSION = "sc-masks-v2"
#: Frames the motion kind holds a pixel that moved and still differs from before (10 s at 25 fps).
MOTION_HOLD = 250

#: Each kind's maker, given (segmenter spec, threads): one small class per kind behind `FrameMasker`.
KINDS: dict[str, Callable[[str, int], FrameMasker]] = {
    "person": lambda segmenter, threads: create_segmenter(segmenter, threads),
    "face": lambda _segmenter, threads: FaceDetector(threads),
    "motion": lambda _segmenter, _threads: MotionMasker(hold=MOTION_HOLD),
    "pedestrian": lambda _segmenter, threads: TiledPersonSegmenter(threads),
    "text": lambda _segmenter, threads: TextDetector(threads=threads),
}


def parse_keep(text: str) -> tuple[str, ...]:
    """`--keep person,face,motion,pedestrian` → ("person", "face", "motion", "pedestrian"), checked against `KINDS`."""
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    _check_kinds(kinds)
    return kinds


def _check_kinds(kinds: Sequence[str]) -> None:
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or len(set(kinds)) != len(kinds):
        raise ModelError(
            f"--keep {','.join(kinds)!r}: each of {', '.join(KINDS)} at most once (bad: {', '.join(unknown) or 'repeat'})"
        )


class SelectiveMasks:
    """The kept region per frame (union of kinds, stabilised) and the person mask, for encoder and evaluation."""

    def __init__(
        self,
        kinds: Sequence[FrameMasker],
        person: FrameMasker,
        stabilizer: Stabilizer,
        labels: Sequence[str] | None = None,
        *,
        parallel: bool = False,
    ) -> None:
        """Unite `kinds` (side by side on threads if `parallel`: their models release the GIL; same masks)."""
        if not kinds:
            raise ModelError("a keep mask needs at least one kind (person, face, motion, text or a mask video)")
        self.kinds = list(kinds)
        self._person = person
        self._stabilizer = stabilizer
        self.name = f"{VERSION}[{'+'.join(k.name for k in self.kinds)}|{stabilizer.name}]"
        workers = len(self.kinds) - 1 if parallel else 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sc-mask-kind") if workers else None
        #: Each kind's label ("person", "face", ..., "mask") and its raw mask for the last frame (the archive's index).
        self.labels = list(labels) if labels is not None else [kind.name for kind in self.kinds]
        self.last_kinds: dict[str, Mask] = {}

    def kept_masks(self, frames: Iterator[Frame]) -> Iterator[Mask]:
        """The region to keep, per (H, W, 3) uint8 RGB frame of one clip in order: (H, W) bool."""
        for kind in self.kinds:
            kind.reset()
        self._stabilizer.reset()
        for frame in frames:
            yield self._stabilizer(self.raw_union(frame))

    def raw_union(self, frame: Frame) -> Mask:
        """The union of every kind's mask for the next frame, before dilation and holding: (H, W) bool."""
        union = np.zeros(frame.shape[:2], dtype=bool)
        # Each kind sees the frames in order (a kind's next call waits for this one): state over time is as serial.
        pool = self._pool
        others = [pool.submit(kind.mask, frame) for kind in self.kinds[1:]] if pool is not None else []
        first = 1 if pool is not None else len(self.kinds)
        masks = [kind.mask(frame) for kind in self.kinds[:first]] + [future.result() for future in others]
        for label, mask in zip(self.labels, masks, strict=True):
            self.last_kinds[label] = mask
            union |= mask
        return union

    def take_notes(self) -> list[str]:
        """What the kinds have to tell the user since the last call (e.g. a mask video scaled to the input)."""
        notes: list[str] = []
        for kind in self.kinds:
            pending = getattr(kind, "notes", None)
            if pending:
                notes += pending
                pending.clear()
        return notes

    def close(self) -> None:
        """Stop the kinds' threads (later frames are found serially, the same masks); idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def person_mask(self, frame: Frame) -> Mask:
        """Pixels showing a person in one RGB frame (source or decoded): (H, W) bool, undilated."""
        return self._person.mask(frame)


def create_mask_source(
    keep: Iterable[str] = DEFAULT_KEEP,
    *,
    mask_video: Path | None = None,
    segmenter: str = "selfie",
    dilate_px: int = 8,
    block: int = 16,
    hold: int = 4,
    threads: int = 1,
    parallel: bool = False,
) -> SelectiveMasks:
    """Selective mode's mask source: the union of `keep` (and a user's mask video), dilated and held.

    Args:
        keep: kinds to keep, from `KINDS` ("person", "face", "motion", "pedestrian", "text"); may be empty with
            `mask_video`.
        mask_video: a user's mask video (`--mask`), luma > 127 kept, one frame per input frame.
        segmenter: person model, "selfie" (vendored MediaPipe) or "onnx:PATH" (`--segmenter`).
        dilate_px: grow the union by this many pixels before blocking.
        block: the kept region is made of `block`² cells (16 = one macroblock; 1 = per pixel).
        hold: frames a vanished region stays kept (flicker guard).
        threads: CPU threads per model.
        parallel: run the kinds side by side on threads (the encoder's zero-latency path); the same masks.
    Returns:
        A `SelectiveMasks`, which meets `streamcodec.eval.masks.MaskSource`.
    """
    kinds_wanted = tuple(keep)
    _check_kinds(kinds_wanted)
    stabilizer = Stabilizer(dilate_px, block, hold)
    person = create_segmenter(segmenter, threads)
    kinds = [person if kind == "person" else KINDS[kind](segmenter, threads) for kind in kinds_wanted]
    if mask_video is not None:
        kinds.append(MaskVideo(mask_video))
    labels = [*kinds_wanted, *(["mask"] if mask_video is not None else [])]
    return SelectiveMasks(kinds, person, stabilizer, labels, parallel=parallel)
