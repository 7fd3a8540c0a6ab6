"""Outputs that never clobber: checked up front, written under a locked temporary name, published by a rename.

Every output is first written as `.NAME.partial-XXXXXXXX` (a file, or a folder holding the file or
the frames) next to NAME, and renamed onto NAME only when complete. An existing NAME is replaced
only when the caller passes `force`; without it the rename is a hard link, which fails atomically
if NAME appeared meanwhile. A folder of frames is written only into a new or empty folder, never
by emptying one. An output that is one of the command's inputs (the same file by inode: through a
symlink or a hard link too) is refused, `force` or not. OS failures while writing (a full disk, a
read-only folder, no permission) become one-line OutputErrors naming the output (`writing_errors`).

The writer holds an flock on its partial while it writes. The kernel drops that lock when the
process dies, even by SIGKILL, so a later run can tell a stale partial (lock free) from a live
one (lock held) and remove only the stale ones, and only their own files. Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import OutputError, OutputExistsError, StreamcodecError
from .stdio import STDIO, STDOUT_NAME

FRAME_NAME = re.compile(r"frame_\d{6,}\.png")
# 8 characters: our own token_hex(4) names, and tempfile.mkdtemp's from earlier versions.
_TOKEN = "[a-z0-9_]{8}"
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
EXISTS_HINT = "exists; pass --force (-y) to replace it"
NOT_EMPTY_HINT = "is a folder that is not empty; frames go only into a new or empty folder (--force never empties one)"
IS_INPUT_HINT = "choose another output name (--force never replaces an input)"


def absolute(path: Path) -> Path:
    """`path` made absolute without following symlinks, so `.` and `dir/` have a real name."""
    return Path(os.path.abspath(path))


def partial_name(target: Path) -> re.Pattern[str]:
    """The names our partials for `target` take, and only those."""
    return re.compile(rf"\.{re.escape(target.name)}\.partial-{_TOKEN}")


@contextlib.contextmanager
def writing_errors(target: Path | str) -> Iterator[None]:
    """Turn OS failures while writing `target` (disk full, read-only, permissions) into one-line OutputErrors."""
    try:
        yield
    except StreamcodecError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", target) from exc


def check_not_input(target: Path, inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse an output that is one of the `inputs`: the same file by inode, through symlinks and hard links too.

    `-` is stdin as an input, stdout as the target: refused when it is a file that is the other side
    (`… - -o clip.mkv -y < clip.mkv`, `… clip.mkv -o - >> clip.mkv`).
    """
    for source in inputs:
        if source is None:
            continue
        if STDIO in (os.fspath(source), os.fspath(target)):
            _check_not_stdio(target, source)
            continue
        if os.path.lexists(target) and _same_inode(target, Path(source)):
            also = "" if os.path.abspath(target) == os.path.abspath(source) else f" {source}"
            raise OutputError(f"is also the input{also}; {IS_INPUT_HINT}", target)


