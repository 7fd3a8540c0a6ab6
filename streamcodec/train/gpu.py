"""The GPU training recipe: a packed training set and a time-budgeted run of the GC trainer.

The lent GPU machines have torch and numpy but no PyAV and no network, so the training media are
packed here into one .npz (the photo pyramid and video frames that `CropSampler` would use, as
JPEG bytes) and carried there. On the GPU the pictures are decoded once into device memory and
crops are cut there, so the data path never waits on the CPU.

    python scripts/data/pack_training_set.py data/train -o data/packed.npz      # here, once
    scripts/gpu/train_gpu.sh data/packed.npz OUT [MINUTES]                     # on the GPU machine
    python scripts/data/export_model.py OUT/model.pt --data data/train --name NAME  # back here

The schedule is by wall-clock time, not steps: the distortion-only warm-up takes the first
`warmup_fraction` of the budget, then the discriminator joins, so a shorter budget shrinks both
phases instead of cutting the GAN phase off.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .data import CropSampler, find_media
from .gc import Trainer, load_config

JPEG_QUALITY = 92


def pack(data: list[Path], out: Path, crop: int, budget_mb: float = 38.0, seed: int = 1) -> dict[str, float]:
    """Pack every picture `CropSampler` would crop from into one .npz of JPEGs, under a size budget.

    Args:
        data: folders or files of photographs and videos (as for `streamcodec train --data`).
        out: the .npz to write.
        crop: the training crop size; pictures smaller than it are left out.
        budget_mb: largest file size; when the set is larger, a seeded random subset is kept.
        seed: the seed of that subset.
    Returns:
        figures about the packed set (pictures, megapixels, megabytes).
    """
    images = CropSampler(find_media(data), crop, seed).images
    order = np.random.default_rng(seed).permutation(len(images))
    blobs: list[np.ndarray] = []
    total = 0
    for i in order:
        buffer = io.BytesIO()
        Image.fromarray(images[i]).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        if total + buffer.tell() > budget_mb * 1e6:
            continue  # a smaller picture further on may still fit
        blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        total += buffer.tell()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{f"jpeg_{i:05d}": blob for i, blob in enumerate(blobs)})  # type: ignore[arg-type]
    megapixels = sum(images[i].shape[0] * images[i].shape[1] for i in order) / 1e6
    return {"pictures": len(blobs), "of": len(images), "source_megapixels": round(megapixels, 1), "mb": round(total / 1e6, 1)}


class PackedCrops:
    """Random crops with flips from a packed .npz, cut on `device` (the `Sampler` protocol)."""

    def __init__(self, path: Path, crop: int, seed: int, device: str = "cpu") -> None:
        with np.load(path) as packed:
            pictures = [np.array(Image.open(io.BytesIO(packed[k].tobytes())).convert("RGB")) for k in sorted(packed)]
        self.images = [torch.from_numpy(p).to(device) for p in pictures if min(p.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"{path}: no picture of at least {crop}x{crop}")
        self.crop, self.device = crop, torch.device(device)
        self.rng = np.random.default_rng(seed)
        roots = np.sqrt([float(im.shape[0] * im.shape[1]) for im in self.images])
        self.weights = roots / roots.sum()  # as CropSampler: big pictures count more, not overwhelmingly

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int) -> Tensor:
        """(size, crop, crop, 3) uint8 on the sampler's device."""
        patches = []
        for pick in self.rng.choice(len(self.images), size=size, p=self.weights):
            image = self.images[pick]
            y = int(self.rng.integers(0, image.shape[0] - self.crop + 1))
            x = int(self.rng.integers(0, image.shape[1] - self.crop + 1))
            patch = image[y : y + self.crop, x : x + self.crop]
            patches.append(patch.flip(1) if self.rng.random() < 0.5 else patch)
        return torch.stack(patches)


