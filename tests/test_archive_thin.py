"""`streamcodec archive thin DIR --older-than DAYS --iterations K`: progressive files cut in place, verify still passing.

Two 3-frame 64x48 clips archived in progressive mode (7 iterations) and one in sc mode, in one archive.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamcodec.archive import thin as archive_thin
from streamcodec.archive import thin_archive
from streamcodec.archive.scan import sha256_file
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.encode import encode_file

from .conftest import ffmpeg

CLI = [sys.executable, "-m", "streamcodec.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class Killed(Exception):
    """The process dying between the rename and the catalogue's commit."""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=ENV)


def make_clip(path: Path, pattern: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"{pattern}=size=64x48:rate=10", "-frames:v", "3", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def catalogue(archive: Path) -> dict[str, tuple[str, int, str, int, str | None]]:
    """output → (mode, output size, output sha256, quality, thinning note)."""
    with sqlite3.connect(archive / "catalogue.sqlite") as db:
        query = "SELECT output, mode, output_size, output_sha256, quality, thinned FROM files"
        return {row[0]: row[1:] for row in db.execute(query)}


def codec_packets(path: Path) -> list[tuple[object, bytes]]:
    with MatroskaReader(path) as reader:
        return [(packet.time, packet.data) for packet in reader.packets() if packet.track == 1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sources, archive): prog/a.mp4 and prog/b.mp4 archived progressive, sc/c.mp4 archived sc."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("thin")
    sources, archive = root / "sources", root / "archive"
    make_clip(sources / "prog" / "a.mp4", "testsrc2")
    make_clip(sources / "prog" / "b.mp4", "mandelbrot")
    make_clip(sources / "sc" / "c.mp4", "testsrc")
    done = run("archive", str(sources / "prog"), "--out", str(archive), "--mode", "progressive", "--threads-per-job", "1")
    if done.returncode != 0 and "progressive-small" in done.stderr:
        pytest.skip(f"the progressive model is not available: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    done = run("archive", str(sources / "sc"), "--out", str(archive), "--threads-per-job", "1")
    assert done.returncode == 0, done.stderr
    return sources, archive


@pytest.fixture
def archive(built: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the built archive for one test."""
    return Path(shutil.copytree(built[1], tmp_path / "archive"))


def test_thin_cuts_old_progressive_files_in_place_and_verify_passes(built: tuple[Path, Path], archive: Path) -> None:
    before = catalogue(archive)
    assert sorted((mode, quality) for mode, _, _, quality, _ in before.values()) == [("progressive", 7)] * 2 + [("sc", 4)]
    assert thin_archive(archive, 1, 2).newer == 2  # archived seconds ago: not a day old
    assert catalogue(archive) == before

    done = run("archive", "thin", str(archive), "--older-than", "0", "--iterations", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("thinned 2 files to 2 iterations")
    assert "skipped 1 (1 not progressive, 0 at 2 iterations or fewer, 0 newer)" in done.stdout
    after = catalogue(archive)
    for output, (mode, size, sha, quality, note) in after.items():
        if mode == "sc":
            assert (size, sha, note) == (*before[output][1:3], None)
            continue
        assert size < before[output][1] and quality == 2 and note and note.startswith("7 → 2 iterations")
        assert (archive / output).stat().st_size == size and sha256_file(archive / output) == sha
    assert not [p for p in archive.rglob("*.thin*")]

    verified = run("verify", str(archive), "--full")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    direct = archive.parent / "direct.mkv"
    encode_file(built[0] / "prog" / "a.mp4", direct, mode="progressive", quality=2, preview=False)
    assert codec_packets(archive / "prog" / "a.mkv") == codec_packets(direct)

    again = thin_archive(archive, 0, 2)
    assert (again.thinned, again.already, again.not_progressive) == (0, 2, 1)
    assert catalogue(archive) == after


def test_a_thin_interrupted_before_the_rename_keeps_the_original(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = catalogue(archive)
    real = archive_thin.thin_file

    def interrupted(source: Path, target: Path, iterations: int) -> object:
        real(source, target, iterations)
        raise KeyboardInterrupt

    monkeypatch.setattr(archive_thin, "thin_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        thin_archive(archive, 0, 2)
    assert catalogue(archive) == before
    assert all(sha256_file(archive / output) == sha for output, (_, _, sha, _, _) in before.items())
    assert not [p for p in archive.rglob("*.thin*")]
    monkeypatch.undo()
    assert thin_archive(archive, 0, 2).thinned == 2


def test_a_thin_killed_after_the_rename_is_committed_by_the_next_run(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*_: object) -> None:
        raise Killed

    monkeypatch.setattr(archive_thin.Catalogue, "replace_output", killed)
    with pytest.raises(Killed):
        thin_archive(archive, 0, 2)
    monkeypatch.undo()
    assert run("verify", str(archive)).returncode == 1  # one file renamed, its row not yet written
    report = thin_archive(archive, 0, 2)
    assert (report.thinned, report.already) == (1, 1)
    verified = run("verify", str(archive))
    assert verified.returncode == 0, verified.stdout
