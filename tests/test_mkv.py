"""MatroskaWriter / MatroskaReader: round trips, independent readers, damage and atomicity."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamcodec.errors import CorruptStreamError, EmptyOutputError, InputNotFoundError
from streamcodec.io import ebml
from streamcodec.io.audio_codecs import audio_specific_config, matroska_audio_track, strip_adts
from streamcodec.io.ebml import ID
from streamcodec.io.mkv_interleave import Interleaver
from streamcodec.io.mkv_reader import MatroskaReader, Packet
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec

MS = Fraction(1, 1000)
VIDEO = TrackSpec(
    1,
    "video",
    "V_STREAMCODEC",
    codec_private=b"\x01model-config",
    default_duration_ns=40_000_000,
    width=320,
    height=240,
    name="streamcodec",
)
AUDIO = TrackSpec(2, "audio", "A_PCM/INT/LIT", sampling_frequency=8000.0, channels=1, bit_depth=16)
TAGS = {"ENCODER": "streamcodec test"}
TRACK_TAGS = {1: {"STREAMCODEC_MODEL_ID": "abc123"}}


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def sample_packets(frames: int = 60, key_every: int = 10, seed: int = 0) -> list[Packet]:
    """Video with variable frame durations (exact in ms) and 20 ms audio packets over the same span."""
    rng = random.Random(seed)
    packets, time = [], Fraction(0)
    for index in range(frames):
        packets.append(Packet(1, time, rng.randbytes(rng.randint(1, 3000)), index % key_every == 0))
        time += rng.choice([40, 40, 33, 50, 20]) * MS
    packets += [Packet(2, k * 20 * MS, rng.randbytes(320), True) for k in range(int(time / (20 * MS)))]
    return packets


def write_file(path: Path, packets: list[Packet], tracks: tuple[TrackSpec, ...] = (VIDEO, AUDIO)) -> int:
    with MatroskaWriter(path, tracks, title="clip", writing_app="tests", tags=TAGS, track_tags=TRACK_TAGS) as writer:
        for packet in packets:
            writer.write(packet.track, packet.time, packet.data, packet.keyframe)
        return writer.close()


def in_time_order(packets: list[Packet]) -> list[Packet]:
    return sorted(packets, key=lambda p: (p.time, p.track))


@pytest.fixture
def sample_file(tmp_path: Path) -> tuple[Path, list[Packet]]:
    packets = sample_packets()
    path = tmp_path / "clip.mkv"
    write_file(path, packets)
    return path, packets


def top_level(path: Path) -> list[tuple[ebml.ElementHeader, bytes]]:
    """The Segment's children with their payloads, read with the EBML primitives."""
    data = path.read_bytes()
    header = ebml.parse_header(data, 0, 0, path)
    assert header.end is not None
    segment = ebml.parse_header(data, header.end, 0, path)
    assert segment.id == ID.SEGMENT and segment.end == len(data)
    return [(h, bytes(p)) for h, p in ebml.iter_children(data[segment.data_offset :], segment.data_offset, path)]


# --- round trip ---------------------------------------------------------------------------


