"""Training: `streamcodec train --config configs/NAME.toml` for GC models and selective mode's generator.

    load_config(path) ─→ (name, model config, train config) ─→ create_trainer(…) ─→ .run() ─→ export_checkpoint
                      kind = "gc": gc.Trainer          kind = "sc": sc.SCTrainer

`kinds` is the one place the two are told apart; `config` holds the `[train]` dataclasses, `loop` the
checkpoints, resume and step loop both trainers share, `losses` their adversarial losses, `data` the
crop sampler over images and videos, `gpu` the GPU recipe's timed run
(`python -m streamcodec.train.gpu`), `export` the checkpoint to shipped weights (`streamcodec/weights/`;
import it from `streamcodec.train.export`: it needs PyAV, which the GPU machines lack).
"""

from .config import SCTrainConfig, TrainConfig
from .kinds import create_trainer, load_config
from .loop import TrainerBase

__all__ = ["SCTrainConfig", "TrainConfig", "TrainerBase", "create_trainer", "load_config"]
