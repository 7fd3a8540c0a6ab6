"""Training loop for the GC profile: distortion warm-up, then GAN with feature matching.

A config with `kind = "sc"` trains selective mode's synthesis generator instead (`train.sc`):
`load_config` and `Trainer` dispatch on it, so `streamcodec train` serves both.

Checkpoints are written atomically every `checkpoint_every` steps and on Ctrl-C; `resume`
continues from one bit-for-bit in data order (the sampler's RNG state is saved with it).
"""

from __future__ import annotations

import json
import os
import random
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.gc import GCConfig, GCModel, MultiScaleDiscriminator
from ..models.sc import SCConfig
from .data import CropSampler, find_media

if TYPE_CHECKING:
    from .sc import SCTrainConfig


class Sampler(Protocol):
    """Where training crops come from: `batch(n)` gives (n, crop, crop, 3) uint8."""

    rng: np.random.Generator

    def batch(self, size: int) -> np.ndarray | Tensor: ...


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    steps: int = 17000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    warmup_steps: int = 7000
    lambda_mse: float = 100.0
    lambda_adv: float = 1.0
    lambda_fm: float = 2.0
    checkpoint_every: int = 500
    log_every: int = 50
    # GAN stabiliser (all off by default): the discriminator's own rate (None: `lr`), an R1
    # penalty on real crops every `r1_every` steps (0: off), spectral norm on D's convs.
    d_lr: float | None = None
    r1_gamma: float = 0.0
    r1_every: int = 16
    d_spectral_norm: bool = False

    def __post_init__(self) -> None:
        if self.r1_every < 1 or self.r1_gamma < 0 or (self.d_lr is not None and self.d_lr <= 0):
            got = f"{self.r1_every}, {self.r1_gamma}, {self.d_lr}"
            raise ValueError(f"r1_every must be >= 1, r1_gamma >= 0 and d_lr > 0 (got {got})")


def load_config(path: Path) -> tuple[str, GCConfig | SCConfig, TrainConfig | SCTrainConfig]:
    """Read a TOML training config: `name`, `[model]` (GCConfig) and `[train]` (TrainConfig).

    Args:
        path: the .toml file; `kind = "sc"` in it selects the SC profile (SCConfig, SCTrainConfig).
    Returns:
        (name, model config, training config).
    """
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    kind = raw.get("kind", "gc")
    if kind == "sc":
        from .sc import load_sc_config

        return load_sc_config(raw, path)
    if kind != "gc":
        raise ValueError(f"{path}: unknown kind {kind!r} (use 'gc' or 'sc')")
    unknown = set(raw.get("train", {})) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown [train] keys {sorted(unknown)}")
    try:
        cfg = TrainConfig(**raw.get("train", {}))
    except ValueError as exc:
        raise ValueError(f"{path}: [train] {exc}") from None
    return str(raw.get("name", path.stem)), GCConfig.from_dict(raw.get("model", {})), cfg


