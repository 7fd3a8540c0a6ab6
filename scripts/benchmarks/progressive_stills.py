"""Rate–distortion of progressive mode on still photographs, against JPEG, WebP and AVIF (Pillow).

    python scripts/benchmarks/progressive_stills.py [--model progressive-small] [--long-side 768] [IMAGES...]

Default test set: the 12 photographs of Debian's `mate-backgrounds` (`/usr/share/backgrounds/mate/
nature/`, GPL-2+), none of which is in the training set (skimage images, lomiri wallpapers and
Big Buck Bunny frames: scripts/data/prepare_training_data.sh), downscaled to `--long-side` pixels
(Lanczos) so that one run takes minutes on one core.

Our rate, the headline, is the coded size: the entropy-coded sections of the first k iterations
(`progressive.bits.encode_iterations` with the model's tables, or adaptive coding without), exactly
the bytes a packet of k iterations carries besides its few bytes of section framing. The raw code
(k iterations × bits × cells / pixels, before entropy coding) is kept as a column and as a second
BD-rate. Others' rate is the file's size. Quality: RGB MS-SSIM (`streamcodec.metrics`) and PSNR.
Curves are averaged over the images per setting (mean bpp, mean MS-SSIM), and the BD-rate
(Bjøntegaard, piecewise-linear in log-rate over MS-SSIM in dB) of each codec against JPEG is taken
over the MS-SSIM range that JPEG's curve and the part of ours between 0.125 and 1 bpp (of the
rate in question, coded or raw; the ends interpolated on our curve) share; "all iterations" drops
that window.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

from streamcodec.metrics import ms_ssim, psnr
from streamcodec.progressive import ProgressiveCodec, bits, load_codec
from streamcodec.progressive.codec import model_tables
from streamcodec.progressive.weights import load_progressive_weights

DEFAULT_IMAGES = Path("/usr/share/backgrounds/mate/nature")
QUALITIES = {
    "JPEG": [2, 5, 10, 20, 30, 45, 60, 75, 85, 92],
    "WebP": [0, 5, 10, 20, 35, 50, 65, 80, 90],
    "AVIF": [2, 10, 20, 30, 40, 50, 60, 70, 80],
}
#: One RD point: (bpp, MS-SSIM, PSNR); ours add a 4th value, the raw code's bpp (bpp is the coded size).
Point = tuple[float, ...]
#: Our bpp in the window the BD-rate looks at (the issue's range).
WINDOW = (0.125, 1.0)


def load_picture(path: Path, long_side: int) -> np.ndarray:
    """An RGB picture, downscaled (Lanczos) so that its long side is at most `long_side`."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def pillow_point(rgb: np.ndarray, fmt: str, quality: int) -> Point:
    """Encode with Pillow at `quality`, decode, and measure: (bpp of the file, MS-SSIM, PSNR)."""
    buf = io.BytesIO()
    options = {"method": 6} if fmt == "WEBP" else {}
    Image.fromarray(rgb).save(buf, fmt, quality=quality, **options)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    bpp = 8 * len(buf.getvalue()) / (rgb.shape[0] * rgb.shape[1])
    return bpp, ms_ssim(rgb, decoded), psnr(rgb, decoded)


def ours_points(codec: ProgressiveCodec) -> Callable[[np.ndarray], list[Point]]:
    """A function giving our point after each iteration for one picture: (coded bpp, MS-SSIM, PSNR, raw bpp).

    The coded size after k iterations is the first k sections of `bits.encode_iterations` (a
    packet of k iterations holds exactly those: each section needs only the ones before it).
    """

    def points(rgb: np.ndarray) -> list[Point]:
        codes, pictures = codec.encode_with_pictures(rgb)
        pixels = rgb.shape[0] * rgb.shape[1]
        coded = np.cumsum([8 * len(section) for section in bits.encode_iterations(codes, model_tables(codec))]) / pixels
        per_iteration = codes[0].size / pixels
        return [(float(coded[k]), ms_ssim(rgb, p), psnr(rgb, p), (k + 1) * per_iteration) for k, p in enumerate(pictures)]

    return points


def collect(images: list[np.ndarray], codec: ProgressiveCodec) -> dict[str, list[list[Point]]]:
    """Per codec, per setting, the points of every image: {codec: [[(bpp, msssim, psnr) per image] per setting]}."""
    ours = ours_points(codec)
    per_image = [ours(rgb) for rgb in images]
    curves: dict[str, list[list[Point]]] = {"ours": [list(pts) for pts in zip(*per_image, strict=True)]}
    formats = {"JPEG": "JPEG", "WebP": "WEBP", "AVIF": "AVIF"}
    for name, fmt in formats.items():
        if name == "AVIF" and not features.check("avif"):
            print("Pillow has no AVIF support here: AVIF left out", file=sys.stderr)
            continue
        curves[name] = [[pillow_point(rgb, fmt, q) for rgb in images] for q in QUALITIES[name]]
    return curves


def mean_curve(settings: list[list[Point]]) -> np.ndarray:
    """(settings, 3) mean bpp, MS-SSIM and PSNR over the images."""
    return np.array([np.mean(np.array(points), axis=0) for points in settings])


def _db(msssim: np.ndarray) -> np.ndarray:
    return -10 * np.log10(np.maximum(1 - msssim, 1e-9))


def pareto_front(points: np.ndarray) -> np.ndarray:
    """The points no other point beats on both rate and MS-SSIM, by increasing bpp (and MS-SSIM)."""
    ordered = points[np.lexsort((-points[:, 1], points[:, 0]))]
    best, keep = -np.inf, []
    for point in ordered:
        if point[1] > best:
            best = point[1]
            keep.append(point)
    return np.array(keep)


