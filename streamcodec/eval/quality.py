"""Metrics the evaluation needs beyond `streamcodec.metrics`: kept-region and face-region PSNR/MS-SSIM, flicker,
IoU, and outside the kept region PSNR and the blocks over the bound (`worst.py`).

Everything here works on (H, W, 3) uint8 RGB frames and (H, W) bool masks, and reuses the window,
blur and downsampling of `streamcodec.metrics`, so a mask that covers the whole frame gives exactly
the whole-frame numbers.

Kept-region and face-region MS-SSIM are `metrics.ms_ssim_in_region`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ..metrics import QualityAccumulator, ms_ssim_in_region, mse, psnr_from_mse, ssim_maps
from ..metrics import gaussian_window as gaussian
from .faces import NO_FACE
from .worst import BlockBound

Frame = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_HALF = 5  # (11-tap window - 1) / 2: how far a 'valid' blur map is inset from the frame


def _check(a: Frame, b: Frame, mask: Mask | None = None) -> None:
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} vs {b.shape}")
    if mask is not None and mask.shape != a.shape[:2]:
        raise ValueError(f"mask of shape {mask.shape} does not match frames of {a.shape[:2]}")


def masked_mse(a: Frame, b: Frame, mask: Mask) -> float | None:
    """Mean squared error over the pixels where `mask` is True (all channels); None if it is empty."""
    _check(a, b, mask)
    if not mask.any():
        return None
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    return float(np.mean(diff**2))


def masked_psnr(a: Frame, b: Frame, mask: Mask) -> float | None:
    """PSNR in dB inside `mask` (+inf when identical there); None if the mask is empty."""
    value = masked_mse(a, b, mask)
    return None if value is None else psnr_from_mse(value)


def ssim_map(a: Frame, b: Frame, window: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.floating[Any]]:
    """Local SSIM of every full window position, per channel.

    Args:
        a, b: (H, W, 3) uint8 frames.
        window: 1-D separable weights summing to 1 (default: the 11-tap Gaussian, σ = 1.5, of MS-SSIM).

    Returns:
        (H - n + 1, W - n + 1, 3) float map for an n-tap window.
    """
    _check(a, b)
    g = gaussian() if window is None else np.asarray(window, dtype=np.float32)
    if min(a.shape[:2]) < len(g):
        raise ValueError(
            f"SSIM with a {len(g)}-tap window needs frames of at least {len(g)}x{len(g)}, got {a.shape[1]}x{a.shape[0]}"
        )
    return ssim_maps(a.astype(np.float32), b.astype(np.float32), g)[0]


def ssim(a: Frame, b: Frame) -> float:
    """Single-scale SSIM (11-tap Gaussian, σ = 1.5) averaged over the RGB channels; needs H, W ≥ 11."""
    return float(ssim_map(a, b).mean(dtype=np.float64))


def masked_ms_ssim(a: Frame, b: Frame, mask: Mask) -> float | None:
    """MS-SSIM restricted to `mask`; None when the region vanishes at some scale (see metrics)."""
    return ms_ssim_in_region(a, b, mask)


def frame_flicker(source: tuple[Frame, Frame], decoded: tuple[Frame, Frame], mask: Mask | None = None) -> float | None:
    """Mean |Δdecoded − Δsource| between two consecutive frames, in 8-bit levels.

    A codec that reproduces the source's own motion scores 0; temporal noise the source does not
    have (shimmering texture, popping at keyframes) raises it. With `mask`, only pixels inside it
    count (None when it is empty).

    Args:
        source: (previous, current) source frames, (H, W, 3) uint8.
        decoded: (previous, current) decoded frames, same shape.
        mask: optional (H, W) bool.
    """
    _check(source[1], decoded[1], mask)
    error = (decoded[1].astype(np.int16) - decoded[0]) - (source[1].astype(np.int16) - source[0])
    if mask is None:
        return float(np.mean(np.abs(error)))
    return float(np.mean(np.abs(error[mask]))) if mask.any() else None


def mask_iou(a: Mask, b: Mask) -> float | None:
    """Intersection over union of two bool masks; None when both are empty (nothing to compare)."""
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = int(np.count_nonzero(a | b))
    return None if union == 0 else int(np.count_nonzero(a & b)) / union


class _Mean:
    """Mean of the values added, ignoring None (a frame where the metric is undefined)."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: float | None) -> None:
        if value is not None and not math.isnan(value):
            self.total, self.count = self.total + value, self.count + 1

    def value(self) -> float | None:
        return self.total / self.count if self.count else None


