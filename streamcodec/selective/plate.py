"""Selective mode's `plate` background layer: the background picture coded by the plate codec at keyframes.

    encoder:  running estimate ─blur the never-seen cells─▶ plate codec (intra) ───────▶ PLATE
                                                         └▶ plate codec (inter) ─check─▶ PLATE_UPDATE
    decoder:  PLATE ─▶ plate decoder ─▶ background picture (kept until the next keyframe's)
              PLATE_UPDATE ─check against the last unit─▶ plate decoder ─▶ background picture

The plate codec is the fidelity codec (hevc or av1; hevc for the learned layer, `PLATE_CODEC`), a
stream of its own. A keyframe sends a full plate (intra) every `SelectiveOptions.plate_refresh`
seconds, and between them an update: an inter access unit against the last plate unit, behind a
check of that unit (`bitstream.plate_check`), or none if the background has not changed. A full
plate whose background has not changed is sent again as the same bytes, which the decoder does not
decode again. A keyframe that keeps every block (a GOP coded whole) carries no plate at all.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from .. import bitstream
from ..bitstream import Frame, StreamConfig
from ..engines import Backend
from ..errors import CorruptStreamError
from ..models.registry import REGISTRY
from .background import gc_config
from .codec_specs import CODECS
from .estimate import BackgroundEstimate, unchanged
from .fidelity import FidelityDecoder, FidelityEncoder
from .fill import FLAT_RGB, fill_outside
from .layer import LayerSetup
from .lookahead import Clean
from .options import BLOCK, PLATE_CODEC, fidelity_frame, fidelity_size

__all__ = ["PlateBackground", "PlateBackgroundDecoder"]

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


class PlateBackground:
    """The encoder side: the running estimate, coded as a full plate or an update at each keyframe."""

    codes_whole = True

    def __init__(self, setup: LayerSetup) -> None:
        self._setup = setup
        self._codec = PLATE_CODEC[setup.options.fidelity]
        self._size = fidelity_size(setup.width, setup.height)
        self._estimate = BackgroundEstimate()
        self._coder: FidelityEncoder | None = None
        self._source: Image | None = None  # the estimate the last plate was coded from
        self._sections: dict[int, bytes] = {}  # the last keyframe's sections
        self._unit: bytes | None = None  # the last plate access unit sent: what the next update follows
        self._full_at = 0  # frame index of the last full plate
        self._fresh = True  # the codec has coded nothing since it opened: no picture an update could follow
        self._new_shot = False  # a scene cut since the last keyframe's background: the next is a full plate of it

    @property
    def extra(self) -> dict[str, object]:
        """No config fields besides "background": the plate codec follows from "fidelity"."""
        return {}

    def open(self, crf: int) -> None:
        """Start a fresh plate codec at `crf` (its next unit must be a full plate)."""
        self.close()
        self._fresh = True
        options = self._setup.options
        preset = options.preset
        # One intra picture per keyframe: offline, the codec's slower preset is affordable (AV1: ~5 % fewer
        # bytes and +0.3 dB for ~25 ms more per 640x480 plate); live keeps the fast one.
        if options.latency == "offline" and preset is None:
            preset = CODECS[self._codec].offline_preset
        width, height = self._size
        self._coder = FidelityEncoder(
            width,
            height,
            options.frame_rate,
            codec=self._codec,
            crf=crf,
            preset=preset,
            threads=options.codec_threads,
            matrix=options.matrix,
        )

    def restart(self) -> None:
        """After a CRF change: the next keyframe codes a full plate again."""
        self._sections = {}
        self._unit = None

    def new_shot(self) -> None:
        """A scene cut: the estimate starts again from the next frame, and the next plate is a full one of it."""
        self._estimate = BackgroundEstimate()
        self._new_shot = True

    def observe(self, frame: Image, kept: Mask) -> None:
        """Follow the background (`BackgroundEstimate.observe`)."""
        self._estimate.observe(frame, kept)

    def start(self, index: int, clean: Clean | None = None) -> Future[dict[int, bytes]]:
        """Code keyframe `index`'s plate on the worker, from the estimate as it is now, or the `clean` plate ahead."""
        # The picture is taken here: offline, the next frames update the estimate before the worker gets to it.
        shot, self._new_shot = self._new_shot, False
        return self._setup.worker.submit(self._background_section, self._picture(clean), index, shot)

    def _picture(self, clean: Clean | None = None) -> Image:
        """What the plate codes: the estimate (or the `clean` plate where it has one), blurred in the cells never seen.

        There the estimate still holds the first frame (a talking head's own face, say): sharp pixels the
        composite only shows if the kept region leaves them, cheap as a blur (the plate of carphone q3:
        ~45 % smaller).
        """
        estimate, seen = self._estimate.picture(), self._estimate.seen
        if clean is not None:
            median, covered = clean
            estimate[covered] = median[covered]
            seen = covered if seen is None else seen | covered
        if seen is None or seen.all():
            return estimate
        return fill_outside(estimate, seen, "blur", block=BLOCK)

    def _background_section(self, estimate: Image, index: int, new_shot: bool = False) -> dict[int, bytes]:
        """The keyframe at frame `index`'s PLATE or PLATE_UPDATE.

        A full plate is sent again as the same bytes while the background has not changed. Between full
        plates (`SelectiveOptions.plate_refresh`) a keyframe carries an update coded against the last plate
        unit instead, empty while the background has not changed. After a scene cut (`new_shot`), a full plate.
        """
        if new_shot:
            self._sections, self._unit = {}, None
        same = bool(self._sections) and unchanged(estimate, self._source, self._setup.options.max_background_error)
        assert self._coder is not None
        refresh = self._setup.options.refresh_frames()
        # An offline `--bitrate` restart reopens the codec in mid-chain: a changed background is then a full plate.
        restarted = self._fresh and not same
        if not refresh or self._unit is None or index - self._full_at >= refresh or restarted:
            if not (same and bitstream.PLATE in self._sections):
                unit = self._coder.encode(fidelity_frame(estimate), True)
                self._source, self._sections, self._unit, self._fresh = estimate, {bitstream.PLATE: unit}, unit, False
            self._full_at = index
            return self._sections
        update = bitstream.plate_check(self._unit)
        if not same:
            unit = self._coder.encode(fidelity_frame(estimate), False)
            self._source, self._unit, update = estimate, unit, update + unit
        self._sections = {bitstream.PLATE_UPDATE: update}
        return self._sections

    def probe(self, frame: Image, crf: int) -> int:
        """The bytes of a full plate of `frame` at `crf`."""
        width, height = self._size
        with FidelityEncoder(width, height, self._setup.options.frame_rate, codec=self._codec, crf=crf) as coder:
            return len(coder.encode(fidelity_frame(frame), True))

    def close(self) -> None:
        """Close the plate codec (idempotent)."""
        if self._coder is not None:
            self._coder.close()


