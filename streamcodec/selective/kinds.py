"""Which class codes each layer kind a stream config names: the one place selective mode chooses (`layer.py`).

    options.fidelity / extra["fidelity"]      ─▶ FIDELITY_LAYERS[name]   ─▶ .encoder(setup) │ .decoder(config, backend)
    options.background / extra["background"]  ─▶ BACKGROUND_LAYERS[name] ─▶ .encoder(setup) │ .decoder(config, backend)

A new kind is one entry here and a module of its own; the encoder and decoder do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..bitstream import StreamConfig
from ..engines import Backend
from .background import SynthBackground, SynthBackgroundDecoder
from .layer import BackgroundLayer, BackgroundLayerDecoder, FidelityLayer, FidelityLayerDecoder, LayerSetup
from .learned import LearnedDecoder, LearnedFidelity
from .plate import PlateBackground, PlateBackgroundDecoder
from .standard import StandardFidelity, StandardFidelityDecoder

__all__ = ["BACKGROUND_LAYERS", "FIDELITY_LAYERS", "Kind"]

E = TypeVar("E")
D = TypeVar("D")


@dataclass(frozen=True)
class Kind(Generic[E, D]):
    """One layer kind's two sides: the encoder's built from a `LayerSetup`, the decoder's from a stream config."""

    encoder: Callable[[LayerSetup], E]
    decoder: Callable[[StreamConfig, str | Backend], D]


FIDELITY_LAYERS: dict[str, Kind[FidelityLayer, FidelityLayerDecoder]] = {
    "hevc": Kind(StandardFidelity, StandardFidelityDecoder),
    "av1": Kind(StandardFidelity, StandardFidelityDecoder),
    "learned": Kind(LearnedFidelity, LearnedDecoder.for_stream),
}
BACKGROUND_LAYERS: dict[str, Kind[BackgroundLayer, BackgroundLayerDecoder]] = {
    "plate": Kind(PlateBackground, PlateBackgroundDecoder),
    "synth": Kind(SynthBackground, SynthBackgroundDecoder),
}
