"""SVT-AV1 with its ROI map: the fidelity layer's AV1 encoder driven through a thin ctypes binding.

FFmpeg's libsvtav1 wrapper drops regions-of-interest side data, and SVT-AV1's ROI map has no
`svtav1-params` name, so this binds the libSvtAv1Enc that PyAV bundles (4.1.0: the layouts below
are that version's, and the output header's size checks them) and hands SVT each picture with a
`SvtAv1RoiMapEvt`: a segment id per 64x64 superblock, raster order, and a qindex delta per segment
(at most 8). Without ROI the options are the fidelity layer's own (`codec_specs._svtav1_options`)
and the bytes are FidelityEncoder's.

    roi (rows, cols) float32, QP offsets per 16-px block (negative: more bits)
        ─most negative of each 4x4 blocks─▶ (ceil(H/64), ceil(W/64)) offsets
        ─+ lift, × 4 qindex, ≤ 8 levels─▶ segment map + seg_qp ─▶ SvtAv1RoiMapEvt ─▶ libSvtAv1Enc

Why the lift: SVT-AV1 4.1 quantizes a segment at base qindex + its delta, but its rate-distortion
decisions keep the frame's λ, so a negative delta buys bits without buying quality (docs/selective.md,
issue 22). With `lift` L > 0 the whole stream runs at CRF − L (the finer quantizer and its λ), and
every superblock gets (offset + L) × 4 qindex on top: a superblock at offset −L is coded as CRF − L
throughout, one at offset 0 keeps CRF's quantizer. Offsets are in CRF steps (SVT maps CRF c to
qindex 4c).

SVT reads pictures and ROI events on its own threads, so every buffer handed to it is kept alive until
the encoder closes. Nothing imports this module at load time: the fidelity layer is to import it lazily, only
when ROI is asked for (not wired in yet).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .codec_specs import CODEC_OPTIONS, CODECS, LATENCIES, PRESETS
from .colour import MATRICES, even, rgb_to_frame

__all__ = ["BLOCK", "SUPERBLOCK", "SvtRoiEncoder", "roi_segments", "superblock_offsets"]

Image = npt.NDArray[np.uint8]
#: The caller's ROI block and SVT-AV1's ROI superblock, in pixels.
BLOCK, SUPERBLOCK = 16, 64
#: qindex per CRF step: SVT-AV1 codes CRF c at qindex 4c (its quantizer_to_qindex table, c < 63).
QINDEX_PER_STEP = 4
MAX_SEGMENTS = 8
#: The temporal delimiter OBU SVT starts each unit with; left out as `fidelity.AV1_TEMPORAL_DELIMITER` is (not imported:
#: fidelity may load this module).
_TEMPORAL_DELIMITER = b"\x12\x00"

# SVT-AV1 4.1.0: enable_roi_map has no parameter name; it is the config byte before tf_strength (449).
_ENABLE_ROI_MAP, _ROI_MAP_EVENT, _EOS, _KEY, _AUTO = 448, 2, 1, 3, 0xFF
_EMPTY_QUEUE = 0x80002033 - (1 << 32)  # EB_NoErrorEmptyQueue as the library's int32


class _Header(ctypes.Structure):  # EbBufferHeaderType
    _fields_ = [("size", ctypes.c_uint32), ("p_buffer", ctypes.c_void_p), ("n_filled_len", ctypes.c_uint32),
                ("n_alloc_len", ctypes.c_uint32), ("p_app_private", ctypes.c_void_p), ("wrapper_ptr", ctypes.c_void_p),
                ("n_tick_count", ctypes.c_uint32), ("dts", ctypes.c_int64), ("pts", ctypes.c_int64),
                ("temporal_layer_index", ctypes.c_uint8), ("qp", ctypes.c_uint32), ("avg_qp", ctypes.c_uint32),
                ("pic_type", ctypes.c_int), ("sse", ctypes.c_uint64 * 3), ("flags", ctypes.c_uint32),
                ("ssim", ctypes.c_double * 3), ("metadata", ctypes.c_void_p)]  # fmt: skip


class _Picture(ctypes.Structure):  # EbSvtIOFormat: the three planes and their strides, the rest left 0
    _fields_ = [("planes", ctypes.c_void_p * 3), ("strides", ctypes.c_uint32 * 3), ("rest", ctypes.c_uint8 * 64)]


class _RoiEvent(ctypes.Structure):  # SvtAv1RoiMapEvt
    _fields_ = [("start_picture_number", ctypes.c_uint64), ("b64_seg_map", ctypes.c_void_p),
                ("seg_qp", ctypes.c_int16 * 8), ("max_seg_id", ctypes.c_int8), ("next", ctypes.c_void_p)]  # fmt: skip


class _PrivData(ctypes.Structure):  # EbPrivDataNode; for ROI_MAP_EVENT the library wants size = sizeof(pointer)
    _fields_ = [("node_type", ctypes.c_int), ("data", ctypes.c_void_p), ("size", ctypes.c_uint32), ("next", ctypes.c_void_p)]


@functools.cache
def _library() -> ctypes.CDLL:
    import av

    found = sorted(glob.glob(str(Path(av.__file__).parent.parent / "av.libs" / "libSvtAv1Enc*")))
    if not found:
        raise RuntimeError("PyAV's bundled libSvtAv1Enc was not found next to the av package (av.libs)")
    lib = ctypes.CDLL(found[0])
    lib.svt_av1_enc_init_handle.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.svt_av1_enc_parse_parameter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.svt_av1_enc_set_parameter.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    for name in ("svt_av1_enc_init", "svt_av1_enc_deinit", "svt_av1_enc_deinit_handle"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.svt_av1_enc_send_picture.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Header)]
    lib.svt_av1_enc_get_packet.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_Header)), ctypes.c_uint8]
    lib.svt_av1_enc_release_out_buffer.argtypes = [ctypes.POINTER(ctypes.POINTER(_Header))]
    return lib


def superblock_offsets(roi: npt.NDArray[np.float32], width: int, height: int) -> npt.NDArray[np.float32]:
    """Reduce a 16-px block map to SVT's 64x64 superblocks: each takes its most negative block's offset.

    The most negative, not the mean: a superblock that holds any of a face codes all of it finely.

    Args:
        roi: (ceil(height / 16), ceil(width / 16)) float32 QP offsets, negative: more bits.
        width, height: the frame size in pixels.
    Returns:
        (ceil(height / 64), ceil(width / 64)) float32 offsets.
    """
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    if roi.shape != (rows, cols) or not np.all(np.isfinite(roi)):
        raise ValueError(f"ROI map must be ({rows}, {cols}) finite offsets per {BLOCK}-px block, got {roi.shape}")
    per = SUPERBLOCK // BLOCK
    padded = np.zeros((-(-rows // per) * per, -(-cols // per) * per), dtype=np.float32)
    padded[:rows, :cols] = roi
    return padded.reshape(padded.shape[0] // per, per, padded.shape[1] // per, per).min(axis=(1, 3))


def roi_segments(offsets: npt.NDArray[np.float32], lift: float) -> tuple[npt.NDArray[np.uint8], list[int]]:
    """Superblock offsets → SVT's segment map and qindex deltas (segment 0 the highest delta, as SVT's app orders them).

    Args:
        offsets: (sb_rows, sb_cols) float32 offsets in CRF steps (`superblock_offsets`).
        lift: CRF steps the stream runs below its CRF (see the module docstring).
    Returns:
        (sb_rows, sb_cols) uint8 segment ids in raster order, and the deltas of segments 0.. (≤ 8, descending).
    """
    deltas = np.clip(np.rint((offsets + lift) * QINDEX_PER_STEP), -255, 255).astype(np.int16)
    levels = np.unique(deltas)[::-1]
    if len(levels) > MAX_SEGMENTS:  # more levels than segments: snap each to one of 8 evenly spread values
        levels = np.unique(np.rint(np.linspace(deltas.min(), deltas.max(), MAX_SEGMENTS)).astype(np.int16))[::-1]
        deltas = levels[np.abs(deltas[..., None] - levels).argmin(axis=-1)]
    segment_map = np.zeros(deltas.shape, dtype=np.uint8)
    for segment, level in enumerate(levels):
        segment_map[deltas == level] = segment
    return segment_map, [int(level) for level in levels]


def _svt_params(
    width: int, height: int, frame_rate: Fraction, rate: float, preset: str, threads: int, offline: bool
) -> dict[str, str]:
    """The fidelity layer's SVT-AV1 options (CRF `rate`) as the library's parameter names and values."""
    options = CODEC_OPTIONS["av1"](0, None, preset, threads, offline)
    params = dict(item.split("=", 1) for item in options["svtav1-params"].split(":"))
    return {
        "width": str(width),
        "height": str(height),
        "fps-num": str(frame_rate.numerator),
        "fps-denom": str(frame_rate.denominator),
        **params,
        "crf": f"{rate:g}",
        "preset": preset,
    }


class SvtRoiEncoder:
    """FidelityEncoder's AV1 half with SVT-AV1's ROI map: the same options, calls and access units (dav1d decodes them)."""

    def __init__(
        self,
        width: int,
        height: int,
        frame_rate: Fraction | int,
        *,
        crf: float | None = None,
        preset: str | None = None,
        threads: int = 1,
        latency: str = "zero",
        matrix: str = "bt601",
        lift: float = 0,
    ) -> None:
        """Prepare the encoder (the library opens at the first frame, when it learns whether ROI is on).

        Args:
            width, height, frame_rate, crf, preset, threads, latency, matrix: as for `FidelityEncoder` with codec
                "av1"; `crf` may also be fractional (SVT takes quarter steps), for rate-matched comparisons.
            lift: CRF steps the stream runs below `crf` once ROI is on, 0..`crf` - 1 (module docstring); the
                most negative offset the caller will give is the natural choice.
        """
        spec = CODECS["av1"]
        rate = spec.default_crf if crf is None else crf
        low, high = spec.crf_range
        sizes_ok = width >= 2 and height >= 2 and threads >= 1 and latency in LATENCIES
        if not low <= rate <= high or not 0 <= lift <= rate - low or not sizes_ok:
            raise ValueError(
                f"SVT-AV1 ROI encoder: crf {rate} (allowed {low}..{high}), lift {lift} (0..crf-{low}), size {width}x{height}, "
                f"threads {threads}, latency {latency!r} (one of {', '.join(LATENCIES)})"
            )
        if matrix not in MATRICES or (preset is not None and preset not in PRESETS["av1"]):
            raise ValueError(f"SVT-AV1 ROI encoder: matrix {matrix!r} or preset {preset!r} is not known")
        self.codec, self.width, self.height, self.matrix = "av1", width, height, matrix
        self.offline, self.lift = latency == "offline", lift
        preset = preset or (spec.offline_preset if self.offline else spec.default_preset)
        self.config: dict[str, Any] = {"codec": "av1", "crf": rate, "preset": preset}
        self._params = _svt_params(even(width), even(height), Fraction(frame_rate), rate, preset, threads, self.offline)
        self._handle: ctypes.c_void_p | None = None
        self._roi = False
        self._alive: list[object] = []  # every buffer SVT may still read on its threads
        self._index, self._closed, self._eos = 0, False, False
        self._keyframes: list[bool] = []

    def _open(self, roi: bool) -> ctypes.c_void_p:
        os.environ.setdefault("SVT_LOG", "1")  # no config banner on stderr
        lib, handle = _library(), ctypes.c_void_p()
        config = (ctypes.c_uint8 * 65536)()  # the library fills its 4.1.0 config (~530 B)
        self._alive.append(config)
        if lib.svt_av1_enc_init_handle(ctypes.byref(handle), config) != 0:
            raise RuntimeError("svt_av1_enc_init_handle failed")
        params = dict(self._params)
        if roi:
            params["crf"] = f"{float(params['crf']) - self.lift:g}"
        for key, value in params.items():
            if lib.svt_av1_enc_parse_parameter(config, key.encode(), value.encode()) != 0:
                raise ValueError(f"SVT-AV1 rejects {key}={value}")
        config[_ENABLE_ROI_MAP] = int(roi)
        if lib.svt_av1_enc_set_parameter(handle, config) != 0 or lib.svt_av1_enc_init(handle) != 0:
            raise RuntimeError("SVT-AV1 refused the configuration")
        self._roi = roi
        return handle

    def _planes(self, picture: Image) -> list[npt.NDArray[np.uint8]]:
        """I420 planes of an RGB frame (the fidelity layer's conversion) or of given planes."""
        width, height = even(self.width), even(self.height)
        if picture.ndim == 2:
            if (
                picture.dtype != np.uint8
                or picture.shape != (self.height * 3 // 2, self.width)
                or self.height % 4
                or self.width % 2
            ):
                raise ValueError(
                    f"planes must be ({self.height * 3 // 2}, {self.width}) uint8, got {picture.shape} {picture.dtype}"
                )
            yuv = picture
        else:
            if picture.dtype != np.uint8 or picture.shape != (self.height, self.width, 3):
                raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {picture.shape} {picture.dtype}")
            yuv = rgb_to_frame(picture, self.matrix).to_ndarray()
        chroma = yuv[height:].reshape(-1, width // 2)
        return [np.ascontiguousarray(plane) for plane in (yuv[:height], *np.split(chroma, 2))]

    def _event(self, roi: npt.NDArray[np.float32]) -> int:
        """The address of a private-data node carrying `roi` as this picture's ROI map event."""
        segment_map, seg_qp = roi_segments(superblock_offsets(roi, self.width, self.height), self.lift)
        seg_map = np.ascontiguousarray(segment_map)
        event = _RoiEvent(self._index, seg_map.ctypes.data, (ctypes.c_int16 * 8)(*seg_qp), len(seg_qp) - 1, None)
        node = _PrivData(_ROI_MAP_EVENT, ctypes.addressof(event), ctypes.sizeof(ctypes.c_void_p), None)
        self._alive += [seg_map, event, node]
        return ctypes.addressof(node)

    def send(self, rgb: Image, keyframe: bool, roi: npt.NDArray[np.float32] | None = None) -> list[bytes]:
        """Give the next frame; returns the access units finished, oldest first (offline: often none).

        Args:
            rgb: (H, W, 3) uint8 RGB, or the picture's I420 planes ((H * 3 // 2, W) uint8).
            keyframe: make this a key frame with a sequence header; the first frame must be one.
            roi: (ceil(H / 16), ceil(W / 16)) float32 QP offsets in CRF steps per 16-px block (negative: more
                bits), or None. The first frame decides: ROI given there opens SVT with its ROI map (and `lift`),
                and a later frame without one keeps the last map; None there gives FidelityEncoder's bytes,
                and a later map is then refused.
        """
        if self._closed:
            raise ValueError("SVT-AV1 ROI encoder: send() after close()")
        if self._index == 0 and not keyframe:
            raise ValueError("SVT-AV1 ROI encoder: the first frame of a stream must be a keyframe")
        planes = self._planes(rgb)
        if self._handle is None:
            self._handle = self._open(roi is not None)
        elif roi is not None and not self._roi:
            raise ValueError("SVT-AV1 ROI encoder: ROI map on a stream opened without one (give one on the first frame)")
        width = even(self.width)
        picture = _Picture(
            (ctypes.c_void_p * 3)(*[p.ctypes.data for p in planes]), (ctypes.c_uint32 * 3)(width, width // 2, width // 2)
        )
        header = _Header(size=ctypes.sizeof(_Header), n_filled_len=sum(p.nbytes for p in planes), pts=self._index)
        header.p_buffer, header.pic_type = ctypes.addressof(picture), _KEY if keyframe else _AUTO
        if roi is not None:
            header.p_app_private = self._event(np.asarray(roi, dtype=np.float32))
        self._alive += [planes, picture, header]
        self._keyframes.append(keyframe)
        self._index += 1
        if _library().svt_av1_enc_send_picture(self._handle, ctypes.byref(header)) != 0:
            raise RuntimeError(f"SVT-AV1 refused frame {self._index - 1}")
        return self._receive(wait=not self.offline)

    def _receive(self, wait: bool, end: bool = False) -> list[bytes]:
        """The access units SVT has ready; `wait`: block for the one due (zero latency); `end`: all, to end of stream."""
        units: list[bytes] = []
        lib = _library()
        while not self._eos and (end or self._keyframes):
            block = end or (wait and not units)
            packet = ctypes.POINTER(_Header)()
            status = lib.svt_av1_enc_get_packet(self._handle, ctypes.byref(packet), int(block))
            if status == _EMPTY_QUEUE and not block:
                break
            if status != 0:
                raise RuntimeError(f"SVT-AV1 get_packet failed ({status & 0xFFFFFFFF:#x})")
            header = packet.contents
            if header.size != ctypes.sizeof(_Header):
                raise RuntimeError(f"SVT-AV1 output header of {header.size} B: not the 4.1.0 layout this binding knows")
            unit, pts, key = ctypes.string_at(header.p_buffer, header.n_filled_len), header.pts, header.pic_type == _KEY
            self._eos = bool(header.flags & _EOS)
            lib.svt_av1_enc_release_out_buffer(ctypes.byref(packet))
            if unit:
                units.append(self._checked(unit, pts, key))
        return units

    def _checked(self, unit: bytes, pts: int, key: bool) -> bytes:
        first = self._index - len(self._keyframes)
        if not self._keyframes or pts != first or key != self._keyframes[0]:
            raise RuntimeError(f"SVT-AV1 gave frame {pts} (key={key}, {len(unit)} B) where frame {first} was due")
        self._keyframes.pop(0)
        return unit[len(_TEMPORAL_DELIMITER) :] if unit.startswith(_TEMPORAL_DELIMITER) else unit

    def encode(self, rgb: Image, keyframe: bool, roi: npt.NDArray[np.float32] | None = None) -> bytes:
        """Code the next frame (latency "zero"): its access unit, as `FidelityEncoder.encode`."""
        if self.offline:
            raise ValueError("SVT-AV1 ROI encoder: an offline encoder takes send() and drain(), not encode()")
        units = self.send(rgb, keyframe, roi)
        if len(units) != 1:
            raise RuntimeError(f"SVT-AV1 gave {len(units)} access units for frame {self._index - 1} (want 1)")
        return units[0]

    def drain(self) -> list[bytes]:
        """End the stream: the access units still held back, oldest first; the encoder is then closed."""
        return self._finish(keep=True)

    def _finish(self, keep: bool) -> list[bytes]:
        if self._closed:
            return []
        self._closed = True
        if self._handle is None:
            return []
        lib = _library()
        end = _Header(size=ctypes.sizeof(_Header), flags=_EOS, pic_type=_AUTO)
        lib.svt_av1_enc_send_picture(self._handle, ctypes.byref(end))
        units = self._receive(wait=True, end=True)
        lib.svt_av1_enc_deinit(self._handle)
        lib.svt_av1_enc_deinit_handle(self._handle)
        self._handle, self._alive = None, []
        return units if keep else []

    def close(self) -> None:
        """End the stream, dropping what SVT still holds (`drain` first to keep it); idempotent."""
        self._finish(keep=False)

    def __enter__(self) -> SvtRoiEncoder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
