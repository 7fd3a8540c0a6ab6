"""Finding the sources: walk files and folders, name each one's place in the archive, hash its content.

A folder SRC is mirrored under the archive as SRC's own name (`cams/a/x.mp4` → `DIR/cams/a/x.mkv`);
a file SRC lands at the top (`x.mp4` → `DIR/x.mkv`). The archive folder itself is never walked,
even when it lies inside a source folder under another name (a symlink on the way to either): it is
recognised by its device and inode, and a file that resolves into it is never a source.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputNotFoundError
from ..io.safe_output import absolute

CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file found under a source: absolute path, its path under the archive, size and mtime."""

    path: Path
    relative: Path
    size: int
    mtime_ns: int


def walk(sources: Sequence[Path], archive: Path) -> Iterator[SourceFile]:
    """Every regular file under `sources` (files or folders), in sorted order, outside `archive`.

    Args:
        sources: files and folders named on the command line.
        archive: the archive folder (existing), skipped wherever it appears, by whatever path.
    Returns:
        SourceFiles; symlinked folders are not followed (no loops), symlinked files are, unless they
        lead into the archive.
    """
    skip = _Archive(archive)
    for source in sources:
        path = absolute(source)
        if not path.exists():
            raise InputNotFoundError("no such file or folder", source)
        if skip.holds(path):
            continue  # the archive, or something in it, named as a source: never its own input
        if path.is_dir():
            yield from _walk_folder(path, skip)
        elif path.is_file():
            yield _found(path, Path(path.name))


class _Archive:
    """The archive folder, known by its device and inode and by its real path."""

    def __init__(self, folder: Path) -> None:
        st = os.stat(folder)
        self.identity = (st.st_dev, st.st_ino)
        self.real = os.path.realpath(folder)

    def is_it(self, folder: Path) -> bool:
        try:
            st = os.stat(folder)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def holds(self, path: Path) -> bool:
        """Whether `path` (symlinks followed) is the archive folder or lies inside it."""
        return os.path.commonpath([self.real, os.path.realpath(path)]) == self.real


def _walk_folder(root: Path, skip: _Archive) -> Iterator[SourceFile]:
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(name for name in subfolders if not skip.is_it(here / name))
        for name in sorted(names):
            path = here / name
            if path.is_file() and not skip.holds(path):
                yield _found(path, Path(root.name) / path.relative_to(root))


def _found(path: Path, relative: Path) -> SourceFile:
    st = path.stat()
    return SourceFile(path, relative, st.st_size, st.st_mtime_ns)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def output_name(relative: Path, sha256: str, taken: set[str], archive: Path) -> str:
    """Where a source's archived copy goes, relative to the archive: its path with `.mkv`.

    When that name is claimed by another row or a file already there (x.mp4 beside x.mov, or a
    user's file), the content hash goes into the name instead, so nothing is ever overwritten.
    """
    plain = relative.with_suffix(".mkv").as_posix()
    if plain not in taken and not os.path.lexists(archive / plain):
        return plain
    return relative.with_suffix(f".{sha256[:12]}.mkv").as_posix()
