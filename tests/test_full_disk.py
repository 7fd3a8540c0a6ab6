"""A full disk and a read-only (or forbidden) destination: one line on stderr, a non-zero exit, nothing left behind.

The disks are real: a small tmpfs filled to the last block (ENOSPC) and a tmpfs mounted read-only
(EROFS), mounted for the test and unmounted after it. Mounting needs root (or CAP_SYS_ADMIN), as in
CI; elsewhere these tests are skipped and say why. Permission denied (EACCES) is a folder without
write permission, entered by a process that cannot override it (root without CAP_DAC_OVERRIDE).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamcodec import cli
from streamcodec.pipeline.encode import encode_file

DISK_SIZE = "256k"
NOTE = "streamcodec: "  # informational lines (engine choice, engine builds) start so; errors name the command


def _mount(where: Path, options: str) -> None:
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("needs Linux's mount(8) to make a small tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if result.returncode != 0:
        reason = result.stderr.strip() or f"mount exited {result.returncode}"
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {reason}")


@contextlib.contextmanager
def _mounted(where: Path, options: str) -> Iterator[Path]:
    _mount(where, options)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def _fill(disk: Path) -> None:
    """Write zeros until the filesystem refuses a single byte more."""
    with (disk / "filler").open("wb", buffering=0) as stream:
        with contextlib.suppress(OSError):
            while True:
                stream.write(bytes(4096))
        with contextlib.suppress(OSError):
            while True:
                stream.write(b"\0")
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(bytes(4096))
    (disk / "probe").unlink(missing_ok=True)
    assert full.value.errno == errno.ENOSPC


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs holding only `filler`, which takes every block: the next write fails with ENOSPC."""
    with _mounted(tmp_path / "full", f"size={DISK_SIZE}") as disk:
        _fill(disk)
        yield disk


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs mounted read-only: every write fails with EROFS, root's too."""
    with _mounted(tmp_path / "ro", f"ro,size={DISK_SIZE}") as disk:
        yield disk


@pytest.fixture(scope="module")
def stream(clip_with_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "clip.mkv"
    encode_file(clip_with_audio, out, mode="gc", quality=1, preview=False, backend="onnxruntime")
    return out


def one_error(capfd: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process; it must exit 1 with exactly one error line (C libraries' stderr included)."""
    capfd.readouterr()
    status = cli.main(list(args))
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.strip() and not line.startswith(NOTE)]
    assert status == cli.EXIT_ERROR and len(errors) == 1, err
    return errors[0]


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- a full disk ----------------------------------------------------------------------------------


def test_encode_on_a_full_disk_is_one_line_and_leaves_no_partial(
    clip_with_audio: Path, full_disk: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The writer's abort closes its buffered file, whose flush hits ENOSPC a second time.
    out = full_disk / "out.mkv"
    line = one_error(capfd, "encode", str(clip_with_audio), "-o", str(out), "--mode", "gc", "--engine", "onnxruntime")
    assert str(out) in line and os.strerror(errno.ENOSPC) in line
    assert names(full_disk) == {"filler"}


def test_save_masks_on_a_full_disk_fails_in_one_line_and_publishes_nothing(
    clip_with_audio: Path, full_disk: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    masks, out = full_disk / "masks", tmp_path / "out.mkv"
    masks.mkdir()
    line = one_error(capfd, "encode", str(clip_with_audio), "-o", str(out), "--save-masks", str(masks), "--no-preview")
    assert "mask_000000.png" in line and os.strerror(errno.ENOSPC) in line
    assert not out.exists() and names(tmp_path) == {"full"}  # the encode's output is not published
    assert names(masks) == set()  # no empty PNG pretending to be a mask


@pytest.mark.parametrize("output", ["frames/", "clip.y4m", "clip.mp4"])
def test_decode_on_a_full_disk_is_one_line_and_leaves_nothing(
    stream: Path, full_disk: Path, output: str, capfd: pytest.CaptureFixture[str]
) -> None:
    target = f"{full_disk}/{output}"
    line = one_error(capfd, "decode", str(stream), "-o", target, "--engine", "onnxruntime")
    assert target.rstrip("/") in line and os.strerror(errno.ENOSPC) in line
    assert names(full_disk) == {"filler"}


# --- a read-only destination ------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["frames/", "clip.y4m", "clip.mp4"])
def test_decode_into_a_read_only_folder_is_one_line(
    stream: Path, read_only: Path, output: str, capfd: pytest.CaptureFixture[str]
) -> None:
    target = f"{read_only}/{output}"
    line = one_error(capfd, "decode", str(stream), "-o", target, "--engine", "onnxruntime")
    assert target.rstrip("/") in line and os.strerror(errno.EROFS) in line


def test_save_masks_into_a_new_folder_on_a_read_only_disk_is_one_line(
    clip_with_audio: Path, read_only: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mkv"
    line = one_error(capfd, "encode", str(clip_with_audio), "-o", str(out), "--save-masks", str(read_only / "masks"))
    assert str(read_only / "masks") in line and os.strerror(errno.EROFS) in line
    assert not out.exists()


def test_engines_build_into_a_read_only_folder_is_one_line(
    read_only: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMCODEC_ENGINES", str(read_only / "engines"))
    line = one_error(capfd, "engines", "build", "--engine", "onnxruntime")
    assert str(read_only / "engines") in line and os.strerror(errno.EROFS) in line


# --- permission denied ----------------------------------------------------------------------------


def _without_dac_override() -> list[str]:
    """A command prefix under which write permissions hold: none for a user, setpriv for root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root ignores folder permissions, and setpriv(1), to drop that power, is not installed")
    return [setpriv, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("output", ["frames/", "clip.y4m", "clip.mp4"])
def test_decode_into_a_folder_without_write_permission_is_one_line(stream: Path, tmp_path: Path, output: str) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    command = [*_without_dac_override(), sys.executable, "-m", "streamcodec.cli", "decode", str(stream)]
    result = subprocess.run([*command, "-o", f"{locked}/{output}", "--engine", "onnxruntime"], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(NOTE)]
    assert result.returncode == cli.EXIT_ERROR and len(errors) == 1, result.stderr
    assert f"{locked}/{output}".rstrip("/") in errors[0] and os.strerror(errno.EACCES) in errors[0]
    assert names(locked) == set()
