"""VMAF through a libvmaf-enabled ffmpeg, when one can be found.

Debian's ffmpeg is built without libvmaf; the static ffmpeg inside the `imageio-ffmpeg` wheel has
it (with the default vmaf_v0.6.1 model built in, so nothing is downloaded). The system ffmpeg is
preferred when it has the filter.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from .ffmpeg_tools import FfmpegError

NO_VMAF = "no libvmaf-enabled ffmpeg (system ffmpeg lacks libvmaf; pip install imageio-ffmpeg)"


def _has_libvmaf(exe: str) -> bool:
    try:
        result = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == ["libvmaf"] for line in result.stdout.splitlines())


@functools.cache
def find_vmaf_ffmpeg() -> str | None:
    """Path of an ffmpeg whose `-filters` lists libvmaf: the system one, else imageio-ffmpeg's; else None."""
    system = shutil.which("ffmpeg")
    if system and _has_libvmaf(system):
        return system
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        bundled = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None
    return bundled if _has_libvmaf(bundled) else None


def vmaf_score(distorted: Path, reference: Path, width: int, height: int, frame_rate: Fraction, *, exe: str) -> float:
    """Mean VMAF (model vmaf_v0.6.1) of two raw rgb24 files holding the same number of frames.

    Both are converted to yuv420p by the same ffmpeg before libvmaf, which is what the model was
    trained on; the score is the mean over frames.

    Args:
        distorted, reference: raw rgb24 frames, width x height each, back to back.
        width, height: frame size in pixels.
        frame_rate: frames per second (only sets timestamps; VMAF pairs frames by index).
        exe: an ffmpeg with libvmaf (`find_vmaf_ffmpeg()`).

    Returns:
        VMAF in [0, 100].
    """
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(frame_rate)]
    with tempfile.TemporaryDirectory(prefix="streamcodec-vmaf-") as tmp:
        log = Path(tmp) / "vmaf.json"
        # libvmaf options are ':'-separated, so the log path is given relative to the working folder.
        graph = "[0:v]format=yuv420p[d];[1:v]format=yuv420p[r];[d][r]libvmaf=log_path=vmaf.json:log_fmt=json:n_threads=2"
        command = [
            exe,
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            *raw,
            "-i",
            str(distorted.resolve()),
            *raw,
            "-i",
            str(reference.resolve()),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ]
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp, timeout=3600)
        if result.returncode != 0 or not log.exists():
            tail = result.stderr.strip().splitlines()[-1:] or ["no log written"]
            raise FfmpegError(f"VMAF failed: {tail[0]}", distorted)
        return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])
