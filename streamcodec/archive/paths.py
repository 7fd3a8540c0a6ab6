"""Paths read from the catalogue, trusted only once they resolve inside the folder they belong to.

The catalogue is a file: anyone who can write to the archive can edit it. A row's `output` (the
archived file, relative to the archive folder) and `relative` (a duplicate's own place in the
layout) are joined to a folder only when they are relative, have no `..`, and resolve, symlinks
followed, inside that folder; otherwise the row is refused (UnsafePathError) and nothing is read
or written through it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..errors import StreamcodecError


class UnsafePathError(StreamcodecError, ValueError):
    """A catalogue path that would lead outside its folder."""


def inside(folder: Path, relative: str | None, what: str = "output") -> Path:
    """`folder / relative`, refused unless it stays inside `folder`.

    Args:
        folder: the archive folder (input side) or restore's --out folder (output side); it need not exist yet.
        relative: the path from the catalogue, relative to `folder`.
        what: the catalogue column, for the message.
    Returns:
        The joined path. Raises UnsafePathError for an empty or absolute path, one naming no file (`.`),
        a `..` part, or one that resolves (through a symlink in `folder`) to a place outside `folder`.
    """
    if not relative:
        raise UnsafePathError(f"{what} is empty")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or Path(relative).is_absolute():
        raise UnsafePathError(f"{what} {relative!r} is an absolute path, outside {folder}")
    if not pure.name:
        raise UnsafePathError(f"{what} {relative!r} names no file")
    if ".." in pure.parts:
        raise UnsafePathError(f"{what} {relative!r} leads outside {folder}")
    joined = folder / relative
    base, real = os.path.realpath(folder), os.path.realpath(joined)
    if os.path.commonpath([base, real]) != base:
        raise UnsafePathError(f"{what} {relative!r} resolves through a symlink to {real}, outside {folder}")
    return joined


def is_inside(folder: Path, relative: str | None) -> bool:
    """Whether `inside(folder, relative)` accepts the path."""
    try:
        inside(folder, relative)
    except UnsafePathError:
        return False
    return True
