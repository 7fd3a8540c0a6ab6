"""Damaged containers: the reader resynchronises, decode keeps every frame slot, info reports it."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamcodec.errors import CorruptStreamError, StreamcodecError, TruncatedStreamError
from streamcodec.io import ebml
from streamcodec.io.ebml import ID
from streamcodec.io.matroska import TrackSpec
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.io.mkv_writer import MatroskaWriter
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info

from .conftest import ffmpeg

FRAMES = 40
GOP = 8


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames 96x64 at 25 fps with AAC audio, GOP 8 (5 Clusters), no preview track."""
    folder = tmp_path_factory.mktemp("damage")
    source = folder / "source.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1.6"),
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=1.6"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(source)),
    )
    out = folder / "stream.mkv"
    encode_file(source, out, gop=GOP, quality=1, preview=False)
    return out


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=timeout)


def top_level(path: Path) -> dict[int, list[ebml.ElementHeader]]:
    """The Segment's children by id."""
    data = path.read_bytes()
    header = ebml.parse_header(data, 0, 0, path)
    assert header.end is not None
    segment = ebml.parse_header(data, header.end, 0, path)
    found: dict[int, list[ebml.ElementHeader]] = {}
    for child, _ in ebml.iter_children(data[segment.data_offset :], segment.data_offset, path):
        found.setdefault(child.id, []).append(child)
    return found


def damaged_copy(stream: Path, tmp_path: Path, changes: dict[int, int]) -> Path:
    """A copy of `stream` with the bytes at the given offsets XOR-ed with the given masks."""
    data = bytearray(stream.read_bytes())
    for offset, mask in changes.items():
        data[offset] ^= mask
    path = tmp_path / "damaged.mkv"
    path.write_bytes(bytes(data))
    return path


def frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [Fraction(frame.pts or 0) * (frame.time_base or 1) for frame in container.decode(video=0)]


def recompute_crc(data: bytearray, element: ebml.ElementHeader) -> None:
    """Rewrite the CRC-32 of a top-level element after its payload was patched on purpose."""
    assert element.end is not None and data[element.data_offset] == ID.CRC32
    start = element.data_offset + ebml.CRC_ELEMENT_SIZE
    data[element.data_offset + 2 : start] = struct.pack("<I", zlib.crc32(bytes(data[start : element.end])))


# --- Clusters --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 2, 4])
@pytest.mark.parametrize("byte", [0, 1, 3])
def test_flipped_cluster_id_loses_no_frame_and_is_reported(stream: Path, tmp_path: Path, which: int, byte: int) -> None:
    cluster = top_level(stream)[ID.CLUSTER][which]
    path = damaged_copy(stream, tmp_path, {cluster.offset + byte: 0x5A})
    warnings: list[str] = []
    summary = decode_file(path, None, on_warning=warnings.append)
    assert summary.frames == FRAMES and summary.damaged_frames == 0  # the Cluster's body was found again
    assert any("container damage" in w and "where a Cluster should be" in w for w in warnings)
    info = stream_info(path)
    assert info.frames == FRAMES and info.lost_frames == 0 and info.damaged


def test_destroyed_cluster_is_concealed_with_the_streams_frame_count_and_timestamps(stream: Path, tmp_path: Path) -> None:
    cluster = top_level(stream)[ID.CLUSTER][2]  # frames 16..23
    path = damaged_copy(stream, tmp_path, {cluster.offset + k: 0xFF for k in range(24)})
    warnings: list[str] = []
    summary = decode_file(path, tmp_path / "out.mkv", on_warning=warnings.append)
    assert summary.frames == FRAMES and summary.damaged_frames == GOP
    assert any("8 frames lost to container damage at 0.640–0.920 s" in w for w in warnings)
    decode_file(stream, tmp_path / "clean.mkv")
    assert frame_times(tmp_path / "out.mkv") == frame_times(tmp_path / "clean.mkv")
    decode_file(path, tmp_path / "out.y4m")
    assert len(frame_times(tmp_path / "out.y4m")) == FRAMES
    decode_file(path, tmp_path / "frames")
    assert len(list((tmp_path / "frames").glob("*.png"))) == FRAMES
    info = stream_info(path)
    assert (info.frames, info.lost_frames) == (FRAMES, GOP)
    assert any("8 frames lost" in line for line in info.damaged)


