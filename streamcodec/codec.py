"""The public codec API: an Encoder and a Decoder of numpy RGB frames, whatever the mode.

    Encoder(width, height, mode=...).encode(rgb) ──► packet bytes ──► Decoder(config).decode(packet) ──► rgb

This module only picks the mode's implementation (`MODES`) and hands frames through:
    "sc"  selective mode (the default): kept region by a standard codec, background layer elsewhere
          (streamcodec/selective/codec.py)
    "gc"  global generative compression: every pixel synthesized from a latent code (streamcodec/gc.py)
    "progressive"  an RNN codec whose packets can be cut after any iteration (streamcodec/progressive/)
A decoder picks the implementation from the stream configuration's mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .bitstream import StreamConfig
from .engines import Backend
from .engines.onnx import set_session_threads
from .gc.codec import DEFAULT_GOP, EncodedFrame, GCDecoder, GCEncoder
from .models.registry import DEFAULT_MODEL, REGISTRY
from .progressive.codec import DEFAULT_MODEL as PROGRESSIVE_MODEL
from .progressive.codec import ProgressiveDecoder, ProgressiveEncoder
from .progressive.codec import quality_levels as progressive_levels
from .selective.codec import SC_QUALITY_LEVELS, SelectiveDecoder, SelectiveEncoder, SelectiveOptions
from .selective.fidelity import CODECS as FIDELITY_CODECS
from .selective.fidelity import PRESETS as FIDELITY_PRESETS
from .selective.fidelity import offline_options
from .selective.masks import DEFAULT_KEEP, create_mask_source, parse_keep
from .selective.options import BG_OFFSET, DEFAULT_BACKGROUND_ERROR, FEATHER, PLATE_CHAIN_FINER, PLATE_REFRESH, WHOLE_ABOVE
from .selective.saliency import VERSION as SALIENCY_VERSION
from .selective.saliency import parse_saliency

__all__ = [
    "DEFAULT_GOP",
    "DEFAULT_KEEP",
    "DEFAULT_MODE",
    "FIDELITY_PRESETS",
    "MODES",
    "Decoder",
    "EncodedFrame",
    "Encoder",
    "SelectiveOptions",
    "create_mask_source",
    "parse_keep",
    "quality_levels",
    "selective_fingerprint",
    "set_session_threads",
]

DEFAULT_MODE = "sc"


@dataclass(frozen=True)
class Mode:
    """One mode's encoder and decoder classes, and the model it uses when none is named."""

    encoder: type[Any]
    decoder: type[Any]
    default_model: str = DEFAULT_MODEL


MODES: dict[str, Mode] = {
    "sc": Mode(SelectiveEncoder, SelectiveDecoder),
    "gc": Mode(GCEncoder, GCDecoder),
    "progressive": Mode(ProgressiveEncoder, ProgressiveDecoder, PROGRESSIVE_MODEL),
}


def _mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown (known: {', '.join(MODES)})")
    return MODES[mode]


def quality_levels(model: str | None = None, mode: str = "gc") -> int:
    """Number of `--quality` levels of a mode (1 = lowest rate); for gc, the model's; for progressive, its iterations."""
    model = _mode(mode).default_model if model is None else model
    if mode == "progressive":
        return progressive_levels(model)
    return SC_QUALITY_LEVELS if mode == "sc" else len(REGISTRY.load(model).config.quality_channels)


def _delegate(facade: object, name: str) -> Any:
    impl = facade.__dict__.get("impl")
    if impl is None:
        raise AttributeError(name)
    return getattr(impl, name)


