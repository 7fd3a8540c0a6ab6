"""`streamcodec archive thin DIR --older-than DAYS --iterations K`: old progressive files cut to K iterations, in place.

    lock DIR ─▶ settle a killed run's record ─▶ per done row, old enough, progressive with more than K iterations:
    thin_file(file ─▶ .NAME.thin, next to it) ─▶ DIR/.archive-tmp/ID.thin.json (new values, fsynced)
    ─▶ os.replace(.NAME.thin ─▶ file), folder fsynced ─▶ catalogue row updated ─▶ record removed
A file's age is its catalogue's archive time (`finished`), or the file's mtime where the catalogue has none.
Until the rename the original is untouched (a failure or Ctrl-C removes the temporary file); after it,
the record lets the next `archive thin` commit the values a killed run did not. Nothing is decoded:
each packet keeps its first K sections (`pipeline.thin`), the frames an encode at K iterations gives.
A second run finds every such file at K and does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StreamcodecError
from ..pipeline.thin import thin_file
from .catalogue import Catalogue, FileRow
from .paths import UnsafePathError, inside
from .run import locked
from .scan import sha256_file
from .task import TEMP_FOLDER, fsync_folder, write_synced

SECONDS_PER_DAY = 86400


@dataclass
class ThinReport:
    """What one `archive thin` run did; `text()` is its summary line."""

    iterations: int
    thinned: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    not_progressive: int = 0
    already: int = 0  # progressive, at K iterations or fewer
    newer: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"failed: {path}: {reason}" for path, reason in self.failed]
        skipped = self.not_progressive + self.already + self.newer
        lines.append(
            f"thinned {self.thinned} files to {self.iterations} iterations, "
            f"{_size(self.bytes_before)} → {_size(self.bytes_after)}; skipped {skipped} "
            f"({self.not_progressive} not progressive, {self.already} at {self.iterations} iterations or fewer, "
            f"{self.newer} newer)" + (f"; {len(self.failed)} failed" if self.failed else "")
        )
        return "\n".join(lines)


def _size(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def thin_archive(folder: Path, older_than_days: float, iterations: int, *, now: float | None = None) -> ThinReport:
    """Cut every archived progressive file older than `older_than_days` to `iterations`, in place.

    Args:
        folder: the archive folder.
        older_than_days: ≥ 0; a file qualifies when archived at least this long ago.
        iterations: ≥ 1, the iterations to keep.
        now: the time to measure age from (seconds since the epoch; default: now).
    Returns:
        The ThinReport (a file that cannot be thinned is named in `failed`; the others go on).
    """
    if older_than_days < 0 or iterations < 1:
        raise ValueError(f"--older-than {older_than_days} must be ≥ 0 and --iterations {iterations} ≥ 1")
    cutoff = (time.time() if now is None else now) - older_than_days * SECONDS_PER_DAY
    report = ThinReport(iterations)
    (folder / TEMP_FOLDER).mkdir(exist_ok=True)
    with Catalogue(folder) as catalogue, locked(folder):
        settle(catalogue, folder)
        for row in catalogue.rows("done"):
            _thin_row(catalogue, folder, row, cutoff, report)
    return report


def _thin_row(catalogue: Catalogue, folder: Path, row: FileRow, cutoff: float, report: ThinReport) -> None:
    try:
        path = inside(folder, row.output)
    except UnsafePathError as exc:
        report.failed.append((row.source, f"refused: {exc}"))
        return
    if not path.is_file():
        report.failed.append((str(path), f"missing (archived from {row.source})"))
    elif row.mode != "progressive":
        report.not_progressive += 1
    elif row.quality is not None and row.quality <= report.iterations:
        report.already += 1
    elif _archived_at(row, path) > cutoff:
        report.newer += 1
    else:
        try:
            values = thin_in_place(folder, path, row, report.iterations)
        except (StreamcodecError, OSError, ValueError) as exc:
            report.failed.append((str(path), " ".join(str(exc).split())))
            return
        catalogue.replace_output(row.id, values)
        _record(folder, row).unlink(missing_ok=True)
        report.thinned += 1
        report.bytes_before += row.output_size or 0
        report.bytes_after += values["output_size"]


def _archived_at(row: FileRow, path: Path) -> float:
    """When the file was archived: the catalogue's time, else the file's mtime."""
    return row.finished if row.finished is not None else path.stat().st_mtime


def thin_in_place(folder: Path, path: Path, row: FileRow, iterations: int) -> dict[str, Any]:
    """Replace `path` by its thinned copy (never losing it on a failure) and return the row's new values."""
    temp = path.with_name(f".{path.name}.thin")
    temp.unlink(missing_ok=True)  # a killed run's, never renamed: `path` is still the original
    try:
        summary = thin_file(path, temp, iterations)
        size = temp.stat().st_size
        share = summary.track_bytes_after / max(1, summary.track_bytes_before)
        note = (f"{summary.iterations_before} → {iterations} iterations, {row.output_size} → {size} bytes, "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")  # fmt: skip
        values = {
            "output_size": size,
            "output_sha256": sha256_file(temp),
            "quality": iterations,
            "ratio": row.size / size,
            "kbps": _scaled(row.kbps, size / max(1, row.output_size or size)),
            "bpp": _scaled(row.bpp, share),
            "thinned": note if not row.thinned else f"{row.thinned}; {note}",
        }
        write_synced(_record(folder, row), json.dumps({"old_sha256": row.output_sha256, "values": values}))
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
    fsync_folder(path.parent)
    return values


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _record(folder: Path, row: FileRow) -> Path:
    return folder / TEMP_FOLDER / f"{row.id}.thin.json"


def settle(catalogue: Catalogue, folder: Path) -> None:
    """Commit what a killed `archive thin` renamed into place but did not record; drop records of files not renamed."""
    for row in catalogue.rows("done"):
        record = _record(folder, row)
        if not record.is_file():
            continue
        values = json.loads(record.read_text(encoding="utf-8"))["values"]
        with contextlib.suppress(UnsafePathError, OSError):
            if sha256_file(inside(folder, row.output)) == values["output_sha256"]:
                catalogue.replace_output(row.id, values)
        record.unlink()
