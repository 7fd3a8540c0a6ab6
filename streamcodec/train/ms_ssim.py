"""A differentiable MS-SSIM in torch, the training twin of `streamcodec.metrics.ms_ssim`.

Same definition as the evaluation's (Wang, Simoncelli and Bovik 2003, as `metrics` computes it):
11-tap Gaussian window (σ = 1.5) applied 'valid', K1 = 0.01, K2 = 0.03, 2×2 mean downsampling
between scales, contrast-structure at every scale but the coarsest (full SSIM there), each RGB
channel on its own, then the mean over channels. As there, a picture too small for five scales
uses as many as fit (`metrics.ms_ssim_scales`: the coarsest must still hold one window) with the
weights renormalised — so 64×64 crops get 3 scales, 128×128 crops 4, 176×176 and larger all 5.

    x, y (N, 3, H, W) in [0, 1] ─► per scale: SSIM / cs maps ─► mean over pixels ─► ∏ value^w ─► mean over channels

Differs only where a gradient needs it: a per-scale value is clamped to `floor` (not 0) before the
power, so that a negative contrast-structure term cannot give an infinite or NaN gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics import MS_SSIM_WEIGHTS, gaussian_window, ms_ssim_scales

__all__ = ["ms_ssim_torch"]

_K1, _K2 = 0.01, 0.03


def _blur(x: Tensor, window: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filter of (N, C, H, W), each channel alone."""
    channels, taps = x.shape[1], window.numel()
    rows = window.view(1, 1, taps, 1).expand(channels, 1, taps, 1)
    cols = window.view(1, 1, 1, taps).expand(channels, 1, 1, taps)
    return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)


def _ssim_terms(x: Tensor, y: Tensor, window: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image, per-channel mean SSIM and mean contrast-structure: two (N, C) tensors."""
    c1, c2 = _K1**2, _K2**2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    sxx = _blur(x * x, window) - mu_x**2
    syy = _blur(y * y, window) - mu_y**2
    sxy = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def _downsample2(x: Tensor) -> Tensor:
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    return F.avg_pool2d(x[:, :, :h, :w], 2)


def ms_ssim_torch(x: Tensor, y: Tensor, floor: float = 1e-4) -> Tensor:
    """MS-SSIM of each image pair, differentiable in both arguments.

    Args:
        x, y: (N, C, H, W) float pictures in [0, 1] (8-bit levels / 255), H, W ≥ 11.
        floor: per-scale values are clamped to at least this before the power (for the gradient).
    Returns:
        (N,) MS-SSIM per image, the mean over channels; `metrics.ms_ssim` of the same pictures
        (as uint8) up to float32 rounding and the 8-bit quantisation of the inputs.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ms_ssim_torch needs two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    scales = ms_ssim_scales(x.shape[2], x.shape[3])
    if min(x.shape[2:]) < gaussian_window().size:
        raise ValueError(f"MS-SSIM needs pictures of at least 11x11, got {x.shape[3]}x{x.shape[2]}")
    window = torch.from_numpy(gaussian_window()).to(x)
    exponents = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    exponents = exponents / exponents.sum()
    values = []
    for scale in range(scales):
        ssim, cs = _ssim_terms(x, y, window)
        values.append(ssim if scale == scales - 1 else cs)
        if scale < scales - 1:
            x, y = _downsample2(x), _downsample2(y)
    stacked = torch.stack(values).clamp_min(floor)  # (scales, N, C)
    per_channel = torch.prod(stacked ** exponents[:, None, None], dim=0)
    return per_channel.mean(dim=1)
