#!/usr/bin/env python3
"""Plate updates against a full plate at every keyframe: kbps, plate bytes, PSNR inside and outside the kept region.

Encodes CLIP at each quality twice, with `--plate-refresh 0` (a full plate at every keyframe) and with the
default (a full plate every 10 s, updates between), decodes both, and measures PSNR over the pixels the
eval's masks keep and over the rest (the background), at the source's size. The plate-update figures in docs/selective.md.

    python scripts/benchmarks/plate_ab.py CLIP [--qualities 2 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from sc_points import frames

from streamcodec.selective.masks import create_mask_source


def region_psnr(decoded: list[np.ndarray], source: list[np.ndarray], masks: list[np.ndarray], inside: bool) -> float:
    """PSNR over the kept pixels (inside) or the others, squared errors pooled over the clip, RGB."""
    total, count = 0.0, 0
    for out, src, mask in zip(decoded, source, masks, strict=True):
        region = mask if inside else ~mask
        diff = out[region].astype(np.float64) - src[region]
        total, count = total + float(np.sum(diff * diff)), count + diff.size
    return float(10 * np.log10(255**2 / max(total / max(count, 1), 1e-10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--qualities", type=int, nargs="*", default=[2, 3])
    args = parser.parse_args()
    source = frames(args.clip)
    masks = list(create_mask_source().kept_masks(iter(source)))
    with tempfile.TemporaryDirectory() as folder:
        mkv, y4m = Path(folder) / "point.mkv", Path(folder) / "point.y4m"
        for quality in args.qualities:
            for flags in (["--plate-refresh", "0"], []):
                encode = ["streamcodec", "encode", str(args.clip), "-o", str(mkv), "-y", "--no-preview"]
                subprocess.run([*encode, "--quality", str(quality), *flags], check=True, capture_output=True)
                subprocess.run(["streamcodec", "decode", str(mkv), "-o", str(y4m), "-y"], check=True, capture_output=True)
                info = subprocess.run(["streamcodec", "info", str(mkv), "--json"], check=True, capture_output=True, text=True)
                stats = json.loads(info.stdout)
                decoded = frames(y4m)
                inside, outside = (region_psnr(decoded, source, masks, kept) for kept in (True, False))
                print(
                    f"q{quality} {' '.join(flags) or '(default)':18s} {stats['kbps']:7.1f} kbps  "
                    f"plate {stats['layer_bits']['plate'] / 8000:6.1f} kB  kept {inside:.2f} dB  outside {outside:.2f} dB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
