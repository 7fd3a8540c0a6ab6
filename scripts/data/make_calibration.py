"""Make the int8 calibration set of a GC model: symbols of real image crops, shipped beside its weights.

    python scripts/data/make_calibration.py --model gc-small data/train samples/bbb_640x360.mp4

Writes streamcodec/weights/<model>.calib.npz: `symbols` (N, C, S/16, S/16) uint8, E's symbols of
N crops of S x S pixels (seeded positions; frames spread over each video), `keep` (N,) the
channels each crop keeps (the model's qualities in turn), `sources` (JSON) what they came from.
`streamcodec engines build --precision int8` quantizes G on them (streamcodec/engines/int8.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from streamcodec.engines.base import TorchGraphs, build_torch_model
from streamcodec.models.registry import REGISTRY, WEIGHTS_DIR

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m"}


def sources(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [f for f in candidates if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
    return files


def pictures(path: Path, per_video: int) -> list[np.ndarray]:
    """RGB uint8 pictures of one file: the image, or `per_video` frames spread over a video."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [np.asarray(Image.open(path).convert("RGB"))]
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, per_video).round().astype(int)
    return [frames[i] for i in sorted(set(picks))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", type=Path, nargs="+", help="images, videos or folders of them")
    parser.add_argument("--model", default="gc-small")
    parser.add_argument("--crops", type=int, default=64, help="crops in all (default 64)")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels, a multiple of 16 (default 256)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="default: streamcodec/weights/<model>.calib.npz")
    args = parser.parse_args()
    if args.size % 16:
        parser.error(f"--size {args.size}: a multiple of 16")
    files = sources(args.inputs)
    if not files:
        parser.error("no images or videos in the inputs")
    loaded = REGISTRY.load(args.model)
    graphs = TorchGraphs(build_torch_model(loaded))
    rng = np.random.default_rng(args.seed)
    pool = [(f, p) for f in files for p in pictures(f, per_video=8)]
    pool = [(f, p) for f, p in pool if min(p.shape[:2]) >= args.size]
    if not pool:
        parser.error(f"no picture is at least {args.size} pixels on its shorter side")
    qualities = loaded.config.quality_channels
    order = rng.permutation(len(pool))
    symbols, keeps, used = [], [], []
    for index in range(args.crops):
        name, picture = pool[order[index % len(pool)]]
        top = int(rng.integers(0, picture.shape[0] - args.size + 1))
        left = int(rng.integers(0, picture.shape[1] - args.size + 1))
        crop = np.ascontiguousarray(picture[top : top + args.size, left : left + args.size])
        with torch.no_grad():
            sym = graphs.analyze(torch.from_numpy(crop)[None])[0].numpy()
        symbols.append(sym.astype(np.uint8))
        keeps.append(qualities[index % len(qualities)])
        used.append(f"{name.name}@{top},{left}")
    out = args.out or WEIGHTS_DIR / f"{args.model}.calib.npz"
    np.savez_compressed(
        out,
        symbols=np.stack(symbols),
        keep=np.asarray(keeps, dtype=np.int64),
        sources=np.frombuffer(json.dumps(used).encode(), dtype=np.uint8),
    )
    print(f"{len(symbols)} crops of {args.size}x{args.size} from {len({u.split('@')[0] for u in used})} files → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
