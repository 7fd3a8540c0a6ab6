"""What every trainer shares: atomic checkpoints, bit-for-bit resume and the logged step loop.

A trainer (`gc.Trainer`, `sc.SCTrainer`) builds its networks, optimizers and crop sampler and
defines `train_step`; `TrainerBase` does the rest:

    run():  train_step → step += 1 ─┬─ every log_every:        window means → OUT/log.jsonl, stdout
                                    ├─ every checkpoint_every: save() → OUT/checkpoint.pt
                                    └─ until done() or Ctrl-C, then save()

A checkpoint holds the sampler's RNG state and torch's, so `load` resumes in the same data order.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ..models.gc import MultiScaleDiscriminator


class Sampler(Protocol):
    """Where training crops come from: `batch(n)` gives (n, crop, crop, 3) uint8."""

    rng: np.random.Generator

    def batch(self, size: int) -> np.ndarray | Tensor: ...


class ModelConfig(Protocol):
    """A network's configuration, stored in checkpoints as a dict."""

    def to_dict(self) -> dict[str, Any]: ...


class RunConfig(Protocol):
    """The `[train]` fields the loop itself reads (`config.TrainConfig`, `config.SCTrainConfig`)."""

    @property
    def seed(self) -> int: ...

    @property
    def steps(self) -> int: ...

    @property
    def checkpoint_every(self) -> int: ...

    @property
    def log_every(self) -> int: ...


ModelConfigT = TypeVar("ModelConfigT", bound=ModelConfig)
RunConfigT = TypeVar("RunConfigT", bound=RunConfig)


def _window_mean(window: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every logged value over the steps that logged it (R1 and D come only on some steps)."""
    keys = list(dict.fromkeys(k for logs in window for k in logs))
    return {k: float(np.mean([logs[k] for logs in window if k in logs])) for k in keys}


class TrainerBase(Generic[ModelConfigT, RunConfigT]):
    """Checkpoints, resume and the step loop around a subclass's `train_step`."""

    model: nn.Module
    disc: MultiScaleDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sampler: Sampler
    paths: list[Path]

    def __init__(self, name: str, model_cfg: ModelConfigT, cfg: RunConfigT, out: Path) -> None:
        self.name, self.model_cfg, self.cfg, self.out = name, model_cfg, cfg, out
        self.step = 0
        # Seeded before the subclass builds anything: initial weights and crops follow from `seed`.
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)

    def train_step(self) -> dict[str, float]:
        """One optimisation step of D and the generator; returns the values to log (`mse` among them)."""
        raise NotImplementedError

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a bit-for-bit resume needs, as `torch.save` takes it."""
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
        """Write OUT/checkpoint.pt atomically (a crash mid-write leaves the previous one)."""
        path = self.out / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def match_checkpoint(self, state: dict[str, Any]) -> None:
        """Rebuild whatever a checkpoint's options fix before its weights load (nothing, by default)."""

    def load(self, path: Path) -> None:
        """Resume from a checkpoint written by `save`: weights, optimizers, RNG states and step."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.match_checkpoint(state)
        self.model.load_state_dict(state["model"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])

    # -- the loop ----------------------------------------------------------------------------
    def done(self) -> bool:
        return self.step >= self.cfg.steps

    def run(self) -> Path:
        """Train until `done()` (or Ctrl-C), logging and checkpointing on the way.

        Returns:
            the path of the last checkpoint.
        """
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
