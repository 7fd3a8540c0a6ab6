"""Selective mode's settings and the pieces both sides share: qualities, the feathered composite, the layers' sizes.

    out = alpha · fidelity + (1 − alpha) · background,   alpha = box_blur(erode(kept blocks, feather), feather)

alpha is 1 well inside the kept region and falls to (almost) 0 at its edge, so it never reaches
over the fill pixels the fidelity layer carries outside the kept region.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .cuts import DEFAULT_SCENE_CUT, MAX_SCENE_CUT
from .fidelity import CODECS, LATENCIES, MATRICES, PRESETS
from .masks import DEFAULT_KEEP, parse_keep
from .saliency import parse_saliency
from .synth import DEFAULT_SC_MODEL

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

SC_QUALITY_LEVELS = 4
#: Fidelity CRF per quality (q1 = lowest rate) and the background's offset from it; for "learned",
#: the GC quality level (transmitted latent channels) per quality, the plate's CRF coming from hevc's.
FG_CRF: dict[str, tuple[int, ...]] = {"hevc": (38, 34, 30, 26), "av1": (50, 44, 38, 32), "learned": (1, 2, 3, 4)}
#: AV1's CRF scale is wider: +18 gives its plate about the PSNR of HEVC's at +8 (33.3 against 33.8 dB on the
#: still-camera clip's plate at q3) for the same bits; +10 made AV1 plates 22 % of the stream.
BG_OFFSET: dict[str, int] = {"hevc": 8, "av1": 18}
#: The codec of the background plate per fidelity layer: learned has none of its own, so hevc.
PLATE_CODEC: dict[str, str] = {"hevc": "hevc", "av1": "av1", "learned": "hevc"}
#: `--fg-quality` range of the learned layer (GC quality levels of the registered models).
LEARNED_LEVELS = (1, 4)
BACKGROUNDS = ("plate", "synth")
#: The fidelity layers that take saliency's per-block QP offsets (`saliency.py`): x265's ROI and the learned layer's split.
SALIENT_FIDELITY = ("hevc", "learned")
FILLS = ("recon", "flat", "blur")
BLOCK = 16
#: 0 px: a feathered band mixes the plate, coded 8-18 CRF coarser, into the kept region's edge pixels. Kept-region
#: PSNR with 1 px against 0 px (AV1 offline, q1..q4, `scripts/benchmarks/sc_points.py`): still-camera clip 32.49 /
#: 33.85 / 35.14 / 36.34 against 32.61 / 34.03 / 35.37 / 36.64 dB, carphone (masked) 0.37-0.78 dB less. The plate shows
#: the same background as the kept blocks' edges, so the seam is a step in sharpness; a synth background or a
#: moving camera may want a few pixels (`--feather`).
FEATHER = 0
#: A GOP whose keyframe keeps more than this share of the picture is coded whole by the fidelity layer, with
#: no plate: past it, the mask's moving edge and the plate cost more than the uncoded background saves. On
#: carphone (about 78 % kept; AV1 offline, q3, `scripts/benchmarks/sc_points.py`) whole GOPs give 79.7 kbps and 34.30 dB
#: in the kept region against 85.7 kbps and 34.22 dB masked. On the still-camera clip (about 33 % kept) masking still wins, but
#: only by about 3-7 % (whole: 222.6 kbps / 33.56 dB and 399.8 / 36.43 at q1 and q3; masked: 193.6 / 33.11
#: and 346.1 / 36.05), so the crossover lies somewhere near 40-50 %; no clip in between has been measured.
WHOLE_ABOVE = 0.6
#: Seconds between full (intra) plates of a file's stream; the keyframes between carry plate updates, inter
#: coded against the last plate (bitstream.PLATE_UPDATE). A decoder that starts between full plates shows no
#: background until the next one, at most this long. Live streams send a full plate at every keyframe (0),
#: for receivers that join late.
PLATE_REFRESH = 10.0
#: How much finer (CRF) a chained plate is coded than a full one each keyframe: an update follows a changed
#: background only partly, so the chain starts finer. SVT-AV1's low-delay updates come at a coarser QP than its
#: key frame; x265's do not (its own full plates after the first come out coarser instead). Plates of four
#: keyframes, q2, `still_crowd` (AV1 CRF 62 / HEVC 42): AV1 full each time 20126 bytes at 30.9-31.3 dB against
#: the estimate; chained at 62 5394 bytes, 30.0-31.0 dB; at 58 7700 bytes, 31.4-32.4 dB. HEVC full each time
#: 10223 bytes, 28.0-30.2 dB; chained at 42 5260 bytes, 30.0-30.5 dB.
PLATE_CHAIN_FINER: dict[str, int] = {"hevc": 0, "av1": 4}
#: The largest background bound (`SelectiveOptions.max_background_error`): 255 luma levels allows anything.
MAX_BACKGROUND_ERROR = 255
#: The default background bound, in luma levels of 16x16 mean absolute error: a person appearing or vanishing
#: on pavement is 40-100, coding noise at selective mode's rates 1-6 (issue 21). With it, 0 frames over it on
#: the still-camera clips at q1-q4 for -1 % to +3 % bits (`scripts/benchmarks/bound_cost.py`, docs/selective.md).
DEFAULT_BACKGROUND_ERROR = 20.0
#: Offline, how far ahead (seconds, at most the GOP) a keyframe's plate looks for the background (`lookahead.py`).
PLATE_LOOKAHEAD = 2.5
#: The longest look-ahead an option may ask (seconds): the encoder holds that many frames.
MAX_PLATE_LOOKAHEAD = 10.0


@dataclass(frozen=True)
class SelectiveOptions:
    """What the selective encoder keeps and how it codes the layers.

    Args:
        keep: mask kinds to keep (see masks.KINDS); may be empty with `mask_video`.
        mask_video: a user's mask video (luma > 127 kept), added to the kinds.
        segmenter: person model, "selfie" or "onnx:PATH".
        fidelity: the kept region's codec, "hevc", "av1" or "learned" (masked GC latents, `learned.py`).
        background: "plate" (a coded background picture per keyframe) or "synth" (GC latents and a label map, generated).
        labels: the synth background's labeler, "builtin" (the only one a registered generator is trained on) or "onnx:PATH".
        synth_model: the synth background's SC generator (registry name).
        fg_crf, bg_crf: CRFs of the fidelity layer and the plate (default: from the quality); with
            "learned", fg_crf is the GC quality level 1..4.
        preset: the fidelity codec's speed preset (default the codec's).
        fill: what the fidelity layer sees outside the kept region: "recon" (its previous reconstruction), "flat", "blur".
        feather: composite feather in pixels, inside the kept region (0..16).
        matrix: the colour matrix of the fidelity layer's RGB conversion, "bt601" or "bt709" (a source
            tagged BT.709 hands its own planes over only with it; recorded in the stream when not bt601).
        whole_above: code a GOP whole (every block kept, no plate) when its keyframe keeps more than this
            share of the picture (0..1; 1 = never). Not for "learned" or a "synth" background.
        plate_refresh: seconds between full plates, plate updates at the keyframes between (0: a full plate at
            every keyframe, each keyframe's background self-contained); default PLATE_REFRESH offline, 0 live.
        frame_rate: frames per second (rate control, `--bitrate` and `plate_refresh`).
        threads: CPU threads per mask model.
        codec_threads: worker threads of the fidelity and plate encoders (x265 pools: wavefront rows
            of one frame side by side; SVT-AV1 lp); the bitstream does not depend on it.
        latency: "zero" (live: each frame's packet at once, `encode`) or "offline" (files: the fidelity
            codec looks ahead, for fewer bits, and packets come out some frames late: `push`/`flush`;
            the fill then holds the previous input where the reconstruction would be). Not for "learned".
        parallel: work beside the caller's thread: the mask kinds side by side, the next frame's masks
            ahead (`prepare`), a keyframe's plate and the reconstruction on a worker; off, one frame's
            work runs in turn on the caller's thread (one core); the bitstream is the same either way.
        max_background_error: the background bound, in luma levels (0..255): every 16x16 block outside
            the kept region whose background, as the decoder shows it, is more than this mean absolute
            luma error from the frame joins the kept region (`bound.py`); the background is then reused
            only while no block of its estimate moved by more than a quarter of it. Default 20; None or 0: off.
        scene_cut: a frame whose picture differs from the previous one's by more than this (`cuts.py`: the
            median change of a 40-cell luma thumbnail, each normalized for light) starts a new GOP there,
            with a full background of the new shot; the next keyframe comes `gop` frames after it. Default
            0.5; 0: off, a keyframe every `gop` frames. Nothing of it is in the stream (keyframes say they are).
        plate_lookahead: offline only, seconds: a keyframe's background is the median of the frames
            ahead in its GOP (up to this long, never past a cut) outside the kept region (`lookahead.py`),
            so a person standing at the keyframe who walks off later is not in it; the encoder holds that
            many frames. Default PLATE_LOOKAHEAD offline; 0: the running estimate, as before; zero latency: 0.
        saliency: where in the kept region bits go first (`saliency.py`, `--saliency`): "off" (the default, every
            kept block at the CRF), "on" (the default weights) or "face=6,text=4,spectral=0,rest=0" (QP steps finer
            than the CRF per tier, rate-neutral). Not in the stream: its decoders read the same syntax either way.
    """

    keep: tuple[str, ...] = DEFAULT_KEEP
    mask_video: Path | None = None
    segmenter: str = "selfie"
    fidelity: str = "hevc"
    background: str = "plate"
    labels: str = "builtin"
    synth_model: str = DEFAULT_SC_MODEL
    fg_crf: int | None = None
    bg_crf: int | None = None
    preset: str | None = None
    fill: str = "recon"
    feather: int = FEATHER
    whole_above: float = WHOLE_ABOVE
    matrix: str = "bt601"
    plate_refresh: float | None = None
    frame_rate: Fraction = Fraction(25)
    threads: int = 1
    codec_threads: int = 2
    parallel: bool = True
    latency: str = "zero"
    max_background_error: float | None = DEFAULT_BACKGROUND_ERROR
    scene_cut: float = DEFAULT_SCENE_CUT
    plate_lookahead: float | None = None
    saliency: str = "off"

    def check(self) -> None:
        """Raise ValueError (or ModelError for `keep`) for a value the encoder cannot use."""
        parse_keep(",".join(self.keep)) if self.keep else None
        if not self.keep and self.mask_video is None:
            raise ValueError("selective mode needs something to keep: --keep kinds or a --mask video")
        for name, value, allowed in (
            ("fidelity", self.fidelity, tuple(FG_CRF)),
            ("background", self.background, BACKGROUNDS),
            ("fill", self.fill, FILLS),
            ("latency", self.latency, LATENCIES),
            ("matrix", self.matrix, tuple(MATRICES)),
        ):
            if value not in allowed:
                raise ValueError(f"selective {name} {value!r} is not one of {', '.join(allowed)}")
        ranges = (("fg-quality", self.fg_crf, self._fg_range()), ("bg-quality", self.bg_crf, self._bg_range()))
        for name, crf, (low, high) in ranges:
            if crf is not None and not low <= crf <= high:
                raise ValueError(f"--{name} {crf} is outside {low}..{high} for {self.fidelity}")
        if self.preset is not None and self.fidelity not in PRESETS:
            raise ValueError(f"--preset applies to the {' and '.join(PRESETS)} fidelity layers, not {self.fidelity}")
        if self.preset is not None and self.preset not in PRESETS[self.fidelity]:
            names = ", ".join(PRESETS[self.fidelity])
            raise ValueError(f"--preset {self.preset} does not fit the {self.fidelity} fidelity layer (presets: {names})")
        if self.latency == "offline" and self.fidelity == "learned":
            raise ValueError("the learned fidelity layer has no offline latency (it codes each frame at once)")
        if self.threads < 1 or self.codec_threads < 1:
            raise ValueError(f"selective threads {self.threads} and codec threads {self.codec_threads} must be at least 1")
        if not 0 <= self.feather <= BLOCK:
            raise ValueError(f"feather {self.feather} is outside 0..{BLOCK}")
        if not 0 <= self.whole_above <= 1:
            raise ValueError(f"whole-above {self.whole_above} is outside 0..1")
        if self.plate_refresh is not None and not 0 <= self.plate_refresh <= 86400:
            raise ValueError(f"plate refresh {self.plate_refresh} s is outside 0..86400")
        bound = self.max_background_error
        if bound is not None and (isinstance(bound, bool) or not 0 <= bound <= MAX_BACKGROUND_ERROR):
            raise ValueError(f"max background error {bound} levels is outside 0..{MAX_BACKGROUND_ERROR} (0: off)")
        if isinstance(self.scene_cut, bool) or not 0 <= self.scene_cut <= MAX_SCENE_CUT:
            raise ValueError(f"scene cut {self.scene_cut} is outside 0..{MAX_SCENE_CUT:g} (0: off)")
        ahead = self.plate_lookahead
        if ahead is not None and not 0 <= ahead <= MAX_PLATE_LOOKAHEAD:
            raise ValueError(f"plate look-ahead {ahead} s is outside 0..{MAX_PLATE_LOOKAHEAD:g}")
        if ahead and self.latency != "offline":
            raise ValueError(f"plate look-ahead {ahead:g} s needs latency offline (zero latency codes each frame at once)")
        if parse_saliency(self.saliency) is not None and self.fidelity not in SALIENT_FIDELITY:
            raise ValueError(f"--saliency needs the {' or '.join(SALIENT_FIDELITY)} fidelity layer, not {self.fidelity}")

    def lookahead_frames(self, gop: int) -> int:
        """Frames a keyframe's plate looks ahead, itself included (0: none; zero latency never), at most `gop`."""
        seconds = self.plate_lookahead if self.plate_lookahead is not None else PLATE_LOOKAHEAD
        if self.latency != "offline" or self.background != "plate":
            return 0
        return min(gop, round(seconds * self.frame_rate))

    def refresh_frames(self) -> int:
        """Frames between full plates (0: every keyframe's plate is full)."""
        seconds = self.plate_refresh if self.plate_refresh is not None else PLATE_REFRESH if self.latency == "offline" else 0.0
        return round(seconds * self.frame_rate) if self.background == "plate" else 0

    def crfs(self, quality: int, fg_crf: int | None = None) -> tuple[int, int]:
        """(fidelity CRF, background CRF) at `quality`, or around a given fidelity CRF; overrides win."""
        fg = fg_crf if fg_crf is not None else self.fg_crf if self.fg_crf is not None else FG_CRF[self.fidelity][quality - 1]
        plate = PLATE_CODEC[self.fidelity]
        # learned: the plate is hevc at the CRF hevc's fidelity layer would use at this quality, plus its offset.
        base = fg if plate == self.fidelity else FG_CRF[plate][quality - 1]
        low, high = self._fg_range()
        finer = PLATE_CHAIN_FINER[plate] if self.refresh_frames() else 0
        bg = self.bg_crf if self.bg_crf is not None else min(self._bg_range()[1], base + BG_OFFSET[plate] - finer)
        return max(low, min(high, fg)), bg

    def _fg_range(self) -> tuple[int, int]:
        return LEARNED_LEVELS if self.fidelity == "learned" else CODECS[self.fidelity].crf_range

    def _bg_range(self) -> tuple[int, int]:
        return CODECS[PLATE_CODEC[self.fidelity]].crf_range

    def crf_bounds(self) -> tuple[int, int]:
        """How far `--bitrate` may move the fidelity CRF."""
        levels = FG_CRF[self.fidelity]
        low, high = self._fg_range()
        return max(low, levels[-1] - 6), min(high, levels[0] + 12)

    def stream_extra(self, quality: int, background: dict[str, object]) -> dict[str, object]:
        """The stream config's `extra` at `quality`, with the background layer's own fields."""
        fg, bg = self.crfs(quality)
        offline = self.latency == "offline"
        return {
            "fidelity": self.fidelity,
            "background": self.background,
            "block": BLOCK,
            "fill": "hold" if self.fill == "recon" and offline else self.fill,
            **({"latency": "offline"} if offline else {}),
            **({"matrix": self.matrix} if self.matrix != "bt601" else {}),
            "keep": self.kept_names(),
            "fg_crf": fg,
            "bg_crf": bg,
            "feather": self.feather,
            **({"max_background_error": float(self.max_background_error)} if self.max_background_error else {}),
            **background,
        }

    def kept_names(self) -> list[str]:
        return list(self.keep) + (["mask-video"] if self.mask_video is not None else [])

    @staticmethod
    def default_fidelity(latency: str) -> str:
        """The kept region's codec when none is asked: SVT-AV1 offline (18-27 % fewer bits than x265 at equal
        kept-region PSNR on every clip of the evaluation), x265 at zero latency (fast enough for live)."""
        return "av1" if latency == "offline" else "hevc"

    @classmethod
    def for_files(cls, *, fidelity: str | None = None, latency: str = "offline", **fields: Any) -> SelectiveOptions:
        """The options a file is encoded with (`streamcodec encode`, `encode_file`): offline latency by default.

        Args:
            fidelity: None picks `default_fidelity(latency)`; "learned" always runs at zero latency.
            latency: "offline" (the default for files) or "zero".
            fields: any other field of SelectiveOptions.
        """
        fidelity = fidelity or cls.default_fidelity(latency)
        return cls(fidelity=fidelity, latency="zero" if fidelity == "learned" else latency, **fields)

    def with_thread_budget(self, threads: int | None) -> SelectiveOptions:
        """A CPU budget (`--threads-per-job`): x265 gets `threads` threads, and 1 means no work beside the
        caller's thread (masks, plate and reconstruction in turn). None keeps the defaults. Same bytes either way."""
        return self if threads is None else replace(self, codec_threads=threads, parallel=threads > 1)


