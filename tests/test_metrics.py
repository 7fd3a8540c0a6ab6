"""Metric code against known values: identical frames, a constant offset, and ffmpeg's own filters."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamcodec.eval.quality import (
    ClipQuality,
    frame_flicker,
    mask_iou,
    masked_ms_ssim,
    masked_psnr,
    ssim,
    ssim_map,
)
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.metrics import BLOCK_ERROR_BOUND, QualityAccumulator, block_errors, luma, ms_ssim, psnr

from .conftest import SAMPLE, require


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 192x128 crop of a real frame (the sample clip), so SSIM sees natural texture."""
    with Source(SAMPLE) as source:
        first = next(source.items(with_audio=False))
    assert isinstance(first, VideoFrame)
    return np.ascontiguousarray(first.rgb[100:228, 200:392])


def _distortions(photo: np.ndarray, tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    Image.fromarray(photo).save(tmp_path / "q.jpg", quality=15)
    return {
        "noise5": np.clip(photo + rng.normal(0, 5, photo.shape), 0, 255).astype(np.uint8),
        "jpeg15": np.asarray(Image.open(tmp_path / "q.jpg").convert("RGB")),
    }


def _ffmpeg_filters(a: np.ndarray, b: np.ndarray, tmp_path: Path) -> str:
    """Run ffmpeg's ssim and psnr filters on two RGB PNGs; returns its log (stderr)."""
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    command = [require("ffmpeg"), "-hide_banner", "-nostdin", "-i", str(tmp_path / "a.png"), "-i", str(tmp_path / "b.png"),
               "-lavfi", "[0:v][1:v]ssim;[0:v][1:v]psnr", "-f", "null", "-"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stderr


def test_identical_frames_give_infinite_psnr_and_unit_ssim(photo: np.ndarray) -> None:
    everywhere = np.ones(photo.shape[:2], dtype=bool)
    assert psnr(photo, photo) == math.inf
    assert masked_psnr(photo, photo, everywhere) == math.inf
    assert ms_ssim(photo, photo) == pytest.approx(1.0, abs=1e-6)
    assert masked_ms_ssim(photo, photo, everywhere) == pytest.approx(1.0, abs=1e-6)
    assert ssim(photo, photo) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_constant_offset_gives_psnr_of_20_log10_255_over_k(k: int) -> None:
    rng = np.random.default_rng(k)
    a = rng.integers(0, 256 - k, size=(48, 64, 3), dtype=np.uint8)  # no clipping once k is added
    b = a + np.uint8(k)
    expected = 20 * math.log10(255 / k)
    assert psnr(a, b) == pytest.approx(expected, abs=1e-9)
    assert masked_psnr(a, b, np.ones((48, 64), dtype=bool)) == pytest.approx(expected, abs=1e-9)


def test_psnr_matches_ffmpeg_psnr_filter_on_rgb(photo: np.ndarray, tmp_path: Path) -> None:
    # Fed RGB PNGs, ffmpeg's psnr filter works on planar GBR (a lossless reordering, no YUV
    # conversion); its "average" is the PSNR of the mean MSE over the three equal-size planes,
    # which is exactly our PSNR over all pixels and channels. It prints 6 decimals.
    for name, distorted in _distortions(photo, tmp_path).items():
        log = _ffmpeg_filters(photo, distorted, tmp_path)
        theirs = float(re.search(r"PSNR r:\S+ g:\S+ b:\S+ average:([0-9.]+)", log).group(1))  # type: ignore[union-attr]
        assert psnr(photo, distorted) == pytest.approx(theirs, abs=2e-6), name


def test_ssim_formula_matches_ffmpeg_ssim_filter_with_its_window(photo: np.ndarray, tmp_path: Path) -> None:
    # ffmpeg's ssim filter (from x264) uses 8x8 box windows every 4 pixels and normalises variances
    # by N-1 = 63 rather than our N = 64. With its window our formula must agree per channel to within
    # what that normalisation can change: it scales c2 by 63/64, moving SSIM by at most (1 - SSIM)/64.
    box = np.full(8, 1 / 8, dtype=np.float32)
    for name, distorted in _distortions(photo, tmp_path).items():
        log = _ffmpeg_filters(photo, distorted, tmp_path)
        found = re.search(r"SSIM R:([0-9.]+) \S+ G:([0-9.]+) \S+ B:([0-9.]+)", log)
        assert found is not None
        ours = ssim_map(photo, distorted, box)[::4, ::4].mean(axis=(0, 1))
        for channel, theirs in zip(ours, map(float, found.groups()), strict=True):
            assert abs(channel - theirs) <= (1 - theirs) / 64 + 2e-4, name


def test_gaussian_ssim_is_close_to_ffmpeg_ssim_filter(photo: np.ndarray, tmp_path: Path) -> None:
    # Our SSIM uses MS-SSIM's 11-tap Gaussian (σ = 1.5, about a 3x3 effective support), ffmpeg's an
    # 8x8 box; on moderate distortions (SSIM 0.75-0.9) the two windows measured 0.015-0.026 apart
    # (ours lower: the smaller window sees less averaged-out noise). 0.03 bounds that window effect.
    for name, distorted in _distortions(photo, tmp_path).items():
        theirs = float(re.search(r"All:([0-9.]+)", _ffmpeg_filters(photo, distorted, tmp_path)).group(1))  # type: ignore[union-attr]
        assert theirs > 0.75, name
        assert ssim(photo, distorted) == pytest.approx(theirs, abs=0.03), name


def test_masked_metrics_with_a_full_mask_equal_whole_frame_metrics(photo: np.ndarray, tmp_path: Path) -> None:
    distorted = _distortions(photo, tmp_path)["jpeg15"]
    everywhere = np.ones(photo.shape[:2], dtype=bool)
    assert masked_psnr(photo, distorted, everywhere) == pytest.approx(psnr(photo, distorted), abs=1e-9)
    assert masked_ms_ssim(photo, distorted, everywhere) == pytest.approx(ms_ssim(photo, distorted), abs=1e-6)


def test_masked_psnr_counts_only_pixels_inside_the_mask() -> None:
    a = np.full((32, 32, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[:, 16:] += 50  # damage only the right half
    left = np.zeros((32, 32), dtype=bool)
    left[:, :16] = True
    assert masked_psnr(a, b, left) == math.inf
    assert masked_psnr(a, b, ~left) == pytest.approx(20 * math.log10(255 / 50))
    assert masked_psnr(a, b, np.zeros((32, 32), dtype=bool)) is None


def test_flicker_is_zero_for_a_constant_error_and_k_for_alternating_error() -> None:
    rng = np.random.default_rng(1)
    source = [rng.integers(20, 200, size=(16, 16, 3), dtype=np.uint8) for _ in range(4)]
    shifted = [frame + np.uint8(7) for frame in source]  # wrong, but steadily so: no flicker
    blinking = [frame + np.uint8(5 * (t % 2)) for t, frame in enumerate(source)]  # ±5 every frame
    for t in range(1, 4):
        assert frame_flicker((source[t - 1], source[t]), (shifted[t - 1], shifted[t])) == 0.0
        assert frame_flicker((source[t - 1], source[t]), (blinking[t - 1], blinking[t])) == pytest.approx(5.0)
    quality = ClipQuality()
    for s, d in zip(source, blinking, strict=True):
        quality.add(s, d)
    summary = quality.summary()
    assert summary["flicker"] == pytest.approx(5.0)
    assert summary["psnr_kept_db"] is None and summary["background_flicker"] is None and summary["person_iou"] is None


def test_mask_iou_known_values() -> None:
    a = np.zeros((4, 4), dtype=bool)
    b = np.zeros((4, 4), dtype=bool)
    assert mask_iou(a, b) is None
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0


def test_frames_too_small_for_ms_ssim_get_psnr_and_a_reason() -> None:
    rng = np.random.default_rng(3)
    source = rng.integers(0, 256, size=(9, 17, 3), dtype=np.uint8)
    quality = QualityAccumulator()
    quality.add(source, source // 2)
    summary = quality.summary()
    assert summary["psnr_db"] == pytest.approx(psnr(source, source // 2)) and summary["ms_ssim"] is None
    assert quality.reasons == {"ms_ssim": "frames 17x9 are smaller than its 11x11 window"}
    big = QualityAccumulator()
    big.add(np.zeros((11, 11, 3), np.uint8), np.zeros((11, 11, 3), np.uint8))
    assert big.summary()["ms_ssim"] == pytest.approx(1.0) and big.reasons == {}


def test_a_person_sized_change_is_over_the_block_bound_while_whole_frame_psnr_stays_high(photo: np.ndarray) -> None:
    # One 16x16 square 40 levels brighter in every channel: BT.601 luma moves by exactly 40 there (its weights sum to 1).
    changed = photo.astype(np.int16)
    changed[32:48, 64:80] = np.clip(changed[32:48, 64:80] + 40, 0, 255)
    changed_u8 = changed.astype(np.uint8)
    errors = block_errors(luma(photo), luma(changed_u8))
    assert errors.shape == (8, 12)
    expected = np.abs(luma(changed_u8)[32:48, 64:80].astype(int) - luma(photo)[32:48, 64:80]).mean()
    assert errors[2, 4] == pytest.approx(expected) and errors[2, 4] > BLOCK_ERROR_BOUND
    assert np.count_nonzero(errors) == 1
    assert psnr(photo, changed_u8) > 35.0  # the whole frame hardly notices what a block shows plainly


def test_selective_bound_measures_with_the_shared_block_errors() -> None:
    from streamcodec.selective import bound

    assert bound.block_errors is block_errors and bound.luma is luma  # one implementation, old names kept
