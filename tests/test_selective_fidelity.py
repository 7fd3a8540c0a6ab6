"""Selective mode's fidelity layer: one access unit per frame, forced keys, determinism, damage, fills."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamcodec.errors import CorruptStreamError, UnsupportedStreamError
from streamcodec.selective.fidelity import AV1_TEMPORAL_DELIMITER, FidelityDecoder, FidelityEncoder, is_random_access
from streamcodec.selective.fill import FILLS, FLAT_RGB, estimate_plate, fill_outside, outside_cells

skimage_data = pytest.importorskip("skimage.data")

CODECS = ["hevc", "av1"]
WIDTH, HEIGHT, COUNT = 160, 96, 10
KEYS = {0, 6}


def _frames(width: int = WIDTH, height: int = HEIGHT, count: int = COUNT) -> list[np.ndarray]:
    """A real photo panned 3 px per frame: content that inter prediction can follow."""
    photo = cv2.resize(skimage_data.astronaut(), (width + 3 * count, height), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(photo[:, 3 * i : 3 * i + width]) for i in range(count)]


def _encode(codec: str, frames: list[np.ndarray], keys: set[int] = KEYS, **kwargs: Any) -> list[bytes]:
    height, width = frames[0].shape[:2]
    with FidelityEncoder(width, height, 25, codec=codec, **kwargs) as encoder:
        return [encoder.encode(frame, i in keys) for i, frame in enumerate(frames)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module", params=CODECS)
def coded(request: pytest.FixtureRequest) -> tuple[str, list[np.ndarray], list[bytes]]:
    frames = _frames()
    return request.param, frames, _encode(request.param, frames)


def test_each_frame_gives_one_access_unit_at_once_and_keyframes_only_where_asked(coded: tuple[str, list, list]) -> None:
    codec, frames, access_units = coded
    assert len(access_units) == len(frames) and all(access_units)
    assert [is_random_access(codec, au) for au in access_units] == [i in KEYS for i in range(COUNT)]
    # Zero delay on the way back too: each access unit decodes to its own picture on its own.
    decoder = FidelityDecoder(codec, width=WIDTH, height=HEIGHT)
    for frame, access_unit in zip(frames, access_units, strict=True):
        assert _psnr(decoder.decode(access_unit), frame) > 28


def test_round_trip_is_identical_across_runs_and_decoder_threads(coded: tuple[str, list, list]) -> None:
    codec, frames, access_units = coded
    assert _encode(codec, frames) == access_units
    outputs = []
    for threads in (1, 1, 3):
        decoder = FidelityDecoder(codec, width=WIDTH, height=HEIGHT, threads=threads)
        outputs.append(np.stack([decoder.decode(au) for au in access_units]))
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


def test_av1_units_leave_out_the_temporal_delimiter_and_units_with_it_decode_the_same() -> None:
    frames = _frames()
    units = _encode("av1", frames)
    assert not any(unit.startswith(AV1_TEMPORAL_DELIMITER) for unit in units)
    assert [is_random_access("av1", unit) for unit in units] == [i in KEYS for i in range(COUNT)]
    bare, delimited = FidelityDecoder("av1", width=WIDTH, height=HEIGHT), FidelityDecoder("av1", width=WIDTH, height=HEIGHT)
    for unit in units:  # as streams written before carry them
        np.testing.assert_array_equal(bare.decode(unit), delimited.decode(AV1_TEMPORAL_DELIMITER + unit))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_access_unit_raises_and_decoding_recovers_at_the_next_keyframe(
    coded: tuple[str, list, list], damage: str
) -> None:
    codec, _, access_units = coded
    decoder = FidelityDecoder(codec)
    clean = [decoder.decode(au) for au in access_units]
    # Damage the codec notices (a cut header, junk, nothing); a cut or flip inside the coded data
    # decodes silently to wrong pixels: our packet CRC catches that, not this layer.
    bad = {"truncated": access_units[3][:6], "garbage": bytes(range(256)) * 4, "empty": b""}[damage]
    decoder = FidelityDecoder(codec)
    for i in range(3):
        assert np.array_equal(decoder.decode(access_units[i]), clean[i])
    with pytest.raises(CorruptStreamError, match=f"fidelity {codec} access unit"):
        decoder.decode(bad)
    for i in (4, 5):  # they predict from the damaged frame: refused, not shown wrong
        with pytest.raises(CorruptStreamError, match="resumes at the next keyframe"):
            decoder.decode(access_units[i])
    for i in range(6, COUNT):
        assert np.array_equal(decoder.decode(access_units[i]), clean[i])


def test_decoder_refuses_to_start_between_keyframes(coded: tuple[str, list, list]) -> None:
    codec, _, access_units = coded
    with pytest.raises(CorruptStreamError, match="resumes at the next keyframe"):
        FidelityDecoder(codec).decode(access_units[2])


@pytest.mark.parametrize("codec", CODECS)
def test_kept_region_quality_is_close_to_whole_frame_coding_at_the_same_crf(codec: str) -> None:
    frames = _frames()
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[16:80, 48:112] = True
    filled = [fill_outside(frame, mask, "flat") for frame in frames]
    results = []
    for sources in (frames, filled):
        decoder = FidelityDecoder(codec)
        decoded = [decoder.decode(au) for au in _encode(codec, sources)]
        kept = _psnr(np.stack([d[mask] for d in decoded]), np.stack([f[mask] for f in frames]))
        results.append((kept, sum(map(len, _encode(codec, sources)))))
    (whole_psnr, whole_bytes), (filled_psnr, filled_bytes) = results
    assert filled_psnr > whole_psnr - 1.0
    assert filled_bytes < whole_bytes


@pytest.mark.parametrize("codec", CODECS)
def test_odd_sizes_are_padded_and_cropped_back(codec: str) -> None:
    frames = _frames(width=75, height=43, count=3)
    decoder = FidelityDecoder(codec, width=75, height=43)
    decoded = [decoder.decode(au) for au in _encode(codec, frames, keys={0})]
    assert decoded[0].shape == (43, 75, 3) and _psnr(decoded[-1], frames[-1]) > 28


def test_encoder_checks_its_arguments() -> None:
    with pytest.raises(UnsupportedStreamError, match="'vp9' is unknown"):
        FidelityEncoder(64, 48, 25, codec="vp9")
    with pytest.raises(ValueError, match="crf/qp 99"):
        FidelityEncoder(64, 48, 25, crf=99)
    with FidelityEncoder(64, 48, 25) as encoder:
        with pytest.raises(ValueError, match="first frame"):
            encoder.encode(np.zeros((48, 64, 3), np.uint8), keyframe=False)
        with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"):
            encoder.encode(np.zeros((48, 63, 3), np.uint8), keyframe=True)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(FILLS),
    st.sampled_from([1, 8, 16]),
    st.floats(0.0, 0.6),
)
def test_fill_leaves_the_kept_region_untouched_and_fills_whole_cells_outside(
    seed: int, how: str, block: int, share: float
) -> None:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    mask = rng.random((37, 50)) < share * 0.05  # a few scattered kept pixels
    background = rng.integers(0, 256, rgb.shape, dtype=np.uint8)
    filled = fill_outside(rgb, mask, how, background, block=block)
    assert np.array_equal(filled[mask], rgb[mask])
    outside = outside_cells(mask, block)
    assert np.array_equal(filled[~outside], rgb[~outside])  # cells holding a kept pixel stay whole
    if how == "flat":
        assert (filled[outside] == FLAT_RGB).all()
    elif how == "background":
        assert np.array_equal(filled[outside], background[outside])


def test_flat_fill_costs_far_less_than_the_whole_frame() -> None:
    frames = _frames()
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[32:64, 64:96] = True
    whole = sum(map(len, _encode("hevc", frames)))
    flat = sum(map(len, _encode("hevc", [fill_outside(f, mask, "flat") for f in frames])))
    assert flat < 0.6 * whole  # 7 % of the area kept; CRF spends a little more on simpler frames


def test_fill_checks_its_arguments() -> None:
    rgb, mask = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool)
    with pytest.raises(ValueError, match="'background' needs"):
        fill_outside(rgb, mask, "background")
    with pytest.raises(ValueError, match="how 'noise'"):
        fill_outside(rgb, mask, "noise")
    assert estimate_plate([rgb, rgb + 2, rgb + 4]).max() == 2


def _yuv_frames(count: int = 3, width: int = 64, height: int = 48) -> list[Any]:
    """Decoded-like yuv420p frames of a real photo, as a demuxer gives them."""
    import av

    from streamcodec.selective.fidelity import rgb_to_frame

    return [av.VideoFrame.from_ndarray(rgb_to_frame(f).to_ndarray(), format="yuv420p") for f in _frames(width, height, count)]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_merge_takes_the_kept_blocks_luma_and_chroma_from_inside(rows: int, cols: int, seed: int) -> None:
    from streamcodec.selective.planes import merge

    rng = np.random.default_rng(seed)
    height, width = rows * 16, cols * 16
    inside, outside = (rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for _ in range(2))
    blocks = rng.random((rows, cols)) < 0.5
    out = merge(inside, outside, blocks)
    y, chroma = out[:height], out[height:].reshape(2, height // 2, width // 2)
    want_y = np.where(np.kron(blocks, np.ones((16, 16), bool)), inside[:height], outside[:height])
    cells = np.kron(blocks, np.ones((8, 8), bool))
    for plane, got in enumerate(chroma):
        source = [p[height:].reshape(2, height // 2, width // 2)[plane] for p in (inside, outside)]
        np.testing.assert_array_equal(got, np.where(cells, *source))
    np.testing.assert_array_equal(y, want_y)


def test_a_source_frame_stands_in_only_when_it_converts_to_the_very_rgb() -> None:
    import av

    from streamcodec.selective.fidelity import frame_to_rgb
    from streamcodec.selective.planes import source_matrix, usable_source

    frame = _yuv_frames(1)[0]
    rgb = frame_to_rgb(frame)
    assert usable_source(frame, rgb)
    changed = rgb.copy()
    changed[5, 5, 1] ^= 1
    assert not usable_source(frame, changed)  # some other conversion made this RGB
    assert not usable_source(frame.reformat(format="yuv444p"), rgb)
    odd = av.VideoFrame.from_ndarray(np.zeros((27, 64), np.uint8), format="yuv420p")  # 18 rows: not a multiple of 4
    assert not usable_source(odd, frame_to_rgb(odd))
    assert not usable_source(None, rgb)
    hd = frame.reformat(format="yuv420p")  # the same planes, read by BT.709 instead
    hd_rgb = frame_to_rgb(hd, "bt709")
    assert usable_source(hd, hd_rgb, "bt709") and not usable_source(hd, hd_rgb)
    assert (source_matrix(hd, hd_rgb), source_matrix(frame, rgb)) == ("bt709", "bt601")


def test_planes_are_coded_as_given_and_a_wrong_shape_is_refused() -> None:
    from streamcodec.selective.fidelity import frame_to_rgb
    from streamcodec.selective.planes import source_planes

    frames = _yuv_frames(3)
    rgbs = [frame_to_rgb(f) for f in frames]
    pictures = []
    for inputs in ([source_planes(f) for f in frames], rgbs):
        with FidelityEncoder(64, 48, 25, codec="hevc", qp=0) as encoder:
            units = [encoder.encode(p, i == 0) for i, p in enumerate(inputs)]
            with pytest.raises(ValueError, match="fidelity planes must be"):
                encoder.encode(source_planes(frames[0])[:-8], False)
        decoder = FidelityDecoder("hevc", width=64, height=48)
        pictures.append([decoder.decode(unit) for unit in units])
    # QP 0 keeps its input almost exactly: the planes come back as the source's own picture, while the same
    # picture given as RGB first goes through RGB → 4:2:0 again, which loses a few dB by itself.
    for planes_out, rgb_out, rgb in zip(*pictures, rgbs, strict=True):
        assert _psnr(planes_out, rgb) > _psnr(rgb_out, rgb) + 2 > 40
