"""Progressive mode's codec (Toderici et al. 2017) with the shipped `progressive-small` weights."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from streamcodec.errors import ModelError
from streamcodec.metrics import ms_ssim
from streamcodec.progressive import ProgressiveCodec, load_codec
from streamcodec.progressive.net import ProgressiveConfig, ProgressiveNet, binarize

data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine, more threads make these runs many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codec() -> ProgressiveCodec:
    return load_codec("progressive-small")


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    """Two photographs that are not training files (motorcycle_right is the other view of a training
    picture's stereo pair), cropped to sizes that are not multiples of 16."""
    ihc = np.asarray(data.immunohistochemistry())[100:301, 50:313]
    motorcycle = np.asarray(data.stereo_motorcycle()[1])[::2, ::2][20:213, 40:307]
    return [np.ascontiguousarray(ihc), np.ascontiguousarray(motorcycle)]


@pytest.fixture(scope="module")
def encoded(codec: ProgressiveCodec, pictures: list[np.ndarray]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Each picture's codes and the encoder's own picture after each iteration."""
    return [codec.encode_with_pictures(rgb) for rgb in pictures]


def test_encode_gives_one_bit_per_channel_cell_and_iteration(
    codec: ProgressiveCodec, pictures: list[np.ndarray], encoded: list[tuple[np.ndarray, list[np.ndarray]]]
) -> None:
    rgb, codes = pictures[0], encoded[0][0]
    assert codec.factor == 16
    assert codes.shape == (codec.iterations, codec.bits, math.ceil(rgb.shape[0] / 16), math.ceil(rgb.shape[1] / 16))
    assert codes.dtype == np.uint8
    assert set(np.unique(codes)) <= {0, 1}


def test_encode_and_decode_are_deterministic(
    codec: ProgressiveCodec, pictures: list[np.ndarray], encoded: list[tuple[np.ndarray, list[np.ndarray]]]
) -> None:
    rgb, (codes, own) = pictures[1], encoded[1]
    np.testing.assert_array_equal(codec.encode(rgb), codes)
    h, w = rgb.shape[:2]
    np.testing.assert_array_equal(codec.decode(codes, h, w), codec.decode(codes, h, w))
    np.testing.assert_array_equal(codec.decode(codes, h, w), own[-1])


def test_decoding_a_prefix_equals_the_encoders_own_picture(
    codec: ProgressiveCodec, pictures: list[np.ndarray], encoded: list[tuple[np.ndarray, list[np.ndarray]]]
) -> None:
    rgb, (codes, own) = pictures[0], encoded[0]
    h, w = rgb.shape[:2]
    all_at_once = codec.decode_all(codes, h, w)
    assert len(all_at_once) == codec.iterations
    for k in (1, codec.iterations // 2 + 1):
        decoded = codec.decode(np.ascontiguousarray(codes[:k]), h, w)
        assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, own[k - 1])
        np.testing.assert_array_equal(all_at_once[k - 1], own[k - 1])


def test_ms_ssim_never_decreases_with_iterations(
    pictures: list[np.ndarray], encoded: list[tuple[np.ndarray, list[np.ndarray]]]
) -> None:
    for rgb, (_, own) in zip(pictures, encoded, strict=True):
        scores = [ms_ssim(rgb, p) for p in own]
        assert all(b >= a for a, b in itertools.pairwise(scores)), scores
        assert scores[-1] > scores[0] + 0.02, scores


@pytest.mark.parametrize(("height", "width"), [(1, 1), (15, 17), (16, 16), (33, 47)])
def test_odd_sizes_are_padded_then_cropped(codec: ProgressiveCodec, height: int, width: int) -> None:
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    codes = codec.encode(rgb)
    assert codes.shape[2:] == (math.ceil(height / 16), math.ceil(width / 16))
    assert codec.decode(codes[:1], height, width).shape == (height, width, 3)


def test_decode_rejects_codes_that_do_not_fit(codec: ProgressiveCodec) -> None:
    good = np.zeros((1, codec.bits, 2, 3), dtype=np.uint8)
    codec.decode(good, 32, 48)
    with pytest.raises(ValueError, match="do not fit"):
        codec.decode(good, 64, 48)
    with pytest.raises(ValueError, match="do not fit"):
        codec.decode(np.zeros((codec.iterations + 1, codec.bits, 2, 3), dtype=np.uint8), 32, 48)
    with pytest.raises(ValueError, match="uint8 in"):
        codec.decode(good + 2, 32, 48)


def test_load_codec_refuses_a_model_of_another_kind() -> None:
    with pytest.raises(ModelError, match="not a progressive model"):
        load_codec("gc-small")


def test_training_binarizer_is_random_pm1_with_mean_y_and_straight_through_gradient() -> None:
    torch.manual_seed(0)
    y = torch.full((20000,), 0.5, requires_grad=True)
    b = binarize(y, stochastic=True)
    assert set(b.detach().unique().tolist()) == {-1.0, 1.0}
    assert abs(float(b.detach().mean()) - 0.5) < 0.03
    b.sum().backward()
    assert y.grad is not None and torch.all(y.grad == 1)
    assert binarize(torch.tensor([-0.1, 0.0, 0.2]), stochastic=False).tolist() == [-1.0, 1.0, 1.0]


def test_untrained_net_codes_and_pictures_have_the_documented_shapes() -> None:
    cfg = ProgressiveConfig(bits=8, iterations=3, enc_widths=(8, 16, 16, 16), dec_widths=(16, 16, 16, 8))
    codes, pictures = ProgressiveNet(cfg).eval()(torch.rand(2, 3, 32, 48))
    assert [c.shape for c in codes] == [(2, 8, 2, 3)] * 3
    assert [p.shape for p in pictures] == [(2, 3, 32, 48)] * 3
