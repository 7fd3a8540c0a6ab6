"""GC mode (global generative compression): every pixel is synthesized from the frame's latent code.

    GCEncoder.encode(rgb) ──► packet bytes ──► GCDecoder.decode(packet) ──► rgb
    GCEncoder.encode_batch(frames, workers=N) / GCDecoder.decode_many(packets, workers=N): the same,
    entropy coding on N processes (frame-parallel / GOP-parallel, see parallel.py)

Frames are (H, W, 3) uint8 at the source size; the codec pads to a multiple of 16 by
repeating edge pixels and crops back after decoding. A GOP starts with an intra frame;
the following frames are inter frames whose symbols are entropy-coded conditioned on the
previous frame's symbols (the pixels are always synthesized from the frame's own code).
Each inter frame names its reference by a hash of those symbols (bitstream.REFERENCE), so a
decoder that missed a frame refuses the next inter frames instead of decoding garbage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, StreamConfig
from ..engines import Backend, create_backend
from ..errors import CorruptStreamError, StreamcodecError
from ..models.registry import DEFAULT_MODEL, REGISTRY, LoadedModel
from .parallel import CodingState, EntropyPool
from .symbols import EncodedFrame, SymbolDecoder, encode_packet

DEFAULT_GOP = 25

__all__ = ["DEFAULT_GOP", "EncodedFrame", "GCDecoder", "GCEncoder", "check_against_model", "check_size", "padded"]


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


def _network_step(network_batch: int, backend: Backend) -> int:
    if network_batch < 1:
        raise ValueError(f"network_batch {network_batch} must be at least 1")
    return min(network_batch, max(1, backend.max_batch))


class _EntropyWorkers:
    """The entropy-coding worker processes of a GC encoder or decoder, started on first use."""

    config: StreamConfig
    model: LoadedModel
    _entropy: EntropyPool | None

    def _pool(self, workers: int) -> EntropyPool:
        if self._entropy is None or self._entropy.workers != workers:
            self.close()
            self._entropy = EntropyPool(CodingState(self.config, self.model.tables, self.model.config.factor), workers)
        return self._entropy

    def start_workers(self, workers: int) -> None:
        """Start the `workers` entropy-coding processes now, not with the first batch (for timing)."""
        self._pool(workers).start()

    def close(self) -> None:
        """Stop the entropy-coding worker processes, if any (a later batch starts new ones)."""
        if self._entropy is not None:
            self._entropy.close()
            self._entropy = None


class GCEncoder(_EntropyWorkers):
    """Encodes RGB frames of one size into frame packets.

    Args:
        width, height: source frame size (any size; padded internally).
        model: registered model name.
        quality: 1..quality_levels(model); the default is the highest.
        gop: frames per GOP (an intra frame every `gop` frames), ≥ 1.
        backend: inference backend name (see engines.create_backend).
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
        self._entropy: EntropyPool | None = None

    def with_quality(self, quality: int) -> None:
        """Change the quality before the first frame (used by bitrate selection)."""
        if self._index:
            raise RuntimeError("quality can only change before the first frame")
        levels = len(self.model.config.quality_channels)
        if not 1 <= quality <= levels:
            raise ValueError(f"quality {quality} is outside 1..{levels}")
        self.config = replace(self.config, quality=quality, channels=self.model.config.quality_channels[quality - 1])

    def _padded(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        if rgb.shape != (self.config.height, self.config.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {rgb.shape} {rgb.dtype}; expected ({self.config.height}, {self.config.width}, 3) uint8"
            )
        return _pad(rgb, self.config.coded_height, self.config.coded_width)

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """All C bottleneck symbols of one frame: (C, h, w) int64."""
        return self.backend.analyze(self._padded(rgb)[None])[0]

    def analyze_batch(self, frames: list[npt.NDArray[np.uint8]], network_batch: int = 1) -> list[npt.NDArray[np.int64]]:
        """`analyze` of several frames, up to `network_batch` (capped at `backend.max_batch`) per network call."""
        padded_frames = [self._padded(rgb) for rgb in frames]  # check every frame before any work
        step = _network_step(network_batch, self.backend)
        out: list[npt.NDArray[np.int64]] = []
        for start in range(0, len(padded_frames), step):
            out.extend(self.backend.analyze(np.stack(padded_frames[start : start + step])))
        return out

    def encode(self, rgb: npt.NDArray[np.uint8]) -> EncodedFrame:
        """Encode the next frame of the stream."""
        sym = self.analyze(rgb)[: self.config.channels]
        keyframe = self._index % self.config.gop == 0
        encoded = encode_packet(sym, None if keyframe else self._reference, self.model.tables)
        self._reference, self._index = sym, self._index + 1
        return encoded

    def encode_batch(
        self, frames: list[npt.NDArray[np.uint8]], *, workers: int = 1, network_batch: int = 1
    ) -> list[EncodedFrame]:
        """Encode the next frames of the stream: the same packets as `encode` one at a time.

        Args:
            frames: (height, width, 3) uint8 frames, in stream order.
            workers: processes that entropy-code the frames (1: this process). The pool is kept
                for later calls with the same count; `close` stops it.
            network_batch: frames per network call. Above 1 an engine may pick other kernels
                (cuDNN, oneDNN) and round differently, so a symbol on a quantization boundary,
                hence the packet, can differ from `encode`'s; the stream stays valid.
        Returns:
            One EncodedFrame per frame.
        """
        if not frames:
            return []
        symbols = [sym[: self.config.channels] for sym in self.analyze_batch(frames, network_batch)]
        keyframes = [(self._index + i) % self.config.gop == 0 for i in range(len(frames))]
        encoded = self._pool(workers).encode(self._reference, symbols, keyframes)
        self._reference, self._index = symbols[-1], self._index + len(frames)
        return encoded


class GCDecoder(_EntropyWorkers):
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
        self.symbols = SymbolDecoder(config, self.model.tables, self.model.config.factor)
        self._centers = np.asarray(self.model.config.centers, dtype=np.float32)
        self._entropy: EntropyPool | None = None

    def decode_symbols(self, packet: bytes) -> tuple[npt.NDArray[np.int64], Frame]:
        """Entropy-decode one packet to its (K, h, w) symbols, checking everything on the way.

        On any error the reference is dropped, so inter frames are refused until the next intra frame.
        """
        return self.symbols.decode_symbols(packet)

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """One packet → (height, width, 3) uint8."""
        sym, _ = self.decode_symbols(packet)
        return self._synthesize([sym])[0]

    def _synthesize(self, symbols: list[npt.NDArray[np.int64]]) -> list[npt.NDArray[np.uint8]]:
        channels = self.model.config.channels
        # Untransmitted channels are zero, as in training (GCModel.keep_mask).
        w_hat = np.zeros((len(symbols), channels, *symbols[0].shape[1:]), dtype=np.float32)
        for index, sym in enumerate(symbols):
            w_hat[index, : sym.shape[0]] = self._centers[sym]
        rgb = self.backend.synthesize(w_hat)
        return [frame[: self.config.height, : self.config.width] for frame in rgb]

    def decode_many(
        self, packets: Iterable[bytes], *, workers: int = 1, network_batch: int = 1
    ) -> Iterator[npt.NDArray[np.uint8] | StreamcodecError]:
        """Decode packets in order, their GOPs entropy-decoded in parallel on `workers` processes.

        Gives, for each packet, what `decode` would return, or the StreamcodecError it would raise
        (not raised here: the caller decides, as `decode`'s caller catches CorruptStreamError).
        The decoder holds the same reference afterwards as after `decode` of each packet.

        Args:
            packets: frame packets in stream order (read lazily, a few GOPs ahead).
            workers: entropy-decoding processes (1: this process); the pool is kept, see `close`.
            network_batch: frames per network call (capped at `backend.max_batch`). Above 1 the
                symbols are the same but pixels may differ from `decode`'s by float rounding.
        Returns:
            An iterator of (height, width, 3) uint8 frames or errors, one per packet.
        """
        step, held = _network_step(network_batch, self.backend), []
        for item in self._pool(workers).decode(self.symbols.reference, packets):
            held.append(item)
            if sum(not isinstance(x, StreamcodecError) for x in held) == step:
                yield from self._flush(held)
                held = []
        yield from self._flush(held)

    def _flush(self, held: list[npt.NDArray[np.int64] | StreamcodecError]) -> Iterator[npt.NDArray[np.uint8] | StreamcodecError]:
        good = [item for item in held if not isinstance(item, StreamcodecError)]
        frames = iter(self._synthesize(good)) if good else iter(())
        for item in held:
            # The reference follows each packet as it is handed out, as `decode` would leave it.
            self.symbols.reference = None if isinstance(item, StreamcodecError) else item
            yield item if isinstance(item, StreamcodecError) else next(frames)
