"""Training crops from folders of photographs and videos, held in memory as uint8."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputNotFoundError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v"}


def _resize_short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) <= short:
        return rgb
    scale = short / min(h, w)
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _image_pyramid(rgb: np.ndarray, short_sides: tuple[int, ...], crop: int) -> Iterator[np.ndarray]:
    for short in short_sides:
        level = _resize_short_side(rgb, short)
        if min(level.shape[:2]) >= crop:
            yield level


def _video_frames(path: Path, every: int) -> Iterator[np.ndarray]:
    import av  # here, not at the top: the GPU trainer reads packed crops on machines without PyAV

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                yield frame.to_ndarray(format="rgb24")


def find_media(dirs: Iterable[Path]) -> list[Path]:
    """Every image or video file below the given folders, sorted for reproducibility."""
    found = []
    for root in dirs:
        if not root.exists():
            raise InputNotFoundError("no such training data folder or file (--data)", root)
        candidates = [root] if root.is_file() else root.rglob("*")
        found += [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
    return sorted(set(found))


class CropSampler:
    """Random crops, flips included, from every image and every `video_every`-th video frame.

    Large photographs are kept at several scales (short side 1080, 720 and 400) so that crops
    cover both fine texture and whole-object structure.
    """

    def __init__(
        self,
        paths: list[Path],
        crop: int,
        seed: int,
        video_every: int = 3,
        short_sides: tuple[int, ...] = (1080, 720, 400),
    ) -> None:
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        for path in paths:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                for frame in _video_frames(path, video_every):
                    self.images += list(_image_pyramid(frame, short_sides[1:], crop))
            else:
                rgb = np.asarray(Image.open(path).convert("RGB"))
                self.images += list(_image_pyramid(rgb, short_sides, crop))
        if not self.images:
            raise ValueError(f"no usable images of at least {crop}x{crop} among {len(paths)} files")
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        # Sample proportionally to the square root of the area: big photos count more than
        # small ones, but do not drown them.
        self.weights = np.sqrt(areas) / np.sqrt(areas).sum()

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int) -> np.ndarray:
        """(size, crop, crop, 3) uint8."""
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        picks = self.rng.choice(len(self.images), size=size, p=self.weights)
        for i, pick in enumerate(picks):
            image = self.images[pick]
            y = self.rng.integers(0, image.shape[0] - self.crop + 1)
            x = self.rng.integers(0, image.shape[1] - self.crop + 1)
            patch = image[y : y + self.crop, x : x + self.crop]
            out[i] = patch[:, ::-1] if self.rng.random() < 0.5 else patch
        return out
