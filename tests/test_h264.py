"""H.264 preview track: Annex B conversion, avcC, forced IDRs and a Matroska file ffmpeg decodes."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from streamcodec.io.h264 import PreviewEncoder, annexb_to_length_prefixed, avcc_from_annexb, preview_size, split_annexb
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec

MS = Fraction(1, 1000)


def frames(count: int, width: int = 320, height: int = 180) -> list[npt.NDArray[np.uint8]]:
    """A moving gradient with a little noise: cheap to encode, never static."""
    rng = np.random.default_rng(0)
    x = np.arange(width, dtype=np.int32)[None, :, None]
    y = np.arange(height, dtype=np.int32)[:, None, None]
    out = []
    for index in range(count):
        base = (x + y + 4 * index + np.array([0, 60, 120])) % 256
        out.append((base + rng.integers(0, 8, base.shape)).clip(0, 255).astype(np.uint8))
    return out


def test_annexb_to_length_prefixed_handles_3_and_4_byte_start_codes() -> None:
    stream = b"\x00\x00\x00\x01\x67\xaa\xbb" + b"\x00\x00\x01\x68\xcc" + b"\x00\x00\x00\x01\x65\x01\x02\x03\x00"
    assert split_annexb(stream) == [b"\x67\xaa\xbb", b"\x68\xcc", b"\x65\x01\x02\x03"]
    assert annexb_to_length_prefixed(stream) == (
        b"\x00\x00\x00\x03\x67\xaa\xbb" + b"\x00\x00\x00\x02\x68\xcc" + b"\x00\x00\x00\x04\x65\x01\x02\x03"
    )
    with pytest.raises(ValueError, match="Annex B"):
        split_annexb(b"\x00\x00\x00\x03\x67\xaa\xbb")


def test_avcc_record_carries_profile_sps_and_pps() -> None:
    sps, pps = b"\x67\x42\xc0\x1e\xda\x02\x80", b"\x68\xce\x3c\x80"
    record = avcc_from_annexb(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps)
    assert record == bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 7]) + sps + bytes([1, 0, 4]) + pps
    with pytest.raises(ValueError, match="SPS"):
        avcc_from_annexb(b"\x00\x00\x01" + pps)


def test_preview_size_keeps_aspect_with_even_sides() -> None:
    assert preview_size(1920, 1080, 480) == (480, 270)
    assert preview_size(1280, 720, 480) == (480, 270)
    assert preview_size(321, 181, 480) == (320, 180)
    assert preview_size(1000, 3, 480) == (480, 2)


def test_encoder_emits_a_packet_per_frame_and_forces_idr_frames() -> None:
    encoder = PreviewEncoder(320, 180, MS, max_width=160)
    assert (encoder.width, encoder.height) == (160, 90)
    keyframes = {0, 7, 13}
    packets = []
    for index, rgb in enumerate(frames(20)):
        out = encoder.encode(rgb, index * 40, index in keyframes)
        assert len(out) == 1  # zerolatency: no lookahead, no B-frames
        packets += out
    packets += encoder.flush()
    assert [pts for pts, _, _ in packets] == [index * 40 for index in range(20)]
    assert {index for index, (_, _, key) in enumerate(packets) if key} >= keyframes
    for index, (_, data, _) in enumerate(packets):  # length-prefixed NAL units that exactly fill the packet
        pos, nal_types = 0, set()
        while pos < len(data):
            nal_types.add(data[pos + 4] & 0x1F)
            pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
        assert pos == len(data)
        assert (5 in nal_types) == (index in keyframes or packets[index][2])  # IDR exactly where flagged
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode(np.zeros((180, 320, 3), np.float32), 0, False)


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("mkvmerge") is None, reason="needs ffmpeg and mkvmerge")
def test_preview_track_next_to_our_track_decodes_with_ffmpeg(tmp_path: Path) -> None:
    encoder = PreviewEncoder(320, 180, MS)
    tracks = [
        TrackSpec(1, "video", "V_STREAMCODEC", default_duration_ns=40_000_000, width=320, height=180),
        TrackSpec(
            2,
            "video",
            "V_MPEG4/ISO/AVC",
            codec_private=encoder.codec_private,
            default_duration_ns=40_000_000,
            width=encoder.width,
            height=encoder.height,
            default=False,
        ),
    ]
    path = tmp_path / "preview.mkv"
    with MatroskaWriter(path, tracks, writing_app="tests") as writer:
        for index, rgb in enumerate(frames(30)):
            keyframe = index % 10 == 0
            writer.write(1, index * 40 * MS, b"our frame", keyframe)
            for pts, data, key in encoder.encode(rgb, index * 40, keyframe):
                writer.write(2, pts * MS, data, key)
        for pts, data, key in encoder.flush():
            writer.write(2, pts * MS, data, key)
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:1", "-f", "null", "-"], capture_output=True, text=True, check=False
    )
    assert decoded.returncode == 0 and decoded.stderr == ""
    with av.open(str(path)) as container:
        pictures = list(container.decode(container.streams.video[1]))
    assert len(pictures) == 30 and (pictures[0].width, pictures[0].height) == (320, 180)
    report = json.loads(subprocess.run(["mkvmerge", "-J", str(path)], capture_output=True, text=True, check=False).stdout)
    assert report["errors"] == [] and report["warnings"] == []
    assert report["tracks"][1]["codec"] == "AVC/H.264/MPEG-4p10"
    with MatroskaReader(path) as reader:
        keys = [p.time for p in reader.packets(tracks={2}) if p.keyframe]
    assert {0, Fraction(4, 10), Fraction(8, 10)} <= set(keys)


def test_rate_capped_preview_stays_near_its_budget() -> None:
    encoder = PreviewEncoder(320, 180, MS, kbps=40, frame_rate=Fraction(25))
    sizes = [len(data) for index, rgb in enumerate(frames(50)) for _, data, _ in encoder.encode(rgb, index * 40, index % 25 == 0)]
    sizes += [len(data) for _, data, _ in encoder.flush()]
    kbps = sum(sizes) * 8 / 1000 / 2.0  # 50 frames at 25 fps
    assert len(sizes) == 50 and 0.5 * 40 < kbps < 1.25 * 40
    with pytest.raises(ValueError, match="frame rate"):
        PreviewEncoder(320, 180, MS, kbps=40)
