"""Global generative compression (GC) network.

Follows Agustsson et al., "Generative Adversarial Networks for Extreme Learned Image
Compression", ICCV 2019: an encoder E downsamples by 16 into a C-channel bottleneck, a quantizer
maps every value to one of L fixed centers, and a generator G synthesizes the frame from the
quantized code. A multi-scale discriminator D with feature matching drives training (Wang et al.,
pix2pixHD, CVPR 2018, for the multi-scale D and the feature-matching loss).

Widths are far smaller than the paper's (its G has 960 channels and 9 residual blocks): this
profile has to run at interactive rates on a 2-core CPU.

Rate is set by how many leading bottleneck channels are transmitted: the network is trained with
a random channel count per batch and the untransmitted channels are set to the zero center, so one
set of weights serves every quality level.

    x (B,3,H,W) in [0,1]
      │ E: 4 strided convs (/16)
      ▼
    w (B,C,H/16,W/16) ──Q──► w_hat (centers) ── keep first k channels, zero the rest
                                                   │ G: head, residual blocks, 4 × up-conv
                                                   ▼
                                            x_hat (B,3,H,W)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class GCConfig:
    """Shape of a GC network; stored next to the weights and in every stream."""

    channels: int = 16
    levels: int = 5
    enc_widths: tuple[int, ...] = (24, 48, 96, 128)
    gen_width: int = 128
    gen_blocks: int = 4
    up_widths: tuple[int, ...] = (96, 48, 24, 12)
    quality_channels: tuple[int, ...] = (2, 4, 8, 16)
    soft_sigma: float = 2.0

    @property
    def factor(self) -> int:
        """Downsampling of E (and upsampling of G): 2 per encoder stage."""
        return 2 ** len(self.enc_widths)

    @property
    def centers(self) -> list[float]:
        """The quantizer's L centers, symmetric around zero (-2 … 2 for L = 5)."""
        half = (self.levels - 1) / 2
        return [i - half for i in range(self.levels)]

    def to_dict(self) -> dict[str, object]:
        """The config as JSON-ready values (tuples as lists), as stored in a weights file."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> GCConfig:
        """The config stored by `to_dict`; unknown keys are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)  # type: ignore[arg-type]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class Encoder(nn.Module):
    """E: image in [0,1] → unquantized bottleneck w, downsampled by 16."""

    def __init__(self, cfg: GCConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, width in enumerate(cfg.enc_widths):
            layers += [_conv(cin, width, 5 if i == 0 else 3, stride=2), nn.LeakyReLU(0.2)]
            cin = width
        layers.append(_conv(cin, cfg.channels, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2.0 - 1.0)


class Quantizer(nn.Module):
    """Soft-to-hard vector quantization to L scalar centers (Mentzer et al., CVPR 2018).

    Training uses the soft assignment in the backward pass and the hard one in the forward
    pass (straight-through); inference returns integer symbols in [0, L).
    """

    def __init__(self, cfg: GCConfig) -> None:
        super().__init__()
        self.centers: Tensor
        self.register_buffer("centers", torch.tensor(cfg.centers, dtype=torch.float32))
        self.sigma = cfg.soft_sigma

    def forward(self, w: Tensor) -> Tensor:
        dist = (w.unsqueeze(-1) - self.centers) ** 2
        soft = (F.softmax(-self.sigma * dist, dim=-1) * self.centers).sum(-1)
        hard = self.centers[dist.argmin(-1)]
        return soft + (hard - soft).detach()

    def symbols(self, w: Tensor) -> Tensor:
        """Nearest-center index of every value, int64 in [0, L)."""
        return (w.unsqueeze(-1) - self.centers).abs().argmin(-1)


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(width, width, 3), nn.ReLU(), _conv(width, width, 3))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """G: quantized bottleneck w_hat → image in [0,1]."""

    def __init__(self, cfg: GCConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(cfg.channels, cfg.gen_width, 3), nn.ReLU()]
        layers += [ResBlock(cfg.gen_width) for _ in range(cfg.gen_blocks)]
        cin = cfg.gen_width
        for width in cfg.up_widths:
            layers += [nn.ConvTranspose2d(cin, width, 4, stride=2, padding=1), nn.ReLU()]
            cin = width
        layers.append(_conv(cin, 3, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, w_hat: Tensor) -> Tensor:
        return (torch.tanh(self.net(w_hat)) + 1.0) * 0.5


class PatchDiscriminator(nn.Module):
    """One scale of the multi-scale discriminator; returns every layer's features."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        cin = 3
        for width in widths:
            blocks.append(nn.Sequential(nn.Conv2d(cin, width, 4, 2, 1), nn.LeakyReLU(0.2)))
            cin = width
        blocks.append(nn.Conv2d(cin, 1, 3, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """D at full and half resolution (pix2pixHD); `spectral_norm` bounds every conv's Lipschitz constant."""

    def __init__(self, scales: int = 2, spectral_norm: bool = False) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator() for _ in range(scales))
        self.spectral_norm = spectral_norm
        if spectral_norm:
            # Parametrized weights are stored as `parametrizations.weight.original` (+ `_u`, `_v`):
            # a checkpoint only loads into a discriminator built with the same option.
            for conv in [m for m in self.modules() if isinstance(m, nn.Conv2d)]:
                nn.utils.parametrizations.spectral_norm(conv)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outs = []
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(disc(x * 2.0 - 1.0))
        return outs


class GCModel(nn.Module):
    """E, Q and G together; D lives in the trainer."""

    def __init__(self, cfg: GCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.E = Encoder(cfg)
        self.Q = Quantizer(cfg)
        self.G = Generator(cfg)

    def keep_mask(self, keep: int, like: Tensor) -> Tensor:
        """1 for the first `keep` channels, 0 for the rest, shaped to broadcast over `like`."""
        mask = torch.zeros(1, self.cfg.channels, 1, 1, dtype=like.dtype, device=like.device)
        mask[:, :keep] = 1
        return mask

    def forward(self, x: Tensor, keep: int) -> Tensor:
        w_hat = self.Q(self.E(x))
        return self.G(w_hat * self.keep_mask(keep, w_hat))
