"""Progressive mode from the command line: `encode --mode progressive`, `info`, `thin`, `decode`.

Tests that run the model skip only while the mode's default model is not registered (its weights not
shipped yet); the rest need no model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import torch

from streamcodec import bitstream, cli
from streamcodec.cli.commands import MODE_NAMES
from streamcodec.codec import MODES, Encoder
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.models.registry import REGISTRY
from streamcodec.pipeline.decode import stream_track
from streamcodec.pipeline.rate import estimate_rates
from streamcodec.progressive.model import ProgressiveCodec, load_codec

from .conftest import ffmpeg

MODEL = MODES["progressive"].default_model
FRAMES = 4
Picture = npt.NDArray[np.uint8]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, torch on one thread: on two shared cores more threads run many times slower."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "streamcodec.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The CLI in this process (no interpreter start: seconds less per call); returns its stdout."""
    capsys.readouterr()
    assert cli.main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def model() -> Iterator[ProgressiveCodec]:
    """The mode's default model on one torch thread; skips while it is not registered (and only then)."""
    if MODEL not in REGISTRY.names():
        pytest.skip(f"the progressive model {MODEL!r} is not registered yet")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_codec(MODEL)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 frames of 64x48 at 25 fps with an AAC tone."""
    path = tmp_path_factory.mktemp("progressive-cli") / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.16", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=0.16", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def source_frames(clip: Path) -> list[Picture]:
    with Source(clip) as source:
        return [item.rgb for item in source.items() if isinstance(item, VideoFrame)]


@pytest.fixture(scope="module")
def encoded(model: ProgressiveCodec, clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clip encoded by the CLI with no --model and no --quality: the mode's model, every iteration."""
    path = tmp_path_factory.mktemp("progressive-cli-out") / "full.mkv"
    result = run_cli("encode", str(clip), "-o", str(path), "--mode", "progressive", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == FRAMES and summary["quality"] == model.iterations
    return path


def decoded_pngs(capsys: pytest.CaptureFixture[str], stream: Path, folder: Path) -> list[Picture]:
    run_here(capsys, "decode", str(stream), "-o", f"{folder}/")
    pictures: list[Picture] = []
    for png in sorted(folder.glob("*.png")):
        with av.open(str(png)) as container:
            pictures.append(np.asarray(next(container.decode(video=0)).to_ndarray(format="rgb24"), dtype=np.uint8))
    return pictures


def assert_pictures_after(model: ProgressiveCodec, pictures: list[Picture], sources: list[Picture], k: int) -> None:
    """Each decoded picture is exactly the model's own picture after k iterations of its source frame."""
    assert len(pictures) == len(sources) == FRAMES
    for picture, rgb in zip(pictures, sources, strict=True):
        np.testing.assert_array_equal(picture, model.decode(model.encode(rgb)[:k], *rgb.shape[:2]))


def test_mode_choices_and_help_name_progressive_without_loading_a_model() -> None:
    assert set(MODE_NAMES) == set(MODES)
    text = " ".join(run_cli("encode", "--help").stdout.split())
    assert "progressive" in text and "streamcodec thin" in text and "coded against the frame before it" in text


def test_selective_flags_with_progressive_mode_are_one_error_line(tmp_path: Path) -> None:
    line = one_error_line(run_cli("encode", "in.mp4", "-o", str(tmp_path / "x.mkv"), "--mode", "progressive", "--keep", "face"))
    assert "--keep" in line and "--mode sc" in line and not (tmp_path / "x.mkv").exists()


def test_encode_info_decode_round_trip_at_every_iteration(
    model: ProgressiveCodec, encoded: Path, source_frames: list[Picture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = json.loads(run_here(capsys, "info", str(encoded), "--json"))
    assert found["config"]["mode"] == "progressive" and found["config"]["model_name"] == MODEL
    assert found["frames"] == FRAMES and found["keyframes"] == 1 and found["damaged"] == []  # one GOP (--gop 25)
    layers = [f"iter{i}" for i in range(1, model.iterations + 1)]
    assert list(found["layer_bits"]) == [*layers, "header"]
    assert all(found["layer_bits"][name] > 0 for name in layers)
    assert sum(found["layer_bits"].values()) == 8 * found["video_bytes"]
    text = run_here(capsys, "info", str(encoded))
    assert "iter1 " in text and f"progressive {model.iterations} of {model.iterations} iterations" in text
    assert_pictures_after(model, decoded_pngs(capsys, encoded, tmp_path / "frames"), source_frames, model.iterations)


def test_quality_outside_the_models_iterations_is_one_error_line(model: ProgressiveCodec, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    line = one_error_line(run_cli("encode", str(clip), "-o", str(out), "--mode", "progressive", "--quality",
                                  str(model.iterations + 1)))  # fmt: skip
    assert f"quality {model.iterations + 1}" in line and f"1..{model.iterations}" in line
    assert not out.exists() and not list(tmp_path.iterdir())


def test_thin_then_decode_gives_the_pictures_at_fewer_iterations(
    model: ProgressiveCodec, encoded: Path, source_frames: list[Picture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thin = tmp_path / "thin.mkv"
    assert "to 1 iterations" in run_cli("thin", str(encoded), "-o", str(thin), "--iterations", "1").stdout
    found = json.loads(run_here(capsys, "info", str(thin), "--json"))
    assert found["config"]["quality"] == 1 and list(found["layer_bits"]) == ["iter1", "header"]
    assert_pictures_after(model, decoded_pngs(capsys, thin, tmp_path / "frames"), source_frames, 1)


def codec_packets(path: Path) -> tuple[list[bytes], Fraction]:
    with MatroskaReader(path) as reader:
        track, _ = stream_track(reader, path)
        packets = [p.data for p in reader.packets() if p.track == track.number]
        return packets, Fraction(10**9, track.default_duration_ns or 1)


def test_rate_estimate_is_each_cuts_packet_bytes(model: ProgressiveCodec, encoded: Path, source_frames: list[Picture]) -> None:
    """All intra, every quality a prefix: on a clip no longer than the probe, the estimate is the stream's rate exactly."""
    packets, frame_rate = codec_packets(encoded)
    rates = estimate_rates(Encoder(64, 48, mode="progressive", quality=1), source_frames, frame_rate)
    expected = [
        8 * sum(len(bitstream.cut_packet(packet, k)) for packet in packets) / len(packets) * float(frame_rate) / 1000
        for k in range(1, model.iterations + 1)
    ]
    assert rates == pytest.approx(expected) and rates == sorted(rates)


def test_bitrate_picks_the_iterations_that_fit(model: ProgressiveCodec, encoded: Path, clip: Path, tmp_path: Path) -> None:
    packets, frame_rate = codec_packets(encoded)
    two = 8 * sum(len(bitstream.cut_packet(packet, 2)) for packet in packets) / len(packets) * float(frame_rate) / 1000
    out = tmp_path / "two.mkv"
    result = run_cli("encode", str(clip), "-o", str(out), "--mode", "progressive", "--bitrate", f"{two + 0.01:.2f}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["quality"] == 2
    assert codec_packets(out)[0] == [bitstream.cut_packet(packet, 2) for packet in packets]
