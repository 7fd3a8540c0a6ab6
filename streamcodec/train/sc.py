"""Training profile of selective mode's synthesis generator (`kind = "sc"` in a training config).

Each step: random crops → the labeler's label map of each crop and a random blocky keep mask →
the frozen GC encoder's q1 latent → SC generator. Losses, with m the keep mask:

    λ_in · MSE(x_hat, x) inside m                  the kept region: plain distortion
    λ_out · MSE outside m                            small; keeps the synthesized colours honest
    λ_adv · LSGAN(D(m·x + (1−m)·x_hat))              D sees the picture the decoder shows: kept
    λ_fm · feature matching (D's features)           pixels real, the rest synthesized

D is the multi-scale discriminator of `models.gc`, trained from the first step; the generator's
adversarial terms join after `warmup_steps`. Checkpoints, resume and logging are `train.Trainer`'s.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ModelError
from ..models.gc import GCModel, MultiScaleDiscriminator
from ..models.registry import REGISTRY, WEIGHTS_DIR, file_sha256
from ..models.sc import SCConfig, SCGenerator, save_sc_weights
from ..selective.labels import create_labeler
from .data import CropSampler, find_media
from .gc import Trainer, _feature_matching, _lsgan_d, _lsgan_g


@dataclass(frozen=True)
class SCTrainConfig:
    seed: int = 1
    steps: int = 7000
    batch: int = 8
    crop: int = 128
    #: Learning rate of the new parts: F and the first conv of G.
    lr: float = 2e-4
    #: Learning rate of the rest of G, copied from the GC model: low, so it stays close to it.
    lr_finetune: float = 2e-5
    lr_d: float = 2e-4
    labels: str = "builtin"
    warmup_steps: int = 1000
    lambda_in: float = 100.0
    lambda_out: float = 50.0
    lambda_adv: float = 1.0
    lambda_fm: float = 2.0
    #: Most keep rectangles per crop (0 … this many, each up to half the crop on a side).
    mask_rects: int = 3
    checkpoint_every: int = 250
    log_every: int = 50


def load_sc_config(raw: dict[str, Any], path: Path) -> tuple[str, SCConfig, SCTrainConfig]:
    """`[model]` (base GC model name, F's widths) and `[train]` of an SC training config."""
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


def _masked_mse(a: Tensor, b: Tensor, weight: Tensor) -> Tensor:
    return ((a - b) ** 2 * weight).sum() / (weight.sum() * a.shape[1]).clamp_min(1.0)


class SCTrainer(Trainer):
    """Trains `SCGenerator` from a registered GC model (E frozen, G copied with zero extra inputs)."""

    def __init__(self, name: str, model_cfg: SCConfig, cfg: SCTrainConfig, data: list[Path], out: Path) -> None:
        self.name, self.model_cfg, self.cfg, self.out = name, model_cfg, cfg, out  # type: ignore[assignment]
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.base = base_gc_model(model_cfg).requires_grad_(False)
        self.net = SCGenerator(model_cfg)
        self.net.init_from_gc(self.base.G)
        self.model = self.net  # type: ignore[assignment]
        self.labeler = create_labeler(cfg.labels, model_cfg.label_stride)
        if len(self.labeler.classes) != model_cfg.classes:
            raise ModelError(f"labeler {cfg.labels!r} has {len(self.labeler.classes)} classes, the model {model_cfg.classes}")
        self.disc = MultiScaleDiscriminator()
        self.opt_g = torch.optim.Adam(self._param_groups(cfg), betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
        self.paths = find_media(data)
        self.sampler = CropSampler(self.paths, cfg.crop, cfg.seed)
        self.step = 0
        out.mkdir(parents=True, exist_ok=True)

    def _param_groups(self, cfg: SCTrainConfig) -> list[dict[str, Any]]:
        new = [p for name, p in self.net.named_parameters() if name.startswith(("F.", "G.net.0."))]
        copied = [p for name, p in self.net.named_parameters() if not name.startswith(("F.", "G.net.0."))]
        return [{"params": new, "lr": cfg.lr}, {"params": copied, "lr": cfg.lr_finetune}]

    def state(self) -> dict[str, Any]:
        return super().state() | {"kind": "sc", "model_cfg": self.model_cfg.to_dict()}

    def _sc_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        crops = self.sampler.batch(self.cfg.batch)
        labels = torch.from_numpy(np.stack([self.labeler.labels(c) for c in crops]).astype(np.int64))
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
        cfg: SCTrainConfig = self.cfg  # type: ignore[assignment]
        return x, labels, random_keep_masks(self.sampler.rng, cfg.batch, cfg.crop, cfg.mask_rects)

    def train_step(self) -> dict[str, float]:
        cfg: SCTrainConfig = self.cfg  # type: ignore[assignment]
        x, labels, m = self._sc_batch()
        with torch.no_grad():
            w_hat = self.base.Q(self.base.E(x)) * self.base.keep_mask(self.model_cfg.keep, x)  # type: ignore[attr-defined]
        x_hat = self.net(w_hat, labels)
        mse_in, mse_out = _masked_mse(x_hat, x, m), _masked_mse(x_hat, x, 1.0 - m)
        shown = m * x + (1.0 - m) * x_hat
        d_loss = _lsgan_d(self.disc(x), self.disc(shown.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        loss = cfg.lambda_in * mse_in + cfg.lambda_out * mse_out
        logs = {"mse": F.mse_loss(x_hat, x).item(), "mse_in": mse_in.item(), "mse_out": mse_out.item(), "d": d_loss.item()}
        if self.step >= cfg.warmup_steps:
            real, fake = self.disc(x), self.disc(shown)
            adv, fm = _lsgan_g(fake), _feature_matching(real, fake)
            loss = loss + cfg.lambda_adv * adv + cfg.lambda_fm * fm
            logs |= {"adv": adv.item(), "fm": fm.item()}
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return logs | {"loss": loss.item()}


def export_sc_checkpoint(state: dict[str, Any], name: str, out_dir: Path = WEIGHTS_DIR) -> dict[str, str]:
    """Write `<name>.npz` (float16) into `out_dir` and register it, kind "sc", in `out_dir/registry.json`."""
    net = SCGenerator(SCConfig.from_dict(state["model_cfg"]))
    net.load_state_dict(state["model"])
    path = out_dir / f"{name}.npz"
    model_id = save_sc_weights(path, net)
    index_path = out_dir / "registry.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    card = index.get(name, {}).get("card", {})
    card |= {"trained_steps": int(state["step"]), "train_config": state["train_cfg"]}
    index[name] = {"file": path.name, "sha256": file_sha256(path), "model_id": model_id, "kind": "sc", "card": card}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return {"name": name, "model_id": model_id, "path": str(path)}
