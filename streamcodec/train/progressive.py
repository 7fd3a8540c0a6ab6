"""Training of progressive mode (`kind = "progressive"` in a training config): Toderici et al. 2017.

Each step: random crops x → ProgressiveNet unrolled over all iterations, stochastic ±1 bits →
one-shot pictures x_hat_1 … x_hat_T, and a loss per iteration averaged over the T iterations (so
that the learning rate does not depend on T). No discriminator: `state`/`load` leave out TrainerBase's D.

    loss "l1"       the paper's: L1 of the residual r_t = x − x_hat_t, mean over pixels (the default)
    loss "ms-ssim"  (1 − MS-SSIM(x, clamp(x_hat_t))) + l1_weight · L1(r_t): the evaluation's metric
                    (`ms_ssim.ms_ssim_torch`; a 64 crop holds 3 of its 5 scales, 128 holds 4, 176 all 5),
                    the small L1 term keeps colours and flat areas anchored, which MS-SSIM barely sees
    init            "" (random), a registered progressive model's name, or a weights .npz: start from
                    those weights (a fine-tune); their sizes must be [model]'s, iterations aside
    lr: `lr` until `decay_at` of the run (steps or time), then `lr × decay` (one step down: short CPU runs)
    stop: at `steps`, or after `max_minutes` of wall time (0: no limit), whichever comes first
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..models.registry import WEIGHTS_DIR
from ..progressive.model import load_codec
from ..progressive.net import ProgressiveConfig, ProgressiveNet
from ..progressive.weights import load_progressive_weights, save_progressive_weights
from .data import CropSampler, find_media
from .loop import Sampler, TrainerBase
from .ms_ssim import ms_ssim_torch

__all__ = ["ProgressiveTrainConfig", "ProgressiveTrainer", "export_progressive", "parse_config"]


#: A loss: (crops x, the pictures after each iteration, l1_weight) → (the scalar to minimise, values to log).
Loss = Callable[[Tensor, list[Tensor], float], tuple[Tensor, dict[str, float]]]


def l1_loss(x: Tensor, pictures: list[Tensor], l1_weight: float) -> tuple[Tensor, dict[str, float]]:
    """The paper's loss: mean over iterations of the residual's L1 (`l1_weight` does not apply).

    Args:
        x: (N, 3, H, W) crops in [0, 1].
        pictures: T (N, 3, H, W) pictures, one per iteration (unclamped).
    Returns:
        (the loss, {"l1_first", "l1_last"}).
    """
    l1 = torch.stack([(x - p).abs().mean() for p in pictures])
    return l1.mean(), {"l1_first": l1[0].item(), "l1_last": l1[-1].item()}


def ms_ssim_loss(x: Tensor, pictures: list[Tensor], l1_weight: float) -> tuple[Tensor, dict[str, float]]:
    """Mean over iterations of (1 − MS-SSIM of the clamped picture) + `l1_weight` × L1 of the residual.

    Args:
        x: (N, 3, H, W) crops in [0, 1], at least 11×11 (64: 3 scales, 128: 4, 176: 5).
        pictures: T (N, 3, H, W) pictures, one per iteration (unclamped; clamped for MS-SSIM, as decoded).
        l1_weight: the L1 term's weight.
    Returns:
        (the loss, {"l1_first", "l1_last", "msssim_first", "msssim_last"}).
    """
    l1 = torch.stack([(x - p).abs().mean() for p in pictures])
    similarity = torch.stack([ms_ssim_torch(x, p.clamp(0, 1)).mean() for p in pictures])
    loss = ((1 - similarity) + l1_weight * l1).mean()
    logs = {"l1_first": l1[0].item(), "l1_last": l1[-1].item()}
    return loss, logs | {"msssim_first": similarity[0].item(), "msssim_last": similarity[-1].item()}


LOSSES: dict[str, Loss] = {"l1": l1_loss, "ms-ssim": ms_ssim_loss}


def initial_weights(init: str, model_cfg: ProgressiveConfig) -> dict[str, Tensor]:
    """The state dict to start from: a registered progressive model's (file checked), or an .npz's.

    Args:
        init: a registered progressive model's name, or the path of a progressive weights .npz.
        model_cfg: the run's model; the weights' sizes must be its own (`iterations` may differ:
            the networks are the same at every iteration, so a model shipped with 7 trains on over 8).
    Raises:
        ValueError: the weights' sizes differ from `model_cfg`'s.
        ModelError: an unknown name or an altered registered file.
    """
    is_file = init.endswith(".npz") or Path(init).is_file()
    net = load_progressive_weights(Path(init)) if is_file else load_codec(init).net
    if replace(net.cfg, iterations=model_cfg.iterations) != model_cfg:
        raise ValueError(f"init {init!r} has sizes {net.cfg}, the [model] table {model_cfg}")
    return net.state_dict()


@dataclass(frozen=True)
class ProgressiveTrainConfig:
    """Progressive mode's `[train]` table."""

    kind: ClassVar[str] = "progressive"

    seed: int = 1
    steps: int = 1500
    batch: int = 8
    crop: int = 64
    lr: float = 1e-3
    decay_at: float = 0.8
    decay: float = 0.2
    max_minutes: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 25
    #: "l1" (the paper's) or "ms-ssim" (1 − MS-SSIM + l1_weight · L1): keys of `LOSSES`.
    loss: str = "l1"
    #: The L1 term's weight beside 1 − MS-SSIM (loss "ms-ssim" only).
    l1_weight: float = 0.1
    #: Start from these weights: "" (random), a registered progressive model's name, or an .npz path.
    init: str = ""

    def __post_init__(self) -> None:
        if self.crop % 16 or self.crop < 16 or self.batch < 1 or self.lr <= 0 or self.max_minutes < 0:
            raise ValueError(f"crop must be a multiple of 16, batch >= 1, lr > 0, max_minutes >= 0 (got {self})")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} (use {' or '.join(map(repr, LOSSES))})")
        if self.l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0 (got {self.l1_weight})")