class PlateBackgroundDecoder:
    """The decoder side: a keyframe's full plate, or the last plate picture with its update applied."""

    def __init__(self, config: StreamConfig, backend: str | Backend = "auto") -> None:
        """Check the stream's model fields and prepare the plate decoder (`backend` is not needed)."""
        _check_gc_fields(gc_config(config))
        self._height, self._width = config.height, config.width
        width, height = fidelity_size(config.width, config.height)
        codec, matrix = PLATE_CODEC[str(config.extra["fidelity"])], str(config.extra.get("matrix", "bt601"))
        self._plate = FidelityDecoder(codec, width=width, height=height, matrix=matrix)
        self._unit: bytes | None = None  # the last plate access unit decoded (None: no chain to update)
        self._picture: Image | None = None  # the last plate picture decoded
        #: A keyframe whose plate update this decoder could not use (it started after the plate it
        #: follows, or lost it). The file decoder reports and clears them.
        self.notes: list[str] = []

    def picture(self, frame: Frame, blocks: Mask) -> Image | None:
        """A plate keyframe's background; None for one that keeps every block and so carries no plate."""
        plate, update = frame.sections.get(bitstream.PLATE), frame.sections.get(bitstream.PLATE_UPDATE)
        if plate is not None and update is not None:
            raise CorruptStreamError("selective keyframe has both a plate and a plate update")
        if plate is None and update is None:
            if blocks.all():
                return None  # the last plate stays: a later keyframe may send the same bytes again, or update it
            raise CorruptStreamError("selective keyframe has no plate section")
        if plate is not None:
            if plate != self._unit or self._picture is None:  # the same bytes again: the same picture
                self._picture = self._decode(plate)
            return self._picture
        assert update is not None
        return self._updated(update)

    def _updated(self, update: bytes) -> Image:
        """The last plate picture with `update` applied, or what the decoder holds if it lacks the plate updated."""
        if len(update) < bitstream.PLATE_CHECK.size:
            raise CorruptStreamError(f"selective plate update of {len(update)} bytes is shorter than its check")
        check, unit = update[: bitstream.PLATE_CHECK.size], update[bitstream.PLATE_CHECK.size :]
        if self._unit is None or bitstream.plate_check(self._unit) != check:
            self._unit = None  # every update until the next full plate follows what is missing
            shown = "the last background it has" if self._picture is not None else "a grey background"
            self.notes.append(
                "this keyframe's background plate updates a plate the decoder does not hold (it started later, "
                f"or that keyframe was lost): showing {shown} until the next full plate"
            )
            if self._picture is None:
                return np.full((self._height, self._width, 3), FLAT_RGB, dtype=np.uint8)
            return self._picture
        if unit:
            self._picture = self._decode(unit)
        assert self._picture is not None  # a chain starts with a full plate, decoded
        return self._picture

    def _decode(self, unit: bytes) -> Image:
        self._unit = None  # until it decodes: a damaged unit leaves no chain
        picture = self._plate.decode(unit)[: self._height, : self._width]
        self._unit = unit
        return picture


def _check_gc_fields(config: StreamConfig) -> None:
    """The model-dependent fields of a plate stream, checked as GC would without loading a backend."""
    from ..gc.codec import check_against_model

    entry = REGISTRY.by_id(config.model_id)
    check_against_model(config, REGISTRY.load(entry.name))
