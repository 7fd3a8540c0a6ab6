"""The two layers of a selective stream, each one small interface with a few implementations.

    frame, blocks ─▶ FidelityLayer ─────▶ FIDELITY access unit ─▶ FidelityLayerDecoder ─▶ kept-region picture
    frame, kept ──▶ BackgroundLayer ────▶ keyframe sections ───▶ BackgroundLayerDecoder ─▶ background picture

    fidelity    "hevc", "av1"  the standard codec, outside the kept blocks filled (`standard.py`)
                "learned"      masked GC latents (`learned.py`)
    background  "plate"        a coded background picture, full or chained updates (`plate.py`)
                "synth"        GC latents and a label map, painted by the SC generator (`background.py`)

`kinds.py` maps each name recorded in the stream config to its encoder and decoder side; the
selective encoder and decoder pick them there once and then only hand frames through. What one kind
does and another does not (hold frames back to look ahead, allow a GOP coded whole, step its CRF with
`--bitrate`, add config fields) lives in the layer, as a method or an attribute, never as a branch
in the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..bitstream import Frame
from ..engines import Backend
from .options import SelectiveOptions

__all__ = [
    "BackgroundLayer",
    "BackgroundLayerDecoder",
    "FidelityLayer",
    "FidelityLayerDecoder",
    "LayerSetup",
    "Worker",
]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
T = TypeVar("T")


class Worker:
    """One thread beside the caller's for a keyframe's background and the fidelity layer's own decode.

    One thread, so work runs in the order it was given (the reconstruction of frame n before the
    plate of keyframe n + 1); serial (`parallel=False`), `submit` runs it at once on the caller's thread.
    Either way the results, and so the packets, are the same.
    """

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """`fn(*args)` on the worker, or here and now when serial."""
        if self.parallel:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="sc-plate")
            return self._pool.submit(fn, *args)
        done: Future[T] = Future()
        done.set_result(fn(*args))
        return done

    def close(self) -> None:
        """Wait for what was given, then stop the thread (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@dataclass(frozen=True)
class LayerSetup:
    """What an encoder-side layer is built from: the stream's size and models, the options, the shared worker.

    Args:
        width, height: source frame size.
        model: the registered GC model name.
        options: the selective options (checked).
        backend: inference backend for the learned layers.
        worker: the thread beside the caller's (shared by both layers).
        timings: the encoder's seconds per stage, which the layers add to.
    """

    width: int
    height: int
    model: str
    options: SelectiveOptions
    backend: str | Backend
    worker: Worker
    timings: dict[str, float]


class FidelityLayer(Protocol):
    """The kept region, coded: one FIDELITY access unit per frame."""

    #: Whether a GOP may be coded whole by this layer (every block kept, no background).
    codes_whole: bool
    #: Whether `--bitrate` may move this layer's CRF at each GOP (and so restart its coder).
    adapts_rate: bool

    def open(self, crf: int) -> None:
        """(Re)start the coder at `crf` (a CRF, or the learned layer's GC level); the next frame is a keyframe."""
        ...

    def encode(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: npt.NDArray[np.float32] | None = None
    ) -> bytes:
        """One frame's access unit, at once (latency "zero").

        Args:
            frame: (H, W, 3) uint8 RGB.
            blocks: (⌈H/16⌉, ⌈W/16⌉) bool, the kept blocks.
            keyframe: code it so that a decoder can start here.
            source: optionally the decoded av.VideoFrame `frame` came from (`planes.py`).
            saliency: optionally (⌈H/16⌉, ⌈W/16⌉) float32 QP offsets per block, negative where bits should go
                first, rate-neutral over the kept blocks (`saliency.py`); None: every kept block alike.
        Returns:
            The access unit.
        """
        ...

    def send(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: npt.NDArray[np.float32] | None = None
    ) -> list[bytes]:
        """As `encode`, for a coder that may look ahead: the access units finished so far, oldest first."""
        ...

    def drain(self) -> list[bytes]:
        """The access units still held at the end of the stream, oldest first."""
        ...

    def probe(self, frames: list[Image], kept: list[Mask], crf: int) -> list[int]:
        """Access unit sizes of `frames` (first a keyframe) with kept pixels `kept` at `crf`, on a coder of its own."""
        ...

    def close(self) -> None:
        """Close the coder (idempotent)."""
        ...


class FidelityLayerDecoder(Protocol):
    """FIDELITY access units back to the kept region's picture."""

    #: Whether the layer decodes to 4:2:0 planes of its own, which `planes` then gives without a colour conversion.
    own_planes: bool

    def decode(self, access_unit: bytes, keyframe: bool) -> Image:
        """One access unit → (height, width, 3) uint8; CorruptStreamError for damage or a lost reference."""
        ...

    def planes(self) -> npt.NDArray[np.uint8] | None:
        """The last decoded picture's own (H * 3 // 2, W) I420 planes (even sides), None where there are none."""
        ...


class BackgroundLayer(Protocol):
    """Everything outside the kept region: a running estimate of the background, coded at keyframes."""

    #: Whether a GOP coded whole (no background sent) is allowed with this layer.
    codes_whole: bool

    @property
    def extra(self) -> dict[str, object]:
        """The stream config fields this layer adds (besides "background")."""
        ...

    def open(self, crf: int) -> None:
        """(Re)start the coder at `crf`."""
        ...

    def restart(self) -> None:
        """Forget what was sent: the next keyframe codes its background afresh (after a CRF change)."""
        ...

    def new_shot(self) -> None:
        """A scene cut: forget the background; the next keyframe codes a full one of the new shot."""
        ...

    def observe(self, frame: Image, kept: Mask) -> None:
        """Follow the background in `frame` outside the (H, W) kept pixels `kept`; every frame, in order."""
        ...

    def start(self, index: int, clean: tuple[Image, Mask] | None = None) -> Future[dict[int, bytes]]:
        """Begin coding the background sections of the keyframe at frame `index` (on the worker).

        `clean`, offline: the median of the GOP ahead outside the kept region and where it has one (`lookahead.py`),
        used there instead of the running estimate.
        """
        ...

    def probe(self, frame: Image, crf: int) -> int:
        """The bytes a keyframe's full background of `frame` costs at `crf`."""
        ...

    def close(self) -> None:
        """Close the coder (idempotent)."""
        ...


class BackgroundLayerDecoder(Protocol):
    """A keyframe's background sections back to its picture."""

    #: What the caller should be told about the background (cleared by the caller).
    notes: list[str]

    def picture(self, frame: Frame, blocks: Mask) -> Image | None:
        """The (height, width, 3) uint8 background of keyframe `frame`, None where its GOP is coded whole."""
        ...
