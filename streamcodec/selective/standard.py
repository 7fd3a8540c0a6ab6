"""Selective mode's `hevc` and `av1` fidelity layer: the whole frame to a standard codec, outside the kept blocks filled.

    frame, blocks ─fill outside (fill.py)─▶ RGB ──────────────────────────▶ FidelityEncoder ─▶ access unit
                  └ source planes (planes.py): kept blocks from the source's own 4:2:0 ─┘
    access unit ─▶ FidelityDecoder ─crop─▶ (H, W, 3)

The fill makes what the decoder never shows cost almost nothing: at keyframes a flat grey, between
them (fill "recon") the picture the decoder itself reconstructed last, so every unchanged block
outside is an exact skip. That reconstruction is the encoder's own decode of its last access unit,
run on the worker while the next frame's masks are found. Offline the codec looks ahead and the
reconstruction would come too late to wait for: the fill holds the previous input instead ("hold").
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt

from ..bitstream import StreamConfig
from ..engines import Backend
from .fidelity import FidelityDecoder, FidelityEncoder
from .fill import fill_outside
from .layer import LayerSetup
from .maskcode import expand
from .options import BLOCK, fidelity_frame, fidelity_size
from .planes import Planes, merge, picture_planes, source_planes, to_planes, usable_source

__all__ = ["StandardFidelity", "StandardFidelityDecoder"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Offsets = npt.NDArray[np.float32]


class StandardFidelity:
    """The encoder side: fill, source planes, the codec (zero latency or offline) and its reconstruction."""

    codes_whole = True
    adapts_rate = True

    def __init__(self, setup: LayerSetup) -> None:
        self._setup = setup
        self._options = setup.options
        self._offline = setup.options.latency == "offline"
        self._size = fidelity_size(setup.width, setup.height)
        self._coder: FidelityEncoder | None = None
        self._recon: FidelityDecoder | None = None
        self._reconstruction: Future[None] | None = None
        self._last_fidelity: Image | None = None  # what the next "recon" fill copies (None: flat)
        self._last_planes: npt.NDArray[np.uint8] | None = None  # the last I420 fidelity input, for the hold
        self._source_tags: tuple[object, ...] | None = None  # () when the source's planes cannot be used

    def open(self, crf: int) -> None:
        """Start a fresh codec (and, at zero latency, its reconstructing decoder) at `crf`."""
        self._wait_reconstruction()  # it decodes with the decoder about to be replaced
        self.close()
        options, (width, height) = self._options, self._size
        self._coder = FidelityEncoder(
            width,
            height,
            options.frame_rate,
            codec=options.fidelity,
            crf=crf,
            preset=options.preset,
            threads=options.codec_threads,
            latency=options.latency,
            matrix=options.matrix,
        )
        # Offline, the fill holds the previous input instead: the reconstruction comes too late to wait for.
        if not self._offline:
            self._recon = FidelityDecoder(options.fidelity, width=width, height=height, matrix=options.matrix)

    def encode(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: Offsets | None = None
    ) -> bytes:
        """One frame's access unit (latency "zero"); its decode starts on the worker for the next fill.

        `saliency`: QP offsets per block (saliency.py), x265's ROI; None codes every block at the CRF.
        """
        filled = self._input(frame, blocks, keyframe, source)
        assert self._coder is not None
        started = time.perf_counter()
        access_unit = self._coder.encode(filled, keyframe, roi=saliency)
        self._setup.timings["fidelity"] += time.perf_counter() - started
        if self._recon is not None:
            # Decoded on the worker while this packet goes out and the next frame's masks are found; the next fill waits.
            self._reconstruction = self._setup.worker.submit(self._reconstruct, access_unit)
        return access_unit

    def send(
        self, frame: Image, blocks: Mask, keyframe: bool, source: Any = None, saliency: Offsets | None = None
    ) -> list[bytes]:
        """The access units the codec has finished (offline: often none, later several), oldest first."""
        if not self._offline:
            return [self.encode(frame, blocks, keyframe, source, saliency)]
        filled = self._input(frame, blocks, keyframe, source)
        assert self._coder is not None
        started = time.perf_counter()
        units = self._coder.send(filled, keyframe, roi=saliency)
        self._setup.timings["fidelity"] += time.perf_counter() - started
        return units

    def drain(self) -> list[bytes]:
        """The access units the codec still holds, oldest first; the codec is then closed (`open` for more)."""
        return [] if self._coder is None else self._coder.drain()

    def _input(self, rgb: Image, blocks: Mask, keyframe: bool, source: Any) -> Image:
        """What the codec takes: the filled RGB, or I420 planes whose kept blocks are the source's own."""
        started = time.perf_counter()
        self._wait_reconstruction()
        self._setup.timings["decode"] += time.perf_counter() - started  # waiting for the last frame's reconstruction
        kept = expand(blocks, self._setup.height, self._setup.width, BLOCK)
        planes = source is not None and self._source_usable(source, rgb)
        # Offline, the hold fill repeats last frame's input planes exactly (an RGB hold would convert the
        # blocks taken from the source's planes differently, and they would no longer be exact skips).
        hold = planes and self._offline and self._options.fill == "recon" and not keyframe and self._last_planes is not None
        raw = None if hold else self._filled(rgb, kept, keyframe)
        if self._offline:
            self._last_fidelity = raw  # the next RGB fill holds this input where nothing is kept (None: flat)
        if not planes:
            self._last_planes = None
            assert raw is not None
            return fidelity_frame(raw)
        outside = self._last_planes if hold or raw is None else to_planes(raw, self._options.matrix)
        assert outside is not None
        self._last_planes = merge(source_planes(source), outside, blocks, BLOCK)
        return self._last_planes

    def _source_usable(self, source: Any, rgb: Image) -> bool:
        """`planes.usable_source`, checked to the pixel on the first frame, then by the frames' format and tags."""
        tags = (source.format.name, source.width, source.height, source.colorspace, source.color_range)
        if self._source_tags is None:
            self._source_tags = tags if usable_source(source, rgb, self._options.matrix) else ()
        return tags == self._source_tags

    def _filled(self, rgb: Image, kept: Mask, keyframe: bool) -> Image:
        fill = self._options.fill
        if keyframe or fill == "flat" or self._last_fidelity is None:
            return fill_outside(rgb, kept, "flat", block=BLOCK)
        if fill == "blur":
            return fill_outside(rgb, kept, "blur", block=BLOCK)
        return fill_outside(rgb, kept, "background", self._last_fidelity, block=BLOCK)

    def _wait_reconstruction(self) -> None:
        if self._reconstruction is not None:
            self._reconstruction.result()
            self._reconstruction = None

    def _reconstruct(self, access_unit: bytes) -> None:
        """Decode our own access unit as the decoder will: the picture the next frame's fill copies."""
        assert self._recon is not None
        self._last_fidelity = self._recon.decode(access_unit)[: self._setup.height, : self._setup.width]

    def probe(self, frames: list[Image], kept: list[Mask], crf: int) -> list[int]:
        """Access unit sizes of the frames at `crf`, filled as the encoder fills them (previous input for the recon)."""
        options, (width, height) = self._options, self._size
        coder = FidelityEncoder(
            width, height, options.frame_rate, codec=options.fidelity, crf=crf, preset=options.preset, latency=options.latency
        )
        units: list[bytes] = []
        previous: Image | None = None
        with coder:
            for index, (rgb, mask) in enumerate(zip(frames, kept, strict=True)):
                how = "flat" if previous is None else "background"
                previous = fill_outside(rgb, mask, how, previous, block=BLOCK)
                units += coder.send(fidelity_frame(previous), index == 0)
            units += coder.drain()
        return [len(unit) for unit in units]

    def close(self) -> None:
        """Close the codec, dropping what it still holds (idempotent); a decode in flight finishes on the worker."""
        if self._coder is not None:
            self._coder.close()


class StandardFidelityDecoder:
    """The decoder side: `FidelityDecoder` of the stream's codec, cropped to the stream's size."""

    #: The codec decodes to 4:2:0 planes: `planes` gives them as they are.
    own_planes = True

    def __init__(self, config: StreamConfig, backend: str | Backend = "auto") -> None:
        """Prepare the decoder for `config`'s codec and colour matrix (`backend` is not needed)."""
        width, height = fidelity_size(config.width, config.height)
        matrix = str(config.extra.get("matrix", "bt601"))
        self._decoder = FidelityDecoder(str(config.extra["fidelity"]), width=width, height=height, matrix=matrix)
        self._height, self._width = config.height, config.width

    def decode(self, access_unit: bytes, keyframe: bool) -> Image:
        """One access unit → (height, width, 3) uint8 (the codec finds its own keyframes)."""
        return self._decoder.decode(access_unit)[: self._height, : self._width]

    def planes(self) -> Planes | None:
        """The last access unit's picture as the codec decoded it: I420 planes at the stream's size (even sides), no
        colour conversion; None for an odd size or a picture that is not 8-bit 4:2:0."""
        return picture_planes(self._decoder.last_picture, self._width, self._height)
