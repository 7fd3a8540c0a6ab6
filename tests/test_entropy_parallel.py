"""Entropy coding on worker processes gives the serial codec's packets, frames and errors."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec import Decoder, Encoder
from streamcodec.errors import StreamcodecError
from streamcodec.gc.parallel import gops
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file

from .conftest import SAMPLE, ffmpeg

Outcome = tuple[str, str] | np.ndarray


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Eleven real frames of the sample at an odd size (the codec pads and crops)."""
    out = []
    with av.open(str(SAMPLE)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24")[:107, :141])
            if len(out) == 11:
                break
    return out


def serial_packets(frames: list[np.ndarray], gop: int) -> list[bytes]:
    encoder = Encoder(141, 107, gop=gop, mode="gc")
    return [encoder.encode(rgb).packet for rgb in frames]


def serial_outcomes(decoder: Decoder, packets: list[bytes]) -> list[Outcome]:
    out: list[Outcome] = []
    for packet in packets:
        try:
            out.append(decoder.decode(packet))
        except StreamcodecError as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


def parallel_outcomes(decoder: Decoder, packets: list[bytes], workers: int) -> list[Outcome]:
    return [
        (type(item).__name__, str(item)) if isinstance(item, StreamcodecError) else item
        for item in decoder.decode_many(packets, workers=workers)
    ]


def assert_same(expected: list[Outcome], got: list[Outcome]) -> None:
    assert len(expected) == len(got)
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        if isinstance(want, tuple):
            assert have == want, f"packet {index}"
        else:
            assert isinstance(have, np.ndarray), f"packet {index}: {have}"
            np.testing.assert_array_equal(have, want, err_msg=f"packet {index}")


@pytest.mark.parametrize("gop", [1, 4])
@pytest.mark.parametrize("workers", [1, 2])
def test_batch_encode_writes_the_serial_packets_byte_for_byte(frames: list[np.ndarray], gop: int, workers: int) -> None:
    expected = serial_packets(frames, gop)
    encoder = Encoder(141, 107, gop=gop, mode="gc")
    # Batches of 3, 5 and 3 frames: GOP boundaries fall inside and between batches.
    got = [e for part in (frames[:3], frames[3:8], frames[8:]) for e in encoder.encode_batch(part, workers=workers)]
    encoder.close()
    assert [e.packet for e in got] == expected
    assert [e.keyframe for e in got] == [i % gop == 0 for i in range(len(frames))]


def test_batched_network_calls_decode_to_the_serial_symbols(frames: list[np.ndarray]) -> None:
    encoder = Encoder(141, 107, gop=4, mode="gc", backend="torch")
    assert encoder.backend.max_batch > 1  # the eager engine takes several frames per call
    packets = [e.packet for e in encoder.encode_batch(frames, workers=2, network_batch=8)]
    encoder.close()
    serial = Decoder(encoder.config, backend="torch")
    expected = [serial.decode(packet) for packet in packets]
    decoder = Decoder(encoder.config, backend="torch")
    got = list(decoder.decode_many(packets, workers=2, network_batch=8))
    decoder.close()
    assert len(got) == len(packets) and serial.symbols.reference is not None
    np.testing.assert_array_equal(decoder.symbols.reference, serial.symbols.reference)
    # Pixels of G in a batch may round differently from one at a time; never by more than 1.
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(got, expected, strict=True)) <= 1


def test_serial_encode_continues_a_batch_encoded_stream(frames: list[np.ndarray]) -> None:
    encoder = Encoder(141, 107, gop=4, mode="gc")
    packets = [e.packet for e in encoder.encode_batch(frames[:6], workers=2)]
    packets += [encoder.encode(rgb).packet for rgb in frames[6:]]
    encoder.close()
    assert packets == serial_packets(frames, 4)


@pytest.mark.parametrize("workers", [1, 2])
def test_gop_parallel_decode_gives_the_serial_frames(frames: list[np.ndarray], workers: int) -> None:
    packets = serial_packets(frames, 4)
    config = Encoder(141, 107, gop=4, mode="gc").config
    expected = serial_outcomes(Decoder(config), packets)
    decoder = Decoder(config)
    # Two calls: the second starts with inter frames that refer to the first call's last frame.
    got = parallel_outcomes(decoder, packets[:6], workers) + parallel_outcomes(decoder, packets[6:], workers)
    decoder.close()
    assert_same(expected, got)


