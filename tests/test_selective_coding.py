"""Selective mode's side information: keep mask and label map round-trip exactly, cheaply, and fail safely."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamcodec.errors import CorruptStreamError, ModelError
from streamcodec.selective import maskcode, sidecode
from streamcodec.selective.labelcode import decode_labels, encode_labels
from streamcodec.selective.labels import ColourTextureLabeler, OnnxLabeler, create_labeler
from streamcodec.selective.maskcode import block_mask, decode_mask, encode_mask, expand
from streamcodec.selective.options import Compositor, composite, feather_alpha

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_] | None]:
    shape = draw(shapes)
    fill = st.sampled_from(["random", "false", "true"])
    grids = []
    for _ in range(2):
        kind = draw(fill)
        grid = draw(hnp.arrays(np.bool_, shape)) if kind == "random" else np.full(shape, kind == "true")
        grids.append(grid)
    return grids[0], draw(st.sampled_from([None, grids[1], grids[0].copy()]))


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None, int]:
    shape = draw(shapes)
    classes = draw(st.sampled_from([1, 2, 19, 30, 150, 256]))
    ids = hnp.arrays(np.uint8, shape, elements=st.integers(0, classes - 1))
    labels, other = draw(ids), draw(ids)
    previous = draw(st.sampled_from([None, other, labels.copy(), np.where(other > 0, labels, other)]))
    return labels, previous, classes


@given(mask_pairs())
@settings(max_examples=150, deadline=None)
def test_mask_round_trips_exactly_and_re_encodes_byte_identically(pair: tuple[np.ndarray, np.ndarray | None]) -> None:
    blocks, previous = pair
    data = encode_mask(blocks, previous)
    decoded = decode_mask(data, blocks.shape, previous)
    assert decoded.dtype == bool and np.array_equal(decoded, blocks)
    assert encode_mask(blocks, previous) == data


@given(mask_pairs())
@settings(max_examples=150, deadline=None)
def test_bulk_mask_coder_gives_the_step_models_bytes(pair: tuple[np.ndarray, np.ndarray | None]) -> None:
    """encode_mask/decode_mask compute the contexts in bulk; the bytes are those of the wavefront step model."""
    blocks, previous = pair
    reference = None if previous is None else previous.astype(np.int64)
    stepwise = sidecode.encode_grid(blocks.astype(np.int64), reference, maskcode.MODEL)
    assert encode_mask(blocks, previous) == stepwise
    assert np.array_equal(sidecode.decode_grid(stepwise, blocks.shape, reference, maskcode.MODEL), blocks)


@given(label_pairs())
@settings(max_examples=150, deadline=None)
def test_label_map_round_trips_exactly_and_re_encodes_byte_identically(case: tuple[np.ndarray, np.ndarray | None, int]) -> None:
    labels, previous, classes = case
    data = encode_labels(labels, previous, classes)
    decoded = decode_labels(data, labels.shape, previous, classes)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, labels)
    assert encode_labels(labels, previous, classes) == data


def _moving_disc(t: int, height: int = 30, width: int = 40) -> npt.NDArray[np.bool_]:
    ys, xs = np.mgrid[:height, :width]
    return np.asarray((ys - 15) ** 2 + (xs - 10 - t) ** 2 < 64)


def test_unchanged_frames_cost_zero_bytes_and_small_changes_little() -> None:
    blocks = _moving_disc(0)
    assert encode_mask(blocks, blocks) == b""
    assert encode_mask(np.zeros((30, 40), dtype=bool), None) == b""
    moved = _moving_disc(1)
    assert (moved != blocks).sum() == 30  # a one-block shift of a 200-block disc changes its two rims
    assert len(encode_mask(moved, blocks)) <= 24  # under ~6 bits per changed block
    assert len(encode_mask(blocks, None)) <= 24  # 1200 blocks as a keyframe
    labels = blocks.astype(np.uint8) * 7
    assert encode_labels(labels, labels, 30) == b""
    assert len(encode_labels(moved.astype(np.uint8) * 7, labels, 30)) <= 24


def test_zero_byte_payload_means_the_reference() -> None:
    previous = _moving_disc(3)
    assert np.array_equal(decode_mask(b"", previous.shape, previous), previous)
    assert not decode_mask(b"", (3, 5), None).any()
    assert not decode_labels(b"", (3, 5), None, 30).any()


def _damaged(data: bytes) -> list[bytes]:
    flips = [data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :] for i in range(len(data)) for bit in (0, 7)]
    return [data[:-4], data[:-1], data + b"\0\0\0\0", data + b"\xff", b"\xff" * 4, b"\x00" * 8, *flips]


Decode = Callable[[bytes], np.ndarray]
Encode = Callable[[np.ndarray], bytes]


def _refused(decode: Decode, encode: Encode, data: bytes) -> bool:
    """True when refused with CorruptStreamError; a payload that decodes must be that grid's own encoding."""
    try:
        grid = decode(data)
    except CorruptStreamError:
        return True
    assert encode(grid) == data
    return False


