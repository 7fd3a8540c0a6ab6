"""SVT-AV1 with its ROI map through the ctypes binding (streamcodec.selective.svt_roi)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder
from streamcodec.selective.svt_roi import SvtRoiEncoder, roi_segments, superblock_offsets

skimage_data = pytest.importorskip("skimage.data")

WIDTH, HEIGHT, COUNT = 192, 128, 8
KEYS = {0, 5}
#: The region the tests favour: the top-left 64x64 superblock, as 16-px blocks.
REGION = (slice(0, 4), slice(0, 4))


def _frames(count: int = COUNT) -> list[np.ndarray]:
    """A real photo panned 3 px per frame: content that inter prediction can follow."""
    photo = cv2.resize(skimage_data.astronaut(), (WIDTH + 3 * count, HEIGHT), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(photo[:, 3 * i : 3 * i + WIDTH]) for i in range(count)]


def _roi(offset: float) -> np.ndarray:
    roi = np.zeros((HEIGHT // 16, WIDTH // 16), dtype=np.float32)
    roi[REGION] = offset
    return roi


def _units(encoder: Any, frames: list[np.ndarray], roi: np.ndarray | None = None) -> list[bytes]:
    extra = {} if roi is None else {"roi": roi}
    units = [unit for i, frame in enumerate(frames) for unit in encoder.send(frame, i in KEYS, **extra)]
    return units + encoder.drain()


def _region_psnr(frames: list[np.ndarray], units: list[bytes]) -> float:
    decoder = FidelityDecoder("av1", width=WIDTH, height=HEIGHT)
    decoded = [decoder.decode(unit) for unit in units]
    errors = [(a[:64, :64].astype(np.float64) - b[:64, :64]) ** 2 for a, b in zip(frames, decoded, strict=True)]
    return float(10 * np.log10(255**2 / np.mean(errors)))


@pytest.mark.parametrize("latency", ["zero", "offline"])
def test_svt_roi_without_roi_gives_fidelity_encoders_bytes(latency: str) -> None:
    frames = _frames()
    reference = _units(FidelityEncoder(WIDTH, HEIGHT, 25, codec="av1", crf=40, latency=latency), frames)
    assert _units(SvtRoiEncoder(WIDTH, HEIGHT, 25, crf=40, latency=latency), frames) == reference


def test_svt_roi_encode_gives_one_access_unit_per_frame() -> None:
    frames = _frames()
    with SvtRoiEncoder(WIDTH, HEIGHT, 25, crf=40, lift=6) as encoder:
        units = [encoder.encode(frame, i in KEYS, _roi(-6)) for i, frame in enumerate(frames)]
    assert len(units) == COUNT and all(units)
    with pytest.raises(ValueError, match="send"):
        SvtRoiEncoder(WIDTH, HEIGHT, 25, latency="offline").encode(frames[0], True)


def test_svt_roi_map_decodes_and_raises_the_regions_psnr() -> None:
    frames = _frames()
    plain = _units(SvtRoiEncoder(WIDTH, HEIGHT, 25, crf=40, latency="offline"), frames)
    favoured = _units(SvtRoiEncoder(WIDTH, HEIGHT, 25, crf=40, latency="offline", lift=8), frames, _roi(-8))
    assert sum(map(len, favoured)) != sum(map(len, plain))
    assert _region_psnr(frames, favoured) > _region_psnr(frames, plain) + 0.5


def test_svt_roi_refuses_a_map_on_a_stream_opened_without_one() -> None:
    frames = _frames(2)
    with SvtRoiEncoder(WIDTH, HEIGHT, 25, crf=40) as encoder:
        encoder.encode(frames[0], True)
        with pytest.raises(ValueError, match="first frame"):
            encoder.encode(frames[1], False, _roi(-4))


def test_superblock_offsets_take_each_superblocks_most_negative_block() -> None:
    roi = np.zeros((9, 11), dtype=np.float32)  # 176x144: 3x3 superblocks, the last row and column partial
    roi[1, 5], roi[2, 6], roi[8, 10] = -3.0, -6.0, 2.0
    offsets = superblock_offsets(roi, 176, 144)
    assert offsets.shape == (3, 3)
    assert offsets[0, 1] == -6.0 and offsets[2, 2] == 0.0 and np.count_nonzero(offsets) == 1
    with pytest.raises(ValueError, match=r"\(9, 11\)"):
        superblock_offsets(roi[:8], 176, 144)


def test_roi_segments_order_deltas_descending_and_keep_at_most_eight() -> None:
    segment_map, seg_qp = roi_segments(np.array([[-6.0, 0.0], [0.0, -3.0]], dtype=np.float32), lift=6)
    assert seg_qp == [24, 12, 0]
    assert segment_map.tolist() == [[2, 0], [0, 1]]
    many = np.arange(-20, 0, dtype=np.float32).reshape(4, 5)
    segment_map, seg_qp = roi_segments(many, lift=0)
    assert len(seg_qp) <= 8 and seg_qp == sorted(seg_qp, reverse=True)
    assert segment_map.max() == len(seg_qp) - 1
