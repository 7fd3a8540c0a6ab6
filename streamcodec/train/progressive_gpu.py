"""The GPU recipe of progressive mode: a wider network, trained on one GPU within a time budget.

In the shape of gc-gpu's (train/gpu.py): the training media are packed here into one .npz of JPEGs
(the lent GPU machines have torch and numpy but no PyAV), decoded once into device memory there,
and crops are cut on the device. The schedule is progressive mode's own (`max_minutes` = the
budget: the learning rate steps down at `decay_at` of it); the run ends with a weights-only
`model.pt` (float16, as the weights ship; no optimizer state) that `scripts/data/export_model.py` registers back here.

    python scripts/data/pack_training_set.py data/train -o data/packed.npz --crop 128   # here, once
    scripts/gpu/train_progressive_gpu.sh data/packed.npz OUT [MINUTES]                # on the GPU machine
    python scripts/data/export_model.py OUT/model.pt --data data/train --name progressive-gpu   # back here

Shipped only if it measures better than progressive-small (`progressive_stills.py --model`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .gpu import PackedCrops
from .kinds import load_config
from .progressive import ProgressiveTrainConfig, ProgressiveTrainer

__all__ = ["build_parser", "main", "save_weights_only"]


def save_weights_only(trainer: ProgressiveTrainer, filename: str = "model.pt") -> Path:
    """OUT/model.pt: what `export_checkpoint` reads (the net's weights in float16, as shipped; no optimizer), small to fetch."""
    state = {k: v for k, v in trainer.state().items() if k in {"kind", "name", "model_cfg", "train_cfg", "step"}}
    state["model"] = {k: v.detach().half().cpu() for k, v in trainer.model.state_dict().items()}
    path = trainer.out / filename
    torch.save(state, path)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streamcodec.train.progressive_gpu",
        description="Train a progressive profile from a packed training set within a time budget (GPU recipe).",
    )
    p.add_argument("--config", type=Path, default=Path("configs/progressive-gpu.toml"), help="a progressive training config")
    p.add_argument("--data", type=Path, required=True, help="packed training set from scripts/data/pack_training_set.py")
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoint.pt, model.pt and log.jsonl")
    p.add_argument("--minutes", type=float, default=25.0, help="wall-clock budget of the run (default 25)")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    p.add_argument("--steps", type=int, help="stop after this many steps as well (smoke tests)")
    p.add_argument("--batch", type=int, help="override the config's batch size")
    p.add_argument("--crop", type=int, help="override the config's crop size")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name, model_cfg, read = load_config(args.config)
    if not isinstance(read, ProgressiveTrainConfig):
        raise SystemExit(f"{args.config}: not a progressive training config (kind = \"progressive\")")
    overrides = {k: getattr(args, k) for k in ("steps", "batch", "crop") if getattr(args, k) is not None}
    cfg = ProgressiveTrainConfig(**(read.__dict__ | {"max_minutes": args.minutes} | overrides))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # TF32 convs: H100 speed, fp32 weights
    sampler = PackedCrops(args.data, cfg.crop, cfg.seed, device)
    trainer = ProgressiveTrainer(name, model_cfg, cfg, [args.data], args.out, sampler=sampler)  # type: ignore[arg-type]
    trainer.model.to(device)  # in place: the optimizer keeps its parameters
    trainer.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = sum(p.numel() for p in trainer.model.parameters())
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    started = time.monotonic()
    head = {"name": name, "device": gpu, "params": params, "pictures": len(sampler), "budget_min": args.minutes}
    print(json.dumps(head), flush=True)
    trainer.run()
    path = save_weights_only(trainer)
    elapsed = round(time.monotonic() - started, 1)
    print(json.dumps({"weights": str(path), "steps": trainer.step, "elapsed_s": elapsed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
