"""The one place that tells GC training from SC training: a config's kind → (parser, trainer).

    load_config(path)        reads `kind` ("gc" by default, "sc" or "progressive"), parses the file with that kind's parser
    create_trainer(…, cfg)   builds the trainer of `cfg.kind`: `gc.Trainer`, `sc.SCTrainer` or `progressive.ProgressiveTrainer`

Each kind's module is imported only when asked for: SC training needs the labelers (OpenCV, ONNX
Runtime), which the GPU machines that train GC profiles do not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.gc import GCConfig
from ..models.sc import SCConfig
from .config import SCTrainConfig, TrainConfig, read_config_file
from .loop import TrainerBase


@dataclass(frozen=True)
class Kind:
    """How one kind of model is trained: its config parser and its trainer class."""

    parse: Callable[[dict[str, Any], Path], tuple[str, Any, Any]]
    trainer: Callable[..., TrainerBase[Any, Any]]


def _gc() -> Kind:
    from . import gc

    return Kind(gc.parse_config, gc.Trainer)


def _sc() -> Kind:
    from . import sc

    return Kind(sc.parse_config, sc.SCTrainer)


def _progressive() -> Kind:
    from . import progressive

    return Kind(progressive.parse_config, progressive.ProgressiveTrainer)


KINDS: dict[str, Callable[[], Kind]] = {"gc": _gc, "sc": _sc, "progressive": _progressive}


def _kind(kind: str, where: object) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"{where}: unknown kind {kind!r} (use {' or '.join(map(repr, KINDS))})")
    return KINDS[kind]()


def load_config(path: Path) -> tuple[str, GCConfig | SCConfig, TrainConfig | SCTrainConfig]:
    """Read a TOML training config: `kind`, `name`, `[model]` and `[train]`.

    Args:
        path: the .toml file; `kind = "gc"` (the default) or `"sc"` selects the profile.
    Returns:
        (name, model config, training config): GCConfig and TrainConfig, or SCConfig and SCTrainConfig.
    Raises:
        ValueError: an unknown kind or key, or a value out of range, naming the file.
    """
    raw = read_config_file(path)
    return _kind(raw.get("kind", "gc"), path).parse(raw, path)


def create_trainer(
    name: str,
    model_cfg: GCConfig | SCConfig,
    train_cfg: TrainConfig | SCTrainConfig,
    data: list[Path],
    out: Path,
    **options: Any,
) -> TrainerBase[Any, Any]:
    """The trainer for `train_cfg.kind`, as `load_config` returned the configs.

    Args:
        name: the model's name (checkpoints and the registered weights carry it).
        model_cfg, train_cfg: from `load_config`.
        data: folders or files of training pictures and videos.
        out: the run's folder (checkpoint.pt, log.jsonl).
        options: the GC trainer's keywords (`sampler`, `device`, `amp`); the SC trainer takes none.
    Returns:
        the trainer, at step 0 (`load` a checkpoint to resume, then `run`).
    """
    return _kind(train_cfg.kind, name).trainer(name, model_cfg, train_cfg, data, out, **options)