def _lsgan_d(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    return sum(((r[-1] - 1) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real, fake, strict=False))  # type: ignore[return-value]


def _lsgan_g(fake: list[list[Tensor]]) -> Tensor:
    return sum(((f[-1] - 1) ** 2).mean() for f in fake)  # type: ignore[return-value]


def r1_penalty(disc: MultiScaleDiscriminator, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real crops per patch, summed over D's scales.

    Args:
        disc: the discriminator.
        real: (B, 3, H, W) real crops in [0, 1].
    Returns:
        the penalty before its gamma/2 weight (a scalar that carries the graph to D's weights).
    """
    # float32: a double backward through bf16 autocast loses the small gradients R1 is about.
    with torch.autocast(real.device.type, enabled=False):
        x = real.detach().float().requires_grad_(True)
        outs = disc(x)
        total = x.new_zeros(())
        for scale in outs:
            # Every patch is a decision, and D's loss is a mean over patches: the squared gradient of
            # the summed patch scores over the patch count is about the mean of each patch's own R1
            # (receptive fields overlap little), so one gamma serves every crop size.
            (grad,) = torch.autograd.grad(scale[-1].float().sum(), x, create_graph=True, retain_graph=True)
            total = total + grad.pow(2).flatten(1).sum(1).mean() / scale[-1][0].numel()
    return total


def _feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake, strict=False) for r, f in zip(rs[:-1], fs[:-1], strict=False)]
    return sum(terms) / len(terms)  # type: ignore[return-value]


def _window_mean(window: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every logged value over the steps that logged it (R1 and D come only on some steps)."""
    keys = list(dict.fromkeys(k for logs in window for k in logs))
    return {k: float(np.mean([logs[k] for logs in window if k in logs])) for k in keys}


class Trainer:
    def __new__(cls, name: str, model_cfg: GCConfig | SCConfig, *args: Any, **kwargs: Any) -> Trainer:
        # An SC config trains the SC generator: `Trainer(...)` stays the one entry point.
        if cls is Trainer and isinstance(model_cfg, SCConfig):
            from .sc import SCTrainer

            return super().__new__(SCTrainer)
        return super().__new__(cls)

    def __init__(
        self,
        name: str,
        model_cfg: GCConfig | SCConfig,
        cfg: TrainConfig | SCTrainConfig,
        data: list[Path],
        out: Path,
        *,
        sampler: Sampler | None = None,
        device: str = "cpu",
        amp: bool = False,
    ) -> None:
        assert isinstance(model_cfg, GCConfig) and isinstance(cfg, TrainConfig)
        self.name, self.model_cfg, self.cfg, self.out = name, model_cfg, cfg, out
        # bf16 autocast on a GPU: the quantizer's distances and the losses stay float32.
        self.device, self.amp = torch.device(device), amp
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = GCModel(model_cfg).to(self.device)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self._build_disc(cfg.d_spectral_norm)
        self.paths = data if sampler is not None else find_media(data)
        self.sampler: Sampler = sampler if sampler is not None else CropSampler(self.paths, cfg.crop, cfg.seed)
        self.step = 0
        out.mkdir(parents=True, exist_ok=True)

    def _build_disc(self, spectral_norm: bool) -> None:
        assert isinstance(self.cfg, TrainConfig)
        self.disc = MultiScaleDiscriminator(spectral_norm=spectral_norm).to(self.device)
        d_lr = self.cfg.lr if self.cfg.d_lr is None else self.cfg.d_lr
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=d_lr, betas=(0.5, 0.999))

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_cfg": self.model_cfg.to_dict(),
            "train_cfg": self.cfg.__dict__,
            "step": self.step,
            "model": self.model.state_dict(),
            "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "data": [str(p) for p in self.paths],
        }

    def save(self) -> Path:
        path = self.out / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        # The checkpoint's discriminator wins over the config's (its weights' keys depend on it);
        # a checkpoint from before the option had none.
        spectral_norm = bool(state.get("train_cfg", {}).get("d_spectral_norm", False))
        if spectral_norm != self.disc.spectral_norm:
            assert isinstance(self.cfg, TrainConfig)
            self.cfg = replace(self.cfg, d_spectral_norm=spectral_norm)
            self._build_disc(spectral_norm)
        self.model.load_state_dict(state["model"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])

    # -- one step ----------------------------------------------------------------------------
    def _batch(self) -> Tensor:
        crops = torch.as_tensor(self.sampler.batch(self.cfg.batch)).to(self.device, non_blocking=True)
        return crops.permute(0, 3, 1, 2).float().div_(255.0)

    def train_step(self) -> dict[str, float]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self._train_step()

    def _train_step(self) -> dict[str, float]:
        x = self._batch()
        keep = random.choice(self.model_cfg.quality_channels)
        x_hat = self.model(x, keep).float()
        mse = F.mse_loss(x_hat, x)
        logs = {"mse": mse.item(), "keep": float(keep)}
        loss = self.cfg.lambda_mse * mse
        if self.gan_on():
            d_loss = _lsgan_d(self.disc(x), self.disc(x_hat.detach()))
            logs["d"] = d_loss.item()
            if self.r1_due():
                r1 = self.cfg.r1_gamma / 2 * r1_penalty(self.disc, x)
                # Lazy regularisation (StyleGAN2): applied every r1_every steps, scaled to match.
                d_loss = d_loss + self.cfg.r1_every * r1
                logs["r1"] = r1.item()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            real, fake = self.disc(x), self.disc(x_hat)
            adv, fm = _lsgan_g(fake), _feature_matching(real, fake)
            loss = loss + self.cfg.lambda_adv * adv + self.cfg.lambda_fm * fm
            logs |= {"adv": adv.item(), "fm": fm.item()}
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        logs["loss"] = loss.item()
        return logs

    def gan_on(self) -> bool:
        """Whether the discriminator has joined (after the distortion-only warm-up)."""
        return self.step >= self.cfg.warmup_steps

    def r1_due(self) -> bool:
        """Whether this step's discriminator update carries the R1 penalty."""
        cfg = self.cfg
        assert isinstance(cfg, TrainConfig)
        return cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0

    def done(self) -> bool:
        return self.step >= self.cfg.steps

    def run(self) -> Path:
        log_path = self.out / "log.jsonl"
        started, window = time.time(), []
        try:
            while not self.done():
                logs = self.train_step()
                self.step += 1
                window.append(logs)
                if self.step % self.cfg.log_every == 0:
                    mean = _window_mean(window)
                    mean |= {"step": self.step, "elapsed_s": round(time.time() - started, 1)}
                    mean["psnr"] = float(10 * np.log10(1.0 / max(mean["mse"], 1e-10)))
                    with open(log_path, "a") as f:
                        f.write(json.dumps(mean) + "\n")
                    print(json.dumps(mean), flush=True)
                    window = []
                if self.step % self.cfg.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            print(f"interrupted at step {self.step}; checkpoint saved", flush=True)
        return self.save()
