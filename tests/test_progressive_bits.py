"""Progressive mode's entropy coding (progressive/bits.py), its packets (bitstream.cut_packet) and configuration.

The codes are real structured bits, not noise: thresholded gradients of a smooth deterministic image
and of its residuals, iteration by iteration, as a residual codec's binary codes look.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from streamcodec import bitstream
from streamcodec.bitstream import Frame, FrameType, StreamConfig
from streamcodec.errors import CorruptStreamError
from streamcodec.progressive import bits

Codes = npt.NDArray[np.uint8]


def gradient_codes(iterations: int = 5, planes: int = 6, rows: int = 7, cols: int = 9, seed: int = 0) -> Codes:
    """(iterations, planes, rows, cols) {0,1}: thresholded gradients of an image, then of what is left of it."""
    y, x = np.mgrid[0 : rows * 4, 0 : cols * 4].astype(np.float64)
    image = np.sin(x / (5.0 + seed)) * np.cos(y / 7.0) * 100 + x * y / (10.0 + seed)
    codes = np.zeros((iterations, planes, rows, cols), dtype=np.uint8)
    residual = image
    for t in range(iterations):
        for b in range(planes):
            gradient = np.gradient(residual, axis=b % 2)[::4, ::4]
            codes[t, b] = gradient > np.quantile(gradient, 0.2 + 0.6 * b / planes)
        residual = residual - np.round(residual / 2 ** (6 - t)) * 2 ** (6 - t) * 0.5
    return codes


def fitted() -> bits.ProgressiveTables:
    return bits.fit_tables([gradient_codes(seed=s) for s in (1, 2, 3)])


@pytest.mark.parametrize("tables", [None, "fitted"], ids=["adaptive", "tables"])
def test_every_cut_decodes_to_its_iterations(tables: str | None) -> None:
    codes = gradient_codes()
    model = fitted() if tables else None
    sections = bits.encode_iterations(codes, model)
    assert len(sections) == codes.shape[0]
    for k in range(1, len(sections) + 1):
        decoded = bits.decode_iterations(sections[:k], codes.shape[1:], model)
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, codes[:k])


def test_sections_do_not_depend_on_later_iterations() -> None:
    codes, tables = gradient_codes(), fitted()
    whole = bits.encode_iterations(codes, tables)
    for k in range(1, codes.shape[0]):
        assert bits.encode_iterations(codes[:k], tables) == whole[:k]


#: sha256 of the adaptive sections of gradient_codes(): a change here is a bitstream format change.
PINNED = "84e6168feebf0ffbec286e23ac0cafb258980c4d3b30987b6507b960b30241bc"


def test_encoding_is_deterministic_and_pinned() -> None:
    codes = gradient_codes()
    first, second = bits.encode_iterations(codes, None), bits.encode_iterations(codes.copy(), None)
    assert first == second
    assert hashlib.sha256(b"".join(first)).hexdigest() == PINNED


def test_fitted_tables_code_below_raw_bits_and_near_their_estimate() -> None:
    codes, tables = gradient_codes(seed=4), fitted()
    raw = codes[0].size
    for model in (None, tables):
        sections = bits.encode_iterations(codes, model)
        estimate = bits.ideal_bits(codes, model)
        for section, ideal in zip(sections, estimate, strict=True):
            assert 8 * len(section) >= ideal
            assert 8 * len(section) <= ideal + 64  # the range coder's flush: at most two words
        assert sum(estimate) < (0.9 if model else 1.0) * raw * codes.shape[0]


def test_tables_round_trip_through_npz(tmp_path: Path) -> None:
    tables = fitted()
    bits.save_tables(tables, tmp_path / "tables.npz")
    loaded = bits.load_tables(tmp_path / "tables.npz")
    np.testing.assert_array_equal(loaded.one, tables.one)
    assert loaded.identifier == tables.identifier != bits.ADAPTIVE
    assert bits.tables_identifier(None) == bits.ADAPTIVE


def test_codes_that_do_not_fit_the_tables_are_refused() -> None:
    tables = fitted()
    with pytest.raises(ValueError, match="do not fit tables"):
        bits.encode_iterations(gradient_codes(planes=4), tables)
    with pytest.raises(ValueError, match="uint8 of 0 and 1"):
        bits.encode_iterations(gradient_codes() * 2, None)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s[:-1], "not a whole number of 32-bit words"),
        (lambda s: s[:-4], "iteration 2"),
        (lambda s: bytes([s[0] ^ 0x40]) + s[1:], "iteration 2"),
        (lambda s: s + b"\0\0\0\0", "iteration 2"),
    ],
    ids=["odd-length", "short", "flipped", "trailing"],
)
def test_a_damaged_section_is_refused_naming_its_iteration(damage: object, message: str) -> None:
    codes = gradient_codes()
    sections = bits.encode_iterations(codes, None)
    sections[1] = damage(sections[1])  # type: ignore[operator]
    with pytest.raises(CorruptStreamError, match=message):
        bits.decode_iterations(sections, codes.shape[1:], None)
    np.testing.assert_array_equal(bits.decode_iterations(sections[:1], codes.shape[1:], None), codes[:1])


def test_sections_decoded_with_other_tables_are_refused() -> None:
    codes = gradient_codes()
    sections = bits.encode_iterations(codes, fitted())
    with pytest.raises(CorruptStreamError):
        bits.decode_iterations(sections, codes.shape[1:], None)


def progressive_packet(codes: Codes) -> bytes:
    sections = bits.encode_iterations(codes, None)
    frame = Frame(FrameType.INTRA, {bitstream.ITERATION + i: s for i, s in enumerate(sections)})
    return bitstream.pack_frame(frame)


def test_a_cut_packet_is_intact_and_holds_the_first_iterations() -> None:
    codes = gradient_codes()
    packet = progressive_packet(codes)
    for k in range(1, codes.shape[0] + 1):
        cut = bitstream.cut_packet(packet, k)
        frame = bitstream.unpack_frame(cut)  # length and CRC-32 checked
        assert frame.is_key and frame.frame_type == FrameType.INTRA
        sections = bitstream.iteration_sections(frame)
        np.testing.assert_array_equal(bits.decode_iterations(sections, codes.shape[1:], None), codes[:k])
        assert cut == progressive_packet(codes[:k])  # the packet a direct encode at k iterations writes
    assert bitstream.cut_packet(packet, 99) == packet


def test_cutting_refuses_a_damaged_packet_rather_than_re_signing_it() -> None:
    packet = bytearray(progressive_packet(gradient_codes()))
    packet[len(packet) // 2] ^= 1
    with pytest.raises(CorruptStreamError, match="checksum"):
        bitstream.cut_packet(bytes(packet), 2)


def test_iteration_sections_must_be_in_order() -> None:
    frame = Frame(FrameType.INTRA, {bitstream.ITERATION + 1: b"", bitstream.ITERATION: b""})
    with pytest.raises(CorruptStreamError, match="in order"):
        bitstream.iteration_sections(bitstream.unpack_frame(bitstream.pack_frame(frame)))


def progressive_config(**changes: object) -> StreamConfig:
    config = StreamConfig("m", "progressive-small", "progressive", 96, 64, 96, 64, 3, 32, 1,
                          extra={"iterations": 8, "tables": "adaptive"})  # fmt: skip
    return replace(config, **changes)  # type: ignore[arg-type]


def test_progressive_configuration_round_trips_and_is_checked() -> None:
    config = progressive_config()
    assert StreamConfig.unpack(config.pack()) == config
    inter = progressive_config(gop=25)  # inter frames: adaptive coding only
    assert StreamConfig.unpack(inter.pack()) == inter
    bad = [
        progressive_config(quality=9),
        progressive_config(gop=25, extra={"iterations": 8, "tables": "sha256:0123456789abcdef"}),
        progressive_config(extra={"iterations": 8}),
        progressive_config(extra={"iterations": 33, "tables": "adaptive"}),
        progressive_config(extra={"iterations": 8, "tables": "adaptive", "more": 1}),
    ]
    for config in bad:
        with pytest.raises(CorruptStreamError, match="progressive stream configuration"):
            StreamConfig.unpack(config.pack())
