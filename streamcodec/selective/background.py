"""Selective mode's synthesized background (`--background synth`): both sides of the keyframe layer.

At each keyframe the encoder sends, for its running background estimate,
    LATENTS   the GC model's intra latent at its lowest quality (as a GC intra frame's section)
    LABELS    the built-in labeler's map of the same picture (`labelcode`, intra)
and the decoder paints the background with the SC generator (`SynthesisModel.synthesize_symbols`):
Agustsson et al.'s SC synthesis, label map → F → G, with G also seeing the low-rate latent.
The stream config's `extra` names the generator ("synth_model", "synth_model_id") and the labeler
("labeler", "label_classes"). Streams written before the SC generator existed carry no LABELS and
none of these fields: their background is the GC model's own q1 picture of the latents.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..engines import Backend
from ..errors import CorruptStreamError, ModelError, UnsupportedStreamError
from ..gc.codec import GCDecoder, GCEncoder
from ..models.registry import REGISTRY
from .estimate import BackgroundEstimate, unchanged
from .labelcode import decode_labels, encode_labels
from .labels import ColourTextureLabeler, label_shape
from .layer import LayerSetup
from .lookahead import Clean
from .synth import DEFAULT_SC_MODEL, SynthesisModel

__all__ = [
    "BUILTIN_LABELER",
    "SynthBackground",
    "SynthBackgroundDecoder",
    "SynthDecoder",
    "SynthEncoder",
    "check_labels_spec",
    "gc_config",
]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
#: The only labeler a registered SC generator is trained on (its `--labels` spec and `extra` value).
BUILTIN_LABELER = "builtin"


def gc_config(config: StreamConfig) -> StreamConfig:
    """The GC stream the synthesized background's latents are coded in: lowest quality, intra only."""
    return replace(config, mode="gc", quality=1, gop=1, extra={})


def check_labels_spec(spec: str, synth_model: str = DEFAULT_SC_MODEL) -> None:
    """Refuse a `--labels` spec no registered synthesis model was trained for (all but "builtin").

    Args:
        spec: the `--labels` value, "builtin" or "onnx:PATH".
        synth_model: the SC generator the encoder would use.
    """
    if spec != BUILTIN_LABELER:
        raise ModelError(
            f"--labels {spec}: no synthesis model is trained for that labeler ({synth_model} was trained on the "
            f'built-in one); train one with streamcodec train (kind = "sc", labels = "{spec}") first'
        )


def _load_model(name: str, gc_model_id: str) -> SynthesisModel:
    """The SC generator, checked to read the stream's GC latents and the built-in labeler's maps."""
    model = SynthesisModel(name)
    if model.config.base_model != gc_model_id:
        raise ModelError(f"SC model {name!r} reads latents of {model.config.base_model}, the stream's are {gc_model_id}")
    labeler = ColourTextureLabeler(model.config.label_stride)
    model.check_labeler(labeler.name, len(labeler.classes))
    return model


class SynthEncoder:
    """Keyframe sections LATENTS + LABELS of a background picture, and the `extra` fields naming the generator."""

    def __init__(
        self, width: int, height: int, gc_model: str, synth_model: str = DEFAULT_SC_MODEL, backend: str | Backend = "auto"
    ) -> None:
        self.gc = GCEncoder(width, height, model=gc_model, quality=1, gop=1, backend=backend)
        self.model = _load_model(synth_model, self.gc.config.model_id)
        self.labeler = ColourTextureLabeler(self.model.config.label_stride)

    @property
    def extra(self) -> dict[str, object]:
        """The stream config's synthesis fields (see the module docstring)."""
        return {
            "synth_model": self.model.name,
            "synth_model_id": self.model.model_id,
            "labeler": BUILTIN_LABELER,
            "label_classes": len(self.labeler.classes),
        }

    def latents(self, rgb: Image) -> bytes:
        """The LATENTS section of `rgb` (GC q1, intra)."""
        return bitstream.unpack_frame(self.gc.encode(rgb).packet).sections[bitstream.LATENTS]

    def sections(self, rgb: Image) -> dict[int, bytes]:
        """LATENTS and LABELS of one (H, W, 3) uint8 background picture (LABELS may be b"": an all-0 map)."""
        labels = encode_labels(self.labeler.labels(rgb), None, len(self.labeler.classes))
        return {bitstream.LATENTS: self.latents(rgb), bitstream.LABELS: labels}


