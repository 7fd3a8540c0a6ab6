"""The progressive model's weights file: float16 parameters and the config, identified by content.

    <name>.npz:  param/<state_dict key>  float16
                 config                  uint8, the ProgressiveConfig as sorted JSON

The identifier ("pg-" + 24 hex digits) is a sha256 over the parameters' names, dtypes, shapes and
bytes and the config, so a stream can name the exact weights it needs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .net import ProgressiveConfig, ProgressiveNet

__all__ = ["load_progressive_weights", "progressive_id", "save_progressive_weights"]


def progressive_id(params: dict[str, np.ndarray], config: ProgressiveConfig) -> str:
    """Stable identifier of a progressive model's weights and config."""
    digest = hashlib.sha256()
    for name in sorted(params):
        array = np.ascontiguousarray(params[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update(config.to_json().encode())
    return "pg-" + digest.hexdigest()[:24]


def save_progressive_weights(path: Path, net: ProgressiveNet) -> str:
    """Write `net`'s parameters as float16 and its config; returns the model identifier."""
    params = {k: v.detach().half().numpy() for k, v in net.state_dict().items()}
    arrays: dict[str, np.ndarray] = {f"param/{k}": v for k, v in params.items()}
    arrays["config"] = np.frombuffer(net.cfg.to_json().encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    return progressive_id(params, net.cfg)


def load_progressive_weights(path: Path, model_id: str | None = None) -> ProgressiveNet:
    """A ProgressiveNet in eval mode (float32) from a weights file, its identifier checked if given.

    Raises:
        ValueError: the content does not match `model_id`.
    """
    with np.load(path) as npz:
        params = {k[len("param/") :]: npz[k] for k in npz.files if k.startswith("param/")}
        config = ProgressiveConfig.from_dict(json.loads(npz["config"].tobytes().decode()))
    if model_id is not None and progressive_id(params, config) != model_id:
        raise ValueError(f"{path}: weights content does not match model id {model_id}")
    net = ProgressiveNet(config)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in params.items()})
    return net.eval()
