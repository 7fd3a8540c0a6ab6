"""The one source of per-frame masks for the evaluation, shared by every codec.

Selective mode (`streamcodec-sc`) keeps a region of each frame (people, faces, text) and
synthesizes the rest. For a fair comparison `x265-roi` spends its bits on that same region, and
the kept-region metrics, person-mask IoU and background flicker measure inside/outside it, so all
of them take their masks from here, computed once per clip from the source frames.

The masks are selective mode's own, through the public codec API:

    streamcodec.codec.create_mask_source() -> MaskSource     # an object with the members of `MaskSource` below

the same source `encode_file(mode="sc")` encodes with. Should it fail to load (a mask model missing),
`mask_source()` returns None and `unavailable_reason()` says why.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..codec import create_mask_source

NEEDS_MASKS = "needs selective-mode masks"

Mask = npt.NDArray[np.bool_]
Frame = npt.NDArray[np.uint8]


@runtime_checkable
class MaskSource(Protocol):
    """What selective mode provides to the evaluation."""

    #: Stable identifier of the mask models and settings; part of every cache key, so new masks
    #: recompute the cells that used old ones.
    name: str

    def kept_masks(self, frames: Iterator[Frame]) -> Iterator[Mask]:
        """The region selective mode keeps, per source frame: (H, W) bool for each (H, W, 3) uint8 frame.

        Takes the whole clip in order, so a source may track regions over time.
        """
        ...

    def person_mask(self, frame: Frame) -> Mask:
        """Pixels showing a person in one (H, W, 3) uint8 frame (source or decoded): (H, W) bool."""
        ...


@dataclass(frozen=True)
class MaskLookup:
    source: MaskSource | None
    reason: str | None


@functools.cache
def _lookup() -> MaskLookup:
    try:
        source = create_mask_source()
    except Exception as exc:  # a mask model that fails to load must not end the whole evaluation
        return MaskLookup(None, f"{NEEDS_MASKS} (create_mask_source() failed: {type(exc).__name__}: {exc})")
    if not isinstance(source, MaskSource):
        return MaskLookup(None, f"{NEEDS_MASKS} (create_mask_source() returned {type(source).__name__}, not a MaskSource)")
    return MaskLookup(source, None)


def mask_source() -> MaskSource | None:
    """The selective-mode mask source, or None when it cannot load (see `unavailable_reason`)."""
    return _lookup().source


def unavailable_reason() -> str | None:
    """Why `mask_source()` is None (one line for reports), or None when masks are available."""
    return _lookup().reason


@dataclass(frozen=True)
class ClipMasks:
    """Masks of one clip's source frames: kept region and person mask, each (frames, H, W) bool."""

    kept: Mask
    person: Mask

    def save(self, path: Path) -> None:
        """Bit-packed .npz (a 640x360 clip of 100 frames takes ~6 MB unpacked, ~0.1 MB packed)."""
        shape = np.array(self.kept.shape)
        np.savez_compressed(path, shape=shape, kept=np.packbits(self.kept), person=np.packbits(self.person))

    @classmethod
    def load(cls, path: Path) -> ClipMasks:
        with np.load(path) as data:
            shape = tuple(int(n) for n in data["shape"])
            count = int(np.prod(shape))

            def unpack(name: str) -> Mask:
                return np.unpackbits(data[name], count=count).reshape(shape).astype(bool)

            return cls(kept=unpack("kept"), person=unpack("person"))


def compute_clip_masks(source: MaskSource, frames: list[Frame]) -> ClipMasks:
    """Run the mask source over a clip's source frames once; every codec is then measured on these."""
    kept = np.stack(list(source.kept_masks(iter(frames)))).astype(bool)
    if kept.shape != (len(frames), *frames[0].shape[:2]):
        raise ValueError(f"mask source returned masks of shape {kept.shape} for {len(frames)} frames of {frames[0].shape[:2]}")
    person = np.stack([source.person_mask(frame) for frame in frames]).astype(bool)
    return ClipMasks(kept=kept, person=person)
