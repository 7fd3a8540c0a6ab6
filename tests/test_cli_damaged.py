"""`streamcodec encode` on damaged inputs: one clear line, no partial output, no silent frame loss.

Real damaged files: mp4 (moov at the end, and "faststart" with moov first), AVI and Matroska, cut
at several points or with a run of bytes overwritten. Where FFmpeg cannot read the file at all,
encode fails with exactly one line; where it can still read some frames, encode succeeds, writes
what it could read, and says in one warning line how many frames were lost or what FFmpeg reported.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ffmpeg
from .test_cli import assert_one_line_error, run_cli

FRAMES = 30
GARBAGE = bytes(range(7, 256, 3)) * 8  # 656 bytes of a fixed, non-zero pattern


def _box_offsets(data: bytes) -> dict[str, tuple[int, int]]:
    """Top-level mp4 boxes: type → (offset, size)."""
    boxes, offset = {}, 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes[kind.decode("latin-1")] = (offset, size)
        offset += max(size, 8)
    return boxes


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Undamaged clips: 30 frames 96x64 at 25 fps with audio, keyframe every 10 frames."""
    folder = tmp_path_factory.mktemp("damaged-sources")
    lavfi = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=1.2", "-f", "lavfi", "-i", "sine=duration=1.2"]
    x264 = ["-c:v", "libx264", "-threads", "1", "-g", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    ffmpeg(*lavfi, *x264, str(folder / "late.mp4"))  # moov after mdat (ffmpeg's default)
    ffmpeg(*lavfi, *x264, "-movflags", "+faststart", str(folder / "fast.mp4"))
    ffmpeg(*lavfi, *x264, str(folder / "clip.mkv"))
    ffmpeg(*lavfi, "-c:v", "mpeg4", "-g", "10", "-c:a", "mp3", "-shortest", str(folder / "clip.avi"))
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _cut(name: str, where: Callable[[bytes], int]) -> Callable[[dict[str, bytes]], bytes]:
    return lambda sources: sources[name][: where(sources[name])]


def _overwrite(name: str, where: Callable[[bytes], int]) -> Callable[[dict[str, bytes]], bytes]:
    def make(sources: dict[str, bytes]) -> bytes:
        data = bytearray(sources[name])
        at = where(bytes(data))
        data[at : at + len(GARBAGE)] = GARBAGE
        return bytes(data)

    return make


def _mid_mdat(data: bytes) -> int:
    offset, size = _box_offsets(data)["mdat"]
    return offset + size // 2


def _before_moov(data: bytes) -> int:
    return _box_offsets(data)["moov"][0] - 1


def _share(share: float) -> Callable[[bytes], int]:
    return lambda data: int(len(data) * share)


# name → (damaged file, expected outcome, words the one stderr line must hold)
FAILS = {
    "late_mp4_cut_after_ftyp.mp4": (_cut("late.mp4", lambda d: 48), "moov atom not found"),
    "late_mp4_cut_mid_mdat.mp4": (_cut("late.mp4", _mid_mdat), "moov atom not found"),
    "late_mp4_cut_before_moov.mp4": (_cut("late.mp4", _before_moov), "moov atom not found"),
    "mkv_cut_in_first_cluster.mkv": (_cut("clip.mkv", _share(0.1)), "holds no decodable video frames"),
}
WARNS = {
    "fast_mp4_cut_mid_mdat.mp4": (_cut("fast.mp4", _mid_mdat), "video frames the container declares could be read"),
    "late_mp4_garbage_in_mdat.mp4": (_overwrite("late.mp4", _mid_mdat), "could be read (FFmpeg: video packet at 0.640 s"),
    "avi_cut_mid.avi": (_cut("clip.avi", _share(0.5)), "video frames the container declares could be read"),
    "avi_garbage.avi": (_overwrite("clip.avi", _share(0.6)), "FFmpeg reported"),
    "mkv_cut_mid.mkv": (_cut("clip.mkv", _share(0.5)), "File ended prematurely"),
    "mkv_garbage.mkv": (_overwrite("clip.mkv", _share(0.3)), "FFmpeg reported"),
}


def _nonblank(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(FAILS))
def test_unreadable_damaged_input_is_one_line_and_no_output(name: str, sources: dict[str, bytes], tmp_path: Path) -> None:
    make, words = FAILS[name]
    damaged = tmp_path / name
    damaged.write_bytes(make(sources))
    result = run_cli("encode", str(damaged), "-o", str(tmp_path / "out.mkv"), "--no-preview", "--quality", "1")
    assert_one_line_error(result, name, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("name", sorted(WARNS))
def test_partly_readable_damaged_input_is_encoded_with_one_warning(name: str, sources: dict[str, bytes], tmp_path: Path) -> None:
    make, words = WARNS[name]
    damaged = tmp_path / name
    damaged.write_bytes(make(sources))
    out = tmp_path / "out.mkv"
    result = run_cli("encode", str(damaged), "-o", str(out), "--no-preview", "--quality", "1", "--json")
    assert result.returncode == 0, result.stderr
    lines = _nonblank(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"warning: {damaged}: the input is ") and words in lines[0], result.stderr
    summary = json.loads(result.stdout)
    frames = summary["frames"]
    assert summary["warnings"] == [lines[0].removeprefix("warning: ")]
    assert lines[0].endswith(f"encoded the {frames} frames that could be read")
    assert 0 < frames <= FRAMES
    if "could be read" in words:  # the count said: "only N of the 30 ..."
        assert f"only {frames} of the {FRAMES} video frames" in lines[0]
    info = run_cli("info", str(out), "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["frames"] == frames


def test_undamaged_sources_encode_without_a_warning(sources: dict[str, bytes], tmp_path: Path) -> None:
    for name in ("fast.mp4", "clip.avi"):
        clean = tmp_path / name
        clean.write_bytes(sources[name])
        result = run_cli("encode", str(clean), "-o", str(tmp_path / f"{name}.mkv"), "--no-preview", "--quality", "1", "--json")
        assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
        assert json.loads(result.stdout)["frames"] == FRAMES