class Encoder:
    """Encodes RGB frames of one size into frame packets.

    Args:
        width, height: source frame size (any size).
        mode: "sc" (selective, default), "gc" or "progressive".
        model: registered GC model name (gc: the codec; sc: the synthesized background), or a progressive
            model's; None: the mode's default.
        quality: 1..quality_levels(model, mode) (progressive: iterations sent); the default is the highest.
        gop: frames per GOP (a keyframe every `gop` frames), ≥ 1.
        backend: inference backend name (see engines.create_backend).
        selective: selective-mode options (ignored by gc).
    Other attributes (`model`, `analyze`, ...) are the mode implementation's.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        mode: str = DEFAULT_MODE,
        model: str | None = None,
        quality: int | None = None,
        gop: int = DEFAULT_GOP,
        backend: str | Backend = "auto",
        selective: SelectiveOptions | None = None,
    ) -> None:
        options: dict[str, Any] = {"options": selective or SelectiveOptions()} if mode == "sc" else {}
        model = _mode(mode).default_model if model is None else model
        self.impl = _mode(mode).encoder(width, height, model=model, quality=quality, gop=gop, backend=backend, **options)

    @property
    def config(self) -> StreamConfig:
        return self.impl.config

    def encode(self, rgb: npt.NDArray[np.uint8]) -> EncodedFrame:
        """Encode the next frame of the stream."""
        return self.impl.encode(rgb)

    def push(self, rgb: npt.NDArray[np.uint8], source: Any = None) -> list[EncodedFrame]:
        """Give the next frame; the frames whose packets are complete come back, oldest first.

        Always exactly this frame's, except for selective mode with latency "offline", whose fidelity codec
        looks ahead and holds frames back: then `flush` at the end returns the rest. Works for every mode.
        `source` is optionally the decoded av.VideoFrame `rgb` came from (selective mode codes the kept
        region from its own 4:2:0 planes when they convert to exactly `rgb`; GC ignores it).
        """
        push = getattr(self.impl, "push", None)
        if push is None:
            return [self.impl.encode(rgb)]
        return push(rgb, source) if self.config.mode == "sc" else push(rgb)

    def flush(self) -> list[EncodedFrame]:
        """The packets still held back after the last `push` (none but for an offline selective encoder)."""
        flush = getattr(self.impl, "flush", None)
        return flush() if flush is not None else []

    def prepare(self, rgb: npt.NDArray[np.uint8]) -> None:
        """Optionally give an upcoming frame early, in stream order (e.g. prepare(n + 1), then encode(n)).

        Selective mode finds its keep mask on a worker thread meanwhile; packets do not change. GC ignores it.
        """
        prepare = getattr(self.impl, "prepare", None)
        if prepare is not None:
            prepare(rgb)

    def with_quality(self, quality: int) -> None:
        """Change the quality before the first frame (used by bitrate selection)."""
        self.impl.with_quality(quality)

    @property
    def last_mask_kinds(self) -> dict[str, npt.NDArray[np.bool_]]:
        """Selective mode: the last frame's (H, W) bool mask per kind found ("person", "face", ...); gc: none."""
        masks = getattr(self.impl, "masks", None)
        return masks.last_kinds if masks is not None else {}

    def __getattr__(self, name: str) -> Any:
        return _delegate(self, name)


class Decoder:
    """Decodes the frame packets of one stream (any mode) back to RGB frames at the source size.

    Raises CorruptStreamError for a damaged packet or a lost reference, after which the decoder
    waits for the next keyframe; the configuration is checked whole first (CorruptStreamError,
    UnsupportedStreamError, or ModelError for a model this installation lacks).
    """

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto") -> None:
        config.validate()
        self.impl = MODES[config.mode].decoder(config, backend=backend)

    @property
    def config(self) -> StreamConfig:
        return self.impl.config

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """One packet → (height, width, 3) uint8."""
        return self.impl.decode(packet)

    def __getattr__(self, name: str) -> Any:
        return _delegate(self, name)


def selective_fingerprint() -> dict[str, Any]:
    """Selective mode's fixed settings that shape its streams besides the options (an eval cache keys on them).

    Returns:
        JSON-able values: feather, background offsets, the fidelity codecs' offline presets and options,
        the whole-frame threshold, the plate refresh and the default background bound.
    """
    return {
        "feather": FEATHER,
        "bg_offset": BG_OFFSET,
        "offline_presets": {name: spec.offline_preset for name, spec in FIDELITY_CODECS.items()},
        "offline_options": {name: offline_options(name) for name in FIDELITY_CODECS},
        "whole_above": WHOLE_ABOVE,
        "plate_refresh": [PLATE_REFRESH, PLATE_CHAIN_FINER],
        "max_background_error": DEFAULT_BACKGROUND_ERROR,
    }


def saliency_spec(spec: str | None) -> str:
    """`--saliency` resolved to its weights, "off" when off (what an eval's cache keys on)."""
    weights = parse_saliency(spec)
    return "off" if weights is None else f"{SALIENCY_VERSION}:{weights.spec()}"