class ClipQuality:
    """Accumulates every per-frame metric of one decoded clip against its source.

    Whole-frame PSNR/MS-SSIM come from `metrics.QualityAccumulator`. Kept-region metrics, PSNR
    outside the kept region, the blocks over the bound outside it (`bound`), background flicker and
    person IoU need masks and stay None when `add` never receives them. Face-region PSNR/MS-SSIM are
    means over the frames whose face mask is not empty; None, with `face_reason`, when none is.
    """

    def __init__(self) -> None:
        self.whole = QualityAccumulator()
        self._kept_mse, self._kept_psnr, self._kept_ms_ssim = _Mean(), _Mean(), _Mean()
        self._flicker, self._background_flicker, self._iou = _Mean(), _Mean(), _Mean()
        self._outside_psnr = _Mean()
        self._face_psnr, self._face_ms_ssim, self._face_share = _Mean(), _Mean(), _Mean()
        self.face_frames = 0
        self.bound = BlockBound()
        self._index = 0
        self._previous: tuple[Frame, Frame, Mask | None] | None = None

    def add(
        self, source: Frame, decoded: Frame, kept: Mask | None = None, iou: float | None = None, face: Mask | None = None
    ) -> None:
        """One frame pair; `kept` is the source frame's kept region, `iou` its person-mask IoU, `face` its face region."""
        self.whole.add(source, decoded)
        if face is not None:
            self._add_face(source, decoded, face)
        if kept is not None:
            kept_mse = masked_mse(source, decoded, kept)
            self._kept_mse.add(kept_mse)
            self._kept_psnr.add(None if kept_mse is None else min(psnr_from_mse(kept_mse), 100.0))
            self._kept_ms_ssim.add(masked_ms_ssim(source, decoded, kept))
            self._iou.add(iou)
            outside_mse = masked_mse(source, decoded, ~kept)
            self._outside_psnr.add(None if outside_mse is None else min(psnr_from_mse(outside_mse), 100.0))
            self.bound.add(self._index, source, decoded, kept)
        if self._previous is not None:
            previous_source, previous_decoded, previous_kept = self._previous
            pair = ((previous_source, source), (previous_decoded, decoded))
            self._flicker.add(frame_flicker(*pair))
            if kept is not None and previous_kept is not None:
                self._background_flicker.add(frame_flicker(*pair, mask=~(kept | previous_kept)))
        self._previous = (source, decoded, kept)
        self._index += 1

    def _add_face(self, source: Frame, decoded: Frame, face: Mask) -> None:
        self._face_share.add(float(np.count_nonzero(face)) / face.size)
        face_mse = masked_mse(source, decoded, face)
        if face_mse is None:
            return  # no face in this frame: it does not count in the face-region means
        self.face_frames += 1
        self._face_psnr.add(min(psnr_from_mse(face_mse), 100.0))
        self._face_ms_ssim.add(masked_ms_ssim(source, decoded, face))

    @property
    def face_reason(self) -> str | None:
        """Why the face-region figures are n/a (one line), or None when they were measured or not asked for."""
        return NO_FACE if self._face_share.count and not self.face_frames else None

    def summary(self) -> dict[str, float | int | None]:
        """Clip means: psnr_db (mean of per-frame PSNR capped at 100 dB), psnr_of_mean_mse_db, ms_ssim,
        the kept-region pair, psnr_outside_db (capped likewise), flicker, background_flicker and person_iou;
        outside the kept region frames_over_bound, worst_block and worst_frame; in the face region
        psnr_face_db (capped likewise), ms_ssim_face, face_share (of every frame) and face_frames
        (None where not measured)."""
        whole = self.whole.summary()
        kept_mse = self._kept_mse.value()
        return {
            "psnr_db": whole.get("psnr_db"),
            "psnr_of_mean_mse_db": whole.get("psnr_of_mean_mse_db"),
            "ms_ssim": whole.get("ms_ssim"),
            "psnr_kept_db": self._kept_psnr.value(),
            "psnr_kept_of_mean_mse_db": None if kept_mse is None else psnr_from_mse(kept_mse),
            "ms_ssim_kept": self._kept_ms_ssim.value(),
            "psnr_outside_db": self._outside_psnr.value(),
            "psnr_face_db": self._face_psnr.value(),
            "ms_ssim_face": self._face_ms_ssim.value(),
            "face_share": self._face_share.value(),
            "face_frames": self.face_frames if self._face_share.count else None,
            **self.bound.summary(),
            "flicker": self._flicker.value(),
            "background_flicker": self._background_flicker.value(),
            "person_iou": self._iou.value(),
        }


__all__ = ["ClipQuality", "frame_flicker", "mask_iou", "masked_ms_ssim", "masked_mse", "masked_psnr", "mse", "ssim", "ssim_map"]
