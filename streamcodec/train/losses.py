"""The losses the GC and SC trainers share: LSGAN, feature matching, R1, and a masked MSE.

D's output for one picture is a list per scale of the multi-scale discriminator
(`models.gc.MultiScaleDiscriminator`), each a list of its layers' features with the patch scores
last: `list[list[Tensor]]`, scores (B, 1, h, w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.gc import MultiScaleDiscriminator


def lsgan_d(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """Least-squares GAN loss of D (Mao et al. 2017): real patches towards 1, fakes towards 0, summed over scales.

    Args:
        real: D's outputs on real crops.
        fake: D's outputs on the generator's crops (detached by the caller).
    Returns:
        a float scalar.
    """
    return sum(((r[-1] - 1) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real, fake, strict=False))  # type: ignore[return-value]


def lsgan_g(fake: list[list[Tensor]]) -> Tensor:
    """Least-squares GAN loss of the generator: D's scores of its crops towards 1, summed over scales.

    Args:
        fake: D's outputs on the generator's crops.
    Returns:
        a float scalar.
    """
    return sum(((f[-1] - 1) ** 2).mean() for f in fake)  # type: ignore[return-value]


def feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """Feature matching (pix2pixHD): mean L1 between D's inner features of real and generated crops.

    Args:
        real: D's outputs on real crops (detached here: only the generator learns from this loss).
        fake: D's outputs on the generator's crops.
    Returns:
        a float scalar, the mean over every scale's inner layers (the patch scores left out).
    """
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake, strict=False) for r, f in zip(rs[:-1], fs[:-1], strict=False)]
    return sum(terms) / len(terms)  # type: ignore[return-value]


def r1_penalty(disc: MultiScaleDiscriminator, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real crops per patch, summed over D's scales.

    Args:
        disc: the discriminator.
        real: (B, 3, H, W) real crops in [0, 1].
    Returns:
        the penalty before its gamma/2 weight (a scalar that carries the graph to D's weights).
    """
    # float32: a double backward through bf16 autocast loses the small gradients R1 is about.
    with torch.autocast(real.device.type, enabled=False):
        x = real.detach().float().requires_grad_(True)
        outs = disc(x)
        total = x.new_zeros(())
        for scale in outs:
            # Every patch is a decision, and D's loss is a mean over patches: the squared gradient of
            # the summed patch scores over the patch count is about the mean of each patch's own R1
            # (receptive fields overlap little), so one gamma serves every crop size.
            (grad,) = torch.autograd.grad(scale[-1].float().sum(), x, create_graph=True, retain_graph=True)
            total = total + grad.pow(2).flatten(1).sum(1).mean() / scale[-1][0].numel()
    return total


def masked_mse(a: Tensor, b: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error over the pixels `weight` selects.

    Args:
        a, b: (B, C, H, W) pictures.
        weight: (B, 1, H, W) per-pixel weights, e.g. a 0/1 keep mask.
    Returns:
        sum(weight · (a − b)²) / (sum(weight) · C), a float scalar (0 where the mask is empty).
    """
    return ((a - b) ** 2 * weight).sum() / (weight.sum() * a.shape[1]).clamp_min(1.0)