def _mask_coder(shape: tuple[int, int], previous: np.ndarray | None) -> tuple[Decode, Encode]:
    return (lambda d: decode_mask(d, shape, previous)), (lambda g: encode_mask(g, previous))


def _label_coder(shape: tuple[int, int], previous: np.ndarray | None, classes: int) -> tuple[Decode, Encode]:
    return (lambda d: decode_labels(d, shape, previous, classes)), (lambda g: encode_labels(g, previous, classes))


def test_damaged_mask_payloads_raise_corrupt_stream_error_only() -> None:
    previous, blocks = _moving_disc(0), _moving_disc(2)
    data = encode_mask(blocks, previous)
    refused = [_refused(*_mask_coder(blocks.shape, previous), d) for d in _damaged(data)]
    assert all(refused[:6])  # truncation, trailing bytes and garbage words are always caught
    with pytest.raises(CorruptStreamError, match="not consumed exactly"):
        decode_mask(data + b"\0\0\0\0", blocks.shape, previous)
    with pytest.raises(CorruptStreamError, match="does not match the previous"):
        decode_mask(data, (5, 5), previous)
    with pytest.raises(CorruptStreamError, match="shape"):
        decode_mask(data, (0, 5), None)


def test_damaged_label_payloads_raise_corrupt_stream_error_only() -> None:
    rng = np.random.default_rng(1)
    previous = rng.integers(0, 30, (12, 16)).astype(np.uint8)
    labels = previous.copy()
    labels[3:8, 4:9] = 5
    for reference in (previous, None):
        data = encode_labels(labels, reference, 30)
        refused = [_refused(*_label_coder(labels.shape, reference, 30), d) for d in _damaged(data)]
        assert all(refused[:6])
    with pytest.raises(CorruptStreamError, match="classes"):
        decode_labels(data, labels.shape, None, 0)


@given(st.binary(max_size=64), shapes, st.integers(1, 256))
@settings(max_examples=200, deadline=None)
def test_garbage_never_raises_anything_but_corrupt_stream_error(data: bytes, shape: tuple[int, int], classes: int) -> None:
    rng = np.random.default_rng(len(data))
    previous = rng.integers(0, classes, shape).astype(np.uint8)
    for reference in (None, previous):
        _refused(*_label_coder(shape, reference, classes), data)
        _refused(*_mask_coder(shape, None if reference is None else reference % 2 == 1), data)


def test_block_mask_keeps_a_block_with_any_pixel_and_expand_covers_it() -> None:
    mask = np.zeros((37, 50), dtype=bool)
    mask[0, 0] = mask[36, 49] = mask[20, 17] = True
    blocks = block_mask(mask, 16)
    assert blocks.shape == (3, 4)
    assert {tuple(i) for i in np.argwhere(blocks)} == {(0, 0), (2, 3), (1, 1)}
    pixels = expand(blocks, 37, 50, 16)
    assert pixels.shape == (37, 50) and (pixels | ~mask).all()
    assert int(pixels.sum()) == 16 * 16 + 16 * 16 + 5 * 2
    assert np.array_equal(block_mask(pixels, 16), blocks)
    with pytest.raises(ValueError, match="does not cover"):
        expand(blocks, 64, 64, 16)


def _photo() -> npt.NDArray[np.uint8]:
    skimage_data = pytest.importorskip("skimage.data")
    return np.asarray(skimage_data.astronaut())


def test_builtin_labeler_is_deterministic_and_names_its_classes() -> None:
    labeler = create_labeler("builtin")
    assert isinstance(labeler, ColourTextureLabeler)
    photo = _photo()
    labels = labeler.labels(photo)
    assert labels.shape == (64, 64) and labels.dtype == np.uint8
    assert np.array_equal(labels, ColourTextureLabeler().labels(photo.copy()))
    assert len(labeler.classes) == len(set(labeler.classes)) == 30 and int(labels.max()) < 30
    assert len(np.unique(labels)) >= 6  # a real photo spans several appearance classes
    odd = labeler.labels(photo[:37, :45])
    assert odd.shape == (5, 6)


