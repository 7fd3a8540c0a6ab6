"""Training profile of selective mode's synthesis generator (`kind = "sc"` in a training config).

Each step: random crops → the labeler's label map of each crop and a random blocky keep mask →
the frozen GC encoder's q1 latent → SC generator. Losses, with m the keep mask:

    λ_in · MSE(x_hat, x) inside m                  the kept region: plain distortion
    λ_out · MSE outside m                            small; keeps the synthesized colours honest
    λ_adv · LSGAN(D(m·x + (1−m)·x_hat))              D sees the picture the decoder shows: kept
    λ_fm · feature matching (D's features)           pixels real, the rest synthesized

D is the multi-scale discriminator of `models.gc`, trained from the first step; the generator's
adversarial terms join after `warmup_steps`. Checkpoints, resume and logging are `loop.TrainerBase`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ModelError
from ..models.gc import GCModel, MultiScaleDiscriminator
from ..models.registry import REGISTRY
from ..models.sc import SCConfig, SCGenerator
from ..selective.labels import create_labeler
from .config import SCTrainConfig
from .data import CropSampler, find_media
from .loop import TrainerBase
from .losses import feature_matching, lsgan_d, lsgan_g, masked_mse


def parse_config(raw: dict[str, Any], path: Path) -> tuple[str, SCConfig, SCTrainConfig]:
    """`name`, `[model]` (base GC model name, F's widths) and `[train]` of a parsed SC training config.

    Args:
        raw: the config file's TOML as a dict.
        path: the file, for messages and the default name (its stem).
    Returns:
        (name, SCConfig built on the registered base model and the labeler, SCTrainConfig).
    Raises:
        ValueError: an unknown key, or a crop that is not a multiple of the base model's factor.
    """
    model = dict(raw.get("model", {}))
    train = dict(raw.get("train", {}))
    unknown = (set(train) - set(SCTrainConfig.__dataclass_fields__)) | (set(model) - {"base", "feat_width", "feat_channels"})
    if unknown:
        raise ValueError(f"{path}: unknown [model] or [train] keys {sorted(unknown)}")
    cfg = SCTrainConfig(**train)
    base = REGISTRY.entry(str(model.pop("base", "gc-small")))
    labeler = create_labeler(cfg.labels)
    sc = SCConfig(
        gc=REGISTRY.load(base.name).config,
        classes=len(labeler.classes),
        labeler=labeler.name,
        label_stride=labeler.stride,
        base_model=base.model_id,
        **model,
    )
    if cfg.crop % sc.gc.factor:
        raise ValueError(f"{path}: crop {cfg.crop} is not a multiple of {sc.gc.factor}")
    return str(raw.get("name", path.stem)), sc, cfg


def base_gc_model(cfg: SCConfig) -> GCModel:
    """The registered GC model whose encoder makes the SC model's latents, in eval mode."""
    loaded = REGISTRY.load(REGISTRY.by_id(cfg.base_model).name)
    net = GCModel(loaded.config)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in loaded.params.items()})
    return net.eval()


def random_keep_masks(rng: np.random.Generator, batch: int, size: int, rects: int, block: int = 16) -> Tensor:
    """(batch, 1, size, size) float masks: 0 … `rects` block-aligned rectangles each, 1 = kept."""
    cells = size // block
    masks = np.zeros((batch, cells, cells), dtype=np.float32)
    for mask in masks:
        for _ in range(int(rng.integers(0, rects + 1))):
            h, w = (int(n) for n in rng.integers(1, max(2, cells // 2 + 1), size=2))
            y, x = int(rng.integers(0, cells - h + 1)), int(rng.integers(0, cells - w + 1))
            mask[y : y + h, x : x + w] = 1.0
    return torch.from_numpy(masks.repeat(block, 1).repeat(block, 2)[:, None])


class SCTrainer(TrainerBase[SCConfig, SCTrainConfig]):
    """Trains `SCGenerator` from a registered GC model (E frozen, G copied with zero extra inputs)."""

    model: SCGenerator
    sampler: CropSampler

    def __init__(self, name: str, model_cfg: SCConfig, cfg: SCTrainConfig, data: list[Path], out: Path) -> None:
        super().__init__(name, model_cfg, cfg, out)
        self.base = base_gc_model(model_cfg).requires_grad_(False)
        self.model = SCGenerator(model_cfg)
        self.model.init_from_gc(self.base.G)
        self.labeler = create_labeler(cfg.labels, model_cfg.label_stride)
        if len(self.labeler.classes) != model_cfg.classes:
            raise ModelError(f"labeler {cfg.labels!r} has {len(self.labeler.classes)} classes, the model {model_cfg.classes}")
        self.disc = MultiScaleDiscriminator()
        self.opt_g = torch.optim.Adam(self._param_groups(cfg), betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
        self.paths = find_media(data)
        self.sampler = CropSampler(self.paths, cfg.crop, cfg.seed)
        out.mkdir(parents=True, exist_ok=True)

    def _param_groups(self, cfg: SCTrainConfig) -> list[dict[str, Any]]:
        new = [p for name, p in self.model.named_parameters() if name.startswith(("F.", "G.net.0."))]
        copied = [p for name, p in self.model.named_parameters() if not name.startswith(("F.", "G.net.0."))]
        return [{"params": new, "lr": cfg.lr}, {"params": copied, "lr": cfg.lr_finetune}]

    def state(self) -> dict[str, Any]:
        return super().state() | {"kind": "sc"}

    def _sc_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        crops = self.sampler.batch(self.cfg.batch)
        labels = torch.from_numpy(np.stack([self.labeler.labels(c) for c in crops]).astype(np.int64))
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
        return x, labels, random_keep_masks(self.sampler.rng, self.cfg.batch, self.cfg.crop, self.cfg.mask_rects)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        x, labels, m = self._sc_batch()
        with torch.no_grad():
            w_hat = self.base.Q(self.base.E(x)) * self.base.keep_mask(self.model_cfg.keep, x)
        x_hat = self.model(w_hat, labels)
        mse_in, mse_out = masked_mse(x_hat, x, m), masked_mse(x_hat, x, 1.0 - m)
        shown = m * x + (1.0 - m) * x_hat
        d_loss = lsgan_d(self.disc(x), self.disc(shown.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        loss = cfg.lambda_in * mse_in + cfg.lambda_out * mse_out
        logs = {"mse": F.mse_loss(x_hat, x).item(), "mse_in": mse_in.item(), "mse_out": mse_out.item(), "d": d_loss.item()}
        if self.step >= cfg.warmup_steps:
            real, fake = self.disc(x), self.disc(shown)
            adv, fm = lsgan_g(fake), feature_matching(real, fake)
            loss = loss + cfg.lambda_adv * adv + cfg.lambda_fm * fm
            logs |= {"adv": adv.item(), "fm": fm.item()}
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return logs | {"loss": loss.item()}
