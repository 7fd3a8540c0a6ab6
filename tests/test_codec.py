from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec import Decoder, Encoder, quality_levels
from streamcodec.errors import CorruptStreamError, ModelError

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Six real frames of the sample, cropped to an odd size (the codec pads and crops)."""
    out = []
    with av.open(str(SAMPLE)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24")[:203, :301])
            if len(out) == 6:
                break
    return out


def test_round_trip_restores_source_size_and_symbols(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=3, mode="gc")
    decoder = Decoder(encoder.config)
    for index, rgb in enumerate(frames):
        expected = encoder.analyze(rgb)[: encoder.config.channels]
        encoded = encoder.encode(rgb)
        assert encoded.keyframe == (index % 3 == 0)
        symbols, _ = decoder.decode_symbols(encoded.packet)
        np.testing.assert_array_equal(symbols, expected)
    out = Decoder(encoder.config).decode(Encoder(301, 203, mode="gc").encode(frames[0]).packet)
    assert out.shape == (203, 301, 3) and out.dtype == np.uint8


def test_entropy_payload_within_one_percent_of_model_estimate(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=6, mode="gc")
    for rgb in frames:
        encoded = encoder.encode(rgb)
        latents = bitstream.unpack_frame(encoded.packet).sections[bitstream.LATENTS]
        payload_bits = (len(latents) - 1) * 8
        assert encoded.estimated_bits <= payload_bits <= encoded.estimated_bits * 1.01 + 32


def test_higher_quality_spends_more_bits_and_is_closer(frames: list[np.ndarray]) -> None:
    bits, errors = [], []
    for quality in range(1, quality_levels() + 1):
        encoder = Encoder(301, 203, quality=quality, mode="gc")
        encoded = encoder.encode(frames[0])
        decoded = Decoder(encoder.config).decode(encoded.packet)
        bits.append(encoded.bits)
        errors.append(np.mean((decoded.astype(float) - frames[0]) ** 2))
    assert bits == sorted(bits) and bits[0] < bits[-1]
    assert errors[-1] < errors[0]


def test_damaged_frame_is_reported_and_decoding_resumes_at_next_keyframe(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=3, mode="gc")
    packets = [encoder.encode(rgb).packet for rgb in frames]
    decoder = Decoder(encoder.config)
    decoder.decode(packets[0])
    damaged = bytearray(packets[1])
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(CorruptStreamError, match="checksum"):
        decoder.decode(bytes(damaged))
    with pytest.raises(CorruptStreamError, match="reference"):
        decoder.decode(packets[2])  # inter frame whose reference was lost
    assert decoder.decode(packets[3]).shape == (203, 301, 3)  # keyframe
    assert decoder.decode(packets[4]).shape == (203, 301, 3)


def test_stream_from_unknown_model_is_refused(frames: list[np.ndarray]) -> None:
    config = replace(Encoder(301, 203, mode="gc").config, model_id="gc-000000000000000000000000")
    with pytest.raises(ModelError, match="gc-000000000000000000000000"):
        Decoder(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quality": 0}, "quality 0 is outside"),
        ({"quality": 99}, "quality 99 is outside"),
        ({"gop": 0}, "gop 0"),
        ({"model": "nope"}, "unknown model"),
    ],
)
def test_encoder_arguments_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, ModelError), match=message):
        Encoder(64, 64, **kwargs, mode="gc")  # type: ignore[arg-type]


def test_wrong_frame_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected \\(48, 64, 3\\) uint8"):
        Encoder(64, 48, mode="gc").encode(np.zeros((48, 63, 3), dtype=np.uint8))


def test_backends_decode_identical_symbols_and_near_identical_pixels(frames: list[np.ndarray]) -> None:
    from streamcodec.engines import create_backend

    model = Encoder(301, 203, mode="gc").model
    torch_backend, onnx_backend = create_backend("torch", model), create_backend("onnxruntime", model)
    packets = [Encoder(301, 203, backend=b, mode="gc").encode(frames[0]).packet for b in (torch_backend, onnx_backend)]
    assert packets[0] == packets[1]
    config = Encoder(301, 203, mode="gc").config
    a = Decoder(config, backend=torch_backend).decode(packets[0])
    b = Decoder(config, backend=onnx_backend).decode(packets[0])
    assert np.abs(a.astype(int) - b).max() <= 2


def test_unknown_backend_is_named_in_the_error() -> None:
    from streamcodec.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match=r"'tpu'.*onnxruntime"):
        Encoder(64, 48, backend="tpu", mode="gc")


def _strip_reference(packet: bytes) -> bytes:
    """The packet as 0.1.0 wrote it: no reference section."""
    frame = bitstream.unpack_frame(packet)
    sections = {tag: data for tag, data in frame.sections.items() if tag != bitstream.REFERENCE}
    return bitstream.pack_frame(bitstream.Frame(frame.frame_type, sections, frame.reference_distance), 1)


def test_inter_frames_name_their_reference_and_a_lost_frame_is_noticed(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=4, mode="gc")
    packets = [encoder.encode(rgb).packet for rgb in frames]
    sections = [bitstream.unpack_frame(p).sections for p in packets]
    assert [bitstream.REFERENCE in s for s in sections] == [False, True, True, True, False, True]
    decoder = Decoder(encoder.config)
    decoder.decode(packets[0])
    decoder.decode(packets[1])
    # packets[2] is lost at the container level: packets[3] must not decode against packets[1]
    with pytest.raises(CorruptStreamError, match=r"refers to reference 0x[0-9a-f]{2}, the decoder holds"):
        decoder.decode(packets[3])
    expected = Decoder(encoder.config).decode(packets[4])
    np.testing.assert_array_equal(decoder.decode(packets[4]), expected)  # keyframe: recovered
    assert decoder.decode(packets[5]).shape == (203, 301, 3)


def test_streams_without_reference_sections_still_decode(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=6, mode="gc")
    packets = [encoder.encode(rgb).packet for rgb in frames]
    new, old = Decoder(encoder.config), Decoder(encoder.config)
    for packet in packets:
        old_packet = _strip_reference(packet)
        assert len(old_packet) == len(packet) + (7 if packet is packets[0] else 5)  # format 1's header, no 0x81
        np.testing.assert_array_equal(old.decode_symbols(old_packet)[0], new.decode_symbols(packet)[0])


def test_garbage_payload_with_a_valid_checksum_is_corruption_not_a_crash(frames: list[np.ndarray]) -> None:
    encoder = Encoder(301, 203, gop=6, mode="gc")
    packets = [encoder.encode(rgb).packet for rgb in frames[:2]]
    rng = np.random.default_rng(0)
    decoder = Decoder(encoder.config)
    for index, size in enumerate((0, 4, 64, 1024) * 3):
        decoder.decode(packets[0])
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        latents = bitstream.pack_latents(encoder.config.channels, payload)
        kind = (bitstream.FrameType.INTRA, bitstream.FrameType.INTER)[index % 2]
        frame = bitstream.Frame(kind, {bitstream.LATENTS: latents}, index % 2)
        with pytest.raises(CorruptStreamError, match=r"entropy|consumed exactly"):
            decoder.decode(bitstream.pack_frame(frame, 1))  # format 1: no reference check to stop it first
        with pytest.raises(CorruptStreamError, match="without its reference"):
            decoder.decode(packets[1])  # the reference was dropped with the bad frame


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"coded_width": 512}, "coded_width 512 should be 304 \\(301 padded to 16\\)"),
        ({"coded_height": 192}, "coded_height 192 should be 208"),
        ({"width": 251}, "coded_width 304 should be 256"),
        ({"channels": 40}, "channels 40 should be 16 for quality 4"),
        ({"channels": 3}, "channels 3 should be 16 for quality 4"),
        ({"quality": 9}, "quality 9 is outside 1..4"),
        ({"gop": 0}, "gop 0 is outside 1..1048576"),
        ({"width": 100000}, "width 100000 is outside 1..16384"),
    ],
)
def test_decoder_checks_the_configuration_against_the_model(changes: dict[str, object], message: str) -> None:
    config = replace(Encoder(301, 203, mode="gc").config, **changes)  # type: ignore[arg-type]
    with pytest.raises(CorruptStreamError, match=message):
        Decoder(config)


def test_encoder_refuses_sizes_the_decoder_would_refuse() -> None:
    with pytest.raises(ValueError, match=r"width 16385 is outside 1\.\.16384"):
        Encoder(16385, 16, mode="gc")
    with pytest.raises(ValueError, match="exceeds 33177600 pixels"):
        Encoder(16384, 16384, mode="gc")
