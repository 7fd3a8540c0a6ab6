"""Shared fixtures: small real media files made by ffmpeg, and the shipped sample."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "bbb_640x360.mp4"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (.ci/run installs it)")
    return path


@pytest.fixture(scope="session", autouse=True)
def onnx_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build the shipped model's ONNX engines once, before any test (or CLI subprocess) needs them.

    They go into the session's tmp folder, named by STREAMCODEC_ENGINES for this process and every
    CLI subprocess it starts: the suite never writes into the user's cache or the checkout.
    """
    from streamcodec.engines import engines_dir, export_onnx
    from streamcodec.models.registry import DEFAULT_MODEL, REGISTRY

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STREAMCODEC_ENGINES", str(tmp_path_factory.mktemp("engines")))
        export_onnx(REGISTRY.load(DEFAULT_MODEL), engines_dir())
        yield engines_dir()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_with_audio(media_dir: Path) -> Path:
    """12 frames 96x64 at 25 fps with an AAC sine tone: a small real H.264/AAC mp4."""
    path = media_dir / "tone.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=25:duration=0.48",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=0.48",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    return path


@pytest.fixture(scope="session")
def odd_clip(media_dir: Path) -> Path:
    """An odd-sized (75x53) clip in a non-mp4 container, no audio."""
    path = media_dir / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=75x53:rate=10", "-frames:v", "7", "-c:v", "ffv1", str(path))
    return path


@pytest.fixture(scope="session")
def vfr_clip(media_dir: Path) -> Path:
    """Variable frame rate: frames at irregular timestamps (ms)."""
    path = media_dir / "vfr.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=30",
        "-frames:v",
        "9",
        "-vf",
        "setpts='if(lt(N,4),N*0.040,0.160+(N-4)*0.100)/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "ffv1",
        str(path),
    )
    return path
