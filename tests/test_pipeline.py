"""File round trips, checked with our reader and with independent tools (ffprobe, mkvinfo, mkvmerge, PyAV)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import CODEC_ID, encode_file
from streamcodec.pipeline.info import stream_info

from .conftest import ffmpeg, require


@pytest.fixture(scope="module")
def encoded(clip_with_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "tone.mkv"
    encode_file(clip_with_audio, out, gop=5, quality=2, mode="gc")
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
        assert reader.track_tags[kinds[CODEC_ID].number]["STREAMCODEC_FORMAT_VERSION"] == "2"
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
    ours = streams[1]  # the preview's TrackEntry comes first
    assert (ours["codec_type"], ours["width"], ours["height"], ours["nb_read_packets"]) == ("video", 96, 64, "12")
    assert [s.get("codec_name") for s in streams] == ["h264", None, "aac"]  # ffprobe names no codec for ours


def test_mkvinfo_shows_codec_id_and_mkvmerge_reports_no_problems(encoded: Path) -> None:
    require("mkvinfo")
    info = subprocess.run(["mkvinfo", str(encoded)], capture_output=True, text=True, check=True).stdout
    assert "Codec ID: V_STREAMCODEC" in info and "Codec's private data" in info
    report = json.loads(subprocess.run(["mkvmerge", "-J", str(encoded)], capture_output=True, text=True, check=True).stdout)
    assert report["errors"] == [] and report["warnings"] == []
    assert [t["properties"]["codec_id"] for t in report["tracks"]] == ["V_MPEG4/ISO/AVC", CODEC_ID, "A_AAC"]


def test_pyav_reads_our_packets_bit_exactly(encoded: Path) -> None:
    with MatroskaReader(encoded) as reader:
        ours = [(p.data, p.keyframe) for p in reader.packets({1})]
    with av.open(str(encoded)) as container:
        theirs = [(bytes(p), p.is_keyframe) for p in container.demux(container.streams[1]) if p.size]
    assert theirs == ours


def test_odd_size_other_container_is_cropped_back(odd_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "odd.mkv"
    encode_file(odd_clip, out, preview=False, mode="gc")
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
    encode_file(vfr_clip, out, preview=False, mode="gc")
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
    warnings: list[str] = []
    low = encode_file(clip_with_audio, tmp_path / "low.mkv", bitrate_kbps=1, preview=False, on_warning=warnings.append, mode="gc")
    high = encode_file(clip_with_audio, tmp_path / "high.mkv", bitrate_kbps=100000, preview=False, mode="gc")
    assert low.quality == 1 and high.quality == 4
    assert low.warnings == warnings and len(warnings) == 1 and high.warnings == []
    assert warnings[0].startswith("target 1 kbps cannot be met: the lowest quality needs about ")
    assert float(warnings[0].split("about ")[1].split(" kbps")[0]) > 1


@pytest.fixture(scope="module")
def bbb_two_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 50 frames of the shipped sample, with its audio."""
    from .conftest import SAMPLE

    path = tmp_path_factory.mktemp("bbb") / "bbb50.mp4"
    ffmpeg("-i", str(SAMPLE), "-frames:v", "50", "-c:v", "libx264", "-crf", "18", "-c:a", "copy", "-t", "2", str(path))
    return path


@pytest.mark.parametrize("quality", [1, 4])
def test_preview_stays_smaller_than_the_codec_track(bbb_two_seconds: Path, tmp_path: Path, quality: int) -> None:
    summary = encode_file(bbb_two_seconds, tmp_path / "bbb.mkv", quality=quality, mode="gc")
    assert 0 < summary.preview_bytes < summary.video_bytes
    assert summary.preview_kbps == pytest.approx(summary.preview_bytes * 8 / 1000 / summary.duration_s)
    assert summary.file_kbps == pytest.approx(summary.file_bytes * 8 / 1000 / summary.duration_s)
    assert f"({summary.kbps:.1f} kbps," in summary.line() and f"({summary.file_kbps:.1f} kbps; preview" in summary.line()


def test_damaged_frame_in_the_middle_is_concealed_and_the_rest_decodes(clip_with_audio: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.mkv"
    encode_file(clip_with_audio, src, gop=4, preview=False, mode="gc")
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
    summary = encode_file(source, out, preview=False, mode="gc")
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
    subprocess.run(["mkvextract", str(encoded), "tracks", "--raw", f"1:{raw}"], capture_output=True, check=True)
    data, packets, offset = raw.read_bytes(), [], 0
    while offset < len(data):
        length = bitstream.packet_length(data, offset)
        packets.append(data[offset : offset + length])
        offset += length
    with MatroskaReader(encoded) as reader:
        assert packets == [p.data for p in reader.packets({1})]


def test_players_pick_the_preview_by_default(encoded: Path, tmp_path: Path) -> None:
    require("ffmpeg")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(encoded)], capture_output=True, text=True, check=True
    )
    video = [s for s in json.loads(probe.stdout)["streams"] if s["codec_type"] == "video"]
    assert [(s.get("codec_name"), s["disposition"]["default"]) for s in video] == [("h264", 1), (None, 0)]
    out = tmp_path / "plain.mp4"  # no -map: ffmpeg chooses the video stream itself
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(encoded), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) >= 12  # ffmpeg may repeat a frame for constant rate
    report = json.loads(subprocess.run(["mkvmerge", "-J", str(encoded)], capture_output=True, text=True, check=True).stdout)
    assert [t["properties"]["default_track"] for t in report["tracks"] if t["type"] == "video"] == [True, False]