def test_round_trip_keeps_payloads_times_keyframes_and_metadata(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    with MatroskaReader(path) as reader:
        assert reader.title == "clip"
        assert reader.tags == TAGS
        assert reader.track_tags == TRACK_TAGS
        video = reader.track(1)
        assert (video.kind, video.codec_id, video.codec_private) == ("video", "V_STREAMCODEC", VIDEO.codec_private)
        assert (video.default_duration_ns, video.width, video.height, video.name) == (40_000_000, 320, 240, "streamcodec")
        assert video.rotation == 0.0  # no Projection written or read
        audio = reader.track(2)
        assert (audio.kind, audio.sampling_frequency, audio.channels, audio.bit_depth) == ("audio", 8000.0, 1, 16)
        read = list(reader.packets())
        last_video = max(p.time for p in packets if p.track == 1)
        assert reader.duration == last_video + Fraction(40, 1000)
    assert read == in_time_order(packets)


@pytest.mark.parametrize("degrees", [90.0, -90.0, 180.0])
def test_rotation_is_written_as_projection_roll_that_ffprobe_and_our_reader_read(tmp_path: Path, degrees: float) -> None:
    path = tmp_path / "rotated.mkv"
    with MatroskaWriter(path, [replace(VIDEO, rotation=degrees), AUDIO], writing_app="tests") as writer:
        for packet in sample_packets(frames=5):
            writer.write(packet.track, packet.time, packet.data, packet.keyframe)
    with MatroskaReader(path) as reader:
        assert (reader.track(1).rotation, reader.track(2).rotation) == (degrees, 0.0)
    probe = run("ffprobe", "-v", "error", "-select_streams", "v", "-show_streams", "-of", "json", str(path))
    side_data = json.loads(probe.stdout)["streams"][0]["side_data_list"]
    assert [s["side_data_type"] for s in side_data] == ["Display Matrix"]
    assert (side_data[0]["rotation"] - degrees) % 360 == 0  # ffprobe says -180 for 180
    report = json.loads(run("mkvmerge", "-J", str(path)).stdout)
    assert report["errors"] == [] and report["warnings"] == []


def test_track_entries_are_written_in_the_order_given(tmp_path: Path) -> None:
    path = tmp_path / "order.mkv"
    with MatroskaWriter(path, [AUDIO, VIDEO], writing_app="tests") as writer:
        for packet in sample_packets(frames=5):
            writer.write(packet.track, packet.time, packet.data, packet.keyframe)
    with MatroskaReader(path) as reader:
        assert [t.number for t in reader.tracks] == [2, 1]
    report = json.loads(run("mkvmerge", "-J", str(path)).stdout)
    assert [t["properties"]["number"] for t in report["tracks"]] == [2, 1] and report["errors"] == []


def test_cues_point_at_the_clusters_of_every_track_1_keyframe(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    keyframes = [p.time for p in packets if p.track == 1 and p.keyframe]
    with MatroskaReader(path) as reader:
        assert [time for time, _, _ in reader.cues] == keyframes
        assert {track for _, track, _ in reader.cues} == {1}
        data = path.read_bytes()
        assert all(data[offset : offset + 4] == ebml.encode_id(ID.CLUSTER) for _, _, offset in reader.cues)


def test_filtering_tracks_returns_only_those(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    with MatroskaReader(path) as reader:
        assert list(reader.packets(tracks={2})) == [p for p in in_time_order(packets) if p.track == 2]


def test_times_off_the_millisecond_grid_round_to_the_nearest_tick(tmp_path: Path) -> None:
    times = [Fraction(1001, 30000) * index for index in range(10)]
    write_file(tmp_path / "ntsc.mkv", [Packet(1, t, b"frame", True) for t in times], (VIDEO,))
    with MatroskaReader(tmp_path / "ntsc.mkv") as reader:
        assert [p.time for p in reader.packets()] == [Fraction(round(t * 1000), 1000) for t in times]


def test_every_top_level_element_starts_with_a_matching_crc32(sample_file: tuple[Path, list[Packet]]) -> None:
    elements = top_level(sample_file[0])
    ids = [header.id for header, _ in elements]
    assert ids[:5] == [ID.SEEK_HEAD, ID.VOID, ID.INFO, ID.TRACKS, ID.TAGS] and ids[-1] == ID.CUES
    for header, payload in elements:
        if header.id != ID.VOID:
            assert payload[:2] == b"\xbf\x84"
            assert struct.unpack("<I", payload[2:6])[0] == zlib.crc32(payload[6:])


def test_clusters_start_at_keyframes_and_span_at_most_five_seconds(tmp_path: Path) -> None:
    # One keyframe, then 70 s of frames: clusters must split on time (and int16 offsets).
    packets = [Packet(1, Fraction(index, 2), bytes([index]), index == 0) for index in range(140)]
    write_file(tmp_path / "long.mkv", packets, (VIDEO,))
    clusters = [payload for header, payload in top_level(tmp_path / "long.mkv") if header.id == ID.CLUSTER]
    starts = [ebml.decode_uint(ebml.children_dict(c, 0, tmp_path)[ID.CLUSTER_TIMESTAMP]) for c in clusters]
    # A block may sit 5 s after its cluster's start, so starts are at most 5 s + one frame apart.
    assert len(clusters) >= 12 and all(b - a <= 5500 for a, b in itertools.pairwise(starts))
    with MatroskaReader(tmp_path / "long.mkv") as reader:
        assert list(reader.packets()) == packets


def test_negative_audio_times_become_codec_delay_and_read_back(tmp_path: Path) -> None:
    priming = Fraction(-1024, 48000)
    audio = [Packet(2, priming + k * Fraction(1024, 48000), b"aac", True) for k in range(50)]
    video = [Packet(1, k * 40 * MS, b"v", k == 0) for k in range(25)]
    write_file(tmp_path / "primed.mkv", video + audio)
    with MatroskaReader(tmp_path / "primed.mkv") as reader:
        assert reader.track(2).codec_delay_ns == 21_333_334
        read = [p for p in reader.packets() if p.track == 2]
    assert len(read) == 50 and read[0].time == Fraction(-21_333_334, 10**9)
    assert all(abs(r.time - p.time) <= MS for r, p in zip(read, audio, strict=True))


# --- independent readers ------------------------------------------------------------------


@needs("mkvinfo")
def test_mkvinfo_shows_our_codec_id_and_codec_private(sample_file: tuple[Path, list[Packet]]) -> None:
    result = run("mkvinfo", str(sample_file[0]))
    assert result.returncode == 0
    assert "V_STREAMCODEC" in result.stdout and "Codec's private data: size 13" in result.stdout


@needs("mkvmerge")
def test_mkvmerge_identifies_the_file_without_errors_or_warnings(sample_file: tuple[Path, list[Packet]]) -> None:
    report = json.loads(run("mkvmerge", "-J", str(sample_file[0])).stdout)
    assert report["errors"] == [] and report["warnings"] == []
    assert report["container"]["recognized"] and report["container"]["type"] == "Matroska"
    assert [t["properties"]["codec_id"] for t in report["tracks"]] == ["V_STREAMCODEC", "A_PCM/INT/LIT"]


@needs("ffprobe")
def test_ffprobe_lists_the_stream_and_counts_its_packets(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    result = run(
        "ffprobe",
        "-v",
        "error",
        "-count_packets",
        "-select_streams",
        "0",
        "-show_entries",
        "stream=codec_name,width,height,nb_read_packets",
        "-of",
        "json",
        str(path),
    )
    stream = json.loads(result.stdout)["streams"][0]
    assert stream.get("codec_name", "none") in ("unknown", "none")  # ffprobe knows no decoder for it
    assert (stream["width"], stream["height"]) == (320, 240)
    assert int(stream["nb_read_packets"]) == sum(p.track == 1 for p in packets)


def test_pyav_demuxes_every_packet_with_pts_and_keyframe_flags(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    with av.open(str(path)) as container:
        stream = container.streams[0]
        assert stream.time_base is not None
        demuxed = [(p.pts * stream.time_base, p.is_keyframe, bytes(p)) for p in container.demux(stream) if p.pts is not None]
    assert demuxed == [(p.time, p.keyframe, p.data) for p in packets if p.track == 1]


# --- damage -------------------------------------------------------------------------------


def test_cluster_crc_mismatch_is_reported_and_later_clusters_still_read(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    with MatroskaReader(path) as reader:
        third_cluster = reader.cues[2][2]
    data = bytearray(path.read_bytes())
    data[third_cluster - 1] ^= 0x55  # last byte of the second cluster's last block: structure intact
    path.write_bytes(bytes(data))
    errors: list[CorruptStreamError] = []
    with MatroskaReader(path) as reader:
        read = list(reader.packets(on_error=errors.append))
        assert len(errors) == 1 and "CRC-32" in str(errors[0]) and errors[0].offset is not None
        assert len(read) == len(packets)  # damaged blocks still come out; frame checks decide
        assert read[-1] == in_time_order(packets)[-1]
        with pytest.raises(CorruptStreamError, match="CRC-32"):
            list(reader.packets())


def test_broken_cluster_size_is_reported_and_the_cluster_body_still_read(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    with MatroskaReader(path) as reader:
        second, third = reader.cues[1][2], reader.cues[2][2]
    data = bytearray(path.read_bytes())
    data[second + 4] = 0x00  # the Cluster's size vint becomes invalid
    path.write_bytes(bytes(data))
    errors: list[CorruptStreamError] = []
    with MatroskaReader(path) as reader:
        read = list(reader.packets(on_error=errors.append))
        expected = in_time_order(packets)
    assert errors and third > second
    assert read == expected  # resynchronised on the Cluster's body (CRC-32, Timestamp): nothing lost


def test_damaged_tracks_element_fails_to_open(sample_file: tuple[Path, list[Packet]]) -> None:
    path, _ = sample_file
    tracks = next(h for h, _ in top_level(path) if h.id == ID.TRACKS)
    data = bytearray(path.read_bytes())
    data[tracks.data_offset + 20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError, match="Tracks CRC-32"):
        MatroskaReader(path)


@pytest.mark.parametrize("fraction", [0.003, 0.02, 0.3, 0.5, 0.77, 0.999])
def test_truncated_file_reports_corruption_and_keeps_earlier_packets(
    sample_file: tuple[Path, list[Packet]], fraction: float
) -> None:
    path, packets = sample_file
    data = path.read_bytes()
    cut = int(len(data) * fraction)
    path.write_bytes(data[:cut])
    try:
        reader = MatroskaReader(path)
    except CorruptStreamError:
        assert cut < 600  # only a cut inside the header elements may refuse to open
        return
    errors: list[CorruptStreamError] = []
    with reader:
        read = list(reader.packets(on_error=errors.append))
        assert len(errors) >= 1
        with pytest.raises(CorruptStreamError):
            list(reader.packets())
    expected = in_time_order(packets)
    assert read == expected[: len(read)]
    assert fraction < 0.5 or len(read) > len(expected) // 3


def test_not_a_matroska_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.mkv").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(CorruptStreamError, match="not a Matroska file"):
        MatroskaReader(tmp_path / "x.mkv")
    with pytest.raises(InputNotFoundError):
        MatroskaReader(tmp_path / "missing.mkv")


# --- writer behaviour ---------------------------------------------------------------------


def test_exception_in_with_block_leaves_nothing_and_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mkv"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError), MatroskaWriter(path, [VIDEO], writing_app="tests", force=True) as writer:
        writer.write(1, Fraction(0), b"frame", True)
        raise RuntimeError("encoder failed")
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["out.mkv"]


def test_no_packet_on_track_1_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.mkv"
    with (
        pytest.raises(EmptyOutputError, match="no packet on track 1"),
        MatroskaWriter(path, [VIDEO, AUDIO], writing_app="tests") as writer,
    ):
        writer.write(2, Fraction(0), b"audio", True)
    assert os.listdir(tmp_path) == []


def test_close_publishes_the_file_with_normal_permissions(tmp_path: Path) -> None:
    size = write_file(tmp_path / "a.mkv", [Packet(1, Fraction(0), b"x", True)], (VIDEO,))
    assert (tmp_path / "a.mkv").stat().st_size == size and os.listdir(tmp_path) == ["a.mkv"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.mkv").stat().st_mode & 0o777 == 0o666 & ~umask


@needs("mkvmerge")
def test_audio_fed_early_or_late_comes_out_in_time_order(tmp_path: Path) -> None:
    packets = sample_packets(frames=100)
    video = [p for p in packets if p.track == 1]
    audio = [p for p in packets if p.track == 2]
    path = tmp_path / "mixed.mkv"
    with MatroskaWriter(path, [VIDEO, AUDIO], writing_app="tests") as writer:
        for packet in audio[:40]:  # audio runs ahead ...
            writer.write(2, packet.time, packet.data, packet.keyframe)
        for packet in video:  # ... then all video, then the rest of the audio lags behind
            writer.write(1, packet.time, packet.data, packet.keyframe)
        writer.end_track(1)
        for packet in audio[40:]:
            writer.write(2, packet.time, packet.data, packet.keyframe)
    with MatroskaReader(path) as reader:
        assert list(reader.packets()) == in_time_order(packets)
    report = json.loads(run("mkvmerge", "-J", str(path)).stdout)
    assert report["errors"] == [] and report["warnings"] == []


def test_interleaver_releases_when_one_track_runs_far_ahead() -> None:
    interleaver = Interleaver([1, 2], max_span=10_000, max_bytes=1 << 20)
    released = [p for k in range(30) for p in interleaver.push((k * 1000, 1, b"v", True))]
    # Track 2 is silent: nothing may go out until 10 s are buffered, then the oldest go first.
    assert [p[0] for p in released] == [k * 1000 for k in range(19)]
    assert [p[0] for p in interleaver.drain()] == [k * 1000 for k in range(19, 30)]


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="include 1"):
        MatroskaWriter(tmp_path / "a.mkv", [AUDIO], writing_app="tests")
    with pytest.raises(ValueError, match="does not fit CodecID"):
        TrackSpec(1, "video", "A_AAC")
    with pytest.raises(ValueError, match="outside"):
        TrackSpec(0, "audio", "A_AAC")
    with MatroskaWriter(tmp_path / "a.mkv", [VIDEO], writing_app="tests") as writer:
        with pytest.raises(ValueError, match="track 3"):
            writer.write(3, Fraction(0), b"x", True)
        with pytest.raises(TypeError):
            writer.write(1, 0.5, b"x", True)  # type: ignore[arg-type]
        writer.write(1, Fraction(0), b"x", True)


# --- other writers' files -----------------------------------------------------------------


def test_reads_clusters_and_segment_of_unknown_size(sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    data = bytearray(path.read_bytes())
    unknown = ebml.encode_size(None, 8)
    for header, _ in top_level(path):
        if header.id == ID.CLUSTER:
            data[header.offset + 4 : header.offset + 12] = unknown
    segment = data.find(ebml.encode_id(ID.SEGMENT))
    data[segment + 4 : segment + 12] = unknown
    path.write_bytes(bytes(data))
    with MatroskaReader(path) as reader:
        assert list(reader.packets()) == in_time_order(packets)
        assert len(reader.cues) == 6


@needs("ffmpeg")
def test_reads_ffmpeg_piped_output(tmp_path: Path) -> None:
    path = tmp_path / "piped.mkv"
    with path.open("wb") as out:
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10:duration=2",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=2",
                "-c:v",
                "mpeg4",
                "-g",
                "5",
                "-c:a",
                "pcm_s16le",
                "-f",
                "matroska",
                "pipe:1",
            ],
            stdout=out,
            check=True,
        )
    with MatroskaReader(path) as reader, av.open(str(path)) as container:
        ours = [(p.track, p.data, p.keyframe) for p in reader.packets()]
        theirs = [(p.stream.index + 1, bytes(p), p.is_keyframe) for p in container.demux() if p.size]
    assert sorted(ours, key=lambda x: x[0]) == sorted(theirs, key=lambda x: x[0])
    assert sum(t == 1 for t, _, _ in ours) == 20


def test_reads_block_groups_and_all_lacing_kinds(tmp_path: Path) -> None:
    frames = [b"a" * 300, b"b" * 5, b"c" * 70]
    xiph = bytes([2, 255, 45, 5]) + b"".join(frames)
    # EBML lacing: first size as a vint, then signed differences (5 - 300 = -295, bias 2**13 - 1).
    ebml_laced = bytes([2]) + ebml.encode_size(300) + ebml.encode_size(8191 - 295, 2) + b"".join(frames)
    fixed = bytes([2]) + b"z" * 30

    def block(flags: int, data: bytes, rel: int = 0) -> bytes:
        return bytes([0x82]) + struct.pack(">hB", rel, flags) + data

    cluster = ebml.master_element(
        ID.CLUSTER,
        [
            ebml.uint_element(ID.CLUSTER_TIMESTAMP, 1000),
            ebml.master_element(ID.BLOCK_GROUP, [ebml.binary_element(ID.BLOCK, block(0x02, xiph))]),
            ebml.master_element(
                ID.BLOCK_GROUP,
                [ebml.binary_element(ID.BLOCK, block(0x06, ebml_laced, 10)), ebml.int_element(ID.REFERENCE_BLOCK, -10)],
            ),
            ebml.binary_element(ID.SIMPLE_BLOCK, block(0x84, fixed, 20)),
        ],
    )
    write_file(
        tmp_path / "base.mkv",
        [Packet(1, Fraction(0), b"v", True)],
        (VIDEO, TrackSpec(2, "audio", "A_MPEG/L3", default_duration_ns=24_000_000)),
    )
    path = tmp_path / "laced.mkv"
    path.write_bytes(_append_cluster(tmp_path / "base.mkv", cluster))
    with MatroskaReader(path) as reader:
        read = list(reader.packets(tracks={2}))
    assert [p.data for p in read] == frames + frames + [b"z" * 10] * 3
    assert [p.keyframe for p in read] == [True] * 3 + [False] * 3 + [True] * 3
    assert [p.time for p in read[:3]] == [Fraction(1), Fraction(1024, 1000), Fraction(1048, 1000)]


def _append_cluster(path: Path, cluster: bytes) -> bytes:
    """The file with one more Cluster at the end of its Segment (Segment size fixed up)."""
    data = path.read_bytes()
    segment = next(i for i in range(len(data)) if data[i : i + 4] == ebml.encode_id(ID.SEGMENT))
    size = ebml.read_vint(data, segment + 4, keep_marker=False)[0]
    assert size is not None
    return data[: segment + 4] + ebml.encode_size(size + len(cluster), 8) + data[segment + 12 :] + cluster


# --- audio packet copy --------------------------------------------------------------------

AUDIO_SOURCES = [
    ("aac", "m4a"),
    ("aac", "aac"),
    ("libopus", "ogg"),
    ("libvorbis", "ogg"),
    ("flac", "flac"),
    ("pcm_s16le", "wav"),
    ("pcm_f32le", "wav"),
    ("libmp3lame", "mp3"),
    ("mp2", "mp2"),
    ("ac3", "ac3"),
    ("eac3", "eac3"),
]


@needs("ffmpeg")
@needs("mkvmerge")
@pytest.mark.parametrize(("encoder", "extension"), AUDIO_SOURCES)
def test_audio_packets_copied_into_matroska_decode_cleanly(tmp_path: Path, encoder: str, extension: str) -> None:
    source = tmp_path / f"source.{extension}"
    made = run(
        "ffmpeg",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1:sample_rate=48000",
        "-ac",
        "2",
        "-c:a",
        encoder,
        str(source),
    )
    if made.returncode != 0:
        pytest.skip(f"ffmpeg cannot encode {encoder}: {made.stderr.strip()}")
    output = tmp_path / "copy.mkv"
    with av.open(str(source)) as container:
        stream = container.streams.audio[0]
        spec = matroska_audio_track(stream, 2)
        assert spec is not None
        with MatroskaWriter(output, [VIDEO, spec], writing_app="tests") as writer:
            writer.write(1, Fraction(0), b"frame", True)
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None and packet.time_base is not None:
                    writer.write(2, packet.pts * packet.time_base, strip_adts(bytes(packet)), packet.is_keyframe)
    decoded = run("ffmpeg", "-v", "error", "-i", str(output), "-map", "0:a", "-f", "null", "-")
    assert decoded.returncode == 0 and decoded.stderr == ""
    report = json.loads(run("mkvmerge", "-J", str(output)).stdout)
    assert report["errors"] == [] and report["warnings"] == []
    with av.open(str(output)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(samples - 48000) <= 2048  # end padding that Ogg/MP3 trim and Matroska keeps


def test_strip_adts_only_touches_whole_adts_frames() -> None:
    payload = b"\x21\x10" + bytes(20)
    length = 7 + len(payload)
    header = bytes([0xFF, 0xF1, 0x4C, 0x80 | (length >> 11), (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC])
    assert strip_adts(header + payload) == payload
    flac_frame = bytes([0xFF, 0xF8, 0x69, 0x08, 0x00, 0x13]) + bytes(30)
    assert strip_adts(flac_frame) == flac_frame
    assert audio_specific_config(2, 48000, 2) == bytes([0x11, 0x90])


def test_codecs_without_a_mapping_return_none(tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    if run("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "pcm_mulaw", str(source)).returncode:
        pytest.skip("ffmpeg unavailable")
    with av.open(str(source)) as container:
        assert matroska_audio_track(container.streams.audio[0], 2) is None


@needs("ffmpeg")
@needs("mkvmerge")
def test_reads_an_mkvmerge_remux_of_our_file_with_laced_audio(tmp_path: Path, sample_file: tuple[Path, list[Packet]]) -> None:
    path, packets = sample_file
    source = tmp_path / "audio.m4a"
    run("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(source))
    remux = tmp_path / "remux.mkv"
    assert run("mkvmerge", "-q", "-o", str(remux), str(path), str(source)).returncode == 0
    errors: list[CorruptStreamError] = []
    with MatroskaReader(remux) as reader:
        assert reader.track(1).codec_private == VIDEO.codec_private
        assert reader.track_tags[1]["STREAMCODEC_MODEL_ID"] == "abc123"
        ours = [(p.track, p.data, p.keyframe) for p in reader.packets(on_error=errors.append)]
    with av.open(str(remux)) as container:
        theirs = [(p.stream.index + 1, bytes(p), p.is_keyframe) for p in container.demux() if p.size]
    assert errors == []
    assert [p for p in ours if p[0] == 1] == [(1, p.data, p.keyframe) for p in packets if p.track == 1]
    assert sorted(ours, key=lambda p: p[0]) == sorted(theirs, key=lambda p: p[0])


@pytest.mark.parametrize("size", [0, 1, 126, 127, 128, 16382, 16383, 2**21, 2**56 - 2])
def test_vint_sizes_round_trip_in_the_shortest_length(size: int) -> None:
    encoded = ebml.encode_size(size)
    assert ebml.read_vint(encoded, 0, keep_marker=False) == (size, len(encoded))
    assert len(encoded) == next(n for n in range(1, 9) if size < 2 ** (7 * n) - 1)
    assert ebml.read_vint(ebml.encode_size(size, 8), 0, keep_marker=False) == (size, 8)


def test_unknown_size_and_void_elements_have_exact_lengths() -> None:
    assert ebml.read_vint(ebml.encode_size(None, 8), 0, keep_marker=False) == (None, 8)
    for total in (2, 3, 128, 129, 130, 1000):
        void = ebml.void_element(total)
        header = ebml.parse_header(void, 0, 0, Path("x"))
        assert len(void) == total and header.id == ID.VOID and header.end == total
    with pytest.raises(ValueError, match="does not fit"):
        ebml.encode_size(2**56 - 1)


def test_fixed_size_lacing_of_one_frame_is_that_frame() -> None:
    from streamcodec.io.matroska import unlace

    # Found by scripts/benchmarks/fuzz.py: a flipped flags byte turned a plain block into fixed-size lacing of 1 frame.
    frames = unlace(memoryview(bytes([0]) + b"payload"), 2, 0, Path("x.mkv"))
    assert [bytes(f) for f in frames] == [b"payload"]


def test_integer_elements_longer_than_eight_bytes_are_damage() -> None:
    # Found by scripts/benchmarks/fuzz.py: a spliced file's 40-byte ClusterTimestamp made a time no float holds.
    assert ebml.decode_uint(b"\xff" * 8) == 2**64 - 1
    with pytest.raises(CorruptStreamError, match="at most 8"):
        ebml.decode_uint(b"\x01" * 9)
    with pytest.raises(CorruptStreamError, match="at most 8"):
        ebml.decode_int(b"\x01" * 40)
