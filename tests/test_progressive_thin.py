"""Progressive mode end to end (codec, packets, `thin`), with the shipped model through `load_codec`.

Tests that need the model skip while `progressive-small` is not registered (its weights not shipped yet).
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec import Decoder, Encoder, quality_levels
from streamcodec.errors import CorruptStreamError, ModelError, OutputError, OutputExistsError, UnsupportedStreamError
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info
from streamcodec.pipeline.thin import thin_file
from streamcodec.progressive import bits
from streamcodec.progressive.codec import ProgressiveModel

from .conftest import ffmpeg

MODEL = "progressive-small"
Packets = list[tuple[int, Fraction, bytes, bool]]


@pytest.fixture(scope="module")
def model() -> ProgressiveModel:
    from streamcodec.progressive.model import load_codec

    try:
        return load_codec(MODEL)
    except ModelError as exc:
        pytest.skip(f"the progressive model is not available yet: {exc}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames of 32x32 at 25 fps with an AAC tone: the model costs seconds per frame on two cores."""
    path = tmp_path_factory.mktemp("progressive-clip") / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=25:duration=0.12", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=0.12", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def encoded(model: ProgressiveModel, clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progressive") / "full.mkv"
    encode_file(clip, path, mode="progressive", model=MODEL, preview=False)
    return path


def read_packets(path: Path) -> tuple[Packets, bitstream.StreamConfig, dict[int, dict[str, str]]]:
    with MatroskaReader(path) as reader:
        _, config = stream_track(reader, path)
        packets = [(p.track, p.time, p.data, p.keyframe) for p in reader.packets()]
        return packets, config, reader.track_tags


def test_every_cut_decodes_to_the_models_own_output_and_packets_round_trip(model: ProgressiveModel, clip: Path) -> None:
    with Source(clip) as source:
        rgb = next(item.rgb for item in source.items() if isinstance(item, VideoFrame))
    height, width = rgb.shape[:2]
    encoder = Encoder(width, height, mode="progressive", model=MODEL)
    decoder = Decoder(encoder.config)
    assert quality_levels(MODEL, "progressive") == model.iterations == encoder.config.quality
    packet = encoder.encode(rgb)
    assert packet.keyframe
    codes = decoder.decode_codes(packet.packet)
    np.testing.assert_array_equal(codes, model.encode(rgb))
    sections = bits.encode_iterations(codes, decoder.tables)
    frame = bitstream.Frame(bitstream.FrameType.INTRA, {bitstream.ITERATION + i: s for i, s in enumerate(sections)})
    assert bitstream.pack_frame(frame) == packet.packet
    for k in range(1, model.iterations + 1):
        picture = decoder.decode(bitstream.cut_packet(packet.packet, k))
        np.testing.assert_array_equal(picture, model.decode(codes[:k], height, width))


def test_thin_gives_the_direct_encodes_packets_and_copies_the_rest(
    model: ProgressiveModel, encoded: Path, clip: Path, tmp_path: Path
) -> None:
    full, _, _ = read_packets(encoded)
    keep = max(1, model.iterations // 2)
    summary = thin_file(encoded, tmp_path / "thin.mkv", keep)
    assert summary.frames == sum(track == 1 for track, *_ in full) and summary.iterations_after == keep
    thinned, thinned_config, tags = read_packets(tmp_path / "thin.mkv")
    assert thinned_config.quality == keep and tags[1]["STREAMCODEC_QUALITY"] == str(keep)
    audio = [p for p in full if p[0] != 1]
    assert audio and [p for p in thinned if p[0] != 1] == audio  # bytes, times, flags
    encode_file(clip, tmp_path / "direct.mkv", mode="progressive", model=MODEL, quality=keep, preview=False)
    direct, direct_config, _ = read_packets(tmp_path / "direct.mkv")
    assert [p for p in thinned if p[0] == 1] == [p for p in direct if p[0] == 1]
    assert thinned_config == direct_config
    assert stream_info(tmp_path / "thin.mkv").damaged == []
    assert decode_file(tmp_path / "thin.mkv", None).damaged_frames == 0


def test_thin_refuses_bad_requests_before_writing(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    _, config, _ = read_packets(encoded)
    with pytest.raises(ValueError, match=f"outside 1..{config.quality}"):
        thin_file(encoded, tmp_path / "out.mkv", config.quality + 1)
    with pytest.raises(OutputError, match="input"):
        thin_file(encoded, encoded, 1, force=True)
    (tmp_path / "link.mkv").symlink_to(encoded)
    with pytest.raises(OutputError, match="input"):
        thin_file(encoded, tmp_path / "link.mkv", 1, force=True)
    (tmp_path / "there.mkv").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        thin_file(encoded, tmp_path / "there.mkv", 1)
    assert (tmp_path / "there.mkv").read_bytes() == b"mine" and not (tmp_path / "out.mkv").exists()


def test_thin_refuses_a_damaged_input(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    data = bytearray(encoded.read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "damaged.mkv").write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError):
        thin_file(tmp_path / "damaged.mkv", tmp_path / "out.mkv", 1)
    assert not (tmp_path / "out.mkv").exists()
    assert not [name for name in os.listdir(tmp_path) if "partial" in name]


def test_thin_refuses_a_stream_of_another_mode(clip: Path, tmp_path: Path) -> None:
    encode_file(clip, tmp_path / "gc.mkv", mode="gc", preview=False)
    with pytest.raises(UnsupportedStreamError, match="only progressive streams"):
        thin_file(tmp_path / "gc.mkv", tmp_path / "out.mkv", 1)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)


def test_thin_command_cuts_and_reports_errors_in_one_line(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    done = run_cli("thin", str(encoded), "-o", str(tmp_path / "one.mkv"), "--iterations", "1")
    assert done.returncode == 0, done.stderr
    assert "to 1 iterations" in done.stdout
    failed = run_cli("thin", str(encoded), "-o", str(tmp_path / "one.mkv"), "--iterations", "1")
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode != 0 and len(lines) == 1 and "exists" in lines[0] and "Traceback" not in failed.stderr