def damaged_stream(packets: list[bytes], channels: int) -> list[bytes]:
    """Damage of every kind the serial decoder reports: a bad checksum, a lost frame, a bad payload."""
    flipped = bytearray(packets[1])
    flipped[len(flipped) // 2] ^= 0xFF
    garbage = bitstream.pack_latents(channels, bytes(range(64)))
    bad_intra = bitstream.pack_frame(bitstream.Frame(bitstream.FrameType.INTRA, {bitstream.LATENTS: garbage}, 0))
    # 0 1* 2 3 | 4 5 (6 lost) 7 | 8* 9 10: gop 4, so 2 and 3 lose their reference, 7 refers to the lost 6.
    return [packets[0], bytes(flipped), packets[2], packets[3], packets[4], packets[5], packets[7], bad_intra, *packets[9:]]


@pytest.mark.parametrize("workers", [1, 2])
def test_damaged_packets_give_the_serial_errors_and_recover_at_the_same_keyframe(frames: list[np.ndarray], workers: int) -> None:
    config = Encoder(141, 107, gop=4, mode="gc").config
    packets = damaged_stream(serial_packets(frames, 4), config.channels)
    expected = serial_outcomes(Decoder(config), packets)
    kinds = [o[1].split(" (")[0] if isinstance(o, tuple) else "frame" for o in expected]
    assert kinds[:4] == ["frame", "frame checksum mismatch", "inter frame without its reference", kinds[2]]
    assert [isinstance(o, np.ndarray) for o in expected] == [True, False, False, False, True, True, False, False, False, False]
    decoder = Decoder(config)
    assert_same(expected, parallel_outcomes(decoder, packets, workers))
    # Afterwards the decoder holds what the serial one would: no reference after the lost ones.
    assert_same(serial_outcomes(Decoder(config), [packets[-1]]), serial_outcomes(decoder, [packets[-1]]))
    decoder.close()


def test_packets_are_split_at_intact_intra_frames_only(frames: list[np.ndarray]) -> None:
    packets = serial_packets(frames[:6], 3)
    broken_key = b"\x00" + packets[3][1:]
    runs = list(gops([packets[1], packets[2], packets[0], packets[1], broken_key, packets[4]]))
    assert [len(run) for run in runs] == [2, 4]


# --- the file pipeline ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames 96x64 at 25 fps with audio, GC mode, GOP 8 (5 Clusters), no preview track."""
    folder = tmp_path_factory.mktemp("parallel")
    source = folder / "source.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1.6"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=1.6"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(source)),
    )
    out = folder / "stream.mkv"
    encode_file(source, out, mode="gc", gop=8, quality=1, preview=False)
    return out


def damaged_file(stream: Path, tmp_path: Path) -> Path:
    """Frame 5's packet with a flipped byte (codec damage) and the Cluster of frames 24..31 destroyed."""
    data = bytearray(stream.read_bytes())
    with MatroskaReader(stream) as reader:
        packet = [p.data for p in reader.packets({1})][5]
    at = data.find(packet) + len(packet) // 2
    data[at] ^= 0xFF
    clusters = _cluster_offsets(bytes(data))
    assert len(clusters) == 5  # one per GOP, and no Cluster ID inside a packet by chance
    cluster = clusters[3]
    for k in range(24):
        data[cluster + k] ^= 0xFF
    path = tmp_path / "damaged.mkv"
    path.write_bytes(bytes(data))
    return path


def _cluster_offsets(data: bytes) -> list[int]:
    """Where each Cluster ID occurs in the file."""
    offsets, at = [], data.find(b"\x1f\x43\xb6\x75")
    while at >= 0:
        offsets.append(at)
        at = data.find(b"\x1f\x43\xb6\x75", at + 4)
    return offsets


def test_decode_file_with_workers_writes_the_serial_output_and_warnings(gc_file: Path, tmp_path: Path) -> None:
    path = damaged_file(gc_file, tmp_path)
    results = []
    for workers in (1, 2):
        warnings: list[str] = []
        out = tmp_path / f"out{workers}.y4m"
        summary = decode_file(path, out, on_warning=warnings.append, workers=workers)
        results.append((summary.frames, summary.damaged_frames, warnings, out.read_bytes()))
    serial, parallel = results
    assert serial[:2] == (40, 3 + 8)  # frames 5, 6, 7 until the keyframe at 8; the Cluster's 8 frames
    assert any("frame 5 at 0.200 s is damaged (frame checksum mismatch" in w for w in serial[2])
    assert any("8 frames lost to container damage" in w for w in serial[2])
    assert parallel == serial


def all_packets(path: Path) -> list[tuple[int, Fraction, bytes, bool]]:
    with MatroskaReader(path) as reader:
        return [(p.track, p.time, p.data, p.keyframe) for p in reader.packets()]


def test_cli_workers_encode_and_decode_the_serial_bytes(gc_file: Path, tmp_path: Path) -> None:
    source = gc_file.parent / "source.mp4"
    serial_mkv, parallel_mkv = tmp_path / "serial.mkv", tmp_path / "parallel.mkv"
    encode_file(source, serial_mkv, mode="gc", gop=3, quality=1)  # preview and audio tracks too
    args = ("--mode", "gc", "--gop", "3", "--quality", "1", "--workers", "2")
    done = subprocess.run([sys.executable, "-m", "streamcodec.cli", "encode", str(source), "-o", str(parallel_mkv), *args])
    assert done.returncode == 0
    assert all_packets(parallel_mkv) == all_packets(serial_mkv)
    decode_file(serial_mkv, tmp_path / "serial.y4m")
    command = ["decode", str(serial_mkv), "-o", str(tmp_path / "parallel.y4m"), "--workers", "2"]
    assert subprocess.run([sys.executable, "-m", "streamcodec.cli", *command]).returncode == 0
    assert (tmp_path / "parallel.y4m").read_bytes() == (tmp_path / "serial.y4m").read_bytes()


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_cli_refuses_zero_workers_in_one_line(gc_file: Path, tmp_path: Path, command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamcodec.cli", command, str(gc_file), "-o", str(tmp_path / "out.mkv"), "--workers", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1].endswith("--workers 0: at least 1")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.mkv").exists()
