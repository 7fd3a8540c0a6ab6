"""Selective mode (SC): the kept region at standard-codec fidelity, a background layer everywhere else.

    frame ─▶ masks (masks.py, ahead.py) ─▶ 16-px keep blocks ─┬─────────────────────────────▶ MASK
                                                              ├─▶ fidelity layer ─────────▶ FIDELITY
                                                              └─▶ background layer ───────▶ PLATE │ PLATE_UPDATE │
                                                                  (keyframes, on a worker)   LATENTS + LABELS
                                                     the sections ─▶ packet (bitstream.pack_frame)

    fidelity layer    "hevc", "av1" (standard.py) │ "learned" (learned.py)     ┐ chosen once from the
    background layer  "plate" (plate.py) │ "synth" (background.py)             ┘ options (kinds.py)

Per frame (SELECTIVE_INTRA at keyframes, SELECTIVE_INTER between):
    MASK      the 16-px block keep mask (maskcode; intra at keyframes, against the previous frame's between)
    FIDELITY  one HEVC/AV1 access unit of the frame, outside the kept blocks filled with the fidelity
              decoder's previous reconstruction (flat at keyframes): unchanged blocks cost a skip;
              or, with fidelity "learned", the frame's GC latents zeroed outside the kept cells
              (`learned.py`), the kept region then coming from the GC generator's picture
    PLATE     keyframes, background "plate": the background picture as one intra access unit
    PLATE_UPDATE  keyframes between full plates (files: one full plate per PLATE_REFRESH seconds): an
              inter access unit of the plate's own stream against the last plate unit, or none if unchanged
    LATENTS   keyframes, background "synth": GC latents of the background at the lowest quality
    LABELS    keyframes, background "synth": the built-in labeler's map of the same background; the
              decoder paints it with the SC generator (`background.SynthDecoder`)
    REFERENCE inter frames: the low byte of the previous packet's CRC-32, so a lost packet is refused
The decoder (`decoder.py`) composites alpha · fidelity + (1 − alpha) · background (layers.composite).
Keyframes come every `gop` frames and at scene cuts (`cuts.py`, `SelectiveOptions.scene_cut`): the GOP
count restarts at a cut, whose background is a full one of the new shot. Offline, frames are held a GOP
ahead (`lookahead.py`) so that a keyframe's plate is the median of its GOP outside the kept region.
Every keyframe's kept region is self-contained, so seeking and recovery work there; its background is
where it carries a full plate (a decoder starting at an update shows a grey background until the next
full plate). The fidelity layer decodes its own access units in the loop (the fill needs the
reconstruction the decoder will have). With a background bound (`SelectiveOptions.max_background_error`,
`bound.py`) the encoder also decodes each keyframe's background sections as the decoder will, and keeps
every block where that picture is more than the bound from the frame; the mask code carries them.

Threads (all release the GIL; the packets are those of one thread): the mask kinds side by side,
x265 on its wavefront threads, a keyframe's background beside its fidelity AU, the loop's decode while
the next frame's masks are found, and with `prepare` the next frame's masks during this one's x265.
SelectiveOptions(parallel=False, codec_threads=1) keeps all of it on the caller's thread (one core).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..engines import Backend
from ..gc.codec import DEFAULT_GOP, EncodedFrame, check_size, padded
from ..models.registry import DEFAULT_MODEL, REGISTRY
from .ahead import MaskPipeline
from .background import check_labels_spec
from .bound import BackgroundBound
from .cuts import SceneCuts
from .decoder import SelectiveDecoder
from .kinds import BACKGROUND_LAYERS, FIDELITY_LAYERS
from .layer import LayerSetup, Worker
from .lookahead import Lookahead, Waiting
from .maskcode import block_mask, encode_mask, expand
from .masks import create_mask_source
from .options import BLOCK, SC_QUALITY_LEVELS, SelectiveOptions
from .rate import GopRate, estimate_rates
from .saliency import create_saliency

__all__ = ["SC_QUALITY_LEVELS", "SelectiveDecoder", "SelectiveEncoder", "SelectiveOptions"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
#: A frame on its way to its packet: its sections so far, its keyframe background (coding on the worker), keyframe.
Pending = tuple[dict[int, bytes], Future[dict[int, bytes]] | None, bool]


class SelectiveEncoder:
    """Encodes RGB frames in selective mode (see the module docstring); options in `SelectiveOptions`."""

    def __init__(
        self,
        width: int,
        height: int,
        *,
        model: str = DEFAULT_MODEL,
        quality: int | None = None,
        gop: int = DEFAULT_GOP,
        backend: str | Backend = "auto",
        options: SelectiveOptions | None = None,
    ) -> None:
        check_size(width, height)
        if gop < 1:
            raise ValueError(f"gop {gop} must be at least 1")
        self.options = options = options or SelectiveOptions()
        options.check()
        check_labels_spec(options.labels, options.synth_model)
        self.model = REGISTRY.load(model)
        quality = SC_QUALITY_LEVELS if quality is None else quality
        _check_quality(quality)
        self.timings: dict[str, float] = defaultdict(float)
        self._worker = Worker(options.parallel)
        setup = LayerSetup(width, height, model, options, backend, self._worker, self.timings)
        self._fidelity = FIDELITY_LAYERS[options.fidelity].encoder(setup)
        self._background = BACKGROUND_LAYERS[options.background].encoder(setup)
        self._fg_crf = options.crfs(quality)[0]
        self.config = self._stream_config(width, height, model, quality, gop)
        # The kinds side by side (`parallel`): masks in about the time of the slowest.
        self.masks = create_mask_source(
            options.keep,
            mask_video=options.mask_video,
            segmenter=options.segmenter,
            threads=options.threads,
            parallel=options.parallel,
        )
        self._mask_pipeline = MaskPipeline(self.masks)
        self._saliency = create_saliency(options.saliency, BLOCK, options.keep, options.threads)
        self._codes_whole = self._fidelity.codes_whole and self._background.codes_whole
        self._whole = False  # the current GOP is coded whole (no mask edge, no background)
        self._blocks: Mask | None = None
        self._pending: deque[Pending] = deque()  # offline: frames whose access units the codec still holds
        self._last_packet = b""
        self._index = 0
        self._in_gop = 0  # frames of the current GOP so far
        self._cuts = SceneCuts(options.scene_cut) if options.scene_cut else None
        self._ahead = Lookahead(options.lookahead_frames(gop), BLOCK)
        self._rate = GopRate(options, gop)
        #: The kept (H, W) mask of the last frame given. Offline with a plate look-ahead, its detectors' mask: the
        #: blocks the bound adds (`bound_blocks`) and a GOP coded whole are decided when it is coded, a GOP later.
        self.last_mask: Mask | None = None
        #: Frames through the front so far (offline with a look-ahead, `shown_background` and `bound_blocks` are the last's).
        self.coded_frames = 0
        limit = options.max_background_error
        decoder = BACKGROUND_LAYERS[options.background].decoder
        self._bound = BackgroundBound(limit, lambda: decoder(self.config, backend), BLOCK) if limit else None
        #: The last frame's blocks kept by the bound alone (over it, outside the detectors' mask); None without a bound.
        self.bound_blocks: Mask | None = None

    @property
    def offline(self) -> bool:
        """Whether the fidelity codec looks ahead (`push`/`flush`; packets come out some frames late)."""
        return self.options.latency == "offline"

    @property
    def shown_background(self) -> Image | None:
        """With a bound: the background every decoder shows outside the kept blocks of the last frame coded

        (its keyframe's background sections, decoded here as the decoder decodes them); None without a bound,
        and in a GOP coded whole.
        """
        return None if self._bound is None or self._whole else self._bound.picture

    def _stream_config(self, width: int, height: int, model: str, quality: int, gop: int) -> StreamConfig:
        factor = self.model.config.factor
        return StreamConfig(
            model_id=self.model.entry.model_id,
            model_name=model,
            mode="sc",
            width=width,
            height=height,
            coded_width=padded(width, factor),
            coded_height=padded(height, factor),
            quality=quality,
            channels=self.model.config.quality_channels[0],
            gop=gop,
            extra=self.options.stream_extra(quality, self._background.extra),
        )

    def with_quality(self, quality: int) -> None:
        """Change the quality before the first frame (used by bitrate selection)."""
        if self._index:
            raise RuntimeError("quality can only change before the first frame")
        _check_quality(quality)
        self._fg_crf = self.options.crfs(quality)[0]
        self.config = replace(self.config, quality=quality, extra=self.options.stream_extra(quality, self._background.extra))

    def with_target(self, kbps: float) -> None:
        """Hold the codec track near `kbps` over each GOP by moving the fidelity CRF at keyframes."""
        self._rate.target_kbps = kbps

    def _open_layers(self) -> None:
        fg, bg = self.options.crfs(self.config.quality, self._fg_crf)
        self._pending.clear()
        self._fidelity.open(fg)
        self._background.open(bg)

    def _check_frame(self, rgb: Image) -> None:
        if rgb.shape != (self.config.height, self.config.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {rgb.shape} {rgb.dtype}; expected ({self.config.height}, {self.config.width}, 3) uint8"
            )

    def prepare(self, rgb: Image) -> None:
        """Give an upcoming frame early: its keep mask is found on a worker thread while `encode` codes the frames before.

        Optional; call it in stream order, once per frame, before that frame's `encode` (e.g. prepare(n + 1),
        then encode(n)). The packets are the same as without it; each `encode` still returns its own frame's.
        """
        self._check_frame(rgb)
        if self.options.parallel:  # serial (one core's budget): the mask is found in `encode`, the same mask
            self._mask_pipeline.prepare(rgb)

    def encode(self, rgb: Image, source: Any = None) -> EncodedFrame:
        """Encode the next frame of the stream (latency "zero"; offline, use `push` and `flush`).

        `source` is optionally the decoded av.VideoFrame `rgb` came from: when it is 4:2:0 and converts to
        exactly `rgb`, the kept blocks are coded from its own planes (`planes.py`).
        """
        if self.offline:
            raise ValueError("an offline selective encoder takes push() and flush(), not encode()")
        self._check_frame(rgb)
        frame = self._arrive(rgb, source)
        keyframe = self._due(frame.cut)
        self._start(keyframe, frame.cut)
        sections, background, blocks = self._front(frame, keyframe)
        access_unit = self._fidelity.encode(rgb, blocks, keyframe, source, self._salient(frame, blocks))
        return self._finish(sections, background, keyframe, access_unit)

    def push(self, rgb: Image, source: Any = None) -> list[EncodedFrame]:
        """Give the next frame; returns the frames whose packets are complete, oldest first.

        Zero latency: always this frame's. Offline: the plate's look-ahead holds up to a GOP of frames and
        the fidelity codec more while it looks ahead, so often none, later several; `flush` returns the rest
        at the end. Packets come in stream order.
        `source` as for `encode`.
        """
        if not self.offline:
            return [self.encode(rgb, source)]
        self._check_frame(rgb)
        self._ahead.push(self._arrive(rgb.copy() if self._ahead.frames > 1 else rgb, source))
        return [out for frame in iter(self._ahead.next, None) for out in self._code(frame)]

    def flush(self) -> list[EncodedFrame]:
        """The packets an offline encoder still holds, oldest first (none for zero latency); push no more after."""
        if not self.offline:
            return []
        ready = [out for frame in iter(lambda: self._ahead.next(end=True), None) for out in self._code(frame)]
        return ready + self._drain()

    def _arrive(self, rgb: Image, source: Any) -> Waiting:
        """A frame as it comes, in stream order: its detectors' mask, and whether it starts a new shot (`cuts.py`)."""
        started = time.perf_counter()
        mask = self._mask_pipeline.next(rgb)
        cut = self._cuts is not None and self._cuts.cut(rgb)
        tiers = self._saliency.observe(rgb, self._mask_pipeline.last_kinds, mask, cut) if self._saliency else None
        self.timings["masks"] += time.perf_counter() - started
        if self._ahead.frames > 1:
            self.last_mask = mask
        return Waiting(rgb, source, mask, cut, tiers)

    def _code(self, frame: Waiting) -> list[EncodedFrame]:
        """Offline: code one held frame; the packets the fidelity codec has finished, oldest first."""
        ready: list[EncodedFrame] = []
        keyframe = self._due(frame.cut)
        restart = keyframe and self._index > 0 and self._rate.target_kbps is not None
        if restart:  # --bitrate: count the whole last GOP, then a fresh coder starts at this (closed) keyframe
            ready, crf = self._drain(), self._fg_crf
            self._adapt_rate()
            if self._fg_crf == crf:
                self._open_layers()
        self._start(keyframe, frame.cut, adapt=not restart)
        sections, background, blocks = self._front(frame, keyframe)
        self._pending.append((sections, background, keyframe))
        units = self._fidelity.send(frame.rgb, blocks, keyframe, frame.source, self._salient(frame, blocks))
        return ready + [self._finish(*self._pending.popleft(), unit) for unit in units]

    def _drain(self) -> list[EncodedFrame]:
        """The packets of every frame given to the fidelity codec, oldest first."""
        units = self._fidelity.drain()
        if len(units) != len(self._pending):
            raise RuntimeError(f"fidelity codec returned {len(units)} access units for {len(self._pending)} held frames")
        return [self._finish(*self._pending.popleft(), unit) for unit in units]

    def _due(self, cut: bool) -> bool:
        """Whether the next frame is a keyframe: the stream's first, `gop` frames after the last one, or a scene cut."""
        return self._in_gop % self.config.gop == 0 or cut

    def _start(self, keyframe: bool, cut: bool, adapt: bool = True) -> None:
        """Open the layers, or adapt them at a keyframe, for the next frame; a cut starts the background afresh."""
        if self._index == 0:
            self._open_layers()
        elif keyframe and adapt:
            self._adapt_rate()
        if cut:
            self._background.new_shot()
        self._index += 1
        self._in_gop = 1 if keyframe else self._in_gop + 1

    def _front(self, frame: Waiting, keyframe: bool) -> tuple[dict[int, bytes], Future[dict[int, bytes]] | None, Mask]:
        """The frame's mask section, the background followed (a keyframe's started beside); the kept blocks."""
        started = time.perf_counter()
        rgb, mask = frame.rgb, frame.mask
        blocks = block_mask(mask, BLOCK)
        if keyframe:
            self._whole = self._codes_whole and self._keeps_most(blocks)
        if self._whole:  # this GOP keeps everything: the mask says so, and the keyframe sends no background
            blocks, mask = np.ones_like(blocks), np.ones_like(mask)
        self._background.observe(rgb, expand(blocks, self.config.height, self.config.width, BLOCK))
        self.timings["masks"] += time.perf_counter() - started
        # A keyframe's background (the plate's own codec, or the synth coder) is coded beside the fidelity layer.
        background = self._background.start(self._index - 1, self._ahead.clean()) if keyframe and not self._whole else None
        if self._bound is not None and not self._whole:  # the blocks the decoder's background would get wrong join
            blocks, mask = self._bounded(rgb, blocks, mask, background)
        if self._ahead.frames <= 1:
            self.last_mask = mask
        self.coded_frames += 1
        masked = time.perf_counter()
        sections: dict[int, bytes] = {}
        mask_bytes = encode_mask(blocks, None if keyframe else self._blocks)
        if mask_bytes:
            sections[bitstream.MASK] = mask_bytes
        self._blocks = blocks
        self.timings["mask coding"] += time.perf_counter() - masked
        if self._mask_pipeline.worker_seconds:
            self.timings["masks ahead"] = self._mask_pipeline.worker_seconds  # on the worker, overlapped
        return sections, background, blocks

    def _salient(self, frame: Waiting, blocks: Mask) -> npt.NDArray[np.float32] | None:
        """The frame's QP offsets per block for the fidelity layer (`saliency.py`); None without saliency."""
        return None if self._saliency is None or frame.tiers is None else self._saliency.offsets(frame.tiers, blocks, frame.rgb)

    def _bounded(self, rgb: Image, blocks: Mask, mask: Mask, background: Future[dict[int, bytes]] | None) -> tuple[Mask, Mask]:
        """`blocks` and `mask` with the blocks over the background bound kept too (see `bound.py`).

        At a keyframe the encoder waits for its background sections (not beside the fidelity layer: the mask
        depends on them) and decodes them as the decoder will.
        """
        assert self._bound is not None
        started = time.perf_counter()
        if background is not None:
            self._bound.keyframe(background.result(), blocks)
        over = self._bound.over(rgb, blocks)
        self.timings["bound"] += time.perf_counter() - started
        self.bound_blocks = over
        if not over.any():
            return blocks, mask
        return blocks | over, mask | expand(over, self.config.height, self.config.width, BLOCK)

    def _keeps_most(self, blocks: Mask) -> bool:
        """Whether a keyframe's `blocks` keep enough to code its GOP whole (see SelectiveOptions.whole_above)."""
        if not blocks.any():
            return False
        kept = expand(blocks, self.config.height, self.config.width, BLOCK)
        return float(kept.mean()) > self.options.whole_above

    def _finish(
        self, sections: dict[int, bytes], background: Future[dict[int, bytes]] | None, keyframe: bool, access_unit: bytes
    ) -> EncodedFrame:
        """The frame's packet, in stream order: its fidelity access unit, and its background or its link to the last packet."""
        started = time.perf_counter()
        sections[bitstream.FIDELITY] = access_unit
        if background is not None:
            sections.update(background.result())
        elif not keyframe:
            sections[bitstream.REFERENCE] = self._last_packet[-1:]
        frame = Frame(FrameType.SELECTIVE_INTRA if keyframe else FrameType.SELECTIVE_INTER, sections, 0 if keyframe else 1)
        packet = bitstream.pack_frame(frame)
        self.timings["plate"] += time.perf_counter() - started
        self._last_packet = packet
        self._rate.count(packet)
        return EncodedFrame(packet, keyframe, 8.0 * len(packet))

    def _adapt_rate(self) -> None:
        """`--bitrate`: after each GOP, move the fidelity CRF toward the target (`GopRate`)."""
        if self._rate.target_kbps is None or not self._fidelity.adapts_rate:
            return
        crf = self._rate.next_crf(self._fg_crf)
        if crf != self._fg_crf:
            self._fg_crf = crf
            self._open_layers()
            self._background.restart()  # its coder restarted too: the next background is coded afresh, in full

    def estimate_rates(self, frames: list[Image], qualities: Sequence[int] | None = None) -> list[float]:
        """The codec track's kbps at each quality (only `qualities` if given, the others 0), from the first frames.

        Args:
            frames: the clip's first frames, (H, W, 3) uint8; at least one.
            qualities: the levels to estimate (default all).
        Returns:
            kbps per quality, lowest first.
        """
        height, width = self.config.height, self.config.width
        kept = [expand(block_mask(m, BLOCK), height, width, BLOCK) for m in self.masks.kept_masks(iter(frames))]
        return estimate_rates(frames, kept, self.options, self.config.gop, (self._fidelity, self._background), qualities)

    def close(self) -> None:
        """Close the codecs and the workers (idempotent)."""
        self._mask_pipeline.close()
        self.masks.close()
        self._worker.close()  # after the background and the reconstruction it is coding
        self._fidelity.close()
        self._background.close()


def _check_quality(quality: int) -> None:
    if not 1 <= quality <= SC_QUALITY_LEVELS:
        raise ValueError(f"quality {quality} is outside 1..{SC_QUALITY_LEVELS} for selective mode")