def bd_rate(
    test: np.ndarray, anchor: np.ndarray, window: tuple[float, float] | None = None
) -> tuple[float, tuple[float, float]] | None:
    """Mean rate difference of `test` vs `anchor` at equal MS-SSIM, in %, and the MS-SSIM range used.

    Args:
        test, anchor: (n, ≥2) points (bpp, MS-SSIM, …), in any order.
        window: (low, high) bpp: only the part of `test`'s curve between them (ends interpolated).
    Returns:
        (BD-rate in %, negative = fewer bits than the anchor; (low, high) MS-SSIM), or None without overlap.
    """
    curves = []
    for pts in (test, anchor):
        front = pareto_front(pts)
        curves.append((_db(front[:, 1]), np.log10(front[:, 0])))
    low, high = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    if window is not None:
        # The front rises in both rate and quality, so the window's ends map to a quality range.
        ends = np.interp(np.log10(window), curves[0][1], curves[0][0])
        low, high = max(low, float(ends[0])), min(high, float(ends[1]))
    if high <= low:
        return None
    grid = np.linspace(low, high, 200)
    diff = np.interp(grid, *curves[0]) - np.interp(grid, *curves[1])
    span = tuple(float(1 - 10 ** (-v / 10)) for v in (low, high))
    return float(100 * (10 ** np.mean(diff) - 1)), (span[0], span[1])


def bd_rows(curves: dict[str, np.ndarray], model: str) -> list[str]:
    """The BD-rate table against JPEG: ours coded (the file: the headline) and raw, then the others."""
    raw = curves["ours"][:, [3, 1, 2]]
    tests: dict[str, tuple[np.ndarray, tuple[float, float] | None]] = {
        f"**{model}, coded** (entropy-coded sections, {WINDOW[0]}–{WINDOW[1]} bpp)": (curves["ours"], WINDOW),
        f"{model}, coded, all iterations": (curves["ours"], None),
        f"{model}, raw bits ({WINDOW[0]}–{WINDOW[1]} bpp)": (raw, WINDOW),
    }
    tests |= {name: (curve, None) for name, curve in curves.items() if name not in ("ours", "JPEG")}
    lines = ["| codec | BD-rate vs JPEG at equal MS-SSIM | MS-SSIM range |", "|---|---|---|"]
    for label, (curve, window) in tests.items():
        result = bd_rate(curve, curves["JPEG"], window)
        text = "no overlap | –" if result is None else f"{result[0]:+.1f} % | {result[1][0]:.4f}–{result[1][1]:.4f}"
        lines.append(f"| {label} | {text} |")
    return lines


def markdown(curves: dict[str, np.ndarray], model: str) -> str:
    """The RD table (one row per setting; ours with coded and raw bpp) and the BD-rates against JPEG."""
    lines = ["| codec | setting | bpp | raw bpp | MS-SSIM | PSNR (dB) |", "|---|---|---|---|---|---|"]
    for name, curve in curves.items():
        labels = [f"{k + 1} it" for k in range(len(curve))] if name == "ours" else [f"q{q}" for q in QUALITIES[name]]
        for label, (bpp, msssim, db, *raw) in zip(labels, curve, strict=True):
            raw_text = f"{raw[0]:.3f}" if raw else "–"
            lines.append(f"| {model if name == 'ours' else name} | {label} | {bpp:.3f} | {raw_text} | {msssim:.4f} | {db:.2f} |")
    return "\n".join([*lines, "", *bd_rows(curves, model)])


def plot(curves: dict[str, np.ndarray], label: str, out: Path) -> None:
    """MS-SSIM and PSNR against bpp for every codec, one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, curve in curves.items():
        for axis, column, title in ((axes[0], 1, "MS-SSIM"), (axes[1], 2, "PSNR (dB)")):
            axis.plot(curve[:, 0], curve[:, column], marker="o", markersize=3, label=label if name == "ours" else name)
            if name == "ours":
                axis.plot(curve[:, 3], curve[:, column], ":", marker="o", markersize=2, label=f"{label} (raw bits)")
            axis.set_xlabel("bits per pixel")
            axis.set_ylabel(title)
            axis.set_xlim(0, 1.05)
            axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle("progressive mode on stills not in training (means over the pictures)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", type=Path, help=f"pictures (default: {DEFAULT_IMAGES}/*.jpg)")
    parser.add_argument("--model", default="progressive-small", help="a registered progressive model")
    parser.add_argument("--weights", type=Path, help="an unregistered weights .npz instead (e.g. a run's export)")
    parser.add_argument("--long-side", type=int, default=768)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw the RD curves into PNG")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = args.images or sorted(DEFAULT_IMAGES.glob("*.jpg"))
    if not paths:
        parser.error(f"no pictures given and none in {DEFAULT_IMAGES} (apt-get install mate-backgrounds)")
    images = [load_picture(p, args.long_side) for p in paths]
    started = time.time()
    if args.weights:
        codec, label = ProgressiveCodec(load_progressive_weights(args.weights)), args.weights.stem
    else:
        codec, label = load_codec(args.model), args.model
    curves = {k: mean_curve(v) for k, v in collect(images, codec).items()}
    sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    print(
        f"{len(images)} pictures ({', '.join(sizes)}) from {', '.join(sorted({str(p.parent) for p in paths}))}; "
        f"{time.time() - started:.0f} s\n"
    )
    print(markdown(curves, label))
    if args.plot:
        plot(curves, label, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
