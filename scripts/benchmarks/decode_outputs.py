#!/usr/bin/env python3
"""What each `streamcodec decode` output costs: PSNR against the decoder's own frames and the source, and size.

clip      the first --frames frames of CLIP (copied, not re-encoded), encoded with `streamcodec encode
          --no-preview` (selective mode, quality 4 unless --quality)
outputs   `streamcodec decode` to a PNG folder (the decoder's RGB, the reference), .y4m, .mkv, .mp4, .mov
          and .mp4 --lossless
measures  per output, the mean over frames of RGB PSNR against the PNGs and against the source (whole frame,
          and in the kept blocks as the stream's masks say), Y PSNR against the source, and its size; every
          4:2:0 picture is converted to RGB by the stream's matrix, limited range, as the decoder converts

PYTHONPATH=. python scripts/benchmarks/decode_outputs.py CLIP [--frames 60] [--quality Q] [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from streamcodec.codec import Decoder
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import stream_track

Picture = npt.NDArray[np.uint8]
SWSCALE: dict[str, Any] = {"src_color_range": "MPEG", "dst_color_range": "MPEG", "interpolation": "BILINEAR", "threads": 1}
OUTPUTS = [
    ("y4m", ".y4m", ()),
    ("mkv", ".mkv", ()),
    ("mp4", ".mp4", ()),
    ("mov", ".mov", ()),
    ("mp4 --lossless", ".ll.mp4", ("--lossless",)),
]


def psnr(a: Picture, b: Picture, where: npt.NDArray[np.bool_] | None = None) -> float:
    errors = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = float(errors[where].mean() if where is not None else errors.mean())
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def pictures(path: Path, matrix: str) -> Iterator[tuple[Picture, Picture]]:
    """Each frame of a video file as (RGB, Y), converted by `matrix`."""
    space = {"bt601": "ITU601", "bt709": "ITU709"}[matrix]
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.reformat(format="rgb24", src_colorspace=space, dst_colorspace=space, **SWSCALE).to_ndarray()
            yuv = frame.reformat(format="yuv444p", src_colorspace=space, dst_colorspace=space, **SWSCALE).to_ndarray()
            yield np.asarray(rgb), np.asarray(yuv[0])


def kept_masks(stream: Path) -> tuple[list[npt.NDArray[np.bool_]], str]:
    """The kept pixels of every frame, and the stream's colour matrix."""
    with MatroskaReader(stream) as reader:
        track, config = stream_track(reader, stream)
        decoder, masks = Decoder(config), []
        for packet in reader.packets({track.number}):
            decoder.decode(packet.data)
            masks.append(np.repeat(np.repeat(decoder.blocks, 16, axis=0), 16, axis=1)[: config.height, : config.width])
    return masks, str(config.extra.get("matrix", "bt601"))


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--quality", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None, help="folder for the files (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="decode-outputs-"))
    work.mkdir(parents=True, exist_ok=True)
    clip, stream = work / f"clip{args.clip.suffix}", work / "clip.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(args.clip), "-frames:v", str(args.frames), "-an", "-c", "copy", str(clip)],
        check=True,
    )
    run("encode", str(clip), "-o", str(stream), "--no-preview", "--quality", str(args.quality), "-y")
    run("decode", str(stream), "-o", f"{work / 'png'}/")
    for _, suffix, extra in OUTPUTS:
        run("decode", str(stream), "-o", str(work / f"out{suffix}"), "-y", *extra)
    masks, matrix = kept_masks(stream)
    source = list(pictures(clip, matrix))
    own = [np.asarray(Image.open(path)) for path in sorted((work / "png").glob("*.png"))]
    kept = np.mean([mask.mean() for mask in masks])
    print(f"{len(own)} frames, matrix {matrix}, {kept:.1%} kept, stream {stream.stat().st_size / 1e3:.1f} kB")
    print(f"{'output':16} {'vs decoder':>10} {'vs source':>10} {'kept':>7} {'Y':>7} {'kB':>9}")
    whole = np.mean([psnr(a, s) for a, (s, _) in zip(own, source, strict=True)])
    inside = np.mean([psnr(a, s, m) for a, (s, _), m in zip(own, source, masks, strict=True) if m.any()])
    print(f"{'PNG':16} {99.0:10.2f} {whole:10.2f} {inside:7.2f}")
    for name, suffix, _ in OUTPUTS:
        path = work / f"out{suffix}"
        got = list(pictures(path, matrix))
        vs_own = np.mean([psnr(rgb, a) for (rgb, _), a in zip(got, own, strict=True)])
        vs_source = np.mean([psnr(rgb, s) for (rgb, _), (s, _) in zip(got, source, strict=True)])
        in_kept = np.mean([psnr(rgb, s, m) for (rgb, _), (s, _), m in zip(got, source, masks, strict=True) if m.any()])
        luma = np.mean([psnr(y, sy) for (_, y), (_, sy) in zip(got, source, strict=True)])
        print(f"{name:16} {vs_own:10.2f} {vs_source:10.2f} {in_kept:7.2f} {luma:7.2f} {path.stat().st_size / 1e3:9.1f}")


if __name__ == "__main__":
    main()