def _check_not_stdio(target: Path, source: str | os.PathLike[str]) -> None:
    """Refuse a file on stdin that is the output, or an input file that stdout writes into."""
    if os.fspath(source) == os.fspath(target):
        return  # a pipe in, a pipe out
    reading = os.fspath(source) == STDIO
    name, fd = (target, 0) if reading else (Path(source), 1)
    try:
        held, named = os.fstat(fd), os.stat(name)
    except OSError:
        return  # no such file, or no such descriptor: nothing to clash with
    if stat.S_ISREG(held.st_mode) and (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
        where = f"the file on stdin; {IS_INPUT_HINT}" if reading else f"the input {source}; send stdout elsewhere"
        raise OutputError(f"is also {where}", target if reading else STDOUT_NAME)


def _same_inode(one: Path, other: Path) -> bool:
    """Whether two names reach one file, following symlinks or not (a symlink to the input is the input)."""
    with contextlib.suppress(OSError):
        if os.path.samefile(one, other):
            return True
    with contextlib.suppress(OSError):
        mine, theirs = os.lstat(one), os.lstat(other)
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    return False


def check_file_target(target: Path, force: bool, inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Refuse before any work: an input, a folder where a file goes, an existing file without `force`, no parent folder."""
    check_not_input(target, inputs)
    if target.is_dir():
        raise OutputError("is a folder; name a file to write", target)
    if os.path.lexists(target) and not force:
        raise OutputExistsError(EXISTS_HINT, target)
    if not target.parent.is_dir():
        raise OutputError("output folder does not exist", target.parent)


def check_frames_folder(folder: Path) -> None:
    """Refuse a frames folder that is a file or holds anything but our own stale partials (removed here)."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError("is a file, not a folder; frames go only into a new or empty folder", folder)
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputError("output folder does not exist", folder.parent)
        return
    remove_stale_partials(absolute(folder), where=folder)
    if any(folder.iterdir()):
        raise OutputError(NOT_EMPTY_HINT, folder)


def _same_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (no one removed or replaced it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class Partial:
    """A temporary file or folder for `target`, locked by this process until published or discarded."""

    def __init__(self, path: Path, fd: int, folder: bool) -> None:
        self.path, self.fd, self.folder = path, fd, folder

    @classmethod
    def create(cls, target: Path, *, folder: bool = False, where: Path | None = None) -> Partial:
        """Create and lock `.NAME.partial-XXXXXXXX` in `where` (default: next to `target`)."""
        where = target.parent if where is None else where
        while True:
            path = where / f".{target.name}.partial-{secrets.token_hex(4)}"
            try:  # O_EXCL / mkdir: never share a partial with another writer
                fd = cls._open_new(path, folder)
            except FileExistsError:
                continue
            except FileNotFoundError:
                if not where.is_dir():
                    raise
                continue  # a cleaner removed our fresh folder before we opened it
            except OSError as exc:  # read-only, no permission, disk full: said once, naming the output
                raise OutputError(f"cannot write: {exc.strerror or exc}", target) from exc
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(path, fd):
                partial = cls(path, fd, folder)
                _LIVE.add(partial)
                return partial
            os.close(fd)  # a cleaner took it between create and lock: start again

    @staticmethod
    def _open_new(path: Path, folder: bool) -> int:
        if not folder:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.mkdir(path)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def release(self) -> None:
        """Drop the lock. Safe to call more than once."""
        _LIVE.discard(self)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Remove the partial (ours: we created and locked it) and drop the lock."""
        if self.folder:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)
        self.release()


#: The partials this process holds: what a signal that ends it where no `finally` runs must remove (cli.signals).
_LIVE: set[Partial] = set()
os.register_at_fork(after_in_child=_LIVE.clear)  # a forked worker holds none of its parent's


def discard_live_partials() -> None:
    """Remove every partial this process still holds (the process is about to end)."""
    for partial in list(_LIVE):
        partial.discard()


def publish_file(source: Path, target: Path, force: bool) -> None:
    """Rename the finished `source` onto `target`; without `force`, fail if `target` exists by now."""
    if force:
        os.replace(source, target)
        return
    try:
        os.link(source, target)  # atomic: fails if anything appeared at target meanwhile
    except FileExistsError:
        raise OutputExistsError(EXISTS_HINT, target) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):  # no hard links on this filesystem: check, then rename
            raise OutputExistsError(EXISTS_HINT, target) from None
        os.rename(source, target)
        return
    os.unlink(source)


def write_file(target: Path, write: Callable[[Path], object], force: bool) -> None:
    """Write `target` through a locked partial beside it (`write` gets the partial's path), then publish it by a rename.

    An existing `target` is replaced only with `force`, and then the name itself: a symlink there is
    replaced, never written through. On any failure nothing is left and `target` is as it was.
    """
    remove_stale_partials(target)
    partial = Partial.create(target)
    try:
        with writing_errors(target):
            write(partial.path)
            publish_file(partial.path, target, force)
    except BaseException:
        partial.discard()
        raise
    partial.release()


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; some filesystems refuse to fsync a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_frames(partial: Partial, folder: Path) -> None:
    """Put finished frames at `folder`: rename the partial onto it, or move them into the empty folder."""
    if partial.path.parent != folder:
        try:  # renames onto nothing or onto an empty folder; a non-empty one or a file refuses
            os.rename(partial.path, folder)
        except OSError as exc:
            raise OutputError(f"appeared while writing and is not an empty folder ({exc.strerror})", folder) from exc
        return
    if {p.name for p in folder.iterdir()} != {partial.path.name}:
        raise OutputError(NOT_EMPTY_HINT.replace("is a folder", "became a folder"), folder)
    for frame in sorted(partial.path.iterdir()):
        publish_file(frame, folder / frame.name, force=False)
    partial.path.rmdir()


def remove_stale_partials(target: Path, *, where: Path | None = None, scratch: bool = False) -> list[Path]:
    """Remove `target`'s partials in `where` (default: its folder) that no live writer holds.

    A partial folder is removed only when it holds nothing but what we write there, unless it is
    `scratch`: a folder a killed run of ours made for its own work files, removed with all inside.

    Returns:
        The partials removed.
    """
    where = target.parent if where is None else where
    pattern = partial_name(target)
    try:
        names = [entry.name for entry in os.scandir(where) if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    return [where / name for name in names if _remove_if_stale(where / name, target.name, scratch)]


def _remove_if_stale(path: Path, target_name: str, scratch: bool = False) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return False  # a symlink or device under our name is not ours
    folder = stat.S_ISDIR(mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if folder else 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # a live writer holds it
    try:
        return _same_file(path, fd) and _remove_own(path, folder, target_name, scratch)
    finally:
        os.close(fd)


def _remove_own(path: Path, folder: bool, target_name: str, scratch: bool = False) -> bool:
    """Remove a stale partial: a file, a folder holding only what we write there, or a `scratch` folder whole."""
    with contextlib.suppress(OSError):
        if not folder:
            path.unlink()
            return True
        if scratch:  # rmtree removes symlinks inside, never what they point to
            shutil.rmtree(path)
            return True
        for inside in path.iterdir():
            if (inside.name == target_name or FRAME_NAME.fullmatch(inside.name)) and inside.is_file() and not inside.is_symlink():
                inside.unlink()
        path.rmdir()  # fails, and so keeps the folder, if anything else is inside
        return True
    return False