def test_builtin_labeler_classes_say_what_a_cell_looks_like() -> None:
    labeler = ColourTextureLabeler(stride=8)
    frame = np.zeros((16, 72, 3), dtype=np.uint8)
    frame[:, 24:48] = (20, 90, 20)  # flat dark green (L* ≈ 32)
    frame[:, 48:] = np.where(np.indices((16, 24)).sum(axis=0)[..., None] % 2 == 0, 255, 0)  # checkerboard
    names = [labeler.classes[i] for i in labeler.labels(frame)[0]]
    # Cells 2 and 5 hold an edge (texture) and are left out.
    expected = ["dark grey smooth"] * 2 + ["dark green smooth"] * 2 + ["mid grey textured"] * 3
    assert [names[i] for i in (0, 1, 3, 4, 6, 7, 8)] == expected
    assert names[2].endswith("textured")


def _scores_model(path: Path, argmax: bool) -> None:
    """A 3-class "segmenter": scores = the R, G, B channels (NCHW); with `argmax`, outputs ids instead."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["x"], ["scores"])]
    output = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, None, None])
    if argmax:
        nodes.append(helper.make_node("ArgMax", ["scores"], ["ids"], axis=1, keepdims=0))
        output = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None, None])
    graph = helper.make_graph(nodes, "rgb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])], [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"classes": "red,green,blue"})
    onnx.save(model, str(path))


@pytest.mark.parametrize("argmax", [False, True])
def test_onnx_labeler_runs_a_users_model_at_the_label_resolution(tmp_path: Path, argmax: bool) -> None:
    path = tmp_path / "rgb.onnx"
    _scores_model(path, argmax)
    labeler = create_labeler(f"onnx:{path}", stride=16)
    assert isinstance(labeler, OnnxLabeler) and labeler.classes == ["red", "green", "blue"]
    frame = np.zeros((64, 96, 3), dtype=np.uint8)
    frame[:, :32] = (250, 10, 10)
    frame[:, 32:64] = (10, 250, 10)
    frame[:, 64:] = (10, 10, 250)
    labels = labeler.labels(frame)
    assert labels.shape == (4, 6) and labels.dtype == np.uint8
    assert labels.tolist() == [[0, 0, 1, 1, 2, 2]] * 4
    data = encode_labels(labels, None, len(labeler.classes))
    assert np.array_equal(decode_labels(data, labels.shape, None, 3), labels)


def test_onnx_labeler_reports_missing_files_and_unknown_specs(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such ONNX model file"):
        create_labeler(f"onnx:{tmp_path / 'missing.onnx'}")
    with pytest.raises(ModelError, match="unknown labeler 'cityscapes'"):
        create_labeler("cityscapes")


def test_encoders_reject_ids_past_the_class_count() -> None:
    with pytest.raises(ValueError, match="ids ≥ 3"):
        encode_labels(np.full((2, 2), 3, dtype=np.uint8), None, 3)
    with pytest.raises(ValueError, match="out of range"):
        encode_labels(np.zeros((2, 2), dtype=np.uint8), None, 257)


@given(
    st.integers(1, 70),
    st.integers(1, 70),
    st.integers(0, 16),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_the_decoders_compositor_blends_as_the_composite_formula(height: int, width: int, feather: int, seed: int) -> None:
    """Compositor (weights kept while the mask stays) gives composite's bytes: 1 inside, a feathered band, 0 outside."""
    rng = np.random.default_rng(seed)
    fidelity, background = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))
    blocks = rng.random((-(-height // 16), -(-width // 16))) < rng.random()
    kept = expand(blocks, height, width)
    alpha = feather_alpha(kept, feather)[..., None]
    expected = np.clip(background + alpha * (fidelity.astype(np.float32) - background) + 0.5, 0, 255).astype(np.uint8)
    compositor = Compositor(feather)
    for _ in range(2):  # the second call reuses the weights
        out = compositor(fidelity, background, blocks)
        assert np.array_equal(out, composite(fidelity, background, kept, feather))
        assert np.abs(out.astype(int) - expected).max() <= 1
        assert np.array_equal(out[alpha[..., 0] >= 1], fidelity[alpha[..., 0] >= 1])
        assert np.array_equal(out[~kept], background[~kept])
