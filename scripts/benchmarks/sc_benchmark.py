"""Background quality of selective mode's synthesis: SC generator vs gc-small q1 from the same latents.

    python scripts/benchmarks/sc_benchmark.py samples/bbb_640x360.mp4 bikes.mp4 [--model sc-small] [--registry DIR/registry.json]

For every `--every`-th of the first `--frames` frames: the base GC model's q1 latent (what the SC
codec sends at a keyframe), the built-in label map of the source frame, and the keep mask of
selective mode's default mask source (person, face, motion) over the whole clip. Prints, per clip,
PSNR and MS-SSIM (streamcodec.metrics) of the background (outside the keep mask) and of the whole
frame, for G of the GC model alone and for the SC generator; `--json` writes them too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import torch

from streamcodec import metrics
from streamcodec.models.registry import REGISTRY, Registry, register_index
from streamcodec.selective.labels import create_labeler
from streamcodec.selective.masks import create_mask_source
from streamcodec.selective.synth import SynthesisModel
from streamcodec.train.sc import base_gc_model


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def _score(out: np.ndarray, ref: np.ndarray, background: np.ndarray) -> dict[str, float]:
    diff = (out.astype(np.float64) - ref.astype(np.float64)) ** 2
    return {
        "bg_mse": float(diff[background].mean()),
        "bg_ms_ssim": float(metrics.ms_ssim_in_region(out, ref, background) or 0.0),
        "mse": float(diff.mean()),
        "ms_ssim": metrics.ms_ssim(out, ref),
    }


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {
        "bg_psnr_db": round(metrics.psnr_from_mse(mean["bg_mse"]), 2),
        "bg_ms_ssim": round(mean["bg_ms_ssim"], 4),
        "psnr_db": round(metrics.psnr_from_mse(mean["mse"]), 2),
        "ms_ssim": round(mean["ms_ssim"], 4),
    }


def measure(clip: Path, model: SynthesisModel, frames: int, every: int) -> dict[str, object]:
    source = read_frames(clip, frames)
    masks = list(create_mask_source().kept_masks(iter(source)))
    gc = base_gc_model(model.config)
    labeler = create_labeler("builtin", model.config.label_stride)
    model.check_labeler(labeler.name, len(labeler.classes))
    rows: dict[str, list[dict[str, float]]] = {"gc_q1": [], "sc": []}
    factor = model.config.gc.factor
    for rgb, kept in list(zip(source, masks, strict=True))[::every]:
        h, w = rgb.shape[:2]
        padded = np.pad(rgb, ((0, -h % factor), (0, -w % factor), (0, 0)), mode="edge")
        x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            w_hat = gc.Q(gc.E(x)) * gc.keep_mask(model.config.keep, x)
            gc_out = gc.G(w_hat)[0].mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        sc_out = model.synthesize(w_hat.numpy(), labeler.labels(rgb))
        background = ~kept if (~kept).any() else np.ones_like(kept)
        rows["gc_q1"].append(_score(gc_out[:h, :w], rgb, background))
        rows["sc"].append(_score(sc_out[:h, :w], rgb, background))
    kept_share = float(np.mean([m.mean() for m in masks]))
    return {"clip": clip.name, "frames": len(rows["sc"]), "kept_share": round(kept_share, 3)} | {
        k: _summary(v) for k, v in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--model", default="sc-small")
    parser.add_argument("--registry", type=Path, help="a registry.json to load the model from (default: the package's)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    registry = REGISTRY
    if args.registry:
        registry = Registry()
        register_index(registry, args.registry)
    model = SynthesisModel(args.model, registry)
    results = [measure(clip, model, args.frames, args.every) for clip in args.clips]
    for result in results:
        print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps({"model": model.model_id, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
