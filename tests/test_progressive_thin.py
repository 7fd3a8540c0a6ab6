"""Progressive mode end to end (codec, packets, `thin`), with the shipped model through `load_codec`.

Tests that need the model skip while `progressive-small` is not registered (its weights not shipped yet).
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec import Decoder, Encoder, quality_levels
from streamcodec.errors import (
    CorruptStreamError,
    ModelError,
    OutputError,
    OutputExistsError,
    UnreadableInputError,
    UnsupportedStreamError,
)
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info
from streamcodec.pipeline.thin import thin_file
from streamcodec.progressive import bits
from streamcodec.progressive.codec import ProgressiveModel

from .conftest import ffmpeg
from .test_pipes import CLUSTER_ID, CUES_ID, _check_with_tools, clusters, feed, stdout_to_buffer

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


# --- `-`: stdin and stdout ----------------------------------------------------------------------


def pinned_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.urandom counts from 1 again: the writer's Segment UUID and track UIDs, random for every file, repeat."""
    counter = itertools.count(1)
    monkeypatch.setattr(os, "urandom", lambda size: next(counter).to_bytes(size, "big"))


def test_thin_from_stdin_to_a_file_writes_the_file_thins_bytes(
    model: ProgressiveModel, encoded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned_urandom(monkeypatch)
    thin_file(encoded, tmp_path / "file.mkv", 2)
    pinned_urandom(monkeypatch)
    with feed(encoded.read_bytes()) as pipe:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(pipe))
        summary = thin_file("-", tmp_path / "piped.mkv", 2)
    assert summary.input == "<stdin>" and summary.iterations_after == 2
    assert (tmp_path / "piped.mkv").read_bytes() == (tmp_path / "file.mkv").read_bytes()


def test_thin_from_stdin_to_stdout_gives_the_file_thins_packets_and_pictures(
    model: ProgressiveModel, encoded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thin_file(encoded, tmp_path / "file.mkv", 2)
    stdout = stdout_to_buffer(monkeypatch)
    with feed(encoded.read_bytes()) as pipe:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(pipe))
        summary = thin_file("-", "-", 2)
    (piped := tmp_path / "piped.mkv").write_bytes(stdout.getvalue())
    assert summary.output == "<stdout>" and summary.file_bytes == len(stdout.getvalue())
    _check_piped_thin(piped, tmp_path / "file.mkv")


def _check_piped_thin(piped: Path, file_thin: Path) -> None:
    """The file thin's packets (every track), tags and Cluster bytes; clean for info, ffprobe, mkvinfo and mkvmerge;
    the same pictures decoded.

    Not the same file: a pipe cannot seek back, so the writer's stream has no Segment size, no Duration and
    its Cues last (mkv_writer), and every file draws its own Segment UUID and track UIDs.
    """
    packets = read_packets(piped)
    assert packets == read_packets(file_thin)
    assert clusters(piped.read_bytes()) == clusters(file_thin.read_bytes())
    assert stream_info(piped).damaged == []
    _check_with_tools(piped, {number: sum(p[0] == number for p in packets[0]) for number in (1, 2)})
    for path in (piped, file_thin):
        assert decode_file(path, path.with_suffix("")).damaged_frames == 0
    pictures = [sorted(p.read_bytes() for p in path.with_suffix("").iterdir()) for path in (piped, file_thin)]
    assert pictures[0] == pictures[1] and len(pictures[0]) == 3


def test_thin_command_pipes_stdin_to_stdout(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    thin_file(encoded, tmp_path / "file.mkv", 2)
    command = f"cat {encoded} | {sys.executable} -m streamcodec.cli thin - -o - --iterations 2 > {tmp_path / 'piped.mkv'}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "<stdout>: 3 frames cut from" in done.stderr and done.stdout == ""
    _check_piped_thin(tmp_path / "piped.mkv", tmp_path / "file.mkv")


def _last_cluster_damaged(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[data.rindex(CUES_ID) - 3] ^= 0x10  # the last packet of the last Cluster
    return bytes(damaged)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "<stdin>: is empty"),
        (lambda data: bytes(range(256)) * 8, "<stdin>: not a Matroska file"),
        (lambda data: data[: data.rindex(CLUSTER_ID) + 20], "<stdin>: Cluster runs past the end of the file (truncated)"),
        (_last_cluster_damaged, "<stdin>: "),
    ],
    ids=["empty", "garbage", "truncated", "damaged"],
)
def test_thin_command_refuses_a_bad_stdin_in_one_line_and_sends_nothing(
    model: ProgressiveModel, encoded: Path, mangle: Callable[[bytes], bytes], message: str
) -> None:
    command = [sys.executable, "-m", "streamcodec.cli", "thin", "-", "-o", "-", "--iterations", "2"]
    done = subprocess.run(command, input=mangle(encoded.read_bytes()), capture_output=True, timeout=300, check=False)
    lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"streamcodec thin: error: {message}"), lines
    assert done.stdout == b""  # the damage is in the last Cluster: the earlier ones were not sent either


def test_thin_refuses_stdin_or_stdout_that_is_the_other_side(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    (same := tmp_path / "same.mkv").write_bytes(encoded.read_bytes())
    with same.open("rb") as stdin:
        onto = run_cli_with("thin", "-", "-o", str(same), "-y", "--iterations", "1", stdin=stdin)
    with same.open("ab") as stdout:
        into = run_cli_with("thin", str(same), "-o", "-", "--iterations", "1", stdout=stdout)
    assert "same.mkv: is also the file on stdin" in onto.stderr and onto.returncode == 1
    assert f"<stdout>: is also the input {same}" in into.stderr and into.returncode == 1
    assert same.read_bytes() == encoded.read_bytes()


def run_cli_with(*args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streamcodec.cli", *args]
    return subprocess.run(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300, check=False)


def test_thin_refuses_a_terminal_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    terminal = open(follower, "rb")  # noqa: SIM115
    try:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(terminal))
        with pytest.raises(UnreadableInputError, match="<stdin>: is a terminal; pipe a Matroska stream"):
            thin_file("-", "-", 1)
    finally:
        terminal.close()
        os.close(leader)


def test_thin_command_takes_dot_slash_dash_as_a_file(model: ProgressiveModel, encoded: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "streamcodec.cli", "thin", str(encoded), "-o", "./-", "--iterations", "1"],
                          cwd=tmp_path, capture_output=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"/") and read_packets(tmp_path / "-")[1].quality == 1
