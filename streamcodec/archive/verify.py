"""`streamcodec verify DIR [--full]`.

verify checks, for every archived file: it is there, its size and sha256 are the catalogue's,
every Cluster's CRC-32 and every V_STREAMCODEC packet's own CRC-32 hold (read with the project's
Matroska reader, nothing decoded), and with `full` that the whole stream decodes without a
damaged frame (counted as restore counts them: `decode_damage`). The catalogue itself gets
SQLite's integrity check. A row whose path leads outside the archive (paths.inside) is refused
and not read; a duplicate's row is checked for that and for its original's file being there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..bitstream import unpack_frame
from ..errors import CorruptStreamError, StreamcodecError
from ..io.mkv_reader import MatroskaReader
from ..pipeline.decode import decode_file, stream_track
from .catalogue import Catalogue, FileRow
from .paths import UnsafePathError, inside
from .scan import sha256_file

#: Problems named per file, at most (a badly damaged file would otherwise fill the screen).
MAX_PROBLEMS = 3


@dataclass
class VerifyReport:
    """What verify found: files checked, and each damaged or missing one with its reasons."""

    checked: int = 0
    bytes: int = 0
    unfinished: int = 0
    damaged: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing and not self.refused

    def text(self) -> str:
        lines = [f"refused: {line}" for line in self.refused]
        lines += [f"missing: {path}" for path in self.missing]
        lines += [f"damaged: {path}: {'; '.join(reasons)}" for path, reasons in self.damaged.items()]
        lines.append(
            f"verified {self.checked} files ({self.bytes / 1e6:.2f} MB): {len(self.damaged)} damaged, "
            f"{len(self.missing)} missing" + (f", {len(self.refused)} refused" if self.refused else "")
            + (f"; {self.unfinished} not archived yet (rerun archive)" if self.unfinished else "")
        )  # fmt: skip
        return "\n".join(lines)


def verify(folder: Path, *, full: bool = False, backend: str = "auto", progress: bool = False) -> VerifyReport:
    """Check every archived file of the archive in `folder` (see the module docstring)."""
    report = VerifyReport()
    with Catalogue(folder) as catalogue:
        problem = catalogue.db.execute("PRAGMA integrity_check").fetchone()[0]
        if problem != "ok":
            report.damaged[str(catalogue.path)] = [f"SQLite integrity check: {problem}"]
        rows = catalogue.rows("done")
        duplicates = catalogue.rows("duplicate")
        report.unfinished = sum(catalogue.counts()[s] for s in ("pending", "running"))
    for row in duplicates:  # their file is checked under its original's row: here, only that it is there
        _archived_file(folder, row, report)
    for row in tqdm(rows, unit="file", desc="verify", file=sys.stderr, disable=not progress):
        path = _archived_file(folder, row, report)
        if path is None:
            continue
        report.checked += 1
        report.bytes += path.stat().st_size
        reasons = _check_file(path, row) + (_decode_problems(path, backend) if full else [])
        if reasons:
            report.damaged[str(path)] = reasons
    return report


def _archived_file(folder: Path, row: FileRow, report: VerifyReport) -> Path | None:
    """The row's archived file, or None when its path is refused or the file is missing (noted in `report`)."""
    try:
        path = inside(folder, row.output)
    except UnsafePathError as exc:
        report.refused.append(refusal(row, exc))
        return None
    if not path.is_file():
        report.missing.append(f"{path} (archived from {row.source})")
        return None
    return path


def refusal(row: FileRow, error: UnsafePathError, outcome: str = "not read") -> str:
    """The one line naming a catalogue row whose path is refused."""
    return f"catalogue row {row.id} ({row.source}): {error}; {outcome}"


def _check_file(path: Path, row: FileRow) -> list[str]:
    reasons = []
    size = path.stat().st_size
    if size != row.output_size:
        reasons.append(f"{size} bytes, the catalogue says {row.output_size}")
    elif sha256_file(path) != row.output_sha256:
        reasons.append("content differs from the catalogue's sha256")
    return reasons + _crc_problems(path)


def _crc_problems(path: Path) -> list[str]:
    """Every Cluster CRC-32 and every codec packet's CRC-32, read without decoding."""
    problems: list[str] = []
    note: Callable[[CorruptStreamError], None] = lambda error: problems.append(_short(error, path))  # noqa: E731
    try:
        with MatroskaReader(path) as reader:
            problems += [_short(error, path) for error in reader.damage]
            track, _ = stream_track(reader, path)
            for packet in reader.packets(on_error=note):
                if packet.track == track.number:
                    try:
                        unpack_frame(packet.data)
                    except CorruptStreamError as exc:
                        problems.append(f"packet at {float(packet.time):.3f} s: {_short(exc, path)}")
    except StreamcodecError as exc:
        problems.append(_short(exc, path))
    return _bounded(problems)


def _decode_problems(path: Path, backend: str) -> list[str]:
    """The damaged frames counted (as restore counts them), then the decoder's first warnings."""
    warnings: list[str] = []
    damaged = 0
    try:
        damaged = decode_damage(path, None, backend, warnings.append)
    except StreamcodecError as exc:
        warnings.append(_short(exc, path))
    counted = [f"decode: {concealed(damaged)}"] if damaged else []
    return counted + _bounded([f"decode: {_strip(text, path)}" for text in warnings])


def decode_damage(path: Path, target: Path | None, backend: str, on_warning: Callable[[str], None]) -> int:
    """Decode `path` (into `target`, or nowhere) and return how many damaged frames were concealed.

    verify --full and restore both count through here, so they name the same files with the same counts.
    """
    return decode_file(path, target, backend=backend, on_warning=on_warning).damaged_frames


def concealed(frames: int) -> str:
    return f"{frames} damaged frame{'' if frames == 1 else 's'} concealed"


def _bounded(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more"]


def _short(error: Exception, path: Path) -> str:
    return _strip(str(error), path)


def _strip(text: str, path: Path) -> str:
    """A message without its leading file name (the report names the file once)."""
    return text.removeprefix(f"{path}: ")
