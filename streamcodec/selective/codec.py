"""Selective mode (SC): the kept region at standard-codec fidelity, a background layer everywhere else.

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
The decoder composites alpha · fidelity + (1 − alpha) · background (layers.composite). Every
keyframe's kept region is self-contained, so seeking and recovery work there; its background is where
it carries a full plate (a decoder starting at an update shows a grey background until the next full
plate). The encoder decodes its own fidelity access units in its loop (the fill needs the
reconstruction the decoder will have); the mask it knows, and plate reuse compares estimates, so
nothing else is decoded there.

Threads (all release the GIL; the packets are those of one thread): the mask kinds side by side,
x265 on its wavefront threads, a keyframe's plate beside its fidelity AU, the loop's decode while
the next frame's masks are found, and with `prepare` the next frame's masks during this one's x265.
SelectiveOptions(parallel=False, codec_threads=1) keeps all of it on the caller's thread (one core).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, FrameType, StreamConfig
from ..engines import Backend
from ..errors import CorruptStreamError, StreamcodecError, UnsupportedStreamError
from ..gc.codec import DEFAULT_GOP, EncodedFrame, check_size, padded
from ..metrics import psnr
from ..models.registry import DEFAULT_MODEL, REGISTRY
from .ahead import MaskPipeline
from .background import SynthDecoder, SynthEncoder, check_labels_spec, gc_config
from .fidelity import CODECS, FidelityDecoder, FidelityEncoder
from .fill import FLAT_RGB, fill_outside
from .layers import BLOCK, PLATE_CODEC, SC_QUALITY_LEVELS, Compositor, SelectiveOptions, fidelity_frame, fidelity_size
from .learned import LearnedDecoder, LearnedEncoder
from .maskcode import block_mask, decode_mask, encode_mask, expand
from .masks import create_mask_source
from .planes import merge, source_planes, to_planes, usable_source

__all__ = ["SC_QUALITY_LEVELS", "SelectiveDecoder", "SelectiveEncoder", "SelectiveOptions"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
T = TypeVar("T")

#: Re-send the last plate's bytes while the background estimate stays this close to the one it was coded from (dB).
PLATE_REUSE_DB = 38.0
#: Weight of the newest frame in the running background estimate (outside the kept region).
BACKGROUND_RATE = 0.25
#: `--bitrate`: move the fidelity CRF by this much per GOP when the last GOP missed the target.
RATE_STEP = 2
#: Header, section headers, mask and CRC of a typical packet, for rate estimates (bytes): an inter
#: frame's 8 bytes of format 2, the FIDELITY tag and length, a few bytes of mask.
PACKET_OVERHEAD = 14


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
        self.options = options or SelectiveOptions()
        self.options.check()
        self._backend = backend
        check_labels_spec(self.options.labels, self.options.synth_model)
        self.model = REGISTRY.load(model)
        quality = SC_QUALITY_LEVELS if quality is None else quality
        _check_quality(quality)
        factor = self.model.config.factor
        fg, bg = self.options.crfs(quality)
        self._synth_coder = SynthEncoder(width, height, model, self.options.synth_model, backend=backend) if self._synth else None
        self.config = StreamConfig(
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
            extra=self._extra(fg, bg),
        )
        self.masks = create_mask_source(
            self.options.keep,
            mask_video=self.options.mask_video,
            segmenter=self.options.segmenter,
            threads=self.options.threads,
            parallel=self.options.parallel,  # the kinds side by side: masks in about the time of the slowest
        )
        self._mask_pipeline = MaskPipeline(self.masks)
        self._plate_pool: ThreadPoolExecutor | None = None
        self._reconstruction: Future[None] | None = None
        self._fidelity: FidelityEncoder | LearnedEncoder | None = None
        self._plate_coder: FidelityEncoder | None = None
        self._recon: FidelityDecoder | None = None
        self._last_fidelity: Image | None = None
        self._estimate: npt.NDArray[np.float32] | None = None
        self._seen: Mask | None = None  # pixels seen outside the kept region at least once
        self._background_sections: dict[int, bytes] = {}
        self._background_source: Image | None = None
        self._plate_unit: bytes | None = None  # the last plate access unit sent: what the next update follows
        self._plate_full_at = 0  # frame index of the last full plate
        self._blocks: Mask | None = None
        self._whole = False  # the current GOP is coded whole (no mask edge, no plate)
        self._source_tags: tuple[object, ...] | None = None  # () when the source's planes cannot be used
        self._last_planes: npt.NDArray[np.uint8] | None = None  # the last I420 fidelity input, for the hold
        self._pending: deque[tuple[dict[int, bytes], Future[dict[int, bytes]] | None, bool]] = deque()
        self._last_packet = b""
        self._index = 0
        self._fg_crf = fg
        self._target_kbps: float | None = None
        self._gop_bits = 0
        self.last_mask: Mask | None = None
        self.timings: dict[str, float] = defaultdict(float)

    @property
    def _synth(self) -> bool:
        return self.options.background == "synth"

    @property
    def _learned(self) -> bool:
        return self.options.fidelity == "learned"

    @property
    def offline(self) -> bool:
        """Whether the fidelity codec looks ahead (`push`/`flush`; packets come out some frames late)."""
        return self.options.latency == "offline"

    def _extra(self, fg: int, bg: int) -> dict[str, object]:
        o = self.options
        return {
            "fidelity": o.fidelity,
            "background": o.background,
            "block": BLOCK,
            "fill": "hold" if o.fill == "recon" and self.offline else o.fill,
            **({"latency": "offline"} if self.offline else {}),
            **({"matrix": o.matrix} if o.matrix != "bt601" else {}),
            "keep": o.kept_names(),
            "fg_crf": fg,
            "bg_crf": bg,
            "feather": o.feather,
            **(self._synth_coder.extra if self._synth_coder is not None else {}),
        }

    def with_quality(self, quality: int) -> None:
        """Change the quality before the first frame (used by bitrate selection)."""
        if self._index:
            raise RuntimeError("quality can only change before the first frame")
        _check_quality(quality)
        fg, bg = self.options.crfs(quality)
        self._fg_crf = fg
        self.config = replace(self.config, quality=quality, extra=self._extra(fg, bg))

    def with_target(self, kbps: float) -> None:
        """Hold the codec track near `kbps` over each GOP by moving the fidelity CRF at keyframes."""
        self._target_kbps = kbps

    def _open_coders(self) -> None:
        self._wait_reconstruction()  # it decodes with the decoder about to be replaced
        fg, bg = self.options.crfs(self.config.quality, self._fg_crf)
        for coder in (self._fidelity, self._plate_coder):
            if coder is not None:
                coder.close()
        width, height = fidelity_size(self.config.width, self.config.height)
        plate = PLATE_CODEC[self.options.fidelity]
        common = {
            "codec": plate,
            "preset": self.options.preset,
            "threads": self.options.codec_threads,
            "matrix": self.options.matrix,
        }
        self._pending.clear()
        if self._learned:
            self._fidelity = LearnedEncoder(self.config.width, self.config.height, self.config.model_name, fg, self._backend)
            self._recon = None  # G's picture is not needed in the loop: no fill, the reference is the symbols
        else:
            latency = self.options.latency
            self._fidelity = FidelityEncoder(width, height, self.options.frame_rate, crf=fg, latency=latency, **common)  # type: ignore[arg-type]
            # Offline, the fill holds the previous input instead: the reconstruction comes too late to wait for.
            matrix = self.options.matrix
            self._recon = (
                None if self.offline else FidelityDecoder(self.options.fidelity, width=width, height=height, matrix=matrix)
            )
        if not self._synth:
            # One intra picture per keyframe: offline, the codec's slower preset is affordable (AV1: ~5 % fewer
            # bytes and +0.3 dB for ~25 ms more per 640x480 plate); live keeps the fast one.
            if self.offline and self.options.preset is None:
                common["preset"] = CODECS[plate].offline_preset
            self._plate_coder = FidelityEncoder(width, height, self.options.frame_rate, crf=bg, **common)  # type: ignore[arg-type]

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
        keyframe = self._start(rgb)
        sections, background, filled = self._front(rgb, keyframe, source)
        assert self._fidelity is not None
        started = time.perf_counter()
        if isinstance(self._fidelity, LearnedEncoder):
            assert self._blocks is not None  # set by _front
            access_unit = self._fidelity.encode(rgb, self._blocks, keyframe)
        else:
            access_unit = self._fidelity.encode(filled, keyframe)
        self.timings["fidelity"] += time.perf_counter() - started
        if self._recon is not None:
            # Decoded on the worker while this packet goes out and the next frame's masks are found; the next fill waits.
            self._reconstruction = self._beside(self._reconstruct, access_unit)
        return self._finish(sections, background, keyframe, access_unit)

    def push(self, rgb: Image, source: Any = None) -> list[EncodedFrame]:
        """Give the next frame; returns the frames whose packets are complete, oldest first.

        Zero latency: always this frame's. Offline: the fidelity codec holds frames while it looks ahead,
        so often none, later several; `flush` returns the rest at the end. Packets come in stream order.
        `source` as for `encode`.
        """
        if not self.offline:
            return [self.encode(rgb, source)]
        self._check_frame(rgb)
        ready: list[EncodedFrame] = []
        restart = self._index % self.config.gop == 0 and self._index > 0 and self._target_kbps is not None
        if restart:  # --bitrate: count the whole last GOP, then a fresh coder starts at this (closed) keyframe
            ready, crf = self.flush(), self._fg_crf
            self._adapt_rate()
            if self._fg_crf == crf:
                self._open_coders()
        keyframe = self._start(rgb, adapt=not restart)
        sections, background, filled = self._front(rgb, keyframe, source)
        self._pending.append((sections, background, keyframe))
        assert isinstance(self._fidelity, FidelityEncoder)
        started = time.perf_counter()
        units = self._fidelity.send(filled, keyframe)
        self.timings["fidelity"] += time.perf_counter() - started
        return ready + [self._finish(*self._pending.popleft(), unit) for unit in units]

    def flush(self) -> list[EncodedFrame]:
        """The packets an offline encoder still holds, oldest first (none for zero latency); push no more after."""
        if not self.offline or self._fidelity is None:
            return []
        assert isinstance(self._fidelity, FidelityEncoder)
        units = self._fidelity.drain()
        if len(units) != len(self._pending):
            raise RuntimeError(f"fidelity codec returned {len(units)} access units for {len(self._pending)} held frames")
        return [self._finish(*self._pending.popleft(), unit) for unit in units]

    def _start(self, rgb: Image, adapt: bool = True) -> bool:
        """Open the coders, or adapt them at a keyframe, for the next frame; whether it is a keyframe."""
        keyframe = self._index % self.config.gop == 0
        if self._fidelity is None:
            self._open_coders()
        elif keyframe and adapt:
            self._adapt_rate()
        self._index += 1
        return keyframe

    def _front(
        self, rgb: Image, keyframe: bool, source: Any = None
    ) -> tuple[dict[int, bytes], Future[dict[int, bytes]] | None, Image]:
        """Masks, the mask section, the keyframe's background (started beside) and the filled fidelity input."""
        started = time.perf_counter()
        self.last_mask = self._mask_pipeline.next(rgb)
        blocks = block_mask(self.last_mask, BLOCK)
        if keyframe:
            self._whole = self._codes_whole(blocks)
        if self._whole:  # this GOP keeps everything: the mask says so, and the keyframe sends no plate
            blocks = np.ones_like(blocks)
            self.last_mask = np.ones_like(self.last_mask)
        kept = expand(blocks, self.config.height, self.config.width, BLOCK)
        self._update_estimate(rgb, kept)
        masked = time.perf_counter()
        sections: dict[int, bytes] = {}
        mask_bytes = encode_mask(blocks, None if keyframe else self._blocks)
        if mask_bytes:
            sections[bitstream.MASK] = mask_bytes
        self._blocks = blocks
        coded = time.perf_counter()
        self._wait_reconstruction()
        waited = time.perf_counter()
        # A keyframe's plate (its own x265, or the synth coder) is coded beside the fidelity layer: both release the GIL.
        # The estimate is copied here: offline, the next frames update it in place before the worker gets to it.
        # A GOP coded whole has no plate: its keyframe carries none.
        background = None
        if keyframe and not self._whole:
            background = self._beside(self._background_section, self._plate_picture(), self._index - 1)
        filled = rgb  # learned: the encoder takes the frame and its blocks, no fill
        if not self._learned:
            filled = self._fidelity_input(rgb, kept, blocks, keyframe, source)
        for stage, took in (("masks", masked - started), ("mask coding", coded - masked), ("decode", waited - coded)):
            self.timings[stage] += took  # "decode": waiting for the last frame's reconstruction
        if self._mask_pipeline.worker_seconds:
            self.timings["masks ahead"] = self._mask_pipeline.worker_seconds  # on the worker, overlapped
        return sections, background, filled

    def _fidelity_input(self, rgb: Image, kept: Mask, blocks: Mask, keyframe: bool, source: Any) -> Image:
        """What the fidelity codec takes: the filled RGB, or I420 planes whose kept blocks are the source's own."""
        planes = source is not None and self._source_usable(source, rgb)
        # Offline, the hold fill repeats last frame's input planes exactly (an RGB hold would convert the
        # blocks taken from the source's planes differently, and they would no longer be exact skips).
        hold = planes and self.offline and self.options.fill == "recon" and not keyframe and self._last_planes is not None
        raw = None if hold else self._filled(rgb, kept, keyframe)
        if self.offline:
            self._last_fidelity = raw  # the next RGB fill holds this input where nothing is kept (None: flat)
        if not planes:
            self._last_planes = None
            assert raw is not None
            return fidelity_frame(raw)
        outside = self._last_planes if hold or raw is None else to_planes(raw, self.options.matrix)
        assert outside is not None
        self._last_planes = merge(source_planes(source), outside, blocks, BLOCK)
        return self._last_planes

    def _source_usable(self, source: Any, rgb: Image) -> bool:
        """`planes.usable_source`, checked to the pixel on the first frame, then by the frames' format and tags."""
        tags = (source.format.name, source.width, source.height, source.colorspace, source.color_range)
        if self._source_tags is None:
            self._source_tags = tags if usable_source(source, rgb, self.options.matrix) else ()
        return tags == self._source_tags

    def _codes_whole(self, blocks: Mask) -> bool:
        """Whether the GOP starting with this keyframe's `blocks` is coded whole (see SelectiveOptions.whole_above)."""
        if self._learned or self._synth or not blocks.any():
            return False
        kept = expand(blocks, self.config.height, self.config.width, BLOCK)
        return float(kept.mean()) > self.options.whole_above

    def _finish(
        self, sections: dict[int, bytes], background: Future[dict[int, bytes]] | None, keyframe: bool, access_unit: bytes
    ) -> EncodedFrame:
        """The frame's packet, in stream order: its fidelity access unit, and its plate or its link to the last packet."""
        started = time.perf_counter()
        sections[bitstream.FIDELITY] = access_unit
        if background is not None:
            sections.update(background.result())
        elif not keyframe:
            sections[bitstream.REFERENCE] = self._last_packet[-1:]
        frame = Frame(FrameType.SELECTIVE_INTRA if keyframe else FrameType.SELECTIVE_INTER, sections, 0 if keyframe else 1)
        packet = bitstream.pack_frame(frame)
        self.timings["plate"] += time.perf_counter() - started
        self._last_packet, self._gop_bits = packet, self._gop_bits + 8 * len(packet)
        return EncodedFrame(packet, keyframe, 8.0 * len(packet))

    def _beside(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """`fn(*args)` on the plate worker, or here and now when the encoder is serial (the same result)."""
        if self.options.parallel:
            return self._background_pool().submit(fn, *args)
        done: Future[T] = Future()
        done.set_result(fn(*args))
        return done

    def _background_pool(self) -> ThreadPoolExecutor:
        if self._plate_pool is None:
            self._plate_pool = ThreadPoolExecutor(1, thread_name_prefix="sc-plate")
        return self._plate_pool

    def _wait_reconstruction(self) -> None:
        if self._reconstruction is not None:
            self._reconstruction.result()
            self._reconstruction = None

    def _reconstruct(self, access_unit: bytes) -> None:
        """Decode our own access unit as the decoder will: the picture the next frame's fill copies."""
        assert self._recon is not None
        self._last_fidelity = self._recon.decode(access_unit)[: self.config.height, : self.config.width]

    def _filled(self, rgb: Image, kept: Mask, keyframe: bool) -> Image:
        if keyframe or self.options.fill == "flat" or self._last_fidelity is None:
            return fill_outside(rgb, kept, "flat", block=BLOCK)
        if self.options.fill == "blur":
            return fill_outside(rgb, kept, "blur", block=BLOCK)
        return fill_outside(rgb, kept, "background", self._last_fidelity, block=BLOCK)

    def _update_estimate(self, rgb: Image, kept: Mask) -> None:
        """The running background: starts as the first frame, then follows the picture outside the kept region."""
        self._seen = ~kept if self._seen is None else self._seen | ~kept
        if self._estimate is None:
            self._estimate = rgb.astype(np.float32)
            return
        # estimate += rate · (rgb − estimate) outside the kept region, in place (boolean indexing is ~90x slower).
        cv2.accumulateWeighted(rgb, self._estimate, BACKGROUND_RATE, mask=(~kept).view(np.uint8))

    def _estimate_picture(self) -> Image:
        """The running background estimate as a picture (a copy)."""
        assert self._estimate is not None
        return np.clip(self._estimate + 0.5, 0, 255).astype(np.uint8)

    def _plate_picture(self) -> Image:
        """What the plate codes: the estimate, blurred in the cells never yet seen outside the kept region.

        There the estimate still holds the first frame (a talking head's own face, say): sharp pixels the
        composite only shows if the kept region leaves them, cheap as a blur (the plate of carphone q3:
        ~45 % smaller). The synth background takes the estimate whole.
        """
        estimate = self._estimate_picture()
        if self._synth or self._seen is None or self._seen.all():
            return estimate
        return fill_outside(estimate, self._seen, "blur", block=BLOCK)

    def _background_section(self, estimate: Image, index: int) -> dict[int, bytes]:
        """The keyframe at frame `index`'s background: PLATE or PLATE_UPDATE, or LATENTS and LABELS.

        A full plate (or the synth sections) is sent again as the same bytes while the background has not
        changed. Between full plates (`SelectiveOptions.plate_refresh`) a keyframe carries an update coded
        against the last plate unit instead, empty while the background has not changed.
        """
        # Compared with the estimate the last plate was coded from, not its decode: coding noise at
        # the plate's CRF alone would keep the PSNR under the threshold.
        held = self._background_source
        unchanged = bool(self._background_sections) and held is not None and psnr(estimate, held) > PLATE_REUSE_DB
        if self._synth_coder is not None:
            if not unchanged:
                self._background_source, self._background_sections = estimate, self._synth_coder.sections(estimate)
            return self._background_sections
        assert self._plate_coder is not None
        refresh = self.options.refresh_frames()
        if not refresh or self._plate_unit is None or index - self._plate_full_at >= refresh:
            if not (unchanged and bitstream.PLATE in self._background_sections):
                unit = self._plate_coder.encode(fidelity_frame(estimate), True)
                self._background_source, self._background_sections = estimate, {bitstream.PLATE: unit}
                self._plate_unit = unit
            self._plate_full_at = index
            return self._background_sections
        assert self._plate_unit is not None
        update = bitstream.plate_check(self._plate_unit)
        if not unchanged:
            unit = self._plate_coder.encode(fidelity_frame(estimate), False)
            self._background_source, self._plate_unit, update = estimate, unit, update + unit
        self._background_sections = {bitstream.PLATE_UPDATE: update}
        return self._background_sections

    def _adapt_rate(self) -> None:
        """`--bitrate`: after each GOP, move the fidelity CRF toward the target (±RATE_STEP, bounded)."""
        if self._target_kbps is None or self._learned:  # learned: --bitrate picks the level once, at the start
            return
        kbps = self._gop_bits * float(self.options.frame_rate) / self.config.gop / 1000
        self._gop_bits = 0
        step = RATE_STEP if kbps > 1.05 * self._target_kbps else -RATE_STEP if kbps < 0.8 * self._target_kbps else 0
        low, high = self.options.crf_bounds()
        crf = max(low, min(high, self._fg_crf + step))
        if crf != self._fg_crf:
            self._fg_crf = crf
            self._open_coders()
            self._background_sections = {}  # the plate coder restarts; re-code the plate at its new CRF
            self._plate_unit = None  # and the next plate is a full one

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
        intra_share = 1.0 / self.config.gop  # a keyframe (IDR + plate) is worth many inter frames
        rates = []
        for quality in range(1, SC_QUALITY_LEVELS + 1):
            if qualities is not None and quality not in qualities:
                rates.append(0.0)
                continue
            fg, bg = self.options.crfs(quality)
            sizes = [size + PACKET_OVERHEAD for size in self._probe(frames, kept, fg)]
            # One full plate per refresh period; the updates between cost a few percent of one (left out).
            refresh = self.options.refresh_frames()
            plate = self._probe_background(frames[0], bg)
            sizes[0] += round(plate * min(1.0, self.config.gop / refresh)) if refresh else plate
            inter = float(np.mean(sizes[1:])) if len(sizes) > 1 else sizes[0]
            bits = 8 * (intra_share * sizes[0] + (1 - intra_share) * inter)
            rates.append(bits * float(self.options.frame_rate) / 1000.0)
        return rates

    def _probe(self, frames: list[Image], kept: list[Mask], crf: int) -> list[int]:
        """Access unit sizes of the frames at `crf`, filled as the encoder fills them (previous input for the recon)."""
        if self._learned:
            return self._probe_learned(frames, kept, crf)
        width, height = fidelity_size(self.config.width, self.config.height)
        latency, fidelity = self.options.latency, self.options.fidelity
        coder = FidelityEncoder(
            width, height, self.options.frame_rate, codec=fidelity, crf=crf, preset=self.options.preset, latency=latency
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

    def _probe_learned(self, frames: list[Image], kept: list[Mask], level: int) -> list[int]:
        """FIDELITY section sizes of the frames at GC quality `level` (intra first, then inter)."""
        coder = LearnedEncoder(self.config.width, self.config.height, self.config.model_name, level, self._backend)
        blocks = [block_mask(mask, BLOCK) for mask in kept]
        return [len(coder.encode(rgb, b, i == 0)) for i, (rgb, b) in enumerate(zip(frames, blocks, strict=True))]

    def _probe_background(self, rgb: Image, crf: int) -> int:
        if self._synth_coder is not None:
            return sum(len(data) for data in self._synth_coder.sections(rgb).values())
        width, height = fidelity_size(self.config.width, self.config.height)
        with FidelityEncoder(width, height, self.options.frame_rate, codec=PLATE_CODEC[self.options.fidelity], crf=crf) as coder:
            return len(coder.encode(fidelity_frame(rgb), True))

    def close(self) -> None:
        """Close the codecs and the mask worker (idempotent)."""
        self._mask_pipeline.close()
        self.masks.close()
        self._reconstruction = None
        if self._plate_pool is not None:
            self._plate_pool.shutdown(wait=True)
            self._plate_pool = None
        for coder in (self._fidelity, self._plate_coder):
            if coder is not None:
                coder.close()


def _check_quality(quality: int) -> None:
    if not 1 <= quality <= SC_QUALITY_LEVELS:
        raise ValueError(f"quality {quality} is outside 1..{SC_QUALITY_LEVELS} for selective mode")


class SelectiveDecoder:
    """Decodes a selective stream's packets to RGB; refuses inter frames after damage until the next keyframe."""

    def __init__(self, config: StreamConfig, *, backend: str | Backend = "auto", compose: bool = True) -> None:
        """Check the configuration and prepare the layers' decoders.

        Args:
            config: a selective stream's configuration.
            backend: inference backend for the synthesized background.
            compose: False for the encoder's loop, which needs the layers but not the picture
                (`decode` then returns the fidelity layer).
        """
        config.validate()
        self.compose = compose
        if config.mode != "sc":
            raise UnsupportedStreamError(f"stream mode {config.mode!r} is not selective")
        if not 1 <= config.quality <= SC_QUALITY_LEVELS:
            raise CorruptStreamError(f"stream configuration quality {config.quality} is outside 1..{SC_QUALITY_LEVELS}")
        self.config = config
        extra = config.extra
        self._compositor = Compositor(int(extra["feather"]))  # type: ignore[call-overload]
        # GCDecoder (in SynthDecoder) checks the model, coded sizes and channels for both backgrounds.
        self._synth = SynthDecoder(config, backend=backend) if extra["background"] == "synth" else None
        if self._synth is None:
            _check_gc_fields(gc_config(config))
        width, height = fidelity_size(config.width, config.height)
        codec = str(extra["fidelity"])
        matrix = str(extra.get("matrix", "bt601"))
        self._fidelity: FidelityDecoder | LearnedDecoder
        if codec == "learned":
            self._fidelity = LearnedDecoder(config.model_id, int(extra["fg_crf"]), (config.width, config.height), backend)  # type: ignore[call-overload]
        else:
            self._fidelity = FidelityDecoder(codec, width=width, height=height, matrix=matrix)
        self._plate = FidelityDecoder(PLATE_CODEC[codec], width=width, height=height, matrix=matrix)
        self._background: tuple[tuple[bytes, ...], Image] | None = None  # the last synth background, by its bytes
        self._plate_unit: bytes | None = None  # the last plate access unit decoded (None: no chain to update)
        self._plate_picture: Image | None = None  # the last plate picture decoded
        self._shown: Image | None = None  # this GOP's background
        #: What the caller should be told: a keyframe whose plate update this decoder could not use (it
        #: started after the plate it follows, or lost it). The file decoder reports and clears them.
        self.notes: list[str] = []
        self._blocks: Mask | None = None
        self._crc: int | None = None
        self.last_fidelity: Image | None = None
        self.timings: dict[str, float] = defaultdict(float)

    @property
    def background(self) -> Image | None:
        """The decoded background layer in use (None before the first keyframe, and in a GOP coded whole)."""
        return self._shown

    def decode(self, packet: bytes) -> Image:
        """One packet → (height, width, 3) uint8; CorruptStreamError for damage or a lost reference."""
        try:
            return self._decode(packet)
        except StreamcodecError:
            self._crc = None  # inter frames are refused until the next keyframe
            raise

    def _decode(self, packet: bytes) -> Image:
        frame = bitstream.unpack_frame(packet)
        if frame.frame_type not in (FrameType.SELECTIVE_INTRA, FrameType.SELECTIVE_INTER):
            raise CorruptStreamError(f"{frame.frame_type.name} frame in a selective-mode stream")
        if not frame.is_key:
            self._check_reference(frame)
        if bitstream.FIDELITY not in frame.sections:
            raise CorruptStreamError("selective frame has no fidelity section")
        started = time.perf_counter()
        shape = (-(-self.config.height // BLOCK), -(-self.config.width // BLOCK))
        blocks = decode_mask(frame.sections.get(bitstream.MASK, b""), shape, None if frame.is_key else self._blocks)
        if frame.is_key:
            self._shown = self._background_of(frame, blocks)
        background = self._shown
        if background is None and not blocks.all():
            # Inter frames come only after a keyframe (_check_reference): that keyframe kept everything, sent no plate.
            raise CorruptStreamError("selective frame leaves part of the picture to a background its keyframe did not send")
        layers = time.perf_counter()
        height, width = self.config.height, self.config.width
        if isinstance(self._fidelity, LearnedDecoder):
            fidelity = self._fidelity.decode(frame.sections[bitstream.FIDELITY], frame.is_key)
        else:
            fidelity = self._fidelity.decode(frame.sections[bitstream.FIDELITY])[:height, :width]
        decoded = time.perf_counter()
        out = self._compositor(fidelity, background, blocks) if self.compose and background is not None else fidelity
        self.timings["layers"] += layers - started
        self.timings["fidelity"] += decoded - layers
        self.timings["composite"] += time.perf_counter() - decoded
        self._blocks, self._crc, self.last_fidelity = blocks, packet[-1], fidelity
        return out

    def _check_reference(self, frame: Frame) -> None:
        if frame.reference_distance != 1 or self._crc is None:
            raise CorruptStreamError("inter frame without its reference (an earlier frame was lost or damaged)")
        wanted = bitstream.unpack_reference(frame.sections.get(bitstream.REFERENCE, b""))
        if wanted != self._crc:
            raise CorruptStreamError(
                f"inter frame follows a packet ending 0x{wanted:02x}, the decoder's last ends "
                f"0x{self._crc:02x} (a frame was lost)"
            )

    def _background_of(self, frame: Frame, blocks: Mask) -> Image | None:
        """The keyframe's background, decoded once per distinct plate or latents + labels (a static scene costs nothing).

        None for a plate stream's keyframe that keeps every block and so carries no plate (a GOP coded whole).
        """
        if self._synth is None:
            return self._plate_of(frame, blocks)
        key = self._synth.key(frame)
        if self._background is None or self._background[0] != key:
            self._background = (key, self._synth.picture(frame))
        return self._background[1]

    def _plate_of(self, frame: Frame, blocks: Mask) -> Image | None:
        """A plate keyframe's background: its full plate, or the last plate picture with its update applied."""
        plate, update = frame.sections.get(bitstream.PLATE), frame.sections.get(bitstream.PLATE_UPDATE)
        if plate is not None and update is not None:
            raise CorruptStreamError("selective keyframe has both a plate and a plate update")
        if plate is None and update is None:
            if blocks.all():
                return None  # the last plate stays: a later keyframe may send the same bytes again, or update it
            raise CorruptStreamError("selective keyframe has no plate section")
        if plate is not None:
            if plate != self._plate_unit or self._plate_picture is None:  # the same bytes again: the same picture
                self._plate_picture = self._decode_plate(plate)
            return self._plate_picture
        assert update is not None
        if len(update) < bitstream.PLATE_CHECK.size:
            raise CorruptStreamError(f"selective plate update of {len(update)} bytes is shorter than its check")
        check, unit = update[: bitstream.PLATE_CHECK.size], update[bitstream.PLATE_CHECK.size :]
        if self._plate_unit is None or bitstream.plate_check(self._plate_unit) != check:
            self._plate_unit = None  # every update until the next full plate follows what is missing
            shown = "the last background it has" if self._plate_picture is not None else "a grey background"
            self.notes.append(
                "this keyframe's background plate updates a plate the decoder does not hold (it started later, "
                f"or that keyframe was lost): showing {shown} until the next full plate"
            )
            if self._plate_picture is None:
                return np.full((self.config.height, self.config.width, 3), FLAT_RGB, dtype=np.uint8)
            return self._plate_picture
        if unit:
            self._plate_picture = self._decode_plate(unit)
        return self._plate_picture

    def _decode_plate(self, unit: bytes) -> Image:
        self._plate_unit = None  # until it decodes: a damaged unit leaves no chain
        picture = self._plate.decode(unit)[: self.config.height, : self.config.width]
        self._plate_unit = unit
        return picture


def _check_gc_fields(config: StreamConfig) -> None:
    """The model-dependent fields of a plate stream, checked as GC would without loading a backend."""
    from ..gc.codec import check_against_model

    entry = REGISTRY.by_id(config.model_id)
    check_against_model(config, REGISTRY.load(entry.name))