class TimedTrainer(Trainer):
    """The GC trainer with a wall-clock budget: warm-up for a fraction of it, then the GAN phase."""

    def __init__(self, *args: object, minutes: float, warmup_fraction: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.budget_s, self.warmup_fraction = minutes * 60.0, warmup_fraction
        self.started = time.monotonic()
        self.warmup_saved = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def gan_on(self) -> bool:
        on = self.elapsed() >= self.warmup_fraction * self.budget_s
        if on and not self.warmup_saved:
            # The distortion-only model is kept too: if the GAN phase diverges, it is the fallback.
            self.save_weights_only("model_warmup.pt")
            self.warmup_saved = True
        return on

    def done(self) -> bool:
        return self.elapsed() >= self.budget_s or self.step >= self.cfg.steps

    def save_weights_only(self, filename: str = "model.pt") -> Path:
        """model.pt: what `export_checkpoint` reads (no optimizer or discriminator), small enough to fetch."""
        state = {k: v for k, v in self.state().items() if k in {"name", "model_cfg", "train_cfg", "step"}}
        state["model"] = {k: v.detach().float().cpu() for k, v in self.model.state_dict().items()}
        path = self.out / filename
        torch.save(state, path)
        return path


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streamcodec.train.gpu",
        description="Train a GC profile from a packed training set within a time budget (GPU recipe).",
    )
    p.add_argument("--config", type=Path, required=True, help="training config (.toml), e.g. configs/gc-gpu.toml")
    p.add_argument("--data", type=Path, required=True, help="packed training set from scripts/data/pack_training_set.py")
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoint.pt and log.jsonl")
    p.add_argument("--minutes", type=float, default=25.0, help="wall-clock budget of the run (default 25)")
    p.add_argument("--warmup-fraction", type=float, default=0.4, help="share of the budget without the GAN loss")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    p.add_argument("--no-amp", action="store_true", help="train in float32 instead of bf16 autocast on a GPU")
    p.add_argument("--steps", type=int, help="stop after this many steps as well (smoke tests)")
    p.add_argument("--batch", type=int, help="override the config's batch size")
    p.add_argument("--crop", type=int, help="override the config's crop size")
    p.add_argument("--lambda-adv", type=float, help="override the config's adversarial weight")
    p.add_argument("--d-lr", type=float, help="override the discriminator's learning rate (config d_lr; unset: lr)")
    p.add_argument("--r1-gamma", type=float, help="override the R1 penalty weight on real crops (0: off)")
    p.add_argument("--r1-every", type=int, help="override how many steps apart the (lazy) R1 penalty is applied")
    p.add_argument(
        "--d-spectral-norm", action=argparse.BooleanOptionalAction, default=None,
        help="spectral norm on the discriminator's convs (--no-d-spectral-norm: without; default: the config's)",
    )
    return p


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    names = ("steps", "batch", "crop", "lambda_adv", "d_lr", "r1_gamma", "r1_every", "d_spectral_norm")
    # `is not None`: --r1-gamma 0 and --no-d-spectral-norm are overrides too.
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name, model_cfg, cfg = load_config(args.config)
    cfg = type(cfg)(**(cfg.__dict__ | _overrides(args)))
    device = _device(args.device)
    torch.backends.cudnn.benchmark = True
    sampler = PackedCrops(args.data, cfg.crop, cfg.seed, device)
    trainer = TimedTrainer(
        name, model_cfg, cfg, [args.data], args.out, sampler=sampler, device=device,
        amp=device == "cuda" and not args.no_amp, minutes=args.minutes, warmup_fraction=args.warmup_fraction,
    )
    trainer.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = sum(p.numel() for p in trainer.model.parameters())
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    started = {"name": name, "device": gpu, "params": params, "pictures": len(sampler), "budget_min": args.minutes}
    print(json.dumps(started), flush=True)
    trainer.run()
    path = trainer.save_weights_only()
    print(json.dumps({"weights": str(path), "steps": trainer.step, "elapsed_s": round(trainer.elapsed(), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
