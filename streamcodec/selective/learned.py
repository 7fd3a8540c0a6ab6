"""Selective mode's `learned` fidelity layer: Agustsson et al. 2019's SC, the GC latents kept inside the mask.

    RGB ─pad to /16─▶ E (backend.analyze) ─▶ symbols (C, h, w), first K channels (K from the quality)
        ─▶ every cell outside the keep cells set to the center symbol (value 0)
        ─▶ with a saliency map (QP offsets per 16-px block): each keep cell's channels above its count
           (K · 2^(-(offset - the smallest offset)/6): faces K, the rest fewer) set to center too
        ─▶ range-coded with the GC model's frozen context tables (intra at keyframes, inter against
           the previous frame's symbols between) ─▶ FIDELITY section = LATENTS layout (K, payload)
    FIDELITY ─▶ symbols ─▶ centers, untransmitted channels 0 ─▶ G (backend.synthesize) ─crop─▶ (H, W, 3)

The keep cells are the 16-px block mask (one block = one latent cell, the GC models' factor is 16)
dilated by one cell, so the generator's receptive field at the kept region's edge still sees real
latents. The zeroed cells cost almost nothing in inter frames: the context tables make a center
over a center nearly certain (about 0.05 bit); in intra frames a center among centers still costs
about a bit in most channels (gc-small: an all-center 16-channel 176x144 frame is 224 bytes).
The stream config's `fg_crf` holds the GC quality level (1..levels).
`LearnedFidelity` is the encoder's fidelity layer (`layer.FidelityLayer`); `LearnedDecoder.for_stream`
builds the decoder's from a stream config.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import StreamConfig
from ..engines import Backend, create_backend
from ..entropy import context
from ..errors import CorruptStreamError
from ..gc.codec import GCEncoder
from ..models.registry import REGISTRY, LoadedModel
from .layer import LayerSetup
from .maskcode import block_mask
from .options import BLOCK

__all__ = ["LearnedDecoder", "LearnedEncoder", "LearnedFidelity", "cell_channels", "cell_wants", "keep_cells", "limit_channels"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Symbols = npt.NDArray[np.int64]
Saliency = npt.NDArray[np.float32]

#: QP offset (x265 units) that doubles a cell's channels: x265's rate doubles per 6 QP, and the GC levels'
#: channels double per level (2, 4, 8, 16) at twice the bytes (measured: scripts/benchmarks/learned_saliency.py).
QP_PER_DOUBLING = 6.0


def keep_cells(blocks: Mask, shape: tuple[int, int]) -> Mask:
    """The latent cells kept: the block mask dilated by one cell, on the (h, w) latent grid.

    Args:
        blocks: the stream's (⌈H/16⌉, ⌈W/16⌉) block keep mask.
        shape: the latent grid (coded_height/16, coded_width/16).
    Returns:
        (h, w) bool.
    """
    if blocks.shape != shape:
        raise ValueError(f"block mask {blocks.shape} does not match the latent grid {shape}")
    grown = cv2.dilate(blocks.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return np.asarray(grown, dtype=bool)


def center_symbol(model: LoadedModel) -> int:
    """The symbol whose center is 0 (levels 5: symbol 2)."""
    return int(np.argmin(np.abs(np.asarray(model.config.centers))))


def check_level(model: LoadedModel, level: int) -> int:
    """The transmitted channel count of GC quality `level`; ValueError outside 1..levels."""
    levels = model.config.quality_channels
    if not 1 <= level <= len(levels):
        raise ValueError(f"learned fidelity quality {level} is outside 1..{len(levels)} for model {model.entry.name!r}")
    return levels[level - 1]


#: 4x4 ordered-dither thresholds by cell position: a fractional count (an offset that is not a multiple of 6
#: from the most salient) rounds up or down in a fixed pattern, so a region's mean count follows 2^(-q/6).
DITHER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=np.float64) + 0.5) / 16


def cell_wants(saliency: Saliency, keep: Mask) -> npt.NDArray[np.float64]:
    """Relative channel counts: 2^(-q / QP_PER_DOUBLING) in the keep cells, 0 outside ((h, w) float64).

    Raises:
        ValueError: the map is not on the latent grid, or has values that are not finite.
    """
    if saliency.shape != keep.shape:
        raise ValueError(f"saliency map {saliency.shape} does not match the latent grid {keep.shape}")
    if not np.isfinite(saliency).all():
        raise ValueError("saliency map has values that are not finite")
    return np.where(keep, 2.0 ** (-saliency.astype(np.float64) / QP_PER_DOUBLING), 0.0)


def cell_channels(wants: npt.NDArray[np.float64], scale: float, channels: int, least: int = 1) -> npt.NDArray[np.int64]:
    """Channels sent per cell: `wants` × `scale`, ordered-dithered to integers, `least`..`channels` where wanted, else 0."""
    height, width = wants.shape
    dither = np.tile(DITHER, (-(-height // 4), -(-width // 4)))[:height, :width]
    counts = np.clip(np.floor(wants * scale + dither), min(least, channels), channels).astype(np.int64)
    return np.where(wants > 0, counts, 0)


def limit_channels(sym: Symbols, counts: npt.NDArray[np.int64], center: int) -> Symbols:
    """`sym` with each cell's channels from its count up set to the center symbol, which G reads as 0 (a copy).

    The center rather than the context model's likeliest symbol (which codes in about 3 % fewer bytes): G
    was trained with untransmitted channels 0, and the likeliest symbols cost up to 3 dB where few channels
    are left (gc-gpu, carphone).
    """
    out = sym.copy()
    out[np.arange(sym.shape[0])[:, None, None] >= counts[None]] = center
    return out


class LearnedEncoder:
    """Codes the kept region of each frame as masked GC latents; one FIDELITY section per frame."""

    def __init__(self, width: int, height: int, model: str, level: int, backend: str | Backend = "auto") -> None:
        """Load the GC model.

        Args:
            width, height: source frame size.
            model: registered GC model name (gc-small, gc-gpu).
            level: GC quality level 1..levels: how many latent channels are sent.
            backend: inference backend (see engines.create_backend).
        """
        self.gc = GCEncoder(width, height, model=model, gop=1, backend=backend)
        self.channels = check_level(self.gc.model, level)
        self._center = center_symbol(self.gc.model)
        self._reference: Symbols | None = None
        self.last_symbols: Symbols | None = None
        #: The channels per cell of the last frame coded with a saliency map (for measurements).
        self.last_counts: npt.NDArray[np.int64] | None = None

    def symbols(self, rgb: Image, blocks: Mask) -> Symbols:
        """The frame's transmitted symbols, (K, h, w) int64, center outside the keep cells."""
        sym = self.gc.analyze(rgb)[: self.channels].copy()
        sym[:, ~keep_cells(blocks, sym.shape[1:])] = self._center
        return sym

    def encode(self, rgb: Image, blocks: Mask, keyframe: bool, saliency: Saliency | None = None) -> bytes:
        """One frame's FIDELITY section (LATENTS layout); intra tables at keyframes, inter ones against the last frame.

        `saliency`: (⌈H/16⌉, ⌈W/16⌉) float32 QP offsets, or None (every keep cell sends K channels); see `split`.
        """
        sym = self.symbols(rgb, blocks)
        reference = None if keyframe else self._reference
        if not keyframe and reference is None:
            raise ValueError("learned fidelity: the first frame of a stream must be a keyframe")
        if saliency is not None:
            sym = self.split(sym, cell_wants(saliency, keep_cells(blocks, sym.shape[1:])))
        payload, _ = context.encode_frame(sym, reference, self.gc.model.tables)
        self._reference = self.last_symbols = sym
        return bitstream.pack_latents(self.channels, payload)

    def split(self, sym: Symbols, wants: npt.NDArray[np.float64]) -> Symbols:
        """`sym` with each keep cell's channels cut to `cell_channels`: the most salient cell K, the others fewer.

        The section keeps K channels (the stream config pins them, and today's decoder reads exactly K), so
        a salient cell can gain nothing above K: the most salient keep cell is anchored at K and every other
        one gets 2^(-Δq / 6) of it, Δq its offset above the most salient's (the map is rate-neutral, defined
        up to a constant, so only differences count); never fewer than the lowest level's channels. The
        section so costs less than plain level L, more than L-1: `--fg-quality` picks the rate, as without.
        """
        keep = wants > 0
        if not keep.any():
            return sym
        least = self.gc.model.config.quality_channels[0]  # fewer channels than the lowest level decode far worse
        self.last_counts = cell_channels(wants, self.channels / float(wants[keep].max()), self.channels, least)
        return limit_channels(sym, self.last_counts, self._center)

    def close(self) -> None:
        """Nothing to close (the FidelityEncoder interface)."""


