"""Saliency: which kept blocks the fidelity layer spends its bits on first (issue 22; Patel et al., WACV 2021).

    frame, its kinds' masks ─▶ a weight per 16-px block (`observe`, in stream order, held over frames)
    weights, the coded keep blocks, the frame ─rate-neutral shift─▶ QP offsets per block (`offsets`)
        ─▶ x265 ROI side data (roi.py) │ the learned layer's channel split (learned.py)

A block's weight is how many QP steps finer than the kept region's CRF it is coded, the largest of
the tiers it is in (`--saliency face=6,text=4,spectral=0,rest=0`):
    face      BlazeFace's boxes with their margin (the keep mask's own face kind; run here if not kept)
    text      the text kind's boxes (PP-OCR, with `--keep text`)
    spectral  spectral-residual saliency (Hou & Zhang, CVPR 2007) of the frame: what no detector names
    (0)       the rest of the detectors' mask: people, motion, a mask video
    rest      kept blocks the detectors did not ask for (a GOP coded whole, the background bound's blocks):
              not shifted, so by default (0) they stay at the CRF, and the bound's test is not weakened
Faces are held for `HOLD` frames after they were last seen, so the map does not flicker with the detector.

Saliency moves bits, it does not add them: the weights of the detected blocks are shifted by one constant
so that a model of their bits, activity × 2^(weight / 6) (x265 halves a block's bits about every 6
QP), sums to what it was without saliency; no block is coarsened by more than MAX_COARSER, though,
which can leave a frame whose face takes most of its bits above that total. Blocks outside the kept region get 0. The map is
deterministic and never signalled: the codecs' decoders read the same bitstream syntax either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .face import FaceDetector

__all__ = [
    "DEFAULT_WEIGHTS",
    "HOLD",
    "VERSION",
    "Saliency",
    "SaliencyWeights",
    "create_saliency",
    "parse_saliency",
    "spectral_residual",
]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Offsets = npt.NDArray[np.float32]

#: Names how maps are made (an eval's cache keys on it with the weights): change it when they change.
VERSION = "sc-saliency-v1"
#: Frames a face's blocks stay salient after the detector last saw it.
HOLD = 3
#: QP steps per halving of a block's bits (x265 and SVT-AV1 at their usual rates: about 6).
QP_PER_HALVING = 6.0
#: QP added to a map's shift beyond the model's (0 for a flat map), fitted so carphone, the sample and the
#: talking head keep their bits (scripts/benchmarks/saliency_rd.py; docs/selective.md).
RATE_TRIM = 0.5
#: The most QP a detected block is coarsened by to pay for the salient ones (a face taking most of the bits
#: then costs more than the map's shift saves): at +4-5 QP carphone's q1 had a 16x16 block 21 levels off.
MAX_COARSER = 3.0
#: The widest spectral-residual thumbnail (Hou & Zhang: 64 px), and the share of its mean a salient block exceeds.
SPECTRAL_WIDTH, SPECTRAL_FACTOR = 64, 3.0


@dataclass(frozen=True)
class SaliencyWeights:
    """QP steps finer than the kept region per tier (negative: coarser)."""

    face: float = 6.0
    text: float = 4.0
    spectral: float = 0.0
    rest: float = 0.0

    def spec(self) -> str:
        """The `--saliency` text that gives these weights."""
        return ",".join(f"{name}={_number(getattr(self, name))}" for name in TIERS)


TIERS = ("face", "text", "spectral", "rest")
DEFAULT_WEIGHTS = SaliencyWeights()
#: The largest weight either way: x265 takes offsets in -51..51 and a −12 QP block already costs 4×.
WEIGHT_LIMIT = 12.0


def _number(value: float) -> str:
    return f"{value:g}"


def parse_saliency(spec: str | None) -> SaliencyWeights | None:
    """`--saliency`: "off" (or None/"") → None; "on" → the defaults; "face=8,rest=-2" → those, the defaults elsewhere.

    Raises:
        ValueError: an unknown tier, a weight that is not a number, or one beyond ±WEIGHT_LIMIT.
    """
    if spec is None or spec.strip().lower() in ("", "off", "none", "0"):
        return None
    if spec.strip().lower() in ("on", "default"):
        return DEFAULT_WEIGHTS
    weights = {name: getattr(DEFAULT_WEIGHTS, name) for name in TIERS}
    for item in spec.split(","):
        name, _, value = item.strip().partition("=")
        if name not in weights or not value:
            raise ValueError(f"--saliency {spec!r}: each item is TIER=QP with TIER one of {', '.join(TIERS)} (got {item!r})")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--saliency {spec!r}: {value!r} is not a number") from None
        if not abs(number) <= WEIGHT_LIMIT:
            raise ValueError(f"--saliency {spec!r}: {name}={value} is beyond ±{WEIGHT_LIMIT:g} QP")
        weights[name] = number
    return SaliencyWeights(**weights)


def blocks_of(mask: Mask, block: int) -> Mask:
    """(ceil(H/block), ceil(W/block)): the blocks `mask` touches."""
    height, width = mask.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), dtype=bool)
    padded[:height, :width] = mask
    return np.asarray(padded.reshape(rows, block, cols, block).any(axis=(1, 3)))


def spectral_residual(rgb: Image) -> npt.NDArray[np.float32]:
    """Hou & Zhang's spectral-residual saliency of a frame, on a thumbnail at most SPECTRAL_WIDTH wide: (h, w) float32.

    The log amplitude spectrum minus its 3x3 local mean, back with the phase, squared and blurred.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, SPECTRAL_WIDTH / width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA).astype(np.float32)
    spectrum = np.fft.fft2(grey)
    log_amplitude = np.log1p(np.abs(spectrum)).astype(np.float32)  # log1p: a flat picture has exact zeros
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REFLECT)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    return np.asarray(cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2.5), dtype=np.float32)


