"""Outputs are sacred: nothing existing is replaced without --force, nothing else is ever deleted,
frames go only into new or empty folders, and partials left by killed runs are cleaned up."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamcodec import cli
from streamcodec.errors import OutputError, OutputExistsError
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec
from streamcodec.io.safe_output import Partial, absolute
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info
from streamcodec.pipeline.sink import VideoSink

from .conftest import ffmpeg

EXISTS = "exists; pass --force (-y) to replace it"
NOT_EMPTY = "is a folder that is not empty"
NEW_OR_EMPTY = "frames go only into a new or empty folder"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)


def cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process (fast) and return its one-line error."""
    capsys.readouterr()
    assert cli.main(list(args)) == cli.EXIT_ERROR
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def partials(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if ".partial-" in p.name}


@pytest.fixture(scope="module")
def encoded(clip_with_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoded") / "clip.mkv"
    encode_file(clip_with_audio, out, preview=False, quality=1, mode="gc")
    return out


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes at 25 fps: an encode of it is still running when the tests kill it."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25:duration=120", "-c:v", "libx264", "-preset", "ultrafast", str(path))
    return path


def test_decode_refuses_a_folder_that_holds_files_even_with_force(
    encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mydir = tmp_path / "mydir"
    mydir.mkdir()
    (mydir / "thesis.txt").write_text("years of work")
    for extra in ((), ("--force",), ("-y",)):
        line = cli_error(capsys, "decode", str(encoded), "-o", f"{mydir}/", *extra)
        assert NOT_EMPTY in line and "mydir" in line
    assert names(mydir) == ["thesis.txt"] and (mydir / "thesis.txt").read_text() == "years of work"
    assert names(tmp_path) == ["mydir"]
    with pytest.raises(OutputError, match=NOT_EMPTY):
        decode_file(encoded, mydir, force=True)


def test_decode_to_dot_refuses_a_non_empty_working_folder_and_fills_an_empty_one(
    encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    line = cli_error(capsys, "decode", str(encoded), "-o", ".")
    assert line == f"streamcodec decode: error: .: {NOT_EMPTY}; {NEW_OR_EMPTY} (--force never empties one)"
    assert names(tmp_path) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert cli.main(["decode", str(encoded), "-o", "."]) == 0
    assert names(empty) == [f"frame_{i:06d}.png" for i in range(1, 13)]


def test_decode_never_turns_an_existing_file_into_a_folder(
    encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README"
    readme.write_text("read me")
    for extra in ((), ("-y",)):
        line = cli_error(capsys, "decode", str(encoded), "-o", str(readme), *extra)
        assert "README: is a file, not a folder" in line
    assert readme.read_text() == "read me" and names(tmp_path) == ["README"]


def test_decode_writes_frames_into_a_new_folder(encoded: Path, tmp_path: Path) -> None:
    summary = decode_file(encoded, tmp_path / "frames")
    assert summary.frames == 12 and len(names(tmp_path / "frames")) == 12
    assert names(tmp_path) == ["frames"]


def test_decode_to_a_dotted_name_with_a_trailing_slash_writes_frames(
    encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames.v2"
    line = cli_error(capsys, "decode", str(encoded), "-o", str(folder))  # no slash: a file of an unknown type
    assert line == f"streamcodec decode: error: {folder}: unsupported output type '.v2' (use .mp4, .mkv, .mov, .y4m or a folder/)"
    assert cli.main(["decode", str(encoded), "-o", f"{folder}/", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 12
    assert len(names(folder)) == 12 and all(name.endswith(".png") for name in names(folder))
    assert names(tmp_path) == ["frames.v2"]


def test_encode_refuses_an_existing_output_until_force(
    clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.mkv"
    out.write_bytes(b"an older file")
    line = cli_error(capsys, "encode", str(clip_with_audio), "-o", str(out), "--no-preview")
    assert line == f"streamcodec encode: error: {out}: {EXISTS}"
    assert out.read_bytes() == b"an older file" and names(tmp_path) == ["clip.mkv"]
    assert cli.main(["encode", str(clip_with_audio), "-o", str(out), "--no-preview", "-y", "--quality", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 12 and out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
    assert names(tmp_path) == ["clip.mkv"]


def test_decode_refuses_an_existing_output_until_force(encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("out.mp4", "out.y4m"):
        out = tmp_path / name
        out.write_bytes(b"an older file")
        assert cli_error(capsys, "decode", str(encoded), "-o", str(out)) == f"streamcodec decode: error: {out}: {EXISTS}"
        assert out.read_bytes() == b"an older file"
        assert cli.main(["decode", str(encoded), "-o", str(out), "--force"]) == 0
        assert out.stat().st_size > 1000
    assert names(tmp_path) == ["out.mp4", "out.y4m"]


def test_python_api_refuses_to_clobber_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "taken.mkv"
    out.write_bytes(b"mine")
    # The input does not even exist: the output is checked first.
    with pytest.raises(OutputExistsError, match=re.escape(EXISTS)) as caught:
        encode_file(tmp_path / "missing.mp4", out, mode="gc")
    assert isinstance(caught.value, FileExistsError)
    with pytest.raises(OutputExistsError, match=re.escape(EXISTS)):
        decode_file(tmp_path / "missing.mkv", out)
    assert out.read_bytes() == b"mine" and names(tmp_path) == ["taken.mkv"]


VIDEO = TrackSpec(number=1, kind="video", codec_id="V_TEST", default_duration_ns=40_000_000, width=8, height=8)


def test_a_file_created_during_the_write_is_not_clobbered_at_the_rename(tmp_path: Path) -> None:
    out = tmp_path / "race.mkv"
    writer = MatroskaWriter(out, [VIDEO], writing_app="tests")
    writer.write(1, Fraction(0), b"frame", True)
    out.write_bytes(b"written meanwhile")
    with pytest.raises(OutputExistsError, match=re.escape(EXISTS)):
        writer.close()
    assert out.read_bytes() == b"written meanwhile" and names(tmp_path) == ["race.mkv"]


def test_a_frames_folder_filled_during_the_decode_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    sink = VideoSink(folder, 8, 8, None, Fraction(25))
    sink.write(np.zeros((8, 8, 3), np.uint8), Fraction(0))
    folder.mkdir()
    (folder / "thesis.txt").write_text("written meanwhile")
    with pytest.raises(OutputError, match="not an empty folder"):
        sink.close()
    sink.abort()
    assert names(folder) == ["thesis.txt"] and names(tmp_path) == ["frames"]


def _start_encode(source: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamcodec.cli", "encode", str(source), "-o", str(out), "--no-preview"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _open_partial(process: subprocess.Popen[bytes], folder: Path) -> str | None:
    """The partial in `folder` that `process` has open (Linux /proc), once it holds clusters."""
    fds = Path(f"/proc/{process.pid}/fd")
    for fd in list(fds.iterdir()) if fds.exists() else []:
        with contextlib.suppress(OSError):
            path = Path(os.readlink(fd))
            if path.parent == folder.resolve() and ".partial-" in path.name and path.stat().st_size > 4096:
                return path.name
    return None


def _wait_for_partials(folder: Path, *processes: subprocess.Popen[bytes]) -> list[str]:
    """Wait until every process is writing its partial in `folder`; their names, in order."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [_open_partial(process, folder) for process in processes]
        if all(found):
            return [name for name in found if name]
        assert all(process.poll() is None for process in processes), "an encode ended before the test could kill it"
        time.sleep(0.05)
    raise AssertionError("no partial appeared")


def test_partial_of_a_killed_encode_is_removed_by_the_next_run_but_a_live_ones_is_kept(
    long_clip: Path, clip_with_audio: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mkv"
    live, killed = _start_encode(long_clip, out), _start_encode(long_clip, out)
    try:
        live_partial, killed_partial = _wait_for_partials(tmp_path, live, killed)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
        assert partials(tmp_path) == {live_partial, killed_partial}
        assert encode_file(clip_with_audio, out, preview=False, mode="gc").frames == 12  # the next run
        assert partials(tmp_path) == {live_partial}  # the live writer's partial is still there
        assert live.poll() is None
    finally:
        for process in (live, killed):
            process.kill()
            process.wait()
    assert stream_info(out).frames == 12 and not stream_info(out).damaged


def test_decode_removes_only_stale_partials_of_its_own_output(encoded: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    stale = tmp_path / ".out.mp4.partial-deadbeef"
    stale.mkdir()
    (stale / "out.mp4").write_bytes(b"half a video")
    foreign = tmp_path / ".out.mp4.partial-0badf00d"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("not ours")
    lookalike = tmp_path / ".out.mp4.partial-notes.txt"
    lookalike.write_text("not ours either")
    live = Partial.create(absolute(out), folder=True)  # another decode writing the same name right now
    try:
        decode_file(encoded, out)
        assert names(tmp_path) == sorted([".out.mp4.partial-0badf00d", ".out.mp4.partial-notes.txt", live.path.name, "out.mp4"])
        assert names(foreign) == ["thesis.txt"]
    finally:
        live.discard()


@pytest.mark.parametrize(("rate", "header"), [("25", "F25:1"), ("30000/1001", "F30000:1001")])
def test_y4m_header_carries_the_stream_frame_rate(rate: str, header: str, tmp_path: Path) -> None:
    source = tmp_path / "src.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=32x32:rate={rate}", "-frames:v", "3", "-c:v", "ffv1", str(source))
    encoded = tmp_path / "enc.mkv"
    encode_file(source, encoded, preview=False, mode="gc")
    y4m = tmp_path / "out.y4m"
    decode_file(encoded, y4m)
    assert y4m.read_bytes().split(b"\n", 1)[0].split()[3].decode() == header
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=r_frame_rate", "-of", "csv=p=0", str(y4m)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == (rate if "/" in rate else f"{rate}/1")
    assert os.path.getsize(y4m) > 3 * 32 * 32 * 3


@pytest.mark.parametrize("alias", ["same name", "symlink", "hard link"])
def test_encode_and_decode_refuse_an_output_that_is_the_input_even_with_force(
    clip_with_audio: Path, encoded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], alias: str
) -> None:
    source, stream = tmp_path / "clip.mp4", tmp_path / "x.mkv"
    shutil.copy(clip_with_audio, source)
    shutil.copy(encoded, stream)
    originals = {path: path.read_bytes() for path in (source, stream)}

    def other_name(path: Path) -> Path:
        if alias == "same name":
            return path
        link = tmp_path / f"{path.stem}-{alias.replace(' ', '-')}{path.suffix}"
        if alias == "symlink":
            link.symlink_to(path)
        else:
            os.link(path, link)
        return link

    to_source, to_stream = other_name(source), other_name(stream)
    for args in (
        ("encode", str(source), "-o", str(to_source), "--mode", "gc", "-y"),
        ("decode", str(stream), "-o", str(to_stream), "-y"),
        ("decode", str(stream), "-o", str(to_source), "--reference", str(source), "-y"),
    ):
        line = cli_error(capsys, *args)
        assert "is also the input" in line and "--force never replaces an input" in line
    assert {path: path.read_bytes() for path in originals} == originals
    assert not partials(tmp_path)
