"""File round trips, checked with our reader and with independent tools (ffprobe, mkvinfo, mkvmerge, PyAV)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamcodec import bitstream
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import CODEC_ID, encode_file
from streamcodec.streaminfo import stream_info

from .conftest import ffmpeg, require


@pytest.fixture(scope="module")
def encoded(clip_with_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "tone.mkv"
    encode_file(clip_with_audio, out, gop=5, quality=2)
    return out


def _source_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [Fraction(f.pts or 0) * (f.time_base or 1) for f in container.decode(video=0)]


def test_round_trip_keeps_frame_count_size_timestamps_and_audio(clip_with_audio: Path, encoded: Path, tmp_path: Path) -> None:
    out = tmp_path / "back.mp4"
    summary = decode_file(encoded, out, reference=clip_with_audio)
    assert summary.frames == 12 and summary.damaged_frames == 0
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        frames = list(container.decode(video))
        assert (video.width, video.height) == (96, 64)
        assert len(audio) == 1 and audio[0].codec_context.name == "aac"
    source_ms = [round(t * 1000) for t in _source_times(clip_with_audio)]
    assert [round(Fraction(f.pts or 0) * (f.time_base or 1) * 1000) for f in frames] == source_ms
    psnr_db = summary.quality["psnr_db"]
    assert psnr_db is not None and 0 < psnr_db < 100


def test_file_has_stream_preview_and_audio_tracks(encoded: Path) -> None:
    with MatroskaReader(encoded) as reader:
        kinds = {t.codec_id: t for t in reader.tracks}
        assert set(kinds) == {CODEC_ID, "A_AAC", "V_MPEG4/ISO/AVC"}
        assert kinds[CODEC_ID].default_duration_ns == 40_000_000
        assert reader.track_tags[kinds[CODEC_ID].number]["STREAMCODEC_FORMAT_VERSION"] == "1"
        keyframes = [p.keyframe for p in reader.packets({kinds[CODEC_ID].number})]
    assert keyframes == [i % 5 == 0 for i in range(12)]


def test_ffprobe_lists_our_stream_with_every_packet(encoded: Path) -> None:
    require("ffprobe")
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_streams", "-of", "json", str(encoded)],
        capture_output=True,
        text=True,
        check=True,
    )
    streams = json.loads(result.stdout)["streams"]
    ours = streams[0]
    assert (ours["codec_type"], ours["width"], ours["height"], ours["nb_read_packets"]) == ("video", 96, 64, "12")
    assert {s["codec_name"] for s in streams[1:]} == {"aac", "h264"}


def test_mkvinfo_shows_codec_id_and_mkvmerge_reports_no_problems(encoded: Path) -> None:
    require("mkvinfo")
    info = subprocess.run(["mkvinfo", str(encoded)], capture_output=True, text=True, check=True).stdout
    assert "Codec ID: V_STREAMCODEC" in info and "Codec's private data" in info
    report = json.loads(subprocess.run(["mkvmerge", "-J", str(encoded)], capture_output=True, text=True, check=True).stdout)
    assert report["errors"] == [] and report["warnings"] == []
    assert report["tracks"][0]["codec"] == CODEC_ID or report["tracks"][0]["properties"]["codec_id"] == CODEC_ID


def test_pyav_reads_our_packets_bit_exactly(encoded: Path) -> None:
    with MatroskaReader(encoded) as reader:
        ours = [(p.data, p.keyframe) for p in reader.packets({1})]
    with av.open(str(encoded)) as container:
        theirs = [(bytes(p), p.is_keyframe) for p in container.demux(container.streams[0]) if p.size]
    assert theirs == ours


def test_odd_size_other_container_is_cropped_back(odd_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "odd.mkv"
    encode_file(odd_clip, out, preview=False)
    frames_dir = tmp_path / "frames"
    summary = decode_file(out, frames_dir)
    pngs = sorted(frames_dir.glob("*.png"))
    assert summary.frames == len(pngs) == 7
    from PIL import Image

    assert Image.open(pngs[0]).size == (75, 53)
    y4m = tmp_path / "odd.y4m"
    decode_file(out, y4m)
    with av.open(str(y4m)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (75, 53)
        assert sum(1 for _ in container.decode(video=0)) == 7


def test_variable_frame_rate_keeps_every_timestamp(vfr_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "vfr.mkv"
    encode_file(vfr_clip, out, preview=False)
    with MatroskaReader(out) as reader:
        times = [p.time for p in reader.packets({1})]
    assert [round(t * 1000) for t in times] == [round(t * 1000) for t in _source_times(vfr_clip)]
    assert times[5] - times[4] == Fraction(1, 10)


def test_info_reports_frames_keyframes_and_bits(encoded: Path) -> None:
    info = stream_info(encoded)
    assert (info.frames, info.keyframes, info.config["gop"], info.config["quality"]) == (12, 3, 5, 2)
    assert info.frame_bits["min"] <= info.frame_bits["median"] <= info.frame_bits["max"]
    assert info.kbps == pytest.approx(info.video_bytes * 8 / 1000 / 0.48)
    assert info.damaged == []


def test_bitrate_option_picks_a_quality_that_fits(clip_with_audio: Path, tmp_path: Path) -> None:
    low = encode_file(clip_with_audio, tmp_path / "low.mkv", bitrate_kbps=1, preview=False)
    high = encode_file(clip_with_audio, tmp_path / "high.mkv", bitrate_kbps=100000, preview=False)
    assert low.quality == 1 and high.quality == 4


def test_damaged_frame_in_the_middle_is_concealed_and_the_rest_decodes(clip_with_audio: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.mkv"
    encode_file(clip_with_audio, src, gop=4, preview=False)
    with MatroskaReader(src) as reader:
        packets = [p.data for p in reader.packets({1})]
    data = bytearray(src.read_bytes())
    middle = data.find(packets[5])
    data[middle + len(packets[5]) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    warnings: list[str] = []
    summary = decode_file(damaged, tmp_path / "out.mp4", on_warning=warnings.append)
    assert summary.frames == 12
    assert summary.damaged_frames == 3  # frame 5 and the inter frames 6, 7 that depend on it; 8 is a keyframe
    assert any("frame 5" in w for w in warnings)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_audio_without_a_matroska_mapping_is_re_encoded_not_dropped(media_dir: Path, tmp_path: Path) -> None:
    source = media_dir / "pcm_be.mov"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "pcm_s16be",
        "-shortest",
        str(source),
    )
    out = tmp_path / "pcm.mkv"
    summary = encode_file(source, out, preview=False)
    assert summary.audio is not None and "re-encoded to AAC" in summary.audio
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:a", "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
    assert audio.codec_context.name == "aac"
    assert abs(samples - 44100) < 2048  # one second of audio, within an AAC frame or two of padding


def test_mkvextract_raw_output_splits_back_into_our_packets(encoded: Path, tmp_path: Path) -> None:
    require("mkvextract")
    raw = tmp_path / "track.raw"
    subprocess.run(["mkvextract", str(encoded), "tracks", "--raw", f"0:{raw}"], capture_output=True, check=True)
    data, packets, offset = raw.read_bytes(), [], 0
    while offset < len(data):
        length = bitstream.packet_length(data, offset)
        packets.append(data[offset : offset + length])
        offset += length
    with MatroskaReader(encoded) as reader:
        assert packets == [p.data for p in reader.packets({1})]
