"""The public codec API: an Encoder and a Decoder of numpy RGB frames.

    Encoder.encode(rgb) ──► packet bytes ──► Decoder.decode(packet) ──► rgb

Frames are (H, W, 3) uint8 at the source size; the codec pads to a multiple of 16 by
repeating edge pixels and crops back after decoding. A GOP starts with an intra frame;
the following frames are inter frames whose symbols are entropy-coded conditioned on the
previous frame's symbols (the pixels are always synthesized from the frame's own code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from . import bitstream
from .backends import Backend, create_backend
from .bitstream import Frame, FrameType, StreamConfig
from .entropy import context
from .errors import CorruptStreamError, UnsupportedStreamError
from .models.registry import DEFAULT_MODEL, REGISTRY, LoadedModel

DEFAULT_GOP = 25
MAX_DIMENSION = 16 * 65535  # latent sizes are u16 in the frame header


@dataclass(frozen=True)
class EncodedFrame:
    packet: bytes
    keyframe: bool
    estimated_bits: float

    @property
    def bits(self) -> int:
        return len(self.packet) * 8


def _check_size(width: int, height: int) -> None:
    for label, value in (("width", width), ("height", height)):
        if not 1 <= value <= MAX_DIMENSION:
            raise ValueError(f"frame {label} {value} is outside 1..{MAX_DIMENSION}")


def _pad(rgb: npt.NDArray[np.uint8], coded_height: int, coded_width: int) -> npt.NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    if (h, w) == (coded_height, coded_width):
        return rgb
    return np.pad(rgb, ((0, coded_height - h), (0, coded_width - w), (0, 0)), mode="edge")


def quality_levels(model: str = DEFAULT_MODEL) -> int:
    """Number of `--quality` levels of a model (1 = lowest rate)."""
    return len(REGISTRY.load(model).config.quality_channels)


class Encoder:
    """Encodes RGB frames of one size into frame packets.

    Args:
        width, height: source frame size (any size; padded internally).
        model: registered model name.
        quality: 1..quality_levels(model); the default is the highest.
        gop: frames per GOP (an intra frame every `gop` frames), ≥ 1.
        backend: inference backend name (see backends.create_backend).
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        model: str = DEFAULT_MODEL,
        quality: int | None = None,
        gop: int = DEFAULT_GOP,
        backend: str | Backend = "auto",
    ) -> None:
        _check_size(width, height)
        if gop < 1:
            raise ValueError(f"gop {gop} must be at least 1")
        self.model: LoadedModel = REGISTRY.load(model)
        levels = len(self.model.config.quality_channels)
        quality = levels if quality is None else quality
        if not 1 <= quality <= levels:
            raise ValueError(f"quality {quality} is outside 1..{levels} for model {model!r}")
        factor = self.model.config.factor
        self.config = StreamConfig(
            model_id=self.model.entry.model_id,
            model_name=model,
            mode="gc",
            width=width,
            height=height,
            coded_width=-(-width // factor) * factor,
            coded_height=-(-height // factor) * factor,
            quality=quality,
            channels=self.model.config.quality_channels[quality - 1],
            gop=gop,
        )
        self.backend = backend if isinstance(backend, Backend) else create_backend(backend, self.model)
        self._reference: npt.NDArray[np.int64] | None = None
        self._index = 0

    def with_quality(self, quality: int) -> None:
        """Change the quality before the first frame (used by bitrate selection)."""
        if self._index:
            raise RuntimeError("quality can only change before the first frame")
        levels = len(self.model.config.quality_channels)
        if not 1 <= quality <= levels:
            raise ValueError(f"quality {quality} is outside 1..{levels}")
        self.config = replace(self.config, quality=quality, channels=self.model.config.quality_channels[quality - 1])

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """All C bottleneck symbols of one frame: (C, h, w) int64."""
        if rgb.shape != (self.config.height, self.config.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {rgb.shape} {rgb.dtype}; expected ({self.config.height}, {self.config.width}, 3) uint8"
            )
        padded = _pad(rgb, self.config.coded_height, self.config.coded_width)
        return self.backend.analyze(padded[None])[0]

    def encode(self, rgb: npt.NDArray[np.uint8]) -> EncodedFrame:
        """Encode the next frame of the stream."""
        sym = self.analyze(rgb)[: self.config.channels]
        keyframe = self._index % self.config.gop == 0
        reference = None if keyframe else self._reference
        payload, estimate = context.encode_frame(sym, reference, self.model.tables)
        latents = bitstream.pack_latents(sym.shape[0], payload)
        frame = Frame(FrameType.INTRA if keyframe else FrameType.INTER, {bitstream.LATENTS: latents}, 0 if keyframe else 1)
        self._reference, self._index = sym, self._index + 1
        return EncodedFrame(bitstream.pack_frame(frame), keyframe, estimate)


class Decoder:
    """Decodes the frame packets of one stream back to RGB frames at the source size.

    Raises CorruptStreamError for a damaged packet, or for an inter frame whose reference was
    lost; the decoder then waits for the next intra frame (call `decode` with it as usual).
    """

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto") -> None:
        if config.mode != "gc":
            raise UnsupportedStreamError(f"stream mode {config.mode!r} is not supported by this decoder")
        entry = REGISTRY.by_id(config.model_id)
        self.model = REGISTRY.load(entry.name)
        self.config = config
        self.backend = backend if isinstance(backend, Backend) else create_backend(backend, self.model)
        self._reference: npt.NDArray[np.int64] | None = None
        self._centers = np.asarray(self.model.config.centers, dtype=np.float32)

    def decode_symbols(self, packet: bytes) -> tuple[npt.NDArray[np.int64], Frame]:
        """Entropy-decode one packet to its (K, h, w) symbols, checking everything on the way."""
        frame = bitstream.unpack_frame(packet)
        if frame.frame_type not in (FrameType.INTRA, FrameType.INTER):
            raise UnsupportedStreamError(f"{frame.frame_type.name} frames need the selective-mode decoder")
        if bitstream.LATENTS not in frame.sections:
            raise CorruptStreamError("frame has no latent section")
        channels, payload = bitstream.unpack_latents(frame.sections[bitstream.LATENTS])
        if channels != self.config.channels:
            raise CorruptStreamError(f"frame has {channels} channels, the stream {self.config.channels}")
        factor = self.model.config.factor
        shape = (channels, self.config.coded_height // factor, self.config.coded_width // factor)
        reference = None
        if not frame.is_key:
            if frame.reference_distance != 1 or self._reference is None:
                self._reference = None
                raise CorruptStreamError("inter frame without its reference (an earlier frame was lost)")
            reference = self._reference
        try:
            sym, exact = context.decode_frame(payload, shape, reference, self.model.tables)
        except (ValueError, RuntimeError) as exc:
            self._reference = None
            raise CorruptStreamError(f"entropy decoding failed: {exc}") from None
        if not exact:
            self._reference = None
            raise CorruptStreamError("entropy payload was not consumed exactly")
        self._reference = sym
        return sym, frame

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """One packet → (height, width, 3) uint8."""
        try:
            sym, _ = self.decode_symbols(packet)
        except CorruptStreamError:
            self._reference = None
            raise
        channels = self.model.config.channels
        # Untransmitted channels are zero, as in training (GCModel.keep_mask).
        w_hat = np.zeros((1, channels, *sym.shape[1:]), dtype=np.float32)
        w_hat[0, : sym.shape[0]] = self._centers[sym]
        rgb = self.backend.synthesize(w_hat)[0]
        return rgb[: self.config.height, : self.config.width]
