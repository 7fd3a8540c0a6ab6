"""`streamcodec archive`, `verify`, `restore`: real runs of the CLI in subprocesses on tiny clips."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamcodec.io.mkv_reader import MatroskaReader

from .conftest import ffmpeg

CLI = [sys.executable, "-m", "streamcodec.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def make_clip(path: Path, seconds: float = 1.0, pattern: str = "testsrc2", start: float = 0.0) -> Path:
    """A 160x120 10 fps H.264 clip of `pattern` from `start` s (distinct starts give distinct content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"{pattern}=size=160x120:rate=10"
    ffmpeg(
        "-ss", str(start), "-f", "lavfi", "-i", source, "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)
    )
    return path


def make_moving_box(path: Path) -> Path:
    """3 s of flat grey; a white box appears at 1.5 s and moves right: motion in seconds 1 and 2 only."""
    box = "overlay=x='if(gte(t,1.5),20+60*(t-1.5),-100)':y=40"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=160x120:rate=10:duration=3", "-f", "lavfi", "-i",
           "color=c=white:size=30x30:rate=10:duration=3", "-filter_complex", f"[0][1]{box}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def rows(archive: Path, query: str = "SELECT source, status, output, error FROM files ORDER BY source") -> list[tuple]:
    with sqlite3.connect(archive / "catalogue.sqlite") as db:
        return db.execute(query).fetchall()


def packets(path: Path) -> list[tuple[int, object, bytes]]:
    """Every packet of a file: (track, time, bytes); the file's own random UIDs left out."""
    with MatroskaReader(path) as reader:
        return [(packet.track, packet.time, packet.data) for packet in reader.packets()]


def outputs(archive: Path) -> list[Path]:
    return sorted(p for p in archive.rglob("*.mkv") if ".archive-tmp" not in p.parts)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cams/ holding two clips (one in a subfolder), a moving box and a text file."""
    root = tmp_path_factory.mktemp("sources") / "cams"
    make_clip(root / "north" / "a.mp4", 1.0)
    make_clip(root / "b.mp4", 1.0, "mandelbrot")
    make_moving_box(root / "box.mp4")
    (root / "notes.txt").write_text("not a video\n")
    return root


@pytest.fixture(scope="module")
def archived(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The sources archived once, with two jobs."""
    archive = tmp_path_factory.mktemp("archived") / "archive"
    return archive, run("archive", str(sources), "--out", str(archive), "--jobs", "2")


def test_archive_mirrors_the_layout_and_records_every_file(archived: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    archive, done = archived
    assert [p.relative_to(archive).as_posix() for p in outputs(archive)] == ["cams/b.mkv", "cams/box.mkv", "cams/north/a.mkv"]
    statuses = {Path(source).name: status for source, status, _, _ in rows(archive)}
    assert statuses == {"a.mp4": "done", "b.mp4": "done", "box.mp4": "done", "notes.txt": "failed"}
    assert "4 files: 3 archived, 0 already archived, 0 duplicates, 1 failed" in done.stdout
    assert "h of footage" in done.stdout and "MB in" in done.stdout and "ratio" in done.stdout
    assert done.returncode == 1  # a failed file makes the run's exit non-zero, after everything else is done
    for path in outputs(archive):
        with MatroskaReader(path) as reader:
            assert any(track.codec_id == "V_STREAMCODEC" for track in reader.tracks)


def test_non_video_file_is_recorded_as_failed_with_its_reason(archived: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    archive, done = archived
    failed = [(source, error) for source, status, _, error in rows(archive) if status == "failed"]
    assert len(failed) == 1 and failed[0][0].endswith("notes.txt")
    assert failed[0][1] == "not a readable media file (FFmpeg: invalid data)"
    assert f"failed: {failed[0][0]}: not a readable media file" in done.stderr
    status = run("archive", "status", str(archive))
    assert status.returncode == 0
    assert status.stdout.splitlines()[0] == "0 pending, 0 running, 3 done, 0 duplicate, 1 failed"
    assert f"failed: {failed[0][0]}: not a readable media file (FFmpeg: invalid data)" in status.stdout


def test_find_lists_files_and_times_of_a_kind(archived: tuple[Path, subprocess.CompletedProcess[str]], sources: Path) -> None:
    archive, _ = archived
    box = str(sources / "box.mp4")
    found = run("archive", "find", str(archive), "--has", "motion", "--between", "1", "0:03")
    assert found.returncode == 0, found.stderr
    assert f"{box}\t0:00:01-0:00:03\tup to 1 motion region" in found.stdout.splitlines()
    early = run("archive", "find", str(archive), "--has", "motion", "--between", "0", "0.5")
    assert box not in early.stdout  # the box appears at 1.5 s
    nothing = run("archive", "find", str(archive), "--has", "unicorn")
    assert nothing.returncode == 1 and "kinds indexed: face, kept, motion, person" in nothing.stderr


def test_threads_per_job_reaches_the_encoder_and_changes_no_byte(
    archived: tuple[Path, subprocess.CompletedProcess[str]], sources: Path, tmp_path: Path
) -> None:
    first, _ = archived  # --jobs 2, the default budget: the cores shared between the two jobs
    again = tmp_path / "again"
    done = run("archive", str(sources), "--out", str(again), "--jobs", "1", "--threads-per-job", "3")
    assert done.returncode == 1, done.stderr[-2000:]  # notes.txt fails, as in the first run
    assert "processes, 3 threads each" in done.stdout
    assert re.search(r"archived .*b\.mp4 .*\(.*x real time, 3 threads\)", done.stderr), done.stderr[-2000:]
    query = "SELECT source, output, threads FROM files WHERE status = 'done' ORDER BY source"
    shared = max(1, (os.cpu_count() or 1) // 2)
    assert [row[2] for row in rows(first, query)] == [shared] * 3  # the x265 threads the encoder was built with
    assert [row[2] for row in rows(again, query)] == [3] * 3
    for (source, output, _), (same_source, other, _) in zip(rows(first, query), rows(again, query), strict=True):
        assert source == same_source and output == other
        assert packets(first / output) == packets(again / other), source  # the codec's bytes, frame by frame


def test_gc_mode_gives_the_same_packets_with_one_thread_or_two(tmp_path: Path) -> None:
    make_clip(tmp_path / "src" / "a.mp4", 0.5)
    for threads in ("1", "2"):  # torch's threads and ONNX Runtime's intra-op threads follow the budget
        out = tmp_path / threads
        done = run("archive", str(tmp_path / "src"), "--out", str(out), "--mode", "gc", "--threads-per-job", threads)
        assert done.returncode == 0, done.stderr[-2000:]
        assert rows(out, "SELECT mode, threads FROM files") == [("gc", int(threads))]
    assert packets(tmp_path / "1" / "src" / "a.mkv") == packets(tmp_path / "2" / "src" / "a.mkv")


def test_threads_column_is_added_to_an_older_catalogue(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    with sqlite3.connect(archive / "catalogue.sqlite") as db:  # the files table as the first release wrote it
        db.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, "
                   "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL, output TEXT, output_size INTEGER, "
                   "output_sha256 TEXT, ratio REAL, duration_s REAL, width INTEGER, height INTEGER, frames INTEGER, mode TEXT, "
                   "model_id TEXT, quality INTEGER, kbps REAL, bpp REAL, kept_share REAL, encode_s REAL, fps REAL, "
                   "worker TEXT, started REAL, finished REAL, error TEXT)")  # fmt: skip
    make_clip(tmp_path / "src" / "a.mp4", 0.5)
    done = run("archive", str(tmp_path / "src"), "--out", str(archive), "--threads-per-job", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(archive, "SELECT status, threads FROM files") == [("done", 1)]


def test_verify_passes_a_good_archive(archived: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    archive, _ = archived
    checked = run("verify", str(archive), "--full")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.fullmatch(r"verified 3 files \(0\.\d\d MB\): 0 damaged, 0 missing", checked.stdout.splitlines()[-1])


def test_verify_names_a_file_with_a_flipped_byte(archived: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    archive = tmp_path / "copy"
    shutil.copytree(archived[0], archive)
    target = archive / "cams" / "north" / "a.mkv"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    checked = run("verify", str(archive))
    assert checked.returncode == 1
    damaged = [line for line in checked.stdout.splitlines() if line.startswith("damaged:")]
    assert len(damaged) == 1 and damaged[0].startswith(f"damaged: {target}: content differs from the catalogue's sha256; ")
    assert "CRC" in damaged[0]
    assert checked.stdout.splitlines()[-1].endswith("1 damaged, 0 missing")


def test_verify_names_a_missing_file(archived: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    archive = tmp_path / "copy"
    shutil.copytree(archived[0], archive)
    (archive / "cams" / "b.mkv").unlink()
    checked = run("verify", str(archive))
    assert checked.returncode == 1
    assert any(line.startswith(f"missing: {archive / 'cams' / 'b.mkv'} (archived from ") for line in checked.stdout.splitlines())
    assert checked.stdout.splitlines()[-1].endswith("0 damaged, 1 missing")


def test_restore_decodes_to_video_and_never_replaces_a_file(
    archived: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    restored = tmp_path / "restored"
    (restored / "cams").mkdir(parents=True)
    (restored / "cams" / "b.mp4").write_text("the user's own file")
    done = run("restore", str(archived[0]), "--out", str(restored))
    assert done.returncode == 0, done.stderr
    assert (restored / "cams" / "b.mp4").read_text() == "the user's own file"
    assert f"exists, left as it is: {restored / 'cams' / 'b.mp4'}" in done.stdout
    assert "restored 2 files, 0 of them with damaged frames concealed, 1 already there, 0 failed" in done.stdout
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                            str(restored / "cams" / "north" / "a.mp4")], capture_output=True, text=True, check=True)  # fmt: skip
    frames = rows(archived[0], "SELECT frames FROM files WHERE source LIKE '%/a.mp4'")[0][0]
    assert int(probe.stdout.strip()) == frames >= 9


def frame_count(video: Path) -> int:
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of",
                            "csv=p=0", str(video)], capture_output=True, text=True, check=True)  # fmt: skip
    return int(probe.stdout.strip())


def test_restore_names_a_file_with_concealed_frames_and_exits_3_unless_allowed(
    archived: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    archive = tmp_path / "copy"
    shutil.copytree(archived[0], archive)
    target = archive / "cams" / "north" / "a.mkv"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    checked = run("verify", str(archive), "--full")
    counted = re.search(rf"damaged: {re.escape(str(target))}: .*decode: (\d+) damaged frames concealed", checked.stdout)
    assert checked.returncode == 1 and counted, checked.stdout
    restored = tmp_path / "restored"
    done = run("restore", str(archive), "--out", str(restored))
    assert done.returncode == 3, done.stdout + done.stderr  # every file is there, but not every frame is the archived one
    damaged = [line for line in done.stdout.splitlines() if line.startswith("damaged:")]
    assert damaged == [
        f"damaged: {target} → {restored / 'cams' / 'north' / 'a.mp4'}: {counted[1]} damaged frames concealed "
        "(the last good frame until the next keyframe)"
    ]  # the same file, the same count as verify --full
    assert done.stdout.splitlines()[-1] == "restored 3 files, 1 of them with damaged frames concealed, 0 already there, 0 failed"
    frames = rows(archive, "SELECT frames FROM files WHERE source LIKE '%/a.mp4'")[0][0]
    assert frame_count(restored / "cams" / "north" / "a.mp4") == frames  # concealed frames are there, none lost
    allowed = run("restore", str(archive), "--out", str(tmp_path / "allowed"), "--allow-damaged")
    assert allowed.returncode == 0 and "1 of them with damaged frames concealed" in allowed.stdout, allowed.stdout


def test_restore_brings_back_every_duplicate_from_its_originals_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_clip(src / "one.mp4", 0.5)
    archive = tmp_path / "archive"
    assert run("archive", str(src), "--out", str(archive)).returncode == 0
    alone = run("restore", str(archive), "--out", str(tmp_path / "alone"))
    assert alone.returncode == 0 and alone.stdout.startswith("restored 1 file, 0 of them"), alone.stdout
    (src / "later").mkdir()
    (src / "later" / "copy.mp4").write_bytes((src / "one.mp4").read_bytes())  # met in a later run
    (src / "old.mov").write_bytes((src / "one.mp4").read_bytes())
    done = run("archive", str(src), "--out", str(archive))
    assert "3 files: 0 archived, 1 already archived, 2 duplicates, 0 failed" in done.stdout, done.stdout + done.stderr
    assert rows(archive, "SELECT status, output, relative FROM files ORDER BY source") == [
        ("duplicate", "src/one.mkv", "src/later/copy.mp4"),
        ("duplicate", "src/one.mkv", "src/old.mov"),
        ("done", "src/one.mkv", None),
    ]
    with sqlite3.connect(archive / "catalogue.sqlite") as db:  # as a catalogue before `relative` was recorded
        db.execute("UPDATE files SET relative = NULL WHERE source LIKE '%/old.mov'")
    restored = tmp_path / "restored"
    done = run("restore", str(archive), "--out", str(restored))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "restored 3 files, 0 of them with damaged frames concealed, 0 already there, 0 failed"
    made = sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*.mp4"))
    assert made == ["src/later/copy.mp4", "src/old.mp4", "src/one.mp4"]  # old.mov: its own name beside its original
    frames = rows(archive, "SELECT frames FROM files WHERE status = 'done'")[0][0]
    assert [frame_count(restored / name) for name in made] == [frames] * 3


def _tamper(archive: Path, source_name: str, output: str) -> None:
    with sqlite3.connect(archive / "catalogue.sqlite") as db:
        db.execute("UPDATE files SET output = ? WHERE source LIKE ?", (output, f"%/{source_name}"))


def test_restore_and_verify_refuse_catalogue_paths_that_lead_outside(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_clip(src / "a.mp4", 0.5)
    make_clip(src / "b.mp4", 0.5, "mandelbrot")
    archive = tmp_path / "archive"
    assert run("archive", str(src), "--out", str(archive)).returncode == 0
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    shutil.copy(archive / "src" / "a.mkv", pwned / "evil.mkv")  # a real archived file: an unchecked path would decode it
    (archive / "link").symlink_to(pwned)
    for output in ("../pwned/evil.mkv", str(pwned / "evil.mkv"), "link/evil.mkv"):
        _tamper(archive, "a.mp4", output)
        restored = tmp_path / f"restored-{len(os.listdir(tmp_path))}"
        done = run("restore", str(archive), "--out", str(restored))
        assert done.returncode == 1, done.stdout + done.stderr
        refused = [line for line in done.stdout.splitlines() if line.startswith("refused:")]
        assert len(refused) == 1 and f"({src / 'a.mp4'}): output {output!r}" in refused[0], done.stdout
        assert refused[0].endswith("; not restored")
        assert done.stdout.splitlines()[-1].endswith("0 failed, 1 refused")
        assert [p.name for p in restored.rglob("*.mp4")] == ["b.mp4"]  # the rest go on
        assert os.listdir(pwned) == ["evil.mkv"] and not (restored.parent / "evil.mp4").exists()
        checked = run("verify", str(archive))
        last = checked.stdout.splitlines()[-1]
        assert checked.returncode == 1 and re.fullmatch(r"verified 1 files \(.*\): 0 damaged, 0 missing, 1 refused", last), last
        assert any(line.startswith(f"refused: catalogue row 1 ({src / 'a.mp4'}): output") for line in checked.stdout.splitlines())
    _tamper(archive, "a.mp4", "src/a.mkv")
    restored = tmp_path / "through-a-link"
    restored.mkdir()
    (restored / "src").symlink_to(pwned)  # the output side: a symlink inside --out that leads out of it
    done = run("restore", str(archive), "--out", str(restored))
    assert done.returncode == 1 and done.stdout.count("restore path") == 2, done.stdout
    assert os.listdir(pwned) == ["evil.mkv"]


def test_archive_never_writes_through_a_catalogue_path_outside_the_archive(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", 0.5)
    archive = tmp_path / "archive"
    assert run("archive", str(src), "--out", str(archive)).returncode == 0
    (archive / "clip.mkv").unlink()  # gone: the rerun encodes the file again, to the row's output
    _tamper(archive, "clip.mp4", "../pwned/clip.mkv")
    (tmp_path / "pwned").mkdir()
    done = run("archive", str(src), "--out", str(archive))
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "pwned") == []
    assert f"refused: catalogue row 1 ({src}): output '../pwned/clip.mkv' is outside the archive" in done.stderr
    assert rows(archive, "SELECT status, output FROM files") == [("done", "clip.mkv")]


def test_an_archive_inside_its_source_reached_through_a_symlink_is_never_scanned(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_clip(src / "cams" / "a.mp4", 0.5)
    (tmp_path / "link").symlink_to(src)
    archive = tmp_path / "link" / "archive"  # the same folder as src/archive, by another name
    for already in (0, 1):
        done = run("archive", str(src), "--out", str(archive))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"1 files: {1 - already} archived, {already} already archived, 0 duplicates, 0 failed" in done.stdout
    named = run("archive", str(src / "archive"), str(src / "cams" / "a.mp4"), "--out", str(archive))  # the archive as a source
    assert named.returncode == 0 and "1 files:" in named.stdout, named.stdout + named.stderr
    assert [source for (source,) in rows(archive, "SELECT source FROM files")] == [str(src / "cams" / "a.mp4")]


def test_rerun_skips_by_content_hash_and_recognises_a_renamed_copy(sources: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_clip(src / "one.mp4", 1.0)
    archive = tmp_path / "archive"
    first = run("archive", str(src), "--out", str(archive))
    assert first.returncode == 0, first.stderr
    (src / "renamed copy.mp4").write_bytes((src / "one.mp4").read_bytes())
    os.utime(src / "one.mp4", ns=(1, 1))  # a touched file is hashed again, and its content is the same
    second = run("archive", str(src), "--out", str(archive))
    assert second.returncode == 0, second.stderr
    assert "2 files: 0 archived, 1 already archived, 1 duplicates, 0 failed" in second.stdout
    assert rows(archive, "SELECT status, output FROM files ORDER BY source") == [
        ("done", "src/one.mkv"),
        ("duplicate", "src/one.mkv"),
    ]
    assert [p.name for p in outputs(archive)] == ["one.mkv"]


def test_a_users_file_at_the_output_path_is_never_replaced(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", 0.5)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "clip.mkv").write_text("mine")
    done = run("archive", str(src), "--out", str(archive))
    assert done.returncode == 0, done.stderr
    assert (archive / "clip.mkv").read_text() == "mine"
    (output,) = rows(archive, "SELECT output FROM files")[0]
    assert output.startswith("clip.") and output.endswith(".mkv") and output != "clip.mkv"
    assert (archive / output).is_file()


def test_a_crash_between_file_and_commit_is_committed_by_the_rerun(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", 1.0)
    archive = tmp_path / "archive"
    env = {**os.environ, "STREAMCODEC_ARCHIVE_CRASH": "before-commit"}
    crashed = run("archive", str(src), "--out", str(archive), env=env)
    assert crashed.returncode == 137
    assert (archive / "clip.mkv").is_file()  # the file is in place, the catalogue does not know yet
    assert rows(archive, "SELECT status FROM files") == [("running",)]
    rerun = run("archive", str(src), "--out", str(archive))
    assert rerun.returncode == 0, rerun.stderr
    assert "1 files: 0 archived, 1 already archived" in rerun.stdout  # committed from the result record, not redone
    assert rows(archive, "SELECT status FROM files") == [("done",)]
    assert rows(archive, "SELECT COUNT(*) FROM kinds")[0][0] > 0
    assert os.listdir(archive / ".archive-tmp") == []
    assert run("verify", str(archive)).returncode == 0


def test_sigkill_mid_run_then_resume_gives_a_complete_verified_archive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for start, name in enumerate("abcde"):
        make_clip(src / f"{name}.mp4", 1.5, start=2.0 * start)
    archive = tmp_path / "archive"
    process = subprocess.Popen([*CLI, "archive", str(src), "--out", str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if (archive / "catalogue.sqlite").is_file() and _count_done(archive) >= 1:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    killed_done = _count_done(archive)
    assert 1 <= killed_done < 5
    for path in outputs(archive):  # whatever is in place is complete: nothing half-written
        with MatroskaReader(path) as reader:
            assert sum(1 for _ in reader.packets()) >= 10  # read to the end: any damage would raise
    resumed = run("archive", str(src), "--out", str(archive))
    assert resumed.returncode == 0, resumed.stderr
    counts = re.search(r"5 files: (\d+) archived, (\d+) already archived", resumed.stdout)
    assert counts, resumed.stdout
    # A worker may have finished a file (file and result record in place) after the count, before the kill:
    # the rerun commits it from its record, as already archived, and does not code it again.
    archived, already = int(counts[1]), int(counts[2])
    assert archived + already == 5 and already >= killed_done
    assert [p.name for p in outputs(archive)] == [f"{name}.mkv" for name in "abcde"]
    assert not [p for p in archive.rglob("*") if "partial" in p.name]
    checked = run("verify", str(archive))
    assert checked.returncode == 0 and "verified 5 files" in checked.stdout


def _count_done(archive: Path) -> int:
    try:
        return int(rows(archive, "SELECT COUNT(*) FROM files WHERE status = 'done'")[0][0])
    except sqlite3.OperationalError:  # the schema is being created
        return 0


def test_archive_help_explains_status_and_find() -> None:
    shown = run("archive", "--help")
    assert shown.returncode == 0
    for form in (
        "streamcodec archive SRC... --out DIR",
        "streamcodec archive status DIR",
        "streamcodec archive find DIR --has KIND",
    ):
        assert form in shown.stdout


def test_archive_without_out_is_one_line_error(tmp_path: Path) -> None:
    done = run("archive", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == "streamcodec archive: error: archive needs --out DIR, the archive folder\n"


def test_archive_codes_at_its_own_preset_unless_told(tmp_path: Path) -> None:
    """SVT-AV1 preset 4 by default (ARCHIVE_PRESET: archiving stays over 2x real time), --preset to choose."""
    (tmp_path / "src").mkdir()
    make_moving_box(tmp_path / "src" / "box.mp4")
    files = {}
    for name, flags in (("default", []), ("4", ["--preset", "4"]), ("8", ["--preset", "8"])):
        done = run("archive", str(tmp_path / "src"), "--out", str(tmp_path / name), *flags)
        assert done.returncode == 0, done.stderr[-2000:]
        files[name] = packets(tmp_path / name / "src" / "box.mkv")
    assert files["default"] == files["4"] != files["8"]
    for flags, error in (
        (["--preset", "slow"], "--preset slow is not an SVT-AV1 preset (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)"),
        (["--preset", "4", "--mode", "gc"], "--preset applies only to --mode sc"),
    ):
        done = run("archive", str(tmp_path / "src"), "--out", str(tmp_path / "bad"), *flags)
        assert done.returncode == 1 and not (tmp_path / "bad").exists()
        assert done.stderr == f"streamcodec archive: error: {error}\n"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'streamcodec[cluster]')")
def test_archive_on_a_local_ray_instance(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_clip(src / "a.mp4", 0.5)
    make_clip(src / "b.mp4", 0.5, "mandelbrot")
    archive = tmp_path / "archive"
    done = run("archive", str(src), "--out", str(archive), "--ray", "--jobs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    share = max(1, (os.cpu_count() or 1) // 2)
    assert "2 files: 2 archived" in done.stdout and f"ray, {2 * share} CPU, {share} per task" in done.stdout
    assert rows(archive, "SELECT status, threads FROM files") == [("done", share), ("done", share)]
    assert run("verify", str(archive)).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere), unmounted afterwards."""
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_stops_cleanly_and_the_rerun_continues(tiny_disk: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for start, name in enumerate("abcd"):
        make_clip(src / f"{name}.mp4", 1.5, start=2.0 * start)
    stopped = run("archive", str(src), "--out", str(tiny_disk / "archive"))
    assert stopped.returncode == 1
    assert "Traceback" not in stopped.stderr
    assert "stopped: the disk is full; free space and rerun the same command to continue" in stopped.stdout
    for path in outputs(tiny_disk / "archive"):  # what is in place is whole
        with MatroskaReader(path) as reader:
            assert sum(1 for _ in reader.packets()) >= 10
    moved = tmp_path / "archive"
    shutil.copytree(tiny_disk / "archive", moved)  # "free space": the same archive on a roomier disk
    resumed = run("archive", str(src), "--out", str(moved))
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in outputs(moved)] == [f"{name}.mkv" for name in "abcd"]
    checked = run("verify", str(moved))
    assert checked.returncode == 0 and "verified 4 files" in checked.stdout, checked.stdout
