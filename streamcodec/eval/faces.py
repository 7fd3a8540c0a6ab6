"""The eval's own face region: OpenCV's Haar frontal-face cascade on the source frames, boxes filled into a mask.

Viola and Jones, "Rapid Object Detection using a Boosted Cascade of Simple Features" (CVPR 2001).

    source frame ─grey, ≤ 640 px, equalized─▶ cascade upright ─none?─▶ cascade on the frame turned −20°, then +20°
                 ─▶ boxes (turned back into the frame: a tilted face gives a tilted box) ─fill─▶ (H, W) bool

The encoder finds faces with MediaPipe's BlazeFace (selective mode); measuring its gain on faces with
its own detector would reward it for agreeing with itself, so the eval uses a different detector of a
different family, run once per clip on the source frames and the same for every codec. The box is the
cascade's, with no margin: the face itself (brows to chin), not the hair and ears the encoder keeps too.

The cascade's window is 24 px, so smaller faces are not found (carphone's, 176x144, is about 60 px:
no upscaling needed). Upright only, it finds the face in 71 of carphone's 120 frames: the man tilts
his head in the others; with the two tilted passes, in 118. Every frame is searched: boxes found
every 4th frame and held cover the per-frame boxes with a mean IoU of only 0.90 on carphone. Cost,
on 2 shared CPU cores (2026-12-07): 44 ms a frame at 176x144, 0.3-0.8 s at 640x360 (a frame without
a face takes all three passes), once per clip; the masks are cached in OUT/cache/masks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from ..errors import StreamcodecError

Frame = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

CASCADE = "haarcascade_frontalface_default.xml"
#: Rotations tried in turn (degrees, counter-clockwise) until one finds a face: upright first.
TILTS = (0.0, -20.0, 20.0)
SCALE_FACTOR = 1.1
#: Overlapping detections a face needs; 5 rather than OpenCV's 3 keeps false faces in foliage and rock rare.
MIN_NEIGHBOURS = 5
MIN_SIZE = 24
#: Larger frames are searched shrunk to this longer side (INTER_AREA): the cost stays that of a 640-px-wide
#: frame, and a face under 24 px there (under 48 px in 1280x720) is not found.
MAX_SIDE = 640
#: The detector and its settings: names the cached masks and is recorded with every cell, so changing it re-measures.
NAME = f"opencv-haar-frontalface-default-s{SCALE_FACTOR}-n{MIN_NEIGHBOURS}-tilt{max(TILTS):g}-max{MAX_SIDE}-v1"
NO_FACE = f"no face found in the clip's source frames by the eval's detector ({NAME})"


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]  # cv2.data has no stubs
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise StreamcodecError("the Haar face cascade did not load (is opencv-python-headless installed whole?)", path)
    return cascade


def face_boxes(frame: Frame) -> list[npt.NDArray[np.float64]]:
    """Faces in one frame: each a (4, 2) float array of corners (x, y) in frame pixels, tilted as the face is.

    Args:
        frame: (H, W, 3) uint8 RGB.

    Returns:
        The boxes of the first rotation in `TILTS` that finds any, sorted; [] when none does.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    shrink = min(1.0, MAX_SIDE / max(grey.shape))
    if shrink < 1.0:
        grey = cv2.resize(grey, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    height, width = grey.shape
    centre = (width / 2, height / 2)
    for angle in TILTS:
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = grey if angle == 0 else cv2.warpAffine(grey, turn, (width, height), flags=cv2.INTER_LINEAR,
                                                        borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        found = _cascade().detectMultiScale(turned, SCALE_FACTOR, MIN_NEIGHBOURS, minSize=(MIN_SIZE, MIN_SIZE))
        if len(found):
            back = np.asarray(cv2.invertAffineTransform(turn), dtype=np.float64)
            return [_corners(box, back) / shrink for box in sorted(map(tuple, np.asarray(found).tolist()))]
    return []


def _corners(box: tuple[int, ...], back: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The corners of an (x, y, w, h) box found in a turned frame, turned back into the frame."""
    x, y, w, h = box
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    return corners @ back[:, :2].T + back[:, 2]


def face_mask(frame: Frame) -> Mask:
    """(H, W) bool: the pixels inside any face box of one (H, W, 3) uint8 frame (all False without a face)."""
    canvas = np.zeros(frame.shape[:2], dtype=np.uint8)
    for corners in face_boxes(frame):
        cv2.fillConvexPoly(canvas, np.round(corners).astype(np.int32), 1)
    return canvas.astype(bool)


def clip_face_masks(frames: Sequence[Frame]) -> Mask:
    """The face region of every frame of a clip: (frames, H, W) bool."""
    return np.stack([face_mask(np.asarray(frame)) for frame in frames]).astype(bool)


def save_face_masks(masks: Mask, path: Path) -> None:
    """Bit-packed .npz of (frames, H, W) bool masks."""
    np.savez_compressed(path, shape=np.array(masks.shape), faces=np.packbits(masks))


def load_face_masks(path: Path) -> Mask:
    """The masks `save_face_masks` wrote."""
    with np.load(path) as data:
        shape = tuple(int(n) for n in data["shape"])
        return np.unpackbits(data["faces"], count=int(np.prod(shape))).reshape(shape).astype(bool)
