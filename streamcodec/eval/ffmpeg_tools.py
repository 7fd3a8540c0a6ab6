"""Running ffmpeg command lines for the evaluation, and the error they raise when ffmpeg fails."""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import FfmpegError


def system_ffmpeg() -> str:
    """The `ffmpeg` on PATH (Debian's, with libx264/libx265/libsvtav1 and addroi)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise FfmpegError("ffmpeg is not installed (apt-get install ffmpeg)")
    return exe


@functools.cache
def ffmpeg_version(exe: str) -> str:
    """First line of `ffmpeg -version`, recorded in results.json so numbers can be traced."""
    try:
        result = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def run_ffmpeg(command: Sequence[str], *, path: Path, env: dict[str, str] | None = None) -> float:
    """Run one ffmpeg command line; returns its wall time in seconds.

    Args:
        command: the full argument list, program first.
        path: the file being made, named in the error.
        env: environment for the child (None: inherit).

    Returns:
        Seconds the process took.

    Raises:
        FfmpegError: ffmpeg could not start or exited non-zero.
    """
    started = time.perf_counter()
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, env=env, timeout=3600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FfmpegError(f"cannot run ffmpeg: {exc}", path) from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        detail = " | ".join(lines[-3:]) or f"exit status {result.returncode}"
        raise FfmpegError(f"ffmpeg failed: {detail}", path)
    return time.perf_counter() - started
