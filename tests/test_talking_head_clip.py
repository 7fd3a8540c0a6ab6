"""scripts/data/make_talking_head_clip.py: the talking-head clip of issue 22, made small and short."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest

from streamcodec.eval.faces import face_boxes
from streamcodec.selective.face import FaceDetector

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "data" / "make_talking_head_clip.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_talking_head_clip", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second at 320x240, seed 3."""
    path = tmp_path_factory.mktemp("talking_head") / "clip.mp4"
    script.make(path, 25, 320, 240, seed=3)
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_clip_has_the_asked_frames_size_rate_and_pixel_format(clip: Path) -> None:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (stream.width, stream.height, stream.average_rate) == (320, 240, 25)
    assert len(frames_of(clip)) == 25


def test_same_seed_gives_the_same_frames_and_another_seed_does_not(script: ModuleType) -> None:
    # Frames, not bytes: two processes write the same bytes, but within one process x264 (libx264 via PyAV,
    # threads=1) was seen to vary a few frames' coding from the second encode on.
    first, again, other = (list(script.render(8, 160, 120, seed)) for seed in (3, 3, 4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_both_face_detectors_find_the_face_in_the_first_frame(clip: Path) -> None:
    first = frames_of(clip)[0]
    assert len(face_boxes(first)) == 1
    assert len(FaceDetector().boxes(first)) >= 1


def test_the_script_refuses_to_overwrite_without_force(script: ModuleType, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = clip.read_bytes()
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "-o", str(clip), "--seconds", "0.04", "--size", "160x120"])
    with pytest.raises(SystemExit) as exit_info:
        script.main()
    assert exit_info.value.code == 2
    assert clip.read_bytes() == before