def test_without_a_preview_our_track_is_the_default_video(odd_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "alone.mkv"
    encode_file(odd_clip, out, preview=False, mode="gc")
    report = json.loads(subprocess.run(["mkvmerge", "-J", str(out)], capture_output=True, text=True, check=True).stdout)
    assert [(t["properties"]["codec_id"], t["properties"]["default_track"]) for t in report["tracks"]] == [(CODEC_ID, True)]


@pytest.fixture(scope="module")
def portrait_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phone-style clip: 64x48 landscape pixels with a display matrix turning them 90°."""
    path = tmp_path_factory.mktemp("rot") / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for index in range(6):
            rgb = np.zeros((48, 64, 3), dtype=np.uint8)
            rgb[:, : 8 + 8 * index] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _rotations(path: Path) -> list[float | None]:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [next((d.get("rotation") for d in s.get("side_data_list", [])), None) for s in json.loads(probe.stdout)["streams"]]


def test_rotation_is_carried_to_the_mkv_and_to_decoded_video(portrait_clip: Path, tmp_path: Path) -> None:
    require("ffprobe")
    assert _rotations(portrait_clip) == [90]
    encoded = tmp_path / "phone.mkv"
    summary = encode_file(portrait_clip, encoded, quality=1, mode="gc")
    assert summary.rotation == 90 and "rotated 90°" in summary.line()
    assert _rotations(encoded) == [90, 90]  # the preview and our track
    with MatroskaReader(encoded) as reader:
        assert {t.codec_id: t.rotation for t in reader.tracks} == {"V_MPEG4/ISO/AVC": 90.0, CODEC_ID: 90.0}
    for suffix in (".mp4", ".mkv", ".mov"):
        decode_file(encoded, tmp_path / f"back{suffix}")
        assert _rotations(tmp_path / f"back{suffix}") == [90], suffix
    upright = tmp_path / "upright.mp4"  # ffmpeg applies the display matrix when it re-encodes
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "back.mp4"), str(upright)], check=True)
    with av.open(str(upright)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (48, 64)


def test_decoding_a_rotated_stream_to_frames_says_they_are_unrotated(portrait_clip: Path, tmp_path: Path) -> None:
    encoded = tmp_path / "phone.mkv"
    encode_file(portrait_clip, encoded, quality=1, preview=False, mode="gc")
    warnings: list[str] = []
    decode_file(encoded, tmp_path / "frames", on_warning=warnings.append)
    assert warnings == ["the stream is shown rotated 90° counter-clockwise; the PNG frames are written as coded, unrotated"]
    plain: list[str] = []
    decode_file(encoded, tmp_path / "back.mp4", on_warning=plain.append)
    assert plain == []


def test_paths_may_be_str_or_pathlike(clip_with_audio: Path, tmp_path: Path) -> None:
    """encode_file, decode_file and stream_info take str as well as Path (os.PathLike)."""
    from streamcodec.pipeline.info import stream_info

    out = str(tmp_path / "str.mkv")
    summary = encode_file(str(clip_with_audio), out, mode="gc", quality=1, preview=False)
    assert summary.frames == 12 and summary.input == str(clip_with_audio) and summary.output == out
    assert stream_info(out).frames == 12
    frames = decode_file(out, f"{tmp_path}/frames/", reference=str(clip_with_audio))
    assert frames.frames == 12 and len(list((tmp_path / "frames").glob("*.png"))) == 12
    assert decode_file(tmp_path / "str.mkv", None).frames == 12


def test_info_states_the_background_bound_the_stream_was_made_with(clip_with_audio: Path, tmp_path: Path) -> None:
    from streamcodec.codec import SelectiveOptions

    bounded, unbounded = tmp_path / "bounded.mkv", tmp_path / "unbounded.mkv"
    encode_file(clip_with_audio, bounded, preview=False)
    encode_file(clip_with_audio, unbounded, preview=False, selective=SelectiveOptions.for_files(max_background_error=0))
    assert "background within 20 levels of the source" in stream_info(bounded).text()
    assert stream_info(bounded).config["extra"]["max_background_error"] == 20.0
    assert "no background bound" in stream_info(unbounded).text()
    assert "max_background_error" not in stream_info(unbounded).config["extra"]
