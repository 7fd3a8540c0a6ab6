"""`-` as input and output: y4m (or anything FFmpeg probes) from stdin, a live-style Matroska stream to stdout."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from streamcodec.errors import EmptyOutputError, OutputError, TruncatedStreamError, UnreadableInputError
from streamcodec.io import ebml
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.ebml import ID
from streamcodec.io.mkv_reader import MatroskaReader, Packet
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file

from .conftest import ROOT, ffmpeg, require
from .test_mkv import AUDIO, TAGS, TRACK_TAGS, VIDEO, sample_packets, write_file

CLUSTER_ID, CUES_ID = ebml.encode_id(ID.CLUSTER), ebml.encode_id(ID.CUES)
UNKNOWN_SEGMENT = ebml.encode_id(ID.SEGMENT) + ebml.encode_size(None, 8)
ENCODE = {"mode": "gc", "preview": False, "gop": 3, "quality": 2}


class PipeOnly:
    """A write-only stream, as a pipe is: no seek, no tell."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def write_stream(packets: list[Packet], tracks: tuple[TrackSpec, ...] = (VIDEO, AUDIO)) -> bytes:
    pipe = PipeOnly()
    with MatroskaWriter(pipe, tracks, title="clip", writing_app="tests", tags=TAGS, track_tags=TRACK_TAGS) as writer:  # type: ignore[arg-type]
        for packet in packets:
            writer.write(packet.track, packet.time, packet.data, packet.keyframe)
        assert writer.close() == len(pipe.data)
    return bytes(pipe.data)


def read(path: Path) -> tuple[list[Packet], list[str]]:
    errors: list[str] = []
    with MatroskaReader(path) as reader:
        return list(reader.packets(on_error=lambda error: errors.append(str(error)))), errors


def clusters(data: bytes) -> bytes:
    """From the first Cluster to the Cues: the packets as stored."""
    return data[data.index(CLUSTER_ID) : data.rindex(CUES_ID)]


def feed(data: bytes) -> BinaryIO:
    """A real pipe whose other end writes `data`, then closes."""
    read_fd, write_fd = os.pipe()

    def send() -> None:
        with os.fdopen(write_fd, "wb") as end:
            end.write(data)

    threading.Thread(target=send, daemon=True).start()
    return os.fdopen(read_fd, "rb")


@pytest.fixture
def pipes() -> Iterator[list[BinaryIO]]:
    """Pipes to close after the test."""
    opened: list[BinaryIO] = []
    yield opened
    for pipe in opened:
        pipe.close()


def pipe_to_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes, pipes: list[BinaryIO]) -> None:
    """stdin becomes a pipe carrying `data` (set inside the test: pytest's capture resets sys.std* between phases)."""
    pipes.append(feed(data))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(pipes[-1]))


def stdout_to_buffer(monkeypatch: pytest.MonkeyPatch) -> io.BytesIO:
    """stdout becomes a buffer (not file descriptor 1: the writer uses it as it is)."""
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer, write_through=True))
    return buffer


