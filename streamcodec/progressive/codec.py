"""Progressive mode: Toderici et al., "Full Resolution Image Compression with Recurrent Neural Networks" (CVPR 2017).

    ProgressiveEncoder.encode(rgb) ──model.encode──► codes (T, B, h, w) ──[:quality]──► bits.encode_iterations
        ──► one packet, section 0x20 + i per iteration i ──► ProgressiveDecoder.decode(packet)
        ──► bits.decode_iterations(k sections) ──► model.decode(codes[:k]) ──► rgb

The RNN codes every frame alone: the picture after k iterations is the same in an intra and an inter
frame. A keyframe every `gop` frames is entropy coded alone (INTRA); the frames between are INTER:
their bits are entropy coded against the previous frame's bits and the group's adaptive statistics
(bits.Memory), iteration by iteration, so section i needs only sections i of the earlier frames of the
group. A packet can be cut after any iteration (bitstream.cut_packet, `streamcodec thin`) without
decoding, and a stream cut alike in every packet decodes without drift; a live sender that cuts
one packet shorter than the next tells the encoder (`sent`). `quality` is the number of iterations
sent, 1..the model's iterations; the decoder decodes whatever number of iterations a packet holds,
up to the configuration's quality. Streams written before inter frames (gop 1) decode as they did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..engines import Backend
from ..errors import CorruptStreamError, ModelError
from ..gc.codec import check_size, padded
from ..gc.symbols import EncodedFrame
from . import bits
from .bits import Memory, ProgressiveTables
from .model import DEFAULT_PROGRESSIVE_MODEL, load_codec

DEFAULT_MODEL = DEFAULT_PROGRESSIVE_MODEL

__all__ = ["DEFAULT_MODEL", "ProgressiveDecoder", "ProgressiveEncoder", "ProgressiveModel", "load_model", "quality_levels"]


class ProgressiveModel(Protocol):
    """What the codec needs of a progressive model (streamcodec/progressive/model.py's ProgressiveCodec)."""

    iterations: int
    bits: int
    factor: int

    def encode(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """(H, W, 3) uint8 → (iterations, bits, ceil(H/factor), ceil(W/factor)) uint8 of {0, 1}."""
        ...

    def decode(self, codes: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
        """(k, bits, h, w) codes, 1 ≤ k ≤ iterations → (height, width, 3) uint8."""
        ...


def load_model(name: str) -> ProgressiveModel:
    """The progressive model registered as `name` (ModelError for an unknown name or altered weights)."""
    return load_codec(name)


def quality_levels(model: str | ProgressiveModel = DEFAULT_MODEL) -> int:
    """Quality levels of progressive mode: the model's iterations."""
    return (load_model(model) if isinstance(model, str) else model).iterations


def model_identity(model: ProgressiveModel, name: str) -> str:
    """The model's stable identifier (a hash of its weights, when it names one), else its name."""
    return str(getattr(model, "model_id", name))


def model_tables(model: ProgressiveModel) -> ProgressiveTables | None:
    """The entropy tables the model ships (attribute `tables`), or None: adaptive coding."""
    return cast("ProgressiveTables | None", getattr(model, "tables", None))


class ProgressiveEncoder:
    """Encodes RGB frames of one size into progressive frame packets, every one a keyframe.

    Args:
        width, height: source frame size (any size; the model pads to its factor).
        model: a progressive model's name, or the model itself.
        quality: iterations sent, 1..the model's iterations; the default is all.
        gop: a keyframe every `gop` frames, INTER frames between (1: all intra; always 1 with entropy tables).
        backend: accepted for the common signature; the model runs on its own device.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        model: str | ProgressiveModel = DEFAULT_MODEL,
        quality: int | None = None,
        gop: int = 1,
        backend: str | Backend = "auto",
    ) -> None:
        check_size(width, height)
        if gop < 1:
            raise ValueError(f"gop {gop} must be at least 1")
        name = model if isinstance(model, str) else str(getattr(model, "name", DEFAULT_MODEL))
        self.model = load_model(model) if isinstance(model, str) else model
        self.tables = model_tables(self.model)
        self.backend = backend
        factor = self.model.factor
        self.config = StreamConfig(
            model_id=model_identity(self.model, name),
            model_name=name,
            mode="progressive",
            width=width,
            height=height,
            coded_width=padded(width, factor),
            coded_height=padded(height, factor),
            quality=self.model.iterations,
            channels=self.model.bits,
            gop=gop if self.tables is None else 1,
            extra={"iterations": self.model.iterations, "tables": bits.tables_identifier(self.tables)},
        )
        self._index = 0
        self.with_quality(self.model.iterations if quality is None else quality)
        self._memory = Memory()  # what the decoder holds once the last packet arrived, cut to `_sent`
        self._ended: tuple[Memory, npt.NDArray[np.uint8], list[bits.Index]] | None = None
        self._sent = 0

    def with_quality(self, quality: int) -> None:
        """Change the iterations sent (1..the model's), before the first frame."""
        if self._index:
            raise RuntimeError("quality can only change before the first frame")
        if not 1 <= quality <= self.model.iterations:
            raise ValueError(f"quality {quality} is outside 1..{self.model.iterations} (the model's iterations)")
        self.config = replace(self.config, quality=quality)
        self.config.validate()

    def codes(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The model's codes of one frame, the iterations sent: (quality, bits, h, w) uint8."""
        if rgb.shape != (self.config.height, self.config.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {rgb.shape} {rgb.dtype}; expected ({self.config.height}, {self.config.width}, 3) uint8"
            )
        codes = np.asarray(self.model.encode(rgb), dtype=np.uint8)
        shape = (self.model.iterations, self.model.bits, self.config.coded_height // self.model.factor,
                 self.config.coded_width // self.model.factor)  # fmt: skip
        if codes.shape != shape:
            raise RuntimeError(f"progressive model gave codes of shape {codes.shape}; expected {shape}")
        return codes[: self.config.quality]

    def encode(self, rgb: npt.NDArray[np.uint8]) -> EncodedFrame:
        """Encode the next frame: an INTRA (keyframe) or INTER packet, one ITERATION section per iteration sent."""
        codes = self.codes(rgb)
        key = self._index % self.config.gop == 0
        memory = Memory() if key else self._reference()
        counts: list[bits.Index] = []
        if self.tables is not None:
            sections = bits.encode_iterations(codes, self.tables)
        else:
            sections, counts = bits.frame_counts(codes, memory)
        self._ended, self._sent = (memory, codes, counts), len(sections)
        tagged = {bitstream.ITERATION + i: data for i, data in enumerate(sections)}
        if key:
            frame = Frame(FrameType.INTRA, tagged)
        else:
            assert memory.last is not None
            check = bytes([bitstream.reference_hash(memory.last[0])])
            frame = Frame(FrameType.INTER, {bitstream.REFERENCE: check} | tagged, 1)
        self._index += 1
        ideal = bits.ideal_bits(codes, self.tables, None if key else memory)
        return EncodedFrame(bitstream.pack_frame(frame), key, float(sum(ideal)))

    def sent(self, iterations: int) -> None:
        """The last packet went out cut to its first `iterations` (a live sender shedding): the next frame refers to that."""
        if self._ended is None or not 1 <= iterations <= self._sent:
            raise ValueError(f"cannot mark {iterations} iterations sent of a packet of {self._sent}")
        self._sent = iterations

    def _reference(self) -> Memory:
        """The memory the decoder holds after the last packet, as it was sent."""
        assert self._ended is not None, "an inter frame before any keyframe"
        memory, codes, counts = self._ended
        return memory.following(codes[: self._sent], counts[: self._sent])

    def close(self) -> None:
        """Nothing to stop (no worker processes); here for the common encoder shape."""


class ProgressiveDecoder:
    """Decodes progressive packets, each at the iterations it holds (1..the configuration's quality).

    The configuration is checked against the model first (CorruptStreamError, or ModelError for a
    model or entropy tables this installation lacks). A damaged packet raises CorruptStreamError.
    `model` hands over a loaded model instead of loading the configuration's by name.
    """

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto", model: ProgressiveModel | None = None) -> None:
        config.validate()
        if config.mode != "progressive":
            raise ValueError(f"a progressive decoder for a {config.mode!r} stream")
        self.model = load_model(config.model_name) if model is None else model
        # An "adaptive" stream stays adaptive when its model later ships tables; named tables must be the model's.
        self.tables = None if config.extra["tables"] == bits.ADAPTIVE else model_tables(self.model)
        self.backend = backend
        self.config = config
        self._check_model()
        self._memory: Memory | None = None  # after the last frame decoded; None: an inter frame cannot follow

    def _check_model(self) -> None:
        config, model = self.config, self.model
        if model_identity(model, config.model_name) != config.model_id:
            raise ModelError(f"progressive model {config.model_name!r} here is not the stream's ({config.model_id})")
        if bits.tables_identifier(self.tables) != config.extra["tables"]:
            raise ModelError(f"the stream was coded with entropy tables {config.extra['tables']}, not this model's")
        expected = {
            "iterations": (config.extra["iterations"], model.iterations),
            "channels": (config.channels, model.bits),
            "coded_width": (config.coded_width, padded(config.width, model.factor)),
            "coded_height": (config.coded_height, padded(config.height, model.factor)),
        }
        for name, (found, value) in expected.items():
            if found != value:
                raise CorruptStreamError(f"progressive stream configuration {name} {found} should be {value} for this model")

    def decode_codes(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """The next packet's codes: (k, bits, h, w) uint8, k the iterations it holds (packets in stream order).

        Raises:
            CorruptStreamError: a damaged packet, or an inter frame whose reference is not the frame
                decoded before it (a lost frame, or a decoder that did not start at a keyframe).
        """
        frame = bitstream.unpack_frame(packet)
        sections = bitstream.iteration_sections(frame)
        if len(sections) > self.config.quality:
            raise CorruptStreamError(f"packet of {len(sections)} iterations in a stream of {self.config.quality}")
        factor = self.model.factor
        shape = (self.config.channels, self.config.coded_height // factor, self.config.coded_width // factor)
        held, self._memory = self._memory, None  # held again only once this frame decodes
        memory = Memory() if frame.is_key else self._reference(frame, held)
        if self.tables is not None:
            if not frame.is_key:
                raise CorruptStreamError("inter frame in a stream coded with entropy tables (all intra)")
            return bits.decode_iterations(sections, shape, self.tables)
        codes, self._memory = bits.decode_frame(sections, shape, memory)
        return codes

    @staticmethod
    def _reference(frame: Frame, memory: Memory | None) -> Memory:
        if frame.reference_distance != 1 or memory is None or memory.last is None:
            raise CorruptStreamError("inter frame without its reference (an earlier frame was lost)")
        wanted = bitstream.unpack_reference(frame.sections.get(bitstream.REFERENCE, b""))
        held = bitstream.reference_hash(memory.last[0])
        if wanted != held:
            raise CorruptStreamError(
                f"inter frame refers to reference 0x{wanted:02x}, the decoder holds 0x{held:02x} (an earlier frame was lost)"
            )
        return memory

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        """One packet → (height, width, 3) uint8, at the iterations it holds."""
        codes = self.decode_codes(packet)
        rgb = np.asarray(self.model.decode(codes, self.config.height, self.config.width), dtype=np.uint8)
        return rgb[: self.config.height, : self.config.width]