def _spectral_blocks(rgb: Image, rows: int, cols: int) -> Mask:
    saliency = spectral_residual(rgb)
    grid = cv2.resize(saliency, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.asarray(grid > SPECTRAL_FACTOR * float(saliency.mean()))


def activity(rgb: Image, previous: Image | None, block: int) -> npt.NDArray[np.float32]:
    """A model of each block's bits: (1 + its luma's mean change from `previous`)² ((rows, cols) float32; 1 without one).

    Inter blocks cost about what they change; the square was fitted on carphone, where the plain
    model (spread + change) left saliency 12-16 % over the bits of the run without it.
    """
    height, width = rgb.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    if previous is None:
        return np.ones((rows, cols), np.float32)
    pad = (0, rows * block - height, 0, cols * block - width)
    now, before = (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) for image in (rgb, previous))
    change = cv2.copyMakeBorder(np.abs(now - before), *pad, cv2.BORDER_REPLICATE)
    return np.asarray((1.0 + change.reshape(rows, block, cols, block).mean(axis=(1, 3))) ** 2, dtype=np.float32)


class Saliency:
    """The per-frame weight map of one stream, and its rate-neutral QP offsets (see the module's text)."""

    def __init__(self, weights: SaliencyWeights, block: int, *, face_kept: bool, threads: int = 1) -> None:
        """Args:
        weights: the tiers' weights (`parse_saliency`).
        block: the fidelity layer's block size in pixels (16).
        face_kept: whether the keep mask's kinds find faces already (else a detector of its own runs).
        threads: the own face detector's threads.
        """
        self.weights, self.block = weights, block
        self._detector = FaceDetector(threads) if weights.face and not face_kept else None
        self._faces: list[Mask] = []  # the last HOLD frames' face blocks
        self._previous: Image | None = None

    def observe(self, rgb: Image, kinds: dict[str, Mask], detected: Mask, cut: bool = False) -> npt.NDArray[np.float32]:
        """The next frame's weight per block, before the shift: (rows, cols) float32.

        Args:
            rgb: (H, W, 3) uint8, frames in stream order.
            kinds: each keep kind's raw mask for this frame (`SelectiveMasks.last_kinds`).
            detected: the frame's stabilized keep mask (the detectors' union, (H, W) bool).
            cut: the frame starts a new shot (`cuts.py`): the faces held before are forgotten.
        """
        if cut:
            self._faces.clear()
        weights, block = self.weights, self.block
        tiers = np.where(blocks_of(detected, block), 0.0, np.nan).astype(np.float32)  # NaN: rest (see `offsets`)
        if weights.spectral:
            tiers = np.where(_spectral_blocks(rgb, *tiers.shape), np.fmax(tiers, weights.spectral), tiers)
        if weights.text and "text" in kinds:
            tiers = np.where(blocks_of(kinds["text"], block), np.fmax(tiers, weights.text), tiers)
        if weights.face:
            face = self._detector.mask(rgb) if self._detector is not None else kinds.get("face")
            self._faces = [
                *self._faces[-(HOLD - 1) :],
                blocks_of(face, block) if face is not None else np.zeros(tiers.shape, bool),
            ]
            held = np.logical_or.reduce(self._faces)
            tiers = np.where(held, np.fmax(tiers, weights.face), tiers)
        return np.asarray(tiers, dtype=np.float32)

    def offsets(self, tiers: npt.NDArray[np.float32], blocks: Mask, rgb: Image) -> Offsets:
        """The QP offset per block (negative: finer) for the coded keep `blocks`; 0 elsewhere.

        The blocks the detectors asked for share their bits rate-neutrally (one shift of their weights);
        the rest of `blocks` (NaN in `tiers`) get −`weights.rest` as it is, so by default they stay at the
        CRF: saliency never coarsens what only the whole GOP or the background bound keeps. Frames in
        stream order (the activity model compares each with the one before).
        """
        model = activity(rgb, self._previous, self.block)
        self._previous = rgb
        rest = np.isnan(tiers)
        shared = blocks & ~rest
        offsets = np.where(blocks & rest, -self.weights.rest, 0.0)
        if shared.any():
            weights, active = tiers[shared].astype(np.float64), model[shared].astype(np.float64)
            model_shift = np.log2((active * np.exp2(weights / QP_PER_HALVING)).sum() / active.sum())
            shift = QP_PER_HALVING * model_shift + RATE_TRIM * float(np.ptp(weights) > 0)
            offsets[shared] = np.minimum(shift - weights, MAX_COARSER)
        return offsets.astype(np.float32)


def create_saliency(spec: str | None, block: int, keep: tuple[str, ...], threads: int = 1) -> Saliency | None:
    """The saliency of an encoder (`SelectiveOptions.saliency`, its `keep` kinds), None when `spec` is off."""
    weights = parse_saliency(spec)
    return None if weights is None else Saliency(weights, block, face_kept="face" in keep, threads=threads)
