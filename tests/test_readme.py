"""README.md's Python API example runs as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT

API_HEADING = "## Python API"


def python_blocks(markdown: str, heading: str) -> list[str]:
    """The fenced ```python blocks of the section under `heading` (up to the next `## ` heading)."""
    _, found, rest = markdown.partition(f"\n{heading}\n")
    assert found, f"README.md has no {heading!r} section"
    section = re.split(r"^## ", rest, maxsplit=1, flags=re.MULTILINE)[0]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def test_readme_api_example_runs(clip_with_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"), API_HEADING)
    assert blocks, f"README.md's {API_HEADING!r} section has no ```python block"
    shutil.copy(clip_with_audio, tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    for number, source in enumerate(blocks):
        exec(compile(source, f"README.md:{API_HEADING}:block{number}", "exec"), {"__name__": "readme_example"})
    assert (tmp_path / "clip.mkv").is_file()
    assert (tmp_path / "clip.decoded.mp4").is_file()
