"""Training loop of the GC profile: distortion warm-up, then GAN with feature matching.

Each step: random crops x → GCModel (E, Q keeping a random quality's channels, G) → x_hat.

    λ_mse · MSE(x_hat, x)                             always
    λ_adv · LSGAN(D(x_hat)) + λ_fm · feature matching  once `gan_on()` (after `warmup_steps`)
    D: LSGAN on x vs x_hat, + lazy R1 on x             D trains only while the GAN is on

D is the multi-scale discriminator of `models.gc`. Checkpoints, resume and logging are
`loop.TrainerBase`'s; `streamcodec.train.create_trainer` picks this trainer for `kind = "gc"`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.gc import GCConfig, GCModel, MultiScaleDiscriminator
from .config import TrainConfig, read_config_file
from .data import CropSampler, find_media
from .loop import Sampler, TrainerBase
from .losses import feature_matching, lsgan_d, lsgan_g, r1_penalty

__all__ = ["Trainer", "load_config", "parse_config"]


def parse_config(raw: dict[str, Any], path: Path) -> tuple[str, GCConfig, TrainConfig]:
    """`name`, `[model]` (GCConfig) and `[train]` (TrainConfig) of a parsed GC training config.

    Args:
        raw: the config file's TOML as a dict.
        path: the file, for messages and the default name (its stem).
    Returns:
        (name, model config, training config).
    Raises:
        ValueError: an unknown `[train]` key or a value out of range, naming the file.
    """
    unknown = set(raw.get("train", {})) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown [train] keys {sorted(unknown)}")
    try:
        cfg = TrainConfig(**raw.get("train", {}))
    except ValueError as exc:
        raise ValueError(f"{path}: [train] {exc}") from None
    return str(raw.get("name", path.stem)), GCConfig.from_dict(raw.get("model", {})), cfg


def load_config(path: Path) -> tuple[str, GCConfig, TrainConfig]:
    """Read a GC training config, refusing one of another kind (`streamcodec.train.load_config` reads every kind).

    Args:
        path: the .toml file.
    Returns:
        (name, model config, training config).
    """
    raw = read_config_file(path)
    if raw.get("kind", "gc") != "gc":
        raise ValueError(f"{path}: kind {raw['kind']!r} is not a GC training config (read it with streamcodec.train.load_config)")
    return parse_config(raw, path)


class Trainer(TrainerBase[GCConfig, TrainConfig]):
    """Trains a `GCModel` and its discriminator from crops of `data` (or of a given `sampler`)."""

    model: GCModel

    def __init__(
        self,
        name: str,
        model_cfg: GCConfig,
        cfg: TrainConfig,
        data: list[Path],
        out: Path,
        *,
        sampler: Sampler | None = None,
        device: str = "cpu",
        amp: bool = False,
    ) -> None:
        if not isinstance(model_cfg, GCConfig) or not isinstance(cfg, TrainConfig):
            raise TypeError(f"a GC trainer takes GCConfig and TrainConfig, not {type(model_cfg).__name__}, {type(cfg).__name__}")
        super().__init__(name, model_cfg, cfg, out)
        # bf16 autocast on a GPU: the quantizer's distances and the losses stay float32.
        self.device, self.amp = torch.device(device), amp
        self.model = GCModel(model_cfg).to(self.device)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self._build_disc(cfg.d_spectral_norm)
        self.paths = data if sampler is not None else find_media(data)
        self.sampler = sampler if sampler is not None else CropSampler(self.paths, cfg.crop, cfg.seed)
        out.mkdir(parents=True, exist_ok=True)

    def _build_disc(self, spectral_norm: bool) -> None:
        self.disc = MultiScaleDiscriminator(spectral_norm=spectral_norm).to(self.device)
        d_lr = self.cfg.lr if self.cfg.d_lr is None else self.cfg.d_lr
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=d_lr, betas=(0.5, 0.999))

    def match_checkpoint(self, state: dict[str, Any]) -> None:
        # The checkpoint's discriminator wins over the config's (its weights' keys depend on it);
        # a checkpoint from before the option had none.
        spectral_norm = bool(state.get("train_cfg", {}).get("d_spectral_norm", False))
        if spectral_norm != self.disc.spectral_norm:
            self.cfg = replace(self.cfg, d_spectral_norm=spectral_norm)
            self._build_disc(spectral_norm)

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
            self._discriminator_step(x, x_hat, logs)
            real, fake = self.disc(x), self.disc(x_hat)
            adv, fm = lsgan_g(fake), feature_matching(real, fake)
            loss = loss + self.cfg.lambda_adv * adv + self.cfg.lambda_fm * fm
            logs |= {"adv": adv.item(), "fm": fm.item()}
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        logs["loss"] = loss.item()
        return logs

    def _discriminator_step(self, x: Tensor, x_hat: Tensor, logs: dict[str, float]) -> None:
        d_loss = lsgan_d(self.disc(x), self.disc(x_hat.detach()))
        logs["d"] = d_loss.item()
        if self.r1_due():
            r1 = self.cfg.r1_gamma / 2 * r1_penalty(self.disc, x)
            # Lazy regularisation (StyleGAN2): applied every r1_every steps, scaled to match.
            d_loss = d_loss + self.cfg.r1_every * r1
            logs["r1"] = r1.item()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

    def gan_on(self) -> bool:
        """Whether the discriminator has joined (after the distortion-only warm-up)."""
        return self.step >= self.cfg.warmup_steps

    def r1_due(self) -> bool:
        """Whether this step's discriminator update carries the R1 penalty."""
        return self.cfg.r1_gamma > 0 and self.step % self.cfg.r1_every == 0