class LearnedDecoder:
    """Decodes FIDELITY sections of a learned stream to G's picture; drops its reference on damage."""

    def __init__(self, model_id: str, level: int, size: tuple[int, int], backend: str | Backend = "auto") -> None:
        """Load the stream's GC model.

        Args:
            model_id: the stream config's model id.
            level: the GC quality level (the config's `fg_crf`).
            size: the stream's (width, height).
            backend: inference backend.
        Raises:
            CorruptStreamError: `level` is outside the model's levels.
        """
        self.model = REGISTRY.load(REGISTRY.by_id(model_id).name)
        try:
            self.channels = check_level(self.model, level)
        except ValueError as exc:
            raise CorruptStreamError(f"selective stream configuration fg_crf: {exc}") from None
        self.width, self.height = size
        factor = self.model.config.factor
        self.shape = (self.channels, -(-self.height // factor), -(-self.width // factor))
        self.backend = backend if isinstance(backend, Backend) else create_backend(backend, self.model)
        self._centers = np.asarray(self.model.config.centers, dtype=np.float32)
        self._reference: Symbols | None = None
        self.last_symbols: Symbols | None = None

    @classmethod
    def for_stream(cls, config: StreamConfig, backend: str | Backend = "auto") -> LearnedDecoder:
        """The decoder of a learned stream: its model, and its GC level from the config's `fg_crf`."""
        return cls(config.model_id, int(config.extra["fg_crf"]), (config.width, config.height), backend)  # type: ignore[call-overload]

    def decode_symbols(self, section: bytes, keyframe: bool) -> Symbols:
        """The (K, h, w) symbols of one FIDELITY section; CorruptStreamError for damage or a missing reference."""
        try:
            return self._decode_symbols(section, keyframe)
        except CorruptStreamError:
            self._reference = None
            raise

    def _decode_symbols(self, section: bytes, keyframe: bool) -> Symbols:
        channels, payload = bitstream.unpack_latents(section)
        if channels != self.channels:
            raise CorruptStreamError(f"learned fidelity section has {channels} channels, the stream {self.channels}")
        if not keyframe and self._reference is None:
            raise CorruptStreamError("learned fidelity inter frame without its reference (an earlier frame was lost)")
        sym, exact = context.decode_frame(payload, self.shape, None if keyframe else self._reference, self.model.tables)
        if not exact:
            raise CorruptStreamError("learned fidelity payload was not consumed exactly")
        self._reference = self.last_symbols = sym
        return sym

    def synthesize(self, sym: Symbols) -> Image:
        """G of the symbols (untransmitted channels zero, as in training), cropped to (height, width, 3)."""
        w_hat = np.zeros((1, self.model.config.channels, *sym.shape[1:]), dtype=np.float32)
        w_hat[0, : sym.shape[0]] = self._centers[sym]
        return np.ascontiguousarray(self.backend.synthesize(w_hat)[0][: self.height, : self.width])

    def decode(self, section: bytes, keyframe: bool) -> Image:
        """One FIDELITY section → G's (height, width, 3) uint8 picture of the whole frame."""
        return self.synthesize(self.decode_symbols(section, keyframe))

    #: G paints RGB: there are no planes of its own (`planes` gives None).
    own_planes = False

    def planes(self) -> None:
        """None: G's picture is RGB (the FidelityLayerDecoder interface)."""
        return None


class LearnedFidelity:
    """The `learned` fidelity layer's encoder side: `LearnedEncoder` opened at a GC level, one section per frame at once."""

    #: G paints the whole frame from latents kept only near the mask: a whole GOP would be plain GC.
    codes_whole = False
    #: `--bitrate` picks the level once, at the start (a level step is too coarse to steer by each GOP).
    adapts_rate = False

    def __init__(self, setup: LayerSetup) -> None:
        self._setup = setup
        self._coder: LearnedEncoder | None = None

    def open(self, crf: int) -> None:
        """Load the model at GC level `crf`; the next frame is coded intra."""
        setup = self._setup
        self._coder = LearnedEncoder(setup.width, setup.height, setup.model, crf, setup.backend)

    def encode(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: Saliency | None = None
    ) -> bytes:
        """One frame's FIDELITY section (`LearnedEncoder.encode`; `source` is not needed; `saliency` see `cell_channels`)."""
        assert self._coder is not None
        started = time.perf_counter()
        section = self._coder.encode(frame, blocks, keyframe, saliency)
        self._setup.timings["fidelity"] += time.perf_counter() - started
        return section

    def send(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: Saliency | None = None
    ) -> list[bytes]:
        """`encode`: nothing is held back."""
        return [self.encode(frame, blocks, keyframe, source, saliency)]

    def drain(self) -> list[bytes]:
        """Nothing is held back."""
        return []

    def probe(self, frames: list[Image], kept: list[Mask], crf: int) -> list[int]:
        """FIDELITY section sizes of the frames at GC level `crf` (intra first, then inter)."""
        setup = self._setup
        coder = LearnedEncoder(setup.width, setup.height, setup.model, crf, setup.backend)
        blocks = [block_mask(mask, BLOCK) for mask in kept]
        return [len(coder.encode(rgb, b, i == 0)) for i, (rgb, b) in enumerate(zip(frames, blocks, strict=True))]

    def close(self) -> None:
        """Nothing to close."""