@pytest.fixture(scope="module")
def y4m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipes") / "clip.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "6", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def file_encode(y4m: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pipes") / "file.mkv"
    encode_file(y4m, out, **ENCODE)  # type: ignore[arg-type]
    return out


# --- the writer's stream mode -----------------------------------------------------------------


def test_stream_holds_the_same_packets_and_cluster_bytes_as_a_file(tmp_path: Path) -> None:
    packets = sample_packets()
    write_file(tmp_path / "file.mkv", packets)
    (tmp_path / "pipe.mkv").write_bytes(streamed := write_stream(packets))
    assert read(tmp_path / "pipe.mkv") == read(tmp_path / "file.mkv")
    assert clusters(streamed) == clusters((tmp_path / "file.mkv").read_bytes())


def test_stream_has_an_unknown_size_segment_no_duration_and_its_cues_last(tmp_path: Path) -> None:
    (tmp_path / "pipe.mkv").write_bytes(streamed := write_stream(sample_packets()))
    write_file(tmp_path / "file.mkv", sample_packets())
    assert UNKNOWN_SEGMENT in streamed[:64]
    with MatroskaReader(tmp_path / "pipe.mkv") as piped, MatroskaReader(tmp_path / "file.mkv") as filed:
        assert piped.duration is None and filed.duration is not None
        assert [time for time, _, _ in piped.cues] == [time for time, _, _ in filed.cues] != []
        assert piped.tags == filed.tags and piped.track_tags == filed.track_tags
    header = ebml.parse_header(streamed, streamed.rindex(CUES_ID), 0, tmp_path)
    assert header.end == len(streamed)  # the Cues end the stream


def test_stream_keeps_a_negative_audio_start_in_codec_delay(tmp_path: Path) -> None:
    priming = Fraction(-21, 1000)  # AAC priming, rounded to the ms
    packets = [Packet(1, Fraction(k, 25), bytes([k]) * 50, k % 5 == 0) for k in range(10)]
    packets += [Packet(2, priming + Fraction(k, 50), bytes([k]) * 20, True) for k in range(20)]
    packets.sort(key=lambda p: p.time)
    write_file(tmp_path / "file.mkv", packets)
    (tmp_path / "pipe.mkv").write_bytes(write_stream(packets))
    piped, errors = read(tmp_path / "pipe.mkv")
    assert (piped, errors) == read(tmp_path / "file.mkv")
    assert min(p.time for p in piped if p.track == 2) == priming


def test_independent_tools_accept_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "pipe.mkv"
    path.write_bytes(write_stream(packets := sample_packets()))
    _check_with_tools(path, {1: sum(p.track == 1 for p in packets), 2: sum(p.track == 2 for p in packets)})


def _check_with_tools(path: Path, counts: dict[int, int]) -> None:
    """ffprobe reads every packet of each track, mkvinfo walks it, mkvmerge -J finds nothing wrong."""
    entries = ["-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "json"]
    probe = subprocess.run([require("ffprobe"), "-v", "error", *entries, str(path)], capture_output=True, text=True, check=True)
    assert [int(s["nb_read_packets"]) for s in json.loads(probe.stdout)["streams"]] == list(counts.values())
    info = subprocess.run([require("mkvinfo"), "-v", str(path)], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and "Segment: size unknown" in info.stdout and "|+ Cues" in info.stdout
    merged = json.loads(subprocess.run([require("mkvmerge"), "-J", str(path)], capture_output=True, text=True).stdout)
    assert merged["errors"] == [] and merged["warnings"] == [] and len(merged["tracks"]) == len(counts)


def test_a_stream_cut_between_clusters_is_reported_truncated(tmp_path: Path) -> None:
    streamed = write_stream(sample_packets())
    (tmp_path / "cut.mkv").write_bytes(streamed[: streamed.rindex(CLUSTER_ID)])
    packets, errors = read(tmp_path / "cut.mkv")
    assert packets and len(errors) == 1 and "ends before its Cues" in errors[0]
    with pytest.raises(TruncatedStreamError), MatroskaReader(tmp_path / "cut.mkv") as reader:
        list(reader.packets())


def test_nothing_is_sent_when_the_output_would_hold_no_frame() -> None:
    pipe = PipeOnly()
    writer = MatroskaWriter(pipe, [VIDEO], writing_app="tests")  # type: ignore[arg-type]
    with pytest.raises(EmptyOutputError):
        writer.close()
    assert pipe.data == b""


def test_writing_to_stdout_sends_stray_prints_to_stderr() -> None:
    script = """
import os, sys
from fractions import Fraction
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec
with MatroskaWriter("-", [TrackSpec(1, "video", "V_STREAMCODEC", default_duration_ns=40_000_000)], writing_app="t") as w:
    print("stray print")
    os.write(1, b"native write\\n")
    for k in range(5):
        w.write(1, Fraction(k, 25), bytes([k]) * 10, k == 0)
print("after close")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT, check=True)
    assert done.stdout.startswith(ebml.encode_id(ID.EBML)) and done.stdout.endswith(b"after close\n")
    assert b"stray print" in done.stderr and b"native write" in done.stderr
    assert b"stray" not in done.stdout and b"native" not in done.stdout


def test_a_terminal_on_stdout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    terminal = open(follower, "wb")  # noqa: SIM115
    try:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(terminal))
        with pytest.raises(OutputError, match="is a terminal"):
            MatroskaWriter("-", [VIDEO], writing_app="tests")
    finally:
        terminal.close()
        os.close(leader)


# --- reading stdin ----------------------------------------------------------------------------


def _frames(source: Source) -> list[VideoFrame]:
    return [item for item in source.items() if isinstance(item, VideoFrame)]


def test_source_reads_y4m_from_stdin_as_from_the_file(y4m: Path, monkeypatch: pytest.MonkeyPatch, pipes: list[BinaryIO]) -> None:
    pipe_to_stdin(monkeypatch, y4m.read_bytes(), pipes)
    with Source("-") as piped, Source(y4m) as filed:
        assert piped.container.format.name == "yuv4mpegpipe" and piped.info.frames is None
        assert (piped.info.width, piped.info.height, piped.info.frame_rate) == (96, 64, 25)
        frames, expected = _frames(piped), _frames(filed)
        assert piped.damage() is None
    assert [f.time for f in frames] == [f.time for f in expected] and len(frames) == 6
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(frames, expected, strict=True))


def test_source_probes_other_formats_from_a_pipe(tmp_path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "4", "-c:v", "libx264", str(tmp_path / "clip.ts"))
    with feed((tmp_path / "clip.ts").read_bytes()) as pipe, Source(pipe) as source:
        assert source.container.format.name == "mpegts" and len(_frames(source)) == 4


@pytest.mark.parametrize(("data", "message"), [(b"", "is empty"), (bytes(range(256)) * 8, "not a readable media file")])
def test_empty_or_garbage_stdin_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, pipes: list[BinaryIO], data: bytes, message: str
) -> None:
    pipe_to_stdin(monkeypatch, data, pipes)
    with pytest.raises(UnreadableInputError, match=message) as raised:
        Source("-")
    assert str(raised.value).startswith("<stdin>: ")


# --- encode_file and the CLI ------------------------------------------------------------------


def test_encode_from_stdin_to_stdout_gives_a_file_encode_s_packets(
    y4m: Path, file_encode: Path, monkeypatch: pytest.MonkeyPatch, pipes: list[BinaryIO], tmp_path: Path
) -> None:
    pipe_to_stdin(monkeypatch, y4m.read_bytes(), pipes)
    stdout = stdout_to_buffer(monkeypatch)
    summary = encode_file("-", "-", **ENCODE)  # type: ignore[arg-type]
    piped = tmp_path / "pipe.mkv"
    piped.write_bytes(stdout.getvalue())
    assert summary.frames == 6 and summary.file_bytes == len(stdout.getvalue())
    _check_piped_encode(piped, file_encode)


def _check_piped_encode(piped: Path, file_encode: Path) -> None:
    """The same packets, byte for byte, as the file encode; readable by every tool; every frame decodes."""
    packets, errors = read(piped)
    assert (packets, errors) == read(file_encode) and len(packets) == 6
    _check_with_tools(piped, {1: 6})
    decoded = decode_file(piped, None)
    assert decoded.frames == 6 and decoded.damaged_frames == 0


def test_cli_encodes_y4m_from_stdin_to_stdout(y4m: Path, file_encode: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "streamcodec.cli", "encode", "-", "-o", "-", "--no-preview", "--mode", "gc"]
    command += ["--gop", "3", "--quality", "2"]
    done = subprocess.run(command, input=y4m.read_bytes(), capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"6 frames" in done.stderr
    (piped := tmp_path / "pipe.mkv").write_bytes(done.stdout)
    _check_piped_encode(piped, file_encode)
