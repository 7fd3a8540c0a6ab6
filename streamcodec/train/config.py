"""The `[train]` tables of the training configs: one frozen dataclass per kind of model trained.

A config file names its kind (`kind = "gc"`, the default, or `"sc"`); `streamcodec.train.load_config`
reads the file and `create_trainer` picks the trainer from the dataclass's `kind`. These classes import
nothing heavy, so the dispatch can name them without loading either trainer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class TrainConfig:
    """GC profile: distortion-only warm-up for `warmup_steps`, then GAN with feature matching."""

    kind: ClassVar[str] = "gc"

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


@dataclass(frozen=True)
class SCTrainConfig:
    """Selective mode's synthesis generator: new parts at `lr`, the parts copied from GC at `lr_finetune`."""

    kind: ClassVar[str] = "sc"

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



def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML of a training config file as a dict (`kind`, `name`, `[model]`, `[train]`)."""
    with open(path, "rb") as f:
        return tomllib.load(f)