def parse_config(raw: dict[str, Any], path: Path) -> tuple[str, ProgressiveConfig, ProgressiveTrainConfig]:
    """`name`, `[model]` (ProgressiveConfig) and `[train]` (ProgressiveTrainConfig) of a parsed config.

    Raises:
        ValueError: an unknown key or a value out of range, naming the file.
    """
    unknown = set(raw.get("train", {})) - set(ProgressiveTrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown [train] keys {sorted(unknown)}")
    try:
        cfg = ProgressiveTrainConfig(**raw.get("train", {}))
        model = ProgressiveConfig.from_dict(raw.get("model", {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return str(raw.get("name", path.stem)), model, cfg


class ProgressiveTrainer(TrainerBase[ProgressiveConfig, ProgressiveTrainConfig]):
    """Trains a `ProgressiveNet` from crops of `data` (or of a given `sampler`) on the CPU."""

    model: ProgressiveNet

    def __init__(
        self,
        name: str,
        model_cfg: ProgressiveConfig,
        cfg: ProgressiveTrainConfig,
        data: list[Path],
        out: Path,
        *,
        sampler: Sampler | None = None,
    ) -> None:
        if not isinstance(model_cfg, ProgressiveConfig) or not isinstance(cfg, ProgressiveTrainConfig):
            got = f"{type(model_cfg).__name__}, {type(cfg).__name__}"
            raise TypeError(f"a progressive trainer takes ProgressiveConfig and ProgressiveTrainConfig, not {got}")
        super().__init__(name, model_cfg, cfg, out)
        self.model = ProgressiveNet(model_cfg)
        if cfg.init:
            self.model.load_state_dict(initial_weights(cfg.init, model_cfg))
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.paths = data if sampler is not None else find_media(data)
        self.sampler = sampler if sampler is not None else CropSampler(self.paths, cfg.crop, cfg.seed)
        self.started = time.time()
        out.mkdir(parents=True, exist_ok=True)

    def progress(self) -> float:
        """How far the run is, 0 … 1: by steps, or by wall time when `max_minutes` comes first."""
        by_time = (time.time() - self.started) / (60 * self.cfg.max_minutes) if self.cfg.max_minutes > 0 else 0.0
        return max(self.step / self.cfg.steps, by_time)

    def done(self) -> bool:
        return self.progress() >= 1.0

    def _batch(self) -> Tensor:
        return torch.as_tensor(self.sampler.batch(self.cfg.batch)).permute(0, 3, 1, 2).float().div_(255.0)

    def train_step(self) -> dict[str, float]:
        lr = self.cfg.lr * (self.cfg.decay if self.progress() >= self.cfg.decay_at else 1.0)
        for group in self.opt_g.param_groups:
            group["lr"] = lr
        x = self._batch()
        self.model.train()
        _, pictures = self.model(x)
        loss, logs = LOSSES[self.cfg.loss](x, pictures, self.cfg.l1_weight)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        with torch.no_grad():
            mse = [float(((x - p.clamp(0, 1)) ** 2).mean()) for p in pictures]
        logs |= {"loss": loss.item(), "lr": lr}
        # `mse` (the loop's PSNR) is the last iteration's; the first's is logged beside it.
        return logs | {"mse": mse[-1], "psnr_first": float(10 * np.log10(1 / max(mse[0], 1e-10)))}

    # -- checkpoints without a discriminator ---------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "kind": "progressive",
            "name": self.name,
            "model_cfg": self.model_cfg.to_dict(),
            "train_cfg": self.cfg.__dict__,
            "step": self.step,
            "model": self.model.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "data": [str(p) for p in self.paths],
        }

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])


def export_progressive(state: dict[str, Any], name: str, out_dir: Path = WEIGHTS_DIR) -> tuple[Path, str]:
    """Write a progressive checkpoint's weights (float16) as `out_dir/<name>.npz`.

    Args:
        state: a `ProgressiveTrainer.state()` as loaded from its checkpoint.
        name: the registered name (the file's stem).
        out_dir: the weights folder.
    Returns:
        (the file written, the model identifier).
    """
    net = ProgressiveNet(ProgressiveConfig.from_dict(state["model_cfg"]))
    net.load_state_dict(state["model"])
    path = out_dir / f"{name}.npz"
    return path, save_progressive_weights(path, net)
