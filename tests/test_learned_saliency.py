"""The learned fidelity layer's saliency split (issue 22): today's bytes without a map, today's decoder with one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from streamcodec import bitstream
from streamcodec.entropy import context
from streamcodec.selective.learned import (
    LearnedDecoder,
    LearnedEncoder,
    cell_channels,
    cell_wants,
    keep_cells,
)

WIDTH, HEIGHT, FRAMES, LEVEL = 128, 96, 3, 4
GRID = (HEIGHT // 16, WIDTH // 16)


@pytest.fixture(scope="module")
def frames() -> list[npt.NDArray[np.uint8]]:
    """A textured picture drifting right, with a bright "face" patch: (96, 128, 3) uint8 each."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    out = []
    for t in range(FRAMES):
        base = 128 + 60 * np.sin((x + 3 * t) / 7.0) * np.cos(y / 9.0)
        rgb = np.stack([base, np.roll(base, 11, axis=1), 255 - base], axis=-1)
        rgb[32:64, 48:80] = 200 + 40 * np.sin((x[32:64, 48:80] + y[32:64, 48:80] + 5 * t) / 3.0)[..., None]
        out.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return out


BLOCKS = np.ones(GRID, dtype=bool)  # all kept: no center cells outside to pay for in the intra frame
SALIENCY = np.where(np.pad(np.ones((2, 2), bool), ((2, 2), (3, 3))), -6.0, 0.0).astype(np.float32)


def code(
    frames: list[npt.NDArray[np.uint8]], saliency: npt.NDArray[np.float32] | None, level: int = LEVEL
) -> tuple[list[bytes], LearnedEncoder]:
    """The sections of `frames` (a keyframe first) at GC `level`, and the encoder that coded them."""
    encoder = LearnedEncoder(WIDTH, HEIGHT, "gc-small", level, "onnxruntime")
    return [encoder.encode(rgb, BLOCKS, i == 0, saliency) for i, rgb in enumerate(frames)], encoder


def test_without_a_map_the_sections_are_todays(frames: list[npt.NDArray[np.uint8]]) -> None:
    sections, encoder = code(frames, None)
    reference = None
    for index, (rgb, section) in enumerate(zip(frames, sections, strict=True)):
        sym = encoder.gc.analyze(rgb)[: encoder.channels].copy()
        sym[:, ~keep_cells(BLOCKS, GRID)] = 2  # today's encoder: the center outside the keep cells, nothing else
        payload, _ = context.encode_frame(sym, None if index == 0 else reference, encoder.gc.model.tables)
        assert section == bitstream.pack_latents(encoder.channels, payload)
        reference = sym


def test_a_split_stream_decodes_with_todays_decoder_to_the_encoders_symbols(frames: list[npt.NDArray[np.uint8]]) -> None:
    sections, encoder = code(frames, SALIENCY)
    decoder = LearnedDecoder(encoder.gc.model.entry.model_id, LEVEL, (WIDTH, HEIGHT), "onnxruntime")
    for index, section in enumerate(sections):
        assert bitstream.unpack_latents(section)[0] == encoder.channels  # the config's K, as without a map
        decoder.decode(section, index == 0)
    assert encoder.last_symbols is not None and decoder.last_symbols is not None
    np.testing.assert_array_equal(decoder.last_symbols, encoder.last_symbols)


def test_the_split_sends_salient_cells_k_channels_and_the_rest_half_for_fewer_bytes(frames: list[npt.NDArray[np.uint8]]) -> None:
    sections, encoder = code(frames, SALIENCY)
    plain, _ = code(frames, None)
    assert encoder.last_counts is not None
    np.testing.assert_array_equal(encoder.last_counts, np.where(SALIENCY < 0, encoder.channels, encoder.channels // 2))
    assert sum(map(len, sections)) < sum(map(len, plain))


def test_salient_cells_decode_closer_to_the_source_than_at_the_level_below(frames: list[npt.NDArray[np.uint8]]) -> None:
    """The split at level L costs less than plain L (above); its salient cells beat plain L-1's, the others stay near."""
    pixels = np.kron(SALIENCY < 0, np.ones((16, 16), dtype=bool))
    errors = []
    for level, saliency in ((LEVEL, SALIENCY), (LEVEL - 1, None)):
        sections, encoder = code(frames, saliency, level)
        decoder = LearnedDecoder(encoder.gc.model.entry.model_id, level, (WIDTH, HEIGHT), "onnxruntime")
        pictures = [decoder.decode(section, i == 0) for i, section in enumerate(sections)]
        squares = [(picture.astype(np.float64) - rgb) ** 2 for picture, rgb in zip(pictures, frames, strict=True)]
        errors.append((np.mean([e[pixels].mean() for e in squares]), np.mean([e[~pixels].mean() for e in squares])))
    (split_salient, split_other), (below_salient, below_other) = errors
    assert split_salient < below_salient
    assert split_other < 1.25 * below_other


def test_the_split_is_deterministic(frames: list[npt.NDArray[np.uint8]]) -> None:
    assert code(frames[:2], SALIENCY)[0] == code(frames[:2], SALIENCY)[0]


def test_cell_channels_double_per_six_qp_and_stay_in_range() -> None:
    keep = np.ones((4, 4), dtype=bool)
    wants = cell_wants(np.array([[-6.0] * 4, [0.0] * 4, [6.0] * 4, [60.0] * 4], dtype=np.float32), keep)
    counts = cell_channels(wants, 4.0, 16)
    assert counts[0].mean() == 8 and counts[1].mean() == 4 and counts[2].mean() == 2 and counts[3].min() == 1
    assert cell_channels(wants, 100.0, 16).max() == 16
    assert (cell_channels(cell_wants(np.zeros((4, 4), np.float32), ~keep), 4.0, 16) == 0).all()


def test_a_map_off_the_latent_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="saliency map"):
        cell_wants(np.zeros((3, 3), np.float32), np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="not finite"):
        cell_wants(np.full((4, 4), np.nan, np.float32), np.ones((4, 4), dtype=bool))