def feather_alpha(kept: Mask, feather: int) -> npt.NDArray[np.float32]:
    """The composite's weight of the fidelity layer: (H, W) float32 in 0..1, zero outside `kept`."""
    alpha = kept.astype(np.float32)
    if feather <= 0 or not kept.any():
        return alpha
    size = 2 * feather + 1
    # Replicated borders: a kept region touching the frame edge stays opaque there.
    eroded = cv2.erode(alpha, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.blur(eroded, (size, size), borderType=cv2.BORDER_REPLICATE), dtype=np.float32)


def composite(fidelity: Image, background: Image, kept: Mask, feather: int) -> Image:
    """alpha · fidelity + (1 − alpha) · background, as (H, W, 3) uint8."""
    return _blend(fidelity, background, *_weights(kept, feather))


def _weights(kept: Mask, feather: int) -> tuple[Mask, npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Where alpha is 1, and the feathered band (flat pixel indices, their alpha): all the blend needs."""
    alpha = feather_alpha(kept, feather)
    full = alpha >= 1.0
    band = np.flatnonzero((alpha > 0) & ~full)  # only the feathered band needs arithmetic
    return full, band, alpha.ravel()[band][:, None]


def _blend(fidelity: Image, background: Image, full: Mask, band: npt.NDArray[np.intp], alpha: npt.NDArray[np.float32]) -> Image:
    out = np.where(full[..., None], fidelity, background)
    if band.size:
        under = background.reshape(-1, 3)[band].astype(np.float32)
        over = fidelity.reshape(-1, 3)[band].astype(np.float32)
        out.reshape(-1, 3)[band] = np.clip(under + alpha * (over - under) + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(out, dtype=np.uint8)


class Compositor:
    """`composite` for a stream: the feathered weights are kept while the block mask stays the same."""

    def __init__(self, feather: int, block: int = BLOCK) -> None:
        self._feather, self._block = feather, block
        self._cached: tuple[bytes, tuple[Mask, npt.NDArray[np.intp], npt.NDArray[np.float32]]] | None = None

    def __call__(self, fidelity: Image, background: Image, blocks: Mask) -> Image:
        """Composite with the block mask `blocks` ((⌈H/block⌉, ⌈W/block⌉) bool): as `composite`, to the byte."""
        key = np.packbits(blocks).tobytes() + bytes(str(blocks.shape), "ascii")
        if self._cached is None or self._cached[0] != key:
            height, width = fidelity.shape[:2]
            kept = np.repeat(np.repeat(blocks, self._block, axis=0), self._block, axis=1)[:height, :width]
            self._cached = key, _weights(kept, self._feather)
        return _blend(fidelity, background, *self._cached[1])


#: x265 refuses pictures under 16 pixels a side (SVT-AV1 under 4): smaller frames are padded up to this.
MIN_FIDELITY_SIDE = 16


def fidelity_size(width: int, height: int) -> tuple[int, int]:
    """The size the fidelity layer (and plate) codes a frame of width x height at."""
    return max(MIN_FIDELITY_SIDE, width), max(MIN_FIDELITY_SIDE, height)


def fidelity_frame(rgb: Image) -> Image:
    """Pad a frame under `MIN_FIDELITY_SIDE` a side by repeating its edge (the decoder crops it back)."""
    height, width = rgb.shape[:2]
    coded_width, coded_height = fidelity_size(width, height)
    if (coded_width, coded_height) == (width, height):
        return rgb
    return np.pad(rgb, ((0, coded_height - height), (0, coded_width - width), (0, 0)), mode="edge")
