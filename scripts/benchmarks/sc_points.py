#!/usr/bin/env python3
"""Selective-mode rate points with extra `streamcodec encode` flags: kbps and PSNR inside the kept region.

Encodes CLIP at qualities 1..4 (or --qualities) once per flag set, decodes it, and measures PSNR over the
pixels the eval's masks keep (`create_mask_source()`, the same as `streamcodec eval`), at the source's
own size. Behind the preset and plate-update figures in docs/selective.md and the feather and whole-GOP
figures in streamcodec/selective/options.py.

    python scripts/benchmarks/sc_points.py CLIP "--feather 1" "--feather 0" [--qualities 1 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from streamcodec.io.demux import Source, VideoFrame
from streamcodec.selective.masks import create_mask_source


def frames(path: Path) -> list[np.ndarray]:
    with Source(path) as source:
        return [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]


def kept_psnr(decoded: list[np.ndarray], source: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """PSNR over the kept pixels of the whole clip (squared errors pooled), RGB."""
    total, count = 0.0, 0
    for out, src, mask in zip(decoded, source, masks, strict=True):
        diff = out[mask].astype(np.float64) - src[mask]
        total, count = total + float(np.sum(diff * diff)), count + diff.size
    return float(10 * np.log10(255**2 / max(total / max(count, 1), 1e-10)))


def point(clip: Path, flags: list[str], quality: int, folder: Path) -> tuple[float, list[np.ndarray]]:
    """(kbps of our track, decoded frames) of one encode."""
    mkv, y4m = folder / "point.mkv", folder / "point.y4m"
    run = ["streamcodec", "encode", str(clip), "-o", str(mkv), "-y", "--no-preview", "--quality", str(quality), *flags]
    subprocess.run(run, check=True, capture_output=True)
    subprocess.run(["streamcodec", "decode", str(mkv), "-o", str(y4m), "-y"], check=True, capture_output=True)
    info = json.loads(
        subprocess.run(["streamcodec", "info", str(mkv), "--json"], check=True, capture_output=True, text=True).stdout
    )
    return float(info["kbps"]), frames(y4m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("flags", nargs="*", default=[""], help="one quoted string of encode flags per variant")
    parser.add_argument("--qualities", type=int, nargs="*", default=[1, 2, 3, 4])
    args = parser.parse_args()
    source = frames(args.clip)
    masks = list(create_mask_source().kept_masks(iter(source)))
    with tempfile.TemporaryDirectory() as folder:
        for spec in args.flags:
            for quality in args.qualities:
                kbps, decoded = point(args.clip, spec.split(), quality, Path(folder))
                psnr = kept_psnr(decoded, source, masks)
                print(f"{spec or '(defaults)':24s} q{quality}  {kbps:8.1f} kbps  kept PSNR {psnr:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
