"""Masks as files: a user's mask video (`--mask MASKVIDEO`) in, PNG per frame (`--save-masks DIR`) out."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError, UnreadableInputError, media_errors
from .base import Frame, Mask


class MaskVideo:
    """A user's mask video, frame by frame in step with the input: luma > 127 is kept.

    A mask video of another size is scaled to the frame's (nearest neighbour), and that is said
    once in `notes` (the encoder's warnings); one that ends before the input does is an error,
    since the frames after it would have no mask.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise UnreadableInputError("no such mask video", path)
        self._path = path
        self.name = f"maskvideo-{path.name}-{path.stat().st_size}-{path.stat().st_mtime_ns}"
        self._frames: Generator[np.ndarray, None, None] | None = None
        self._index = 0
        #: What the caller should be told (a rescaled mask video), once; the caller takes and clears it.
        self.notes: list[str] = []
        self._scaled_from: tuple[int, int] | None = None

    def reset(self) -> None:
        """Rewind to the mask video's first frame."""
        if self._frames is not None:
            self._frames.close()  # closes the container
        self._frames = None
        self._index = 0

    def mask(self, frame: Frame) -> Mask:
        """The mask video's next frame, at the input frame's size: (H, W) bool."""
        if self._frames is None:
            self._frames = self._read()
        luma = next(self._frames, None)
        if luma is None:
            raise UnreadableInputError(f"mask video ends after {self._index} frames; the input has more", self._path)
        self._index += 1
        height, width = frame.shape[:2]
        if luma.shape != (height, width):
            self._note_scaled(luma.shape[1], luma.shape[0], width, height)
            luma = cv2.resize(luma, (width, height), interpolation=cv2.INTER_NEAREST)
        return np.asarray(luma > 127)

    def _note_scaled(self, width: int, height: int, to_width: int, to_height: int) -> None:
        if self._scaled_from != (width, height):  # once per size, not per frame or per pass over the clip
            self._scaled_from = (width, height)
            self.notes.append(
                f"{self._path}: mask video is {width}x{height}, the input {to_width}x{to_height}: "
                "scaled to the input's size (nearest neighbour)"
            )

    def _read(self) -> Generator[np.ndarray, None, None]:
        import av

        with media_errors(self._path), av.open(str(self._path)) as container:
            if not container.streams.video:
                raise UnreadableInputError("mask video has no video track", self._path)
            for decoded in container.decode(video=0):
                yield decoded.to_ndarray(format="gray")


def save_masks(masks: Iterable[Mask], folder: Path, *, replace: bool = False) -> int:
    """Write each mask as an 8-bit PNG (255 = kept), `mask_000000.png`, … into `folder`.

    Args:
        masks: (H, W) bool masks in frame order.
        folder: created if missing; must not already hold mask PNGs unless `replace`.
        replace: overwrite mask PNGs already there (a user's other files are never touched).
    Returns:
        The number of PNGs written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not replace and any(folder.glob("mask_*.png")):
        raise OutputError("already holds mask_*.png files; choose an empty folder", folder)
    count = 0
    for count, mask in enumerate(masks, start=1):
        path = folder / f"mask_{count - 1:06d}.png"
        if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
            raise OutputError("cannot write PNG", path)
    return count


def load_masks(folder: Path) -> Iterator[Mask]:
    """Read back the PNGs `save_masks` wrote, in frame order: (H, W) bool each."""
    for path in sorted(folder.glob("mask_*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise UnreadableInputError("not a readable PNG", path)
        yield np.asarray(image > 127)
