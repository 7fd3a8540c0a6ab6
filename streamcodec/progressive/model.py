"""Progressive mode's codec: pictures ⇄ binary codes, iteration by iteration (Toderici et al. 2017).

    rgb (H, W, 3) uint8 ─pad to ×16 (edge)─► ProgressiveNet (E, sign, D; one-shot) ─► codes
    codes (k, bits, ⌈H/16⌉, ⌈W/16⌉) uint8 {0, 1} ─► D over iterations 1 … k ─crop─► rgb after k

Any prefix codes[:k] decodes: the decoder's GRU state after iteration k depends only on the first k
iterations' bits, and `decode` runs exactly the steps the encoder ran to find its residuals, so
`decode(codes[:k])` is bit-for-bit the encoder's own k-th picture. Runs on the CPU, without grad.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ..errors import ModelError
from ..models.registry import REGISTRY, check_file
from .net import ProgressiveNet
from .weights import load_progressive_weights

__all__ = ["DEFAULT_PROGRESSIVE_MODEL", "ProgressiveCodec", "load_codec"]

DEFAULT_PROGRESSIVE_MODEL = "progressive-small"
Codes = npt.NDArray[np.uint8]
Picture = npt.NDArray[np.uint8]


def _to_tensor(rgb: Picture, factor: int) -> Tensor:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) uint8 picture, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % factor), (0, -w % factor), (0, 0)), mode="edge")
    return torch.from_numpy(padded).permute(2, 0, 1)[None].float().div(255.0)


def _to_picture(x_hat: Tensor, height: int, width: int) -> Picture:
    rgb = x_hat[0, :, :height, :width].clamp(0, 1).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(rgb.permute(1, 2, 0).numpy())


class ProgressiveCodec:
    """A trained progressive model: `encode` all iterations once, `decode` any prefix of them.

    Attributes:
        iterations: the most iterations (the first axis of `encode`'s codes).
        bits: binary channels per 16×16 cell per iteration (bits / 256 bpp per iteration, raw).
        factor: pixels per cell side (16); pictures are padded to a multiple by edge replication.
        model_id: the weights' content identifier ("pg-…"), for streams to name the model.
    """

    factor = 16

    def __init__(self, net: ProgressiveNet, model_id: str = "") -> None:
        self.net = net.eval()
        self.iterations, self.bits, self.model_id = net.cfg.iterations, net.cfg.bits, model_id

    @torch.inference_mode()
    def encode_with_pictures(self, rgb: Picture) -> tuple[Codes, list[Picture]]:
        """Codes of every iteration and the encoder's own picture after each (what `decode` gives).

        Args:
            rgb: (H, W, 3) uint8.
        Returns:
            (codes (iterations, bits, ⌈H/16⌉, ⌈W/16⌉) uint8 in {0, 1}, `iterations` (H, W, 3) uint8 pictures).
        """
        h, w = rgb.shape[:2]
        codes, pictures = self.net(_to_tensor(rgb, self.factor))
        bits = torch.cat(codes).gt(0).to(torch.uint8).numpy()
        return np.ascontiguousarray(bits), [_to_picture(p, h, w) for p in pictures]

    def encode(self, rgb: Picture) -> Codes:
        """(H, W, 3) uint8 → (iterations, bits, ⌈H/16⌉, ⌈W/16⌉) uint8 in {0, 1}."""
        return self.encode_with_pictures(rgb)[0]

    def _check_codes(self, codes: Codes, height: int, width: int) -> None:
        cells = (self.bits, math.ceil(height / self.factor), math.ceil(width / self.factor))
        if codes.ndim != 4 or tuple(codes.shape[1:]) != cells or not 1 <= codes.shape[0] <= self.iterations:
            raise ValueError(
                f"codes of shape {codes.shape} do not fit a {width}x{height} picture: "
                f"expected (k, {cells[0]}, {cells[1]}, {cells[2]}) with 1 <= k <= {self.iterations}"
            )
        if codes.dtype != np.uint8 or codes.max() > 1:
            raise ValueError(f"codes must be uint8 in {{0, 1}} (got {codes.dtype}, max {codes.max()})")

    @torch.inference_mode()
    def decode_all(self, codes: Codes, height: int, width: int) -> list[Picture]:
        """The pictures after 1, 2, … k iterations, in one pass of the decoder.

        Args:
            codes: (k, bits, ⌈height/16⌉, ⌈width/16⌉) uint8 in {0, 1}, 1 ≤ k ≤ iterations.
            height, width: the picture's size.
        Returns:
            k (height, width, 3) uint8 pictures.
        """
        self._check_codes(codes, height, width)
        b_all = torch.from_numpy(np.ascontiguousarray(codes)).float().mul(2).sub(1)
        state, pictures = None, []
        for t in range(codes.shape[0]):
            b = b_all[t : t + 1]
            if state is None:
                state = self.net.D.init_state(b)
            x_hat, state = self.net.D(b, state)
            pictures.append(_to_picture(x_hat, height, width))
        return pictures

    def decode(self, codes: Codes, height: int, width: int) -> Picture:
        """(k, bits, ⌈height/16⌉, ⌈width/16⌉) uint8 {0, 1} → the (height, width, 3) uint8 picture after k iterations."""
        return self.decode_all(codes, height, width)[-1]


def load_codec(name: str = DEFAULT_PROGRESSIVE_MODEL) -> ProgressiveCodec:
    """The registered progressive model `name`, its file checked against the registry's sha256 and id.

    Raises:
        ModelError: an unknown name, a model of another kind, or a missing or altered weights file.
    """
    entry = REGISTRY.entry(name)
    if entry.kind != "progressive":
        raise ModelError(f"model {name!r} is a {entry.kind} model, not a progressive model")
    check_file(entry)
    try:
        return ProgressiveCodec(load_progressive_weights(entry.path, entry.model_id), entry.model_id)
    except ValueError as exc:
        raise ModelError(str(exc), entry.path) from None
