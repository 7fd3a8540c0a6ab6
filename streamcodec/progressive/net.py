"""The networks of progressive mode, after Toderici et al., "Full Resolution Image Compression with
Recurrent Neural Networks" (CVPR 2017), at a size one CPU core trains in half an hour.

One iteration t = 1 … T (all recurrent states carried from iteration t−1):

    r_{t-1} ─► E: conv s2 ─► GRU s2 ─► GRU s2 ─► GRU s2 ─► 1×1 conv, tanh ─► B: ±1 ─► b_t (bits × H/16 × W/16)
                                                                                         │
    x_hat_t ◄─ conv 3×3 ◄─ D2S ◄─ GRU ◄─ D2S ◄─ GRU ◄─ D2S ◄─ GRU ◄─ D2S ◄─ GRU ◄─ 1×1 conv ◄─ D
    r_t = x − x_hat_t                     (r_0 = x − ½: the first iteration codes the picture itself)

Reconstruction is the paper's *one-shot* variant: x_hat_t is the decoder's full picture at iteration
t, not a sum of per-iteration increments, so the picture after k iterations is simply the decoder's
k-th output, and the decoder's GRU state is the memory of everything received so far.
B is stochastic ±1 in training (the paper's: +1 with probability (1 + y) / 2, straight-through
gradient) and the sign (y ≥ 0 → +1) at inference, so that encoding is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvGRU", "Decoder", "Encoder", "ProgressiveConfig", "ProgressiveNet", "binarize"]


@dataclass(frozen=True)
class ProgressiveConfig:
    """Sizes of the progressive networks (defaults: `progressive-small` as trained; it ships with 7 iterations)."""

    bits: int = 32
    iterations: int = 8
    #: The encoder's stride-2 conv, then its three stride-2 GRUs: ×16 downsampling.
    enc_widths: tuple[int, ...] = (32, 64, 64, 64)
    #: The decoder's four GRUs, at 1/16, 1/8, 1/4 and 1/2 of the picture's size (each divisible by 4).
    dec_widths: tuple[int, ...] = field(default=(64, 64, 64, 32))

    factor = 16

    def __post_init__(self) -> None:
        if len(self.enc_widths) != 4 or len(self.dec_widths) != 4:
            raise ValueError(f"enc_widths and dec_widths need 4 entries (got {self.enc_widths}, {self.dec_widths})")
        if any(w % 4 for w in self.dec_widths) or self.bits < 1 or self.iterations < 1:
            raise ValueError(f"dec_widths must be multiples of 4, bits and iterations >= 1 (got {self})")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ProgressiveConfig:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown progressive model keys {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class ConvGRU(nn.Module):
    """Convolutional GRU: input kernel `k_in` (with `stride`), hidden kernel `k_h` (1×1 as in the paper)."""

    def __init__(self, cin: int, hidden: int, stride: int = 1, k_in: int = 3, k_h: int = 1) -> None:
        super().__init__()
        self.hidden, self.stride = hidden, stride
        self.x2g = nn.Conv2d(cin, 3 * hidden, k_in, stride, k_in // 2)
        self.h2zr = nn.Conv2d(hidden, 2 * hidden, k_h, 1, k_h // 2, bias=False)
        self.h2n = nn.Conv2d(hidden, hidden, k_h, 1, k_h // 2, bias=False)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        xz, xr, xn = self.x2g(x).chunk(3, 1)
        hz, hr = self.h2zr(h).chunk(2, 1)
        z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        n = torch.tanh(xn + self.h2n(r * h))
        return h + z * (n - h)


def binarize(y: Tensor, stochastic: bool) -> Tensor:
    """±1 from y in [−1, 1]: random with E[b] = y in training (straight-through), else sign (0 → +1)."""
    if not stochastic:
        return torch.where(y >= 0, 1.0, -1.0).to(y.dtype)
    b = torch.where(torch.rand_like(y) < (1 + y) / 2, 1.0, -1.0).to(y.dtype)
    return y + (b - y).detach()


def _zeros(x: Tensor, channels: int, scale: int) -> Tensor:
    return x.new_zeros(x.shape[0], channels, x.shape[2] // scale, x.shape[3] // scale)


class Encoder(nn.Module):
    """E and the binarizer's projection: residual (N, 3, H, W) → y in [−1, 1], (N, bits, H/16, W/16)."""

    def __init__(self, cfg: ProgressiveConfig) -> None:
        super().__init__()
        w = cfg.enc_widths
        self.conv = nn.Conv2d(3, w[0], 3, 2, 1)
        self.grus = nn.ModuleList([ConvGRU(w[i], w[i + 1], stride=2) for i in range(3)])
        self.proj = nn.Conv2d(w[3], cfg.bits, 1)
        self.hidden = list(w[1:])

    def init_state(self, x: Tensor) -> list[Tensor]:
        """Zero states at 1/4, 1/8 and 1/16 of x's size."""
        return [_zeros(x, c, 4 << i) for i, c in enumerate(self.hidden)]

    def forward(self, r: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        h, new = self.conv(r), []
        for gru, s in zip(self.grus, state, strict=True):
            h = gru(h, s)
            new.append(h)
        return torch.tanh(self.proj(h)), new


class Decoder(nn.Module):
    """D: bits (N, bits, h, w) in ±1 → picture (N, 3, 16h, 16w) in about [0, 1], by depth-to-space."""

    def __init__(self, cfg: ProgressiveConfig) -> None:
        super().__init__()
        w = cfg.dec_widths
        self.conv = nn.Conv2d(cfg.bits, w[0], 1)
        cins = [w[0]] + [c // 4 for c in w[:3]]
        self.grus = nn.ModuleList([ConvGRU(cins[i], w[i]) for i in range(4)])
        self.out = nn.Conv2d(w[3] // 4, 3, 3, 1, 1)
        self.hidden = list(w)

    def init_state(self, b: Tensor) -> list[Tensor]:
        """Zero states at 1, 2, 4 and 8 times the size of the bits b."""
        return [b.new_zeros(b.shape[0], c, b.shape[2] << i, b.shape[3] << i) for i, c in enumerate(self.hidden)]

    def forward(self, b: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        h, new = self.conv(b), []
        for gru, s in zip(self.grus, state, strict=True):
            h = gru(h, s)
            new.append(h)
            h = F.pixel_shuffle(h, 2)
        return self.out(h) + 0.5, new


class ProgressiveNet(nn.Module):
    """E, B and D unrolled over the iterations (one-shot reconstruction; see the module's diagram)."""

    def __init__(self, cfg: ProgressiveConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.E, self.D = Encoder(cfg), Decoder(cfg)

    def forward(self, x: Tensor, iterations: int | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Code x for `iterations` (default: all).

        Args:
            x: (N, 3, H, W) float in [0, 1], H and W multiples of 16.
        Returns:
            (bits per iteration, each (N, bits, H/16, W/16) in ±1; x_hat per iteration, each (N, 3, H, W)).
        """
        stochastic = self.training
        enc_state, dec_state = self.E.init_state(x), None
        x_hat = torch.full_like(x, 0.5)
        codes, pictures = [], []
        for _ in range(iterations or self.cfg.iterations):
            y, enc_state = self.E(x - x_hat, enc_state)
            b = binarize(y, stochastic)
            if dec_state is None:
                dec_state = self.D.init_state(b)
            x_hat, dec_state = self.D(b, dec_state)
            codes.append(b)
            pictures.append(x_hat)
        return codes, pictures
