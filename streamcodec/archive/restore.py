"""`streamcodec restore DIR --out RESTORED`: every source back as ordinary video, nothing replaced.

    done row       DIR/<output>.mkv ──decode──▶ RESTORED/<output>.mp4
    duplicate row  DIR/<its original's output>.mkv ──decode──▶ RESTORED/<its own path>.mp4
A file with damaged frames is still restored, the damage concealed (the last good frame until the
next keyframe), and named with the count of frames concealed: the count `verify --full` gives
(both through `verify.decode_damage`). Catalogue paths are used only inside DIR and RESTORED
(`paths.inside`): a row whose path leads elsewhere is refused with one line and the others go on.
An existing file in RESTORED is left as it is.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import OutputExistsError, StreamcodecError
from .catalogue import Catalogue, FileRow
from .paths import UnsafePathError, inside
from .verify import concealed, decode_damage, refusal


@dataclass
class RestoreReport:
    """What restore did: files written (some with damaged frames concealed), left existing, failed, refused."""

    written: list[str] = field(default_factory=list)
    concealed: dict[str, tuple[str, int, list[str]]] = field(default_factory=dict)  # target → (archived, frames, warnings)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (archived file → target, reason)
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed or refused (damaged frames concealed are counted apart: `concealed`)."""
        return not self.failed and not self.refused

    def text(self) -> str:
        lines = [f"refused: {line}" for line in self.refused]
        lines += [f"failed: {where}: {reason}" for where, reason in self.failed]
        lines += [f"damaged: {archived} → {target}: {_damage(frames, warnings)}"
                  for target, (archived, frames, warnings) in self.concealed.items()]  # fmt: skip
        lines += [f"exists, left as it is: {path}" for path in self.existing]
        files = len(self.written)
        lines.append(
            f"restored {files} file{'' if files == 1 else 's'}, {len(self.concealed)} of them with damaged frames "
            f"concealed, {len(self.existing)} already there, {len(self.failed)} failed"
            + (f", {len(self.refused)} refused" if self.refused else "")
        )
        return "\n".join(lines)


def _damage(frames: int, warnings: list[str]) -> str:
    if frames:
        return f"{concealed(frames)} (the last good frame until the next keyframe)"
    return f"decoded with {len(warnings)} warning{'' if len(warnings) == 1 else 's'}, the first: {warnings[0]}"


def restore(folder: Path, out: Path, *, backend: str = "auto", progress: bool = False) -> RestoreReport:
    """Decode every archived source into `out` as ordinary video (see the module docstring)."""
    report = RestoreReport()
    with Catalogue(folder) as catalogue:
        rows = catalogue.rows("done") + catalogue.rows("duplicate")  # originals claim their names first
    jobs = _plan(folder, out, rows, report)
    for archived, target in tqdm(jobs, unit="file", desc="restore", file=sys.stderr, disable=not progress):
        _restore_one(archived, target, backend, report)
    return report


def _plan(folder: Path, out: Path, rows: list[FileRow], report: RestoreReport) -> list[tuple[Path, Path]]:
    """(archived file, target) per row whose paths stay inside `folder` and `out`; the others are refused."""
    jobs, claimed = [], set[str]()
    for row in rows:
        try:
            archived = inside(folder, row.output)
            name = _target_name(row, claimed)
            target = inside(out, name, "restore path")
        except UnsafePathError as exc:
            report.refused.append(refusal(row, exc, "not restored"))
            continue
        claimed.add(name)
        jobs.append((archived, target))
    return jobs


def _target_name(row: FileRow, claimed: set[str]) -> str:
    """Where a row is restored, relative to --out: an archived file mirrors its archive path, a duplicate its own."""
    assert row.output is not None  # inside() accepted it
    if row.status != "duplicate":
        return PurePosixPath(row.output).with_suffix(".mp4").as_posix()
    # Catalogues before `relative` was recorded: the duplicate's own name beside its original.
    own = row.relative or (PurePosixPath(row.output).parent / PurePosixPath(row.source).name).as_posix()
    try:
        plain = PurePosixPath(own).with_suffix(".mp4")
    except ValueError:
        raise UnsafePathError(f"relative {own!r} names no file") from None
    if plain.as_posix() not in claimed:
        return plain.as_posix()
    return plain.with_suffix(f".{row.id}.mp4").as_posix()  # x.mov, a copy of x.mp4 beside it


def _restore_one(archived: Path, target: Path, backend: str, report: RestoreReport) -> None:
    warnings: list[str] = []
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        frames = decode_damage(archived, target, backend, warnings.append)
    except OutputExistsError:
        report.existing.append(str(target))
    except (StreamcodecError, OSError) as exc:
        report.failed.append((f"{archived} → {target}", str(exc)))
    else:
        report.written.append(str(target))
        if frames or warnings:  # verify --full names the same file: it lists these warnings
            report.concealed[str(target)] = (str(archived), frames, warnings)
