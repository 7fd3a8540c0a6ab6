"""GC mode (global generative compression): every pixel is synthesized from the frame's latent code.

    GCEncoder.encode(rgb) ──► packet bytes ──► GCDecoder.decode(packet) ──► rgb

Frames are (H, W, 3) uint8 at the source size; the codec pads to a multiple of 16 by
repeating edge pixels and crops back after decoding. A GOP starts with an intra frame;
the following frames are inter frames whose symbols are entropy-coded conditioned on the
previous frame's symbols (the pixels are always synthesized from the frame's own code).
Each inter frame names its reference by a hash of those symbols (bitstream.REFERENCE), so a
decoder that missed a frame refuses the next inter frames instead of decoding garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from . import bitstream
from .backends import Backend, create_backend
from .bitstream import Frame, FrameType, StreamConfig
from .entropy import context
from .errors import CorruptStreamError, StreamcodecError, UnsupportedStreamError
from .models.registry import DEFAULT_MODEL, REGISTRY, LoadedModel

DEFAULT_GOP = 25


@dataclass(frozen=True)
class EncodedFrame:
    packet: bytes
    keyframe: bool
    estimated_bits: float

    @property
    def bits(self) -> int:
        return len(self.packet) * 8


def check_size(width: int, height: int) -> None:
    # The decoder refuses streams beyond these limits, so the encoder must not write them.
    for label, value in (("width", width), ("height", height)):
        if not 1 <= value <= bitstream.MAX_SIDE:
            raise ValueError(f"frame {label} {value} is outside 1..{bitstream.MAX_SIDE}")
    if width * height > bitstream.MAX_PIXELS:
        raise ValueError(f"frame of {width}x{height} pixels exceeds {bitstream.MAX_PIXELS} pixels")


def padded(size: int, factor: int) -> int:
    return -(-size // factor) * factor


def check_against_model(config: StreamConfig, model: LoadedModel) -> None:
    """The fields that depend on the model: coded sizes, quality and transmitted channels."""
    factor = model.config.factor
    for name, size in (("coded_width", config.width), ("coded_height", config.height)):
        value, expected = getattr(config, name), padded(size, factor)
        if value != expected:
            raise CorruptStreamError(f"stream configuration {name} {value} should be {expected} ({size} padded to {factor})")
    levels = model.config.quality_channels
    if not 1 <= config.quality <= len(levels):
        raise CorruptStreamError(f"stream configuration quality {config.quality} is outside 1..{len(levels)} for this model")
    expected = levels[config.quality - 1]
    if config.channels != expected:
        raise CorruptStreamError(
            f"stream configuration channels {config.channels} should be {expected} for quality {config.quality}"
        )


def _pad(rgb: npt.NDArray[np.uint8], coded_height: int, coded_width: int) -> npt.NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    if (h, w) == (coded_height, coded_width):
        return rgb
    return np.pad(rgb, ((0, coded_height - h), (0, coded_width - w), (0, 0)), mode="edge")


class GCEncoder:
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
        check_size(width, height)
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
            coded_width=padded(width, factor),
            coded_height=padded(height, factor),
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
        frame = _pad(rgb, self.config.coded_height, self.config.coded_width)
        return self.backend.analyze(frame[None])[0]

    def encode(self, rgb: npt.NDArray[np.uint8]) -> EncodedFrame:
        """Encode the next frame of the stream."""
        sym = self.analyze(rgb)[: self.config.channels]
        keyframe = self._index % self.config.gop == 0
        reference = None if keyframe else self._reference
        payload, estimate = context.encode_frame(sym, reference, self.model.tables)
        sections = {bitstream.LATENTS: bitstream.pack_latents(sym.shape[0], payload)}
        if reference is not None:
            sections[bitstream.REFERENCE] = bytes([bitstream.reference_hash(reference)])
        frame = Frame(FrameType.INTRA if keyframe else FrameType.INTER, sections, 0 if keyframe else 1)
        self._reference, self._index = sym, self._index + 1
        return EncodedFrame(bitstream.pack_frame(frame), keyframe, estimate)


class GCDecoder:
    """Decodes the frame packets of one stream back to RGB frames at the source size.

    Raises CorruptStreamError for a damaged packet, or for an inter frame whose reference was
    lost; the decoder then waits for the next intra frame (call `decode` with it as usual).
    The configuration is checked whole against the model first (CorruptStreamError,
    UnsupportedStreamError, or ModelError for a model this installation lacks).
    """

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto") -> None:
        config.validate()
        entry = REGISTRY.by_id(config.model_id)
        self.model = REGISTRY.load(entry.name)
        check_against_model(config, self.model)
        self.config = config
        self.backend = backend if isinstance(backend, Backend) else create_backend(backend, self.model)
        self._reference: npt.NDArray[np.int64] | None = None
        self._centers = np.asarray(self.model.config.centers, dtype=np.float32)

    def decode_symbols(self, packet: bytes) -> tuple[npt.NDArray[np.int64], Frame]:
        """Entropy-decode one packet to its (K, h, w) symbols, checking everything on the way.

        On any error the reference is dropped, so inter frames are refused until the next intra frame.
        """
        try:
            sym, frame = self._decode_symbols(packet)
        except StreamcodecError:
            self._reference = None
            raise
        self._reference = sym
        return sym, frame

    def _decode_symbols(self, packet: bytes) -> tuple[npt.NDArray[np.int64], Frame]:
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
        reference = None if frame.is_key else self._check_reference(frame)
        sym, exact = context.decode_frame(payload, shape, reference, self.model.tables)
        if not exact:
            raise CorruptStreamError("entropy payload was not consumed exactly")
        return sym, frame

    def _check_reference(self, frame: Frame) -> npt.NDArray[np.int64]:
        """The held reference, if it is the one this inter frame was coded against."""
        if frame.reference_distance != 1 or self._reference is None:
            raise CorruptStreamError("inter frame without its reference (an earlier frame was lost)")
        if bitstream.REFERENCE in frame.sections:  # absent in streams written before 0.2.0
            wanted = bitstream.unpack_reference(frame.sections[bitstream.REFERENCE])
            held = bitstream.reference_hash(self._reference)
            if wanted != held:
                raise CorruptStreamError(
                    f"inter frame refers to reference 0x{wanted:02x}, the decoder holds 0x{held:02x} (an earlier frame was lost)"
                )
        return self._reference

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """One packet → (height, width, 3) uint8."""
        sym, _ = self.decode_symbols(packet)
        channels = self.model.config.channels
        # Untransmitted channels are zero, as in training (GCModel.keep_mask).
        w_hat = np.zeros((1, channels, *sym.shape[1:]), dtype=np.float32)
        w_hat[0, : sym.shape[0]] = self._centers[sym]
        rgb = self.backend.synthesize(w_hat)[0]
        return rgb[: self.config.height, : self.config.width]