class SynthDecoder:
    """The synthesized background of a keyframe: SC generator, or GC's q1 picture for streams without labels."""

    def __init__(self, config: StreamConfig, backend: str | Backend = "auto") -> None:
        self.config = config
        # GCDecoder checks the GC model, coded sizes and channels of the latents.
        self.gc = GCDecoder(gc_config(config), backend=backend)
        extra = config.extra
        self.model: SynthesisModel | None = None
        if "synth_model_id" in extra:
            entry = REGISTRY.by_id(str(extra["synth_model_id"]))
            if entry.name != extra["synth_model"]:
                raise UnsupportedStreamError(
                    f"stream names synthesis model {extra['synth_model']!r} with the id of {entry.name!r} ({entry.model_id})"
                )
            self.model = _load_model(entry.name, config.model_id)
            if extra["label_classes"] != self.model.classes:
                raise UnsupportedStreamError(
                    f"stream's labeler has {extra['label_classes']} classes, synthesis model {entry.name!r} {self.model.classes}"
                )

    def key(self, frame: Frame) -> tuple[bytes, ...]:
        """The sections the picture depends on (the decoder's cache key); CorruptStreamError if one is missing."""
        tags = (bitstream.LATENTS,) if self.model is None else (bitstream.LATENTS, bitstream.LABELS)
        for tag in tags:
            if tag not in frame.sections or (tag == bitstream.LATENTS and not frame.sections[tag]):
                name = "latents" if tag == bitstream.LATENTS else "labels"
                raise CorruptStreamError(f"selective keyframe has no {name} section")
        return tuple(frame.sections[tag] for tag in tags)

    def picture(self, frame: Frame) -> Image:
        """The (height, width, 3) uint8 background of a keyframe."""
        latents = bitstream.pack_frame(Frame(FrameType.INTRA, {bitstream.LATENTS: frame.sections[bitstream.LATENTS]}))
        if self.model is None:
            return self.gc.decode(latents)
        symbols, _ = self.gc.decode_symbols(latents)
        height, width = self.config.height, self.config.width
        shape = label_shape(height, width, self.model.config.label_stride)
        classes = int(self.config.extra["label_classes"])  # type: ignore[call-overload]
        labels = decode_labels(frame.sections[bitstream.LABELS], shape, None, classes)
        return self.model.synthesize_symbols(symbols, labels)[:height, :width]


class SynthBackground:
    """The `synth` background layer's encoder side: the running estimate as LATENTS + LABELS at each keyframe."""

    #: The generator paints what the kept region leaves; a GOP with nothing left still needs its keyframe's sections.
    codes_whole = False

    def __init__(self, setup: LayerSetup) -> None:
        options = setup.options
        self._coder = SynthEncoder(setup.width, setup.height, setup.model, options.synth_model, backend=setup.backend)
        self._worker = setup.worker
        self._estimate = BackgroundEstimate()
        self._bound = options.max_background_error
        self._source: Image | None = None  # the estimate the last sections were coded from
        self._sections: dict[int, bytes] = {}
        self._new_shot = False  # a scene cut since the last keyframe's sections

    @property
    def extra(self) -> dict[str, object]:
        """The generator's and labeler's config fields (`SynthEncoder.extra`)."""
        return self._coder.extra

    def open(self, crf: int) -> None:
        """Nothing to open: the latents are GC's lowest quality whatever the CRF."""

    def restart(self) -> None:
        """Code the next keyframe's sections afresh."""
        self._sections = {}

    def new_shot(self) -> None:
        """A scene cut: the estimate starts again from the next frame, and the next sections are coded afresh."""
        self._estimate = BackgroundEstimate()
        self._new_shot = True

    def observe(self, frame: Image, kept: Mask) -> None:
        """Follow the background (`BackgroundEstimate.observe`)."""
        self._estimate.observe(frame, kept)

    def start(self, index: int, clean: Clean | None = None) -> Future[dict[int, bytes]]:
        """Code the keyframe's sections on the worker, from the whole estimate as it is now (or `clean` where it has one)."""
        picture = self._estimate.picture()
        if clean is not None:
            picture[clean[1]] = clean[0][clean[1]]
        shot, self._new_shot = self._new_shot, False
        return self._worker.submit(self._background_section, picture, shot)

    def _background_section(self, estimate: Image, new_shot: bool = False) -> dict[int, bytes]:
        """LATENTS and LABELS of `estimate`: the last ones again, as the same bytes, while the background has not changed."""
        if new_shot or not (self._sections and unchanged(estimate, self._source, self._bound)):
            self._source, self._sections = estimate, self._coder.sections(estimate)
        return self._sections

    def probe(self, frame: Image, crf: int) -> int:
        """The bytes of the keyframe sections of `frame` (`crf` does not apply)."""
        return sum(len(data) for data in self._coder.sections(frame).values())

    def close(self) -> None:
        """Nothing to close."""


class SynthBackgroundDecoder:
    """The `synth` background layer's decoder side: painted once per distinct LATENTS + LABELS (a static scene costs nothing)."""

    def __init__(self, config: StreamConfig, backend: str | Backend = "auto") -> None:
        # GCDecoder (in SynthDecoder) checks the model, coded sizes and channels.
        self._synth = SynthDecoder(config, backend=backend)
        self._last: tuple[tuple[bytes, ...], Image] | None = None  # the last background, by its bytes
        self.notes: list[str] = []  # nothing to report: every keyframe's background is self-contained

    def picture(self, frame: Frame, blocks: Mask) -> Image:
        """The keyframe's background; CorruptStreamError if a section is missing."""
        key = self._synth.key(frame)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._synth.picture(frame))
        return self._last[1]
