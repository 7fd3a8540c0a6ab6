"""Selective-mode (SC) generator: the background synthesized from a label map and a q1 GC latent.

After Agustsson et al., "Generative Adversarial Networks for Extreme Learned Image Compression",
ICCV 2019, §SC: a feature extractor F turns a semantic label map into features on the latent
grid, and the generator G paints the frame from them together with the transmitted bottleneck.
Here the bottleneck is a low-rate "background plate": the latent of the GC model `gc-small` at its
lowest quality (the first `quality_channels[0]` of C = 16 channels, the rest zero, about 1 kbit
per frame), which fixes the layout and the blurred colours; the label map adds where edges and
textures lie.

    labels (B, H/8, W/8) ids < K          GC encoder E of gc-small (frozen, not part of this model)
      │ one-hot (B, K, H/8, W/8)             x ─E─Q─► w_hat (B, C, H/16, W/16), channels ≥ q1 zeroed
      ▼                                                 │
    F: 3×3 conv, stride-2 conv(s), 3×3 conv            │
      ▼                                                 │
    F(s) (B, Cf, H/16, W/16) ──────── concat ───────────┘
                                        │ (B, C + Cf, H/16, W/16)
                                        ▼
                         G: gc-small's generator; its first conv takes C + Cf channels
                                        ▼
                                  x_hat (B, 3, H, W) in [0, 1]

G starts as gc-small's trained G with the weights of the Cf extra input channels at zero, so an
untrained SC model reproduces gc-small's q1 picture exactly and training only has to learn what
the labels add. K is fixed by the labeler the model was trained with (30 for the built-in
`ColourTextureLabeler`); a label map from another labeler (an ONNX model with 19 or 150 classes)
needs its own trained SC model, and `SCGenerator` refuses ids ≥ K.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError
from .gc import GCConfig, Generator


@dataclass(frozen=True)
class SCConfig:
    """Shape of an SC generator, its labeler and the GC model whose latents it reads."""

    gc: GCConfig = field(default_factory=GCConfig)
    classes: int = 30
    labeler: str = "colour-texture-v1-s8"
    label_stride: int = 8
    feat_width: int = 32
    feat_channels: int = 16
    #: Model id of the GC model whose encoder makes the latents (gc-small's at training time).
    base_model: str = ""

    @property
    def keep(self) -> int:
        """Transmitted latent channels: the GC model's lowest quality."""
        return self.gc.quality_channels[0]

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values, the GC config nested under "gc"."""
        data = {k: v for k, v in asdict(self).items() if k != "gc"}
        return data | {"gc": self.gc.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SCConfig:
        """The config stored by `to_dict`; unknown keys are ignored."""
        known = set(cls.__dataclass_fields__) - {"gc"}
        kwargs = {k: v for k, v in data.items() if k in known}
        return cls(gc=GCConfig.from_dict(data.get("gc", {})), **kwargs)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class LabelFeatures(nn.Module):
    """F: one-hot label map at stride `label_stride` → Cf features at the latent grid."""

    def __init__(self, cfg: SCConfig) -> None:
        super().__init__()
        downs = (cfg.gc.factor // cfg.label_stride).bit_length() - 1
        if cfg.label_stride << downs != cfg.gc.factor:
            raise ModelError(f"label stride {cfg.label_stride} does not divide the latent factor {cfg.gc.factor} by a power of 2")
        layers: list[nn.Module] = [_conv(cfg.classes, cfg.feat_width, 3), nn.LeakyReLU(0.2)]
        for _ in range(downs):
            layers += [_conv(cfg.feat_width, cfg.feat_width, 3, stride=2), nn.LeakyReLU(0.2)]
        layers.append(_conv(cfg.feat_width, cfg.feat_channels, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, onehot: Tensor) -> Tensor:
        return self.net(onehot)


class SCGenerator(nn.Module):
    """F and G: (w_hat, labels) → image in [0, 1]."""

    def __init__(self, cfg: SCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.F = LabelFeatures(cfg)
        self.G = Generator(cfg.gc)
        self.G.net[0] = _conv(cfg.gc.channels + cfg.feat_channels, cfg.gc.gen_width, 3)

    def check(self, w_hat: Tensor, labels: Tensor) -> None:
        """Refuse labels from another labeler (ids ≥ K) or a grid that does not match the latent's."""
        ratio = self.cfg.gc.factor // self.cfg.label_stride
        want = (w_hat.shape[0], w_hat.shape[2] * ratio, w_hat.shape[3] * ratio)
        if tuple(labels.shape) != want or w_hat.shape[1] != self.cfg.gc.channels:
            raise ModelError(
                f"SC generator: labels {tuple(labels.shape)} and latent {tuple(w_hat.shape)} do not fit "
                f"(want labels {want} for a latent with {self.cfg.gc.channels} channels)"
            )
        top = int(labels.max()) if labels.numel() else 0
        if top >= self.cfg.classes:
            raise ModelError(
                f"label id {top} is out of range for this SC model, trained on {self.cfg.classes} classes of "
                f"labeler {self.cfg.labeler}: another labeler needs its own trained SC model"
            )

    def forward(self, w_hat: Tensor, labels: Tensor) -> Tensor:
        self.check(w_hat, labels)
        onehot = F.one_hot(labels.long(), self.cfg.classes).permute(0, 3, 1, 2).to(w_hat.dtype)
        return self.G(torch.cat([w_hat, self.F(onehot)], dim=1))

    @torch.no_grad()
    def init_from_gc(self, gc_generator: nn.Module) -> None:
        """Copy a trained GC generator; the extra input channels of G's first conv start at zero."""
        state = {k: v.clone() for k, v in gc_generator.state_dict().items()}
        first = state["net.0.weight"]
        first_conv = self.G.net[0]
        assert isinstance(first_conv, nn.Conv2d)
        wide = torch.zeros_like(first_conv.weight)
        wide[:, : first.shape[1]] = first
        state["net.0.weight"] = wide
        self.G.load_state_dict(state)


# -- weights files -----------------------------------------------------------------------------


def sc_content_id(params: dict[str, np.ndarray], config: SCConfig) -> str:
    """Stable identifier of an SC model: sha256 over sorted names, dtypes, shapes, bytes and config."""
    digest = hashlib.sha256()
    for name in sorted(params):
        array = np.ascontiguousarray(params[name])
        digest.update(f"param/{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    return "sc-" + digest.hexdigest()[:24]


def save_sc_weights(path: Path, net: SCGenerator) -> str:
    """Write F and G as float16 `param/<name>` plus the config (UTF-8 JSON); returns the model id."""
    params = {k: v.detach().numpy().astype(np.float16) for k, v in net.state_dict().items()}
    arrays: dict[str, npt.NDArray[Any]] = {f"param/{k}": v for k, v in params.items()}
    arrays["config"] = np.frombuffer(json.dumps(net.cfg.to_dict(), sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return sc_content_id(params, net.cfg)


def load_sc_weights(path: Path, model_id: str) -> SCGenerator:
    """Read an SC weights file, check it against `model_id`, and build the network in eval mode."""
    with np.load(path) as npz:
        params = {k[len("param/") :]: npz[k] for k in npz.files if k.startswith("param/")}
        config = SCConfig.from_dict(json.loads(npz["config"].tobytes().decode()))
    if sc_content_id(params, config) != model_id:
        raise ModelError(f"weights content does not match model id {model_id}", path)
    net = SCGenerator(config)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in params.items()})
    return net.eval()