def test_destroyed_first_and_last_clusters_are_concealed(stream: Path, tmp_path: Path) -> None:
    clusters = top_level(stream)[ID.CLUSTER]
    changes = {cluster.offset + k: 0xFF for cluster in (clusters[0], clusters[-1]) for k in range(24)}
    path = damaged_copy(stream, tmp_path, changes)
    summary = decode_file(path, None)
    # The first from the first CuePoint, the last up to the Info Duration.
    assert (summary.frames, summary.damaged_frames) == (FRAMES, 2 * GOP)


def test_info_on_damage_exits_non_zero_with_the_lost_frames(stream: Path, tmp_path: Path) -> None:
    cluster = top_level(stream)[ID.CLUSTER][1]
    path = damaged_copy(stream, tmp_path, {cluster.offset + k: 0xFF for k in range(24)})
    result = run_cli("info", str(path), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    info = json.loads(result.stdout)
    assert (info["frames"], info["lost_frames"]) == (FRAMES, GOP)


# --- index elements --------------------------------------------------------------------------


INDEX = [(ID.CUES, "Cues"), (ID.TAGS, "Tags"), (ID.INFO, "Info"), (ID.SEEK_HEAD, "SeekHead")]


@pytest.mark.parametrize(("element_id", "name"), INDEX)
def test_damaged_index_element_is_a_warning_not_a_refusal(stream: Path, tmp_path: Path, element_id: int, name: str) -> None:
    element = top_level(stream)[element_id][0]
    path = damaged_copy(stream, tmp_path, {element.data_offset + ebml.CRC_ELEMENT_SIZE + 5: 0x04})
    warnings: list[str] = []
    summary = decode_file(path, None, on_warning=warnings.append)
    assert summary.frames == FRAMES and summary.damaged_frames == 0
    assert any(f"{name} CRC-32 mismatch" in w and "ignored" in w for w in warnings)
    assert any(f"{name} CRC-32" in line for line in stream_info(path).damaged)


@pytest.mark.parametrize("element_id", [ID.SEEK_HEAD, ID.INFO, ID.TRACKS, ID.TAGS])
def test_flipped_index_element_id_is_recovered(stream: Path, tmp_path: Path, element_id: int) -> None:
    element = top_level(stream)[element_id][0]
    path = damaged_copy(stream, tmp_path, {element.offset + 2: 0x21})
    summary = decode_file(path, None)
    assert summary.frames == FRAMES


def test_damaged_tracks_is_refused_unless_salvaged(stream: Path, tmp_path: Path) -> None:
    tracks = top_level(stream)[ID.TRACKS][0]
    name_at = stream.read_bytes().index(b"streamcodec ", tracks.offset)
    path = damaged_copy(stream, tmp_path, {name_at + 3: 0x01})  # a byte of the track's Name
    with pytest.raises(CorruptStreamError, match=r"Tracks CRC-32 mismatch.*--salvage"):
        decode_file(path, None)
    warnings: list[str] = []
    summary = decode_file(path, None, salvage=True, on_warning=warnings.append)
    assert summary.frames == FRAMES and any("Tracks CRC-32 mismatch" in w and "read anyway" in w for w in warnings)


def test_seek_heads_pointing_at_each_other_terminate(stream: Path, tmp_path: Path) -> None:
    data = bytearray(stream.read_bytes())
    first = top_level(stream)[ID.SEEK_HEAD][0]
    assert first.end is not None
    void = ebml.parse_header(bytes(data), first.end, 0, stream)
    assert void.id == ID.VOID and void.end is not None
    segment_start = first.offset
    # A second SeekHead in the Void, pointing back at the first; the first's Tags entry points at it.
    pointer = [ebml.binary_element(ID.SEEK_ID, ebml.encode_id(ID.SEEK_HEAD)), ebml.uint_element(ID.SEEK_POSITION, 0)]
    seek = ebml.master_element(ID.SEEK, pointer)
    second = ebml.master_element(ID.SEEK_HEAD, [seek], crc=True)
    data[void.offset : void.end] = second + ebml.void_element(void.end - void.offset - len(second))
    tags_seek = data.index(ebml.encode_id(ID.TAGS), first.offset, first.end)
    data[tags_seek : tags_seek + 4] = ebml.encode_id(ID.SEEK_HEAD)
    data[tags_seek + 7 : tags_seek + 15] = (void.offset - segment_start).to_bytes(8, "big")
    recompute_crc(data, first)
    path = tmp_path / "loop.mkv"
    path.write_bytes(bytes(data))
    info = run_cli("info", str(path), "--json", timeout=120)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["frames"] == FRAMES
    decoded = run_cli("decode", str(path), "-o", str(tmp_path / "out.y4m"), "--json", timeout=120)
    assert decoded.returncode == 0 and json.loads(decoded.stdout)["frames"] == FRAMES


# --- values out of range ---------------------------------------------------------------------


def test_infinite_duration_is_ignored_with_a_warning(stream: Path, tmp_path: Path) -> None:
    data = bytearray(stream.read_bytes())
    info = top_level(stream)[ID.INFO][0]
    duration = data.index(bytes((0x44, 0x89, 0x88)), info.data_offset) + 3
    data[duration : duration + 8] = struct.pack(">d", float("inf"))
    recompute_crc(data, info)
    path = tmp_path / "inf.mkv"
    path.write_bytes(bytes(data))
    result = run_cli("decode", str(path), "-o", str(tmp_path / "out.mp4"), "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "Duration inf s is out of range; ignored" in result.stderr
    assert json.loads(result.stdout)["frames"] == FRAMES


def test_absurd_default_duration_is_ignored_with_a_warning(stream: Path, tmp_path: Path) -> None:
    path = tmp_path / "dd.mkv"
    with MatroskaReader(stream) as reader:
        track = reader.track(1)
        packets = list(reader.packets({1}))
    spec = TrackSpec(1, "video", track.codec_id, codec_private=track.codec_private, default_duration_ns=2**64 - 1)
    with MatroskaWriter(path, [spec], writing_app="tests") as writer:
        for packet in packets:
            writer.write(1, packet.time, packet.data, packet.keyframe)
    result = run_cli("decode", str(path), "-o", str(tmp_path / "out.mp4"), "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "DefaultDuration (ns) 18446744073709551615 is out of range" in result.stderr
    assert json.loads(result.stdout)["frames"] == FRAMES


def test_absurd_timestamp_scale_is_one_clear_error(stream: Path, tmp_path: Path) -> None:
    path = tmp_path / "scale.mkv"
    with MatroskaReader(stream) as reader:
        track = reader.track(1)
        packets = list(reader.packets({1}))
    spec = TrackSpec(1, "video", track.codec_id, codec_private=track.codec_private, default_duration_ns=40_000_000)
    with MatroskaWriter(path, [spec], writing_app="tests", timestamp_scale_ns=10**12) as writer:
        for packet in packets:
            writer.write(1, packet.time, packet.data, packet.keyframe)
    result = run_cli("decode", str(path), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("TimestampScale 1000000000000 ns is out of range (1..1000000000) at byte 180")


# --- unfinished encodes ----------------------------------------------------------------------

_KILLED_WRITER = """
import os, signal, sys
from fractions import Fraction
from pathlib import Path
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec
with MatroskaReader(Path(sys.argv[1])) as reader:
    track = reader.track(1)
    packets = list(reader.packets({1}))
spec = TrackSpec(1, "video", track.codec_id, codec_private=track.codec_private, default_duration_ns=track.default_duration_ns)
writer = MatroskaWriter(Path(sys.argv[2]), [spec], writing_app="streamcodec test")
for packet in packets[:30]:
    writer.write(1, packet.time, packet.data, packet.keyframe)
writer._file.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_partial_file_of_a_killed_encode_is_refused_and_salvaged(stream: Path, tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(stream), str(tmp_path / "out.mkv")], check=False)
    assert killed.returncode == -9 and not (tmp_path / "out.mkv").exists()
    (partial,) = tmp_path.glob(".out.mkv.partial-*")
    with pytest.raises(TruncatedStreamError, match="unfinished encode"):
        decode_file(partial, None)
    result = run_cli("decode", str(partial), "-o", str(tmp_path / "back.y4m"))
    assert result.returncode != 0 and "unfinished encode" in result.stderr and len(result.stderr.splitlines()) == 1
    warnings: list[str] = []
    summary = decode_file(partial, None, salvage=True, on_warning=warnings.append)
    assert 24 <= summary.frames <= 30 and any("unfinished encode" in w for w in warnings)
    assert run_cli("info", str(partial)).returncode == 1


# --- sweep -----------------------------------------------------------------------------------


def structure_positions(path: Path) -> list[int]:
    """Offsets of every byte that is container structure, not frame payload."""
    positions: list[int] = []
    with MatroskaReader(path) as reader:
        blocks = [(p.time, p.track) for p in reader.packets()]
    data = path.read_bytes()
    assert blocks
    for elements in top_level(path).values():
        for element in elements:
            assert element.end is not None
            if element.id != ID.CLUSTER:
                positions += range(element.offset, element.end)
                continue
            positions += range(element.offset, element.data_offset)
            for child, payload in ebml.iter_children(data[element.data_offset : element.end], element.data_offset, path):
                body = len(payload) if child.id != ID.SIMPLE_BLOCK else 4  # track, timestamp, flags
                positions += range(child.offset, child.data_offset + body)
    return positions


def sweep(stream: Path, tmp_path: Path, positions: list[int]) -> None:
    for position in positions:
        path = damaged_copy(stream, tmp_path, {position: 0xFF})
        try:
            summary = decode_file(path, None, salvage=True)
        except StreamcodecError:
            continue  # refusing is allowed; losing frames silently or a traceback is not
        assert summary.frames == FRAMES, f"byte {position}: {summary.frames} frames"


def test_flipping_any_structure_byte_never_loses_frames_short(stream: Path, tmp_path: Path) -> None:
    positions = structure_positions(stream)
    sweep(stream, tmp_path, random.Random(6).sample(positions, 16))


@pytest.mark.slow
def test_flipping_any_structure_byte_never_loses_frames(stream: Path, tmp_path: Path) -> None:
    positions = structure_positions(stream)
    sweep(stream, tmp_path, random.Random(7).sample(positions, min(200, len(positions))))


def video_packets(path: Path, errors: list[CorruptStreamError] | None = None) -> list[tuple[Fraction, bytes]]:
    """(time, payload) of every packet of the video track, read with salvage; errors collected."""
    with MatroskaReader(path, salvage=True) as reader:
        return [(p.time, p.data) for p in reader.packets(on_error=None if errors is None else errors.append) if p.track == 1]


def test_cluster_swallowed_by_a_cut_cluster_keeps_its_own_frames_and_times(stream: Path, tmp_path: Path) -> None:
    # Found by scripts/benchmarks/fuzz.py: two files spliced mid-Cluster; the cut Cluster's declared size ran
    # over the next whole Cluster, whose frames were then read (and lost) under the wrong timestamp.
    clusters = top_level(stream)[ID.CLUSTER]
    data = stream.read_bytes()
    cut, resume = clusters[1].offset + 40, clusters[3].offset - 20
    spliced = tmp_path / "spliced.mkv"
    spliced.write_bytes(data[:cut] + data[resume:])
    errors: list[CorruptStreamError] = []
    got = set(video_packets(spliced, errors))
    assert errors  # the cut is reported
    assert set(video_packets(stream)[3 * GOP :]) <= got  # every frame from the third Cluster on, at its own time


def test_cut_cluster_running_past_the_end_of_the_file_keeps_the_whole_cluster_inside(stream: Path, tmp_path: Path) -> None:
    # Found by scripts/benchmarks/fuzz.py (seed 8, `splice a[:53139] + b[47289:]`): the cut Cluster's size ran
    # past the end of the (shorter) spliced file, so it was read as a truncation to the end and the
    # whole last Cluster of the second file, inside it, was lost.
    clusters = top_level(stream)[ID.CLUSTER]
    data = bytearray(stream.read_bytes())
    cut, resume = clusters[1].offset + 40, clusters[4].offset - 20
    size_at, size_length = clusters[1].offset + 4, clusters[1].header_size - 4
    data[size_at : size_at + size_length] = ebml.encode_size(len(data), size_length)  # runs past the spliced file
    spliced = tmp_path / "spliced.mkv"
    spliced.write_bytes(data[:cut] + data[resume:])
    errors: list[CorruptStreamError] = []
    got = video_packets(spliced, errors)
    assert "Cluster is cut short by the next Cluster" in {str(e).split(": ", 1)[1].split(" at byte")[0] for e in errors}
    assert got[-GOP:] == video_packets(stream)[-GOP:]  # the last Cluster, whole and at its own times


def test_cluster_cut_after_its_id_does_not_hide_the_clusters_its_new_size_runs_over(stream: Path, tmp_path: Path) -> None:
    # Found by scripts/benchmarks/fuzz.py (GC, `splice a[:11535] + b[4430:]`): the first file is cut just after a
    # Cluster id, so the second file's bytes give that Cluster its size (running over whole Clusters)
    # and a payload with no CRC-32 at all; reading on after its end lost the Clusters inside.
    clusters = top_level(stream)[ID.CLUSTER]
    data = stream.read_bytes()
    tail = data[clusters[0].offset + 100 :]  # the second file, from the middle of its first Cluster
    size = ebml.encode_size(clusters[3].offset + 40 - (clusters[0].offset + 100), 8)  # ends inside its fourth
    spliced = tmp_path / "spliced.mkv"
    spliced.write_bytes(data[: clusters[2].offset + 4] + size + tail)
    errors: list[CorruptStreamError] = []
    got, clean = video_packets(spliced, errors), video_packets(stream)
    assert any("Cluster is cut short by the next Cluster" in str(e) for e in errors)
    assert got[: 2 * GOP] == clean[: 2 * GOP] and got[-4 * GOP :] == clean[GOP:]


def test_cluster_size_hit_past_the_end_with_every_later_crc_failing_keeps_the_later_clusters(
    stream: Path, tmp_path: Path
) -> None:
    # Found by scripts/benchmarks/fuzz.py (GC, eight flips): a Cluster's size was hit to run past the end of the
    # file and every later Cluster failed its CRC-32 (a flip in an audio block), so nothing told the
    # hit size from a cut file and every later GOP was lost although its video blocks were whole.
    clusters = top_level(stream)[ID.CLUSTER]
    data = bytearray(stream.read_bytes())
    size_at = clusters[1].offset + 4
    data[size_at : size_at + clusters[1].header_size - 4] = ebml.encode_size(len(data), clusters[1].header_size - 4)
    for cluster in clusters[1:]:
        assert cluster.end is not None
        payload = bytes(data[cluster.data_offset : cluster.end])
        audio = [c for c, _ in ebml.iter_children(payload, cluster.data_offset, stream) if c.id == ID.SIMPLE_BLOCK]
        audio = [c for c in audio if data[c.data_offset] == 0x82]  # track 2
        last = audio[-1].end
        assert last is not None
        data[last - 1] ^= 0xFF
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    errors: list[CorruptStreamError] = []
    got = video_packets(damaged, errors)
    assert any("Cluster size is damaged; reading its children" in str(e) for e in errors)
    assert got == video_packets(stream)  # every video block, at its own time


def test_spliced_in_file_head_does_not_hide_its_first_cluster(stream: Path, tmp_path: Path) -> None:
    # Found by scripts/benchmarks/fuzz.py (GC, `splice b[:18790] + a[100:]`): the second file starts inside its
    # SeekHead, where a SeekID holding the Cues id, followed by the SeekPosition id read as a size,
    # looks like a Cues element that runs over the second file's first Cluster. Here the first file
    # is cut between two Clusters, so the reader meets that false element where a Cluster should be.
    clusters = top_level(stream)[ID.CLUSTER]
    data = stream.read_bytes()
    seek_id = data.index(ebml.encode_id(ID.CUES) + ebml.encode_id(ID.SEEK_POSITION), 0, clusters[0].offset)
    spliced = tmp_path / "spliced.mkv"
    spliced.write_bytes(data[: clusters[2].offset] + data[seek_id:])
    errors: list[CorruptStreamError] = []
    got = video_packets(spliced, errors)
    assert any("runs over an intact Cluster" in str(e) for e in errors)
    assert got[-FRAMES:] == video_packets(stream)  # the whole second file, from its first Cluster on


def test_segment_of_unknown_size_cut_between_clusters_is_a_truncation(stream: Path, tmp_path: Path) -> None:
    # A Segment of unknown size (as live muxers write it) has no end to miss: cut exactly between
    # two Clusters, nothing is broken, yet its SeekHead points at Cues past the end of the file.
    data = bytearray(stream.read_bytes())
    header = ebml.parse_header(bytes(data), 0, 0, stream)
    assert header.end is not None
    segment = ebml.parse_header(bytes(data), header.end, 0, stream)
    data[segment.offset + 4 : segment.data_offset] = b"\x01" + b"\xff" * (segment.data_offset - segment.offset - 5)
    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    whole.write_bytes(data)
    cut_at = top_level(stream)[ID.CLUSTER][3].offset
    cut.write_bytes(data[:cut_at])
    errors: list[CorruptStreamError] = []
    assert len(video_packets(whole, errors)) == FRAMES and not errors
    assert len(video_packets(cut, errors)) == 3 * GOP
    message = "file ends before the index elements its SeekHead points at (truncated)"
    assert [str(e) for e in errors] == [f"{cut}: {message} at byte {cut_at}"]
    with pytest.raises(TruncatedStreamError, match="SeekHead points at"):
        decode_file(cut, None)


# --- a Cluster id hit into another top-level id ----------------------------------------------

KNOWN_IDS = [ID.INFO, ID.CUES, ID.TAGS, ID.SEEK_HEAD, ID.TRACKS, ID.CHAPTERS, ID.ATTACHMENTS]


def with_cluster_id(stream: Path, tmp_path: Path, which: int, element_id: int, body_hit: bool = False) -> Path:
    """A copy of `stream` whose `which`-th Cluster carries `element_id` (and, with `body_hit`, a
    damaged CRC-32 element id, so that its content no longer begins as a Cluster's)."""
    data = bytearray(stream.read_bytes())
    cluster = top_level(stream)[ID.CLUSTER][which]
    data[cluster.offset : cluster.offset + 4] = ebml.encode_id(element_id)
    if body_hit:
        data[cluster.data_offset] ^= 0xFF
    path = tmp_path / "renamed.mkv"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("which", [0, 2, 4])
@pytest.mark.parametrize("element_id", KNOWN_IDS)
def test_cluster_id_hit_into_another_known_id_keeps_its_frames_and_is_reported(
    stream: Path, tmp_path: Path, which: int, element_id: int
) -> None:
    # Issue 20 item 4: the Cluster was skipped as the element its id named, 8 frames gone without a word.
    path = with_cluster_id(stream, tmp_path, which, element_id)
    warnings: list[str] = []
    summary = decode_file(path, None, on_warning=warnings.append)
    assert (summary.frames, summary.damaged_frames) == (FRAMES, 0)
    assert any(f"Cluster id is damaged (reads 0x{element_id:X}" in w for w in warnings), warnings
    info = stream_info(path)
    assert (info.frames, info.lost_frames) == (FRAMES, 0) and info.damaged


@pytest.mark.parametrize("element_id", KNOWN_IDS)
def test_cluster_hit_into_another_known_id_with_a_damaged_body_counts_its_frames_as_lost(
    stream: Path, tmp_path: Path, element_id: int
) -> None:
    path = with_cluster_id(stream, tmp_path, 2, element_id, body_hit=True)
    warnings: list[str] = []
    summary = decode_file(path, tmp_path / "out.y4m", on_warning=warnings.append)
    assert (summary.frames, summary.damaged_frames) == (FRAMES, GOP)
    assert any("covers the Cluster the Cues place at byte" in w for w in warnings), warnings
    assert any("8 frames lost to container damage at 0.640–0.920 s" in w for w in warnings), warnings
    assert len(frame_times(tmp_path / "out.y4m")) == FRAMES
    result = run_cli("info", str(path), "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (json.loads(result.stdout)["frames"], json.loads(result.stdout)["lost_frames"]) == (FRAMES, GOP)


@pytest.mark.parametrize(("element_id", "name"), [(ID.INFO, "Info"), (ID.TRACKS, "Tracks"), (ID.CUES, "Cues")])
def test_second_element_of_a_kind_that_occurs_once_among_the_clusters_is_reported(
    stream: Path, tmp_path: Path, element_id: int, name: str
) -> None:
    # Without usable Cues to say a Cluster was there, a second Info, Tracks or Cues is what gives it away.
    data = bytearray(with_cluster_id(stream, tmp_path, 2, element_id, body_hit=True).read_bytes())
    cues = top_level(stream)[ID.CUES][0]
    data[cues.data_offset + ebml.CRC_ELEMENT_SIZE + 5] ^= 0x04  # the Cues fail their CRC-32: ignored
    path = tmp_path / "no-cues.mkv"
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    decode_file(path, None, on_warning=warnings.append)
    assert any(f"a second {name} (the first at byte" in w for w in warnings), warnings
    if element_id != ID.CUES:  # the first Cues met is the false one: the real one, at the end, comes too late to count
        assert any("8 frames lost to container damage" in w for w in warnings), warnings


@pytest.mark.parametrize(("which", "span"), [(2, "0.640–0.920 s"), (4, "1.280–1.560 s")])
def test_cluster_removed_whole_is_counted_as_lost_from_the_cues(stream: Path, tmp_path: Path, which: int, span: str) -> None:
    # Nothing in the container is broken once the Segment size and the SeekHead are patched: only the
    # Cues (a keyframe that never comes) tell that frames are missing.
    data = bytearray(stream.read_bytes())
    elements = top_level(stream)
    cluster, seek_head = elements[ID.CLUSTER][which], elements[ID.SEEK_HEAD][0]
    assert cluster.end is not None
    removed = cluster.end - cluster.offset
    header = ebml.parse_header(bytes(data), 0, 0, stream)
    assert header.end is not None
    segment = ebml.parse_header(bytes(data), header.end, 0, stream)
    assert segment.size is not None
    size_length = segment.data_offset - segment.offset - 4
    data[segment.offset + 4 : segment.data_offset] = ebml.encode_size(segment.size - removed, size_length)
    cues_seek = data.index(ebml.encode_id(ID.CUES) + ebml.encode_id(ID.SEEK_POSITION), seek_head.offset) + 7
    old = int.from_bytes(data[cues_seek : cues_seek + 8], "big")
    data[cues_seek : cues_seek + 8] = (old - removed).to_bytes(8, "big")
    recompute_crc(data, seek_head)
    del data[cluster.offset : cluster.end]
    path = tmp_path / "removed.mkv"
    path.write_bytes(bytes(data))
    with MatroskaReader(path) as reader:
        assert not reader.damage and len(list(reader.packets({1}))) == FRAMES - GOP  # the reader sees no damage
    warnings: list[str] = []
    summary = decode_file(path, None, on_warning=warnings.append)
    assert (summary.frames, summary.damaged_frames) == (FRAMES, GOP)
    assert any("8 frames lost" in w and span in w for w in warnings), warnings
    info = stream_info(path)
    assert (info.frames, info.lost_frames) == (FRAMES, GOP) and info.damaged


# --- splices of the two modes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gc_stream(stream: Path) -> Path:
    """The same 40 frames in global mode."""
    out = stream.parent / "gc.mkv"
    encode_file(stream.parent / "source.mp4", out, mode="gc", gop=GOP, quality=1, preview=False)
    return out


def spliced_modes(head: Path, tail: Path, tmp_path: Path, cut_in: int = 0) -> Path:
    """`head` up to its third Cluster (plus `cut_in` bytes of it), then `tail` from its third Cluster on."""
    head_at, tail_at = top_level(head)[ID.CLUSTER][2].offset, top_level(tail)[ID.CLUSTER][2].offset
    path = tmp_path / "spliced.mkv"
    path.write_bytes(head.read_bytes()[: head_at + cut_in] + tail.read_bytes()[tail_at:])
    return path


def first_frames(path: Path, count: int) -> list[bytes]:
    with av.open(str(path)) as container:
        frames = zip(container.decode(video=0), range(count), strict=False)
        return [frame.to_ndarray(format="rgb24").tobytes() for frame, _ in frames]


@pytest.mark.parametrize("cut_in", [0, 300])
@pytest.mark.parametrize("gc_first", [True, False])
def test_splice_of_the_two_modes_keeps_the_frames_of_the_files_own_mode(
    stream: Path, gc_stream: Path, tmp_path: Path, gc_first: bool, cut_in: int
) -> None:
    # Issue 20 item 3: a GC file whose tail is selective-mode Clusters was refused whole, even with --salvage.
    head, tail = (gc_stream, stream) if gc_first else (stream, gc_stream)
    path = spliced_modes(head, tail, tmp_path, cut_in)
    warnings: list[str] = []
    summary = decode_file(path, tmp_path / "out.y4m", salvage=True, on_warning=warnings.append)
    other = "SELECTIVE_INTRA" if gc_first else "INTRA"
    mode = "gc" if gc_first else "selective"
    assert any(f"is damaged ({other} frame in a {mode}-mode stream" in w for w in warnings)
    assert summary.frames >= FRAMES - (GOP if cut_in else 0) and summary.damaged_frames >= 3 * GOP
    decode_file(head, tmp_path / "clean.y4m")
    assert first_frames(tmp_path / "out.y4m", 2 * GOP) == first_frames(tmp_path / "clean.y4m", 2 * GOP)
    info = stream_info(path)
    assert any(f"{other} frame in a {mode}-mode stream" in line for line in info.damaged), info.damaged
    assert info.keyframes in (2, 3)  # the head's own (its third when the cut leaves it whole), never the tail's


def test_frame_this_build_cannot_decode_is_refused_naming_the_file(gc_stream: Path, tmp_path: Path) -> None:
    path = tmp_path / "newer.mkv"
    with MatroskaReader(gc_stream) as reader:
        track = reader.track(1)
        packets = list(reader.packets({1}))
    odd = bytearray(packets[3].data)
    odd[0] = odd[0] & 0xF0 | 0x07  # frame type 7: unknown to this decoder, in an intact packet
    odd[-4:] = struct.pack(">I", zlib.crc32(bytes(odd[:-4])))
    spec = TrackSpec(1, "video", track.codec_id, codec_private=track.codec_private, default_duration_ns=40_000_000)
    with MatroskaWriter(path, [spec], writing_app="tests") as writer:
        for index, packet in enumerate(packets):
            writer.write(1, packet.time, bytes(odd) if index == 3 else packet.data, packet.keyframe)
    with pytest.raises(StreamcodecError, match=rf"^{path}: frame 3 at 0.120 s: unknown frame type 7"):
        decode_file(path, None, salvage=True)
    result = run_cli("decode", str(path), "-o", str(tmp_path / "out.y4m"))
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].endswith("unknown frame type 7")
    assert str(path) in result.stderr.strip().splitlines()[-1]
