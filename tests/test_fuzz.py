"""Property-based fuzzing of everything that parses untrusted bytes: frame packets, the stream
configuration and the decoder. Only the project's exceptions may come out, nothing may hang, and
a decoder that saw damage decodes the next keyframe exactly as an undamaged one does.

A few hundred examples in all, so this stays in the default suite; scripts/benchmarks/fuzz.py is the long run.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcodec import bitstream
from streamcodec.bitstream import StreamConfig
from streamcodec.codec import Decoder, Encoder
from streamcodec.errors import StreamcodecError

from .conftest import SAMPLE

GOP = 3
FUZZ = settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


Stream = tuple[StreamConfig, list[bytes], list[np.ndarray]]


def _strip_reference(packet: bytes) -> bytes:
    """The packet as 0.1.0 wrote it: no reference section, so a lost frame goes unnoticed."""
    frame = bitstream.unpack_frame(packet)
    sections = {tag: data for tag, data in frame.sections.items() if tag != bitstream.REFERENCE}
    return bitstream.pack_frame(bitstream.Frame(frame.frame_type, sections, frame.reference_distance), 1)


def _clip(width: int, height: int) -> tuple[StreamConfig, list[bytes], Decoder]:
    """Seven frames of the sample cropped to width x height, encoded with GOP 3 (keyframes 0, 3, 6)."""
    frames: list[np.ndarray] = []
    with av.open(str(SAMPLE)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24")[100 : 100 + height, 200 : 200 + width])
            if len(frames) == 7:
                break
    encoder = Encoder(width, height, gop=GOP, mode="gc")
    return encoder.config, [encoder.encode(rgb).packet for rgb in frames], Decoder(encoder.config)


@pytest.fixture(scope="module")
def stream() -> Stream:
    """A 64x48 stream and its clean decodes (pixels)."""
    config, packets, decoder = _clip(64, 48)
    return config, packets, [decoder.decode(p) for p in packets]


@pytest.fixture(scope="module")
def wide() -> Stream:
    """A 160x96 stream and its clean symbols (no synthesis, so more examples fit)."""
    config, packets, decoder = _clip(160, 96)
    return config, packets, [decoder.decode_symbols(p)[0] for p in packets]


def _recrc(packet: bytearray) -> bytes:
    if len(packet) >= 4:
        packet[-4:] = struct.pack(">I", zlib.crc32(bytes(packet[:-4])))
    return bytes(packet)


@st.composite
def damaged(draw: st.DrawFn, packet: bytes, other: bytes) -> bytes:
    """`packet` hit by a byte flip, a cut, a splice with `other` or a huge length field,
    with its checksum repaired half of the time so the damage reaches the range decoder."""
    kind = draw(st.sampled_from(["flip", "cut", "splice", "huge_total", "huge_section", "payload"]))
    data = bytearray(packet)
    if kind == "payload":  # a well-formed packet whose range-coded payload is garbage
        frame = bitstream.unpack_frame(packet)
        channels, _ = bitstream.unpack_latents(frame.sections[bitstream.LATENTS])
        garbage = draw(st.binary(max_size=256).map(lambda b: b[: len(b) // 4 * 4]))
        sections = frame.sections | {bitstream.LATENTS: bitstream.pack_latents(channels, garbage)}
        version = 1 if packet.startswith(bitstream.FRAME_MAGIC) else bitstream.FORMAT_VERSION  # the packet's own format
        return bitstream.pack_frame(bitstream.Frame(frame.frame_type, sections, frame.reference_distance), version)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "cut":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "splice":
        data = data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
    else:
        at = 8 if kind == "huge_total" else 10  # the total length, or the first section's length
        data[at : at + 1] = draw(st.sampled_from([b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\xff", b"\x80\x80\x80\x80\x01"]))
    return _recrc(data) if draw(st.booleans()) else bytes(data)


def _decode_all(decoder: Decoder, packets: list[bytes]) -> list[np.ndarray | None]:
    """Decode in order; None where the decoder refused a packet (which must be our error)."""
    out: list[np.ndarray | None] = []
    for packet in packets:
        try:
            out.append(decoder.decode(packet))
        except StreamcodecError:
            out.append(None)
    return out


@FUZZ
@given(data=st.data())
def test_unpack_frame_raises_only_project_errors(stream: Stream, data: st.DataObject) -> None:
    _, packets, _ = stream
    index = data.draw(st.integers(0, len(packets) - 1))
    packet = data.draw(damaged(packets[index], packets[(index + 1) % len(packets)]))
    try:
        frame = bitstream.unpack_frame(packet)
    except StreamcodecError:
        return
    assert bitstream.packet_length(packet) == len(packet)  # accepted: then it is a whole packet
    assert all(section in packet for section in frame.sections.values())


HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -5, 100000, 16 * 65535, 512, 40, 3, 2**31]),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FUZZ
@given(data=st.data())
def test_stream_config_and_decoder_accept_only_valid_configurations(stream: Stream, data: st.DataObject) -> None:
    config, packets, clean = stream
    fields = asdict(config)
    for name in data.draw(st.lists(st.sampled_from([*fields, "model_id", "unknown"]), min_size=1, max_size=3)):
        fields[name] = data.draw(HOSTILE)
    if data.draw(st.booleans()):
        del fields[data.draw(st.sampled_from(sorted(fields)))]
    text = data.draw(st.one_of(st.just(json.dumps(fields)), st.sampled_from(["[]", "null", "1", '"x"', "{"])))
    try:
        decoder = Decoder(StreamConfig.unpack(b"SCST\x01" + text.encode()))
    except StreamcodecError:
        return
    # Accepted: then it describes this stream, up to a source size with the same padding.
    width, height = decoder.config.width, decoder.config.height
    np.testing.assert_array_equal(decoder.decode(packets[0]), clean[0][:height, :width])


@FUZZ
@given(data=st.data())
def test_decoder_survives_damage_and_recovers_at_the_next_keyframe(stream: Stream, data: st.DataObject) -> None:
    config, packets, clean = stream
    if data.draw(st.booleans()):  # a 0.1.0 stream: a dropped frame reaches the range decoder
        packets = [_strip_reference(p) for p in packets]
    index = data.draw(st.integers(1, 5).filter(lambda i: i % GOP))  # an inter frame of GOP 0 or 1
    hit = list(packets)
    hit[index] = data.draw(damaged(packets[index], packets[data.draw(st.integers(0, len(packets) - 1))]))
    if data.draw(st.booleans()):
        del hit[index]  # or lose it altogether (a block dropped by the container)
    out = _decode_all(Decoder(config), hit)
    keyframe = (index // GOP + 1) * GOP
    np.testing.assert_array_equal(out[keyframe - (len(hit) < len(packets))], clean[keyframe])
    for before in range(index):
        np.testing.assert_array_equal(out[before], clean[before])


def test_a_lost_inter_frame_is_refused_until_the_next_keyframe(stream: Stream) -> None:
    config, packets, clean = stream
    out = _decode_all(Decoder(config), packets[:1] + packets[2:])  # frame 1 dropped
    assert out[1] is None  # frame 2 was coded against frame 1
    for got, want in zip(out[2:], clean[3:], strict=True):
        np.testing.assert_array_equal(got, want)


def _primed(config: StreamConfig, packets: list[bytes], reference: int) -> Decoder:
    """A decoder that has just decoded frame `reference` (from its keyframe on)."""
    decoder = Decoder(config)
    for packet in packets[reference - reference % GOP : reference + 1]:
        decoder.decode_symbols(packet)
    return decoder


@pytest.mark.parametrize("old_format", [False, True])
def test_inter_frames_against_every_wrong_reference_are_refused(wide: Stream, old_format: bool) -> None:
    """New streams name their reference: all refused. 0.1.0 streams cannot: only our errors come out."""
    config, packets, _ = wide
    packets = [_strip_reference(p) for p in packets] if old_format else packets
    refused = 0
    for reference in range(len(packets)):
        for index in [i for i in range(len(packets)) if i % GOP and i != reference + 1]:
            try:
                _primed(config, packets, reference).decode_symbols(packets[index])
            except StreamcodecError:
                refused += 1
    assert refused == 4 * 6 or old_format  # four inter frames, each against six wrong references


@FUZZ
@given(data=st.data())
def test_range_decoder_failures_are_corruption(wide: Stream, data: st.DataObject) -> None:
    """Symbols only (no synthesis), on a larger frame, so many damaged payloads reach the coder."""
    config, packets, symbols = wide
    if data.draw(st.booleans()):
        packets = [_strip_reference(p) for p in packets]
    reference = data.draw(st.integers(0, len(packets) - 1))
    decoder = _primed(config, packets, reference)
    index = data.draw(st.integers(0, len(packets) - 1))
    packet = data.draw(st.one_of(st.just(packets[index]), damaged(packets[index], packets[reference])))
    try:
        got, _ = decoder.decode_symbols(packet)
    except StreamcodecError:
        return
    if packet == packets[index] and (index % GOP == 0 or index == reference + 1):
        np.testing.assert_array_equal(got, symbols[index])
