"""`-` for stdin and stdout, as ffmpeg and x265 take it: pipes in and out of an encode.

`ffmpeg -i clip.mp4 -f yuv4mpegpipe - | streamcodec encode - -o - > out.mkv`: the demuxer reads the
y4m (or whatever FFmpeg can probe from a pipe) from stdin, and the Matroska writer sends a live-style
stream to stdout. The Matroska reader must seek (to the index, to the end that tells a whole stream
from a cut one), so it reads stdin from a spool: an unnamed temporary file that holds all of it.

While the stream is being written, stdout belongs to it alone: the process's file descriptor 1
points at stderr, so a stray print (ours, a callback's, a native library's) lands on the terminal
instead of inside the Matroska stream.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError, UnreadableInputError

STDIO = "-"  # the name that means stdin as an input, stdout as an output
STDIN_NAME = Path("<stdin>")  # how messages name them
STDOUT_NAME = Path("<stdout>")
VIDEO_HINT = "pipe a video into it (… -f yuv4mpegpipe - | streamcodec encode -)"
MATROSKA_HINT = "pipe a Matroska stream into it (cat clip.mkv | streamcodec thin - …)"


def is_stdio(name: object) -> bool:
    """Whether `name` (str, os.PathLike or a file object) is `-`: stdin as an input, stdout as an output.

    A file really named `-` is reached as `./-`, as with ffmpeg.
    """
    return isinstance(name, (str, os.PathLike)) and os.fspath(name) == STDIO


def display_name(target: str | os.PathLike[str] | BinaryIO, std_name: Path) -> Path:
    """How messages name an input or output: its path, `std_name` for `-`, or a file object's name."""
    if is_stdio(target):
        return std_name
    if isinstance(target, (str, os.PathLike)):
        return Path(target)
    name = getattr(target, "name", None)
    return Path(name) if isinstance(name, str) else Path("<stream>")


def stdin_stream(hint: str = VIDEO_HINT) -> BinaryIO:
    """stdin as bytes, refused when it is a terminal (nobody types a video); `hint` says what to pipe in."""
    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None:
        raise UnreadableInputError("no stdin to read (the process has none)", STDIN_NAME)
    if _is_terminal(stream):
        raise UnreadableInputError(f"is a terminal; {hint}", STDIN_NAME)
    return stream


def spool_stdin(hint: str = MATROSKA_HINT) -> BinaryIO:
    """All of stdin in an unnamed temporary file (in $TMPDIR, gone when closed or when the process dies), at offset 0.

    For readers that seek. The caller closes it.

    Raises:
        UnreadableInputError: stdin is a terminal, missing or empty, or cannot be held (a full $TMPDIR).
    """
    stream = stdin_stream(hint)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the caller reads it, then closes it)
    try:
        shutil.copyfileobj(stream, spool, 1 << 20)
        if spool.tell() == 0:
            raise UnreadableInputError("is empty: nothing came through (is the command before the | failing?)", STDIN_NAME)
        spool.seek(0)
    except OSError as exc:
        spool.close()
        raise UnreadableInputError(f"cannot be held in a temporary file: {exc.strerror or exc}", STDIN_NAME) from exc
    except BaseException:
        spool.close()
        raise
    return spool


class StreamOutput:
    """Where a binary stream goes: the caller's file object, or stdout for `-`.

    stdout is claimed: `stream` writes to the real stdout and file descriptor 1 meanwhile points at
    stderr. When `sys.stdout` is not file descriptor 1 (a test or a caller replaced it), its
    `.buffer` is used as it is and nothing is redirected. A terminal is refused unless `force`.
    `release()` flushes and puts everything back; safe to call twice.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, force: bool = False) -> None:
        self._saved: int | None = None
        if not isinstance(target, (str, os.PathLike)):
            self.stream = target
            return
        stdout = sys.stdout.buffer if sys.stdout is not None else None
        if stdout is None:
            raise OutputError("no stdout to write to (the process has none)", STDOUT_NAME)
        if _is_terminal(stdout) and not force:
            raise OutputError("is a terminal; redirect the Matroska stream (> out.mkv, | …), or pass --force", STDOUT_NAME)
        if _fileno(sys.stdout) != 1:
            self.stream = stdout
            return
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(2, 1)  # everything else printed from now on goes to stderr
        self.stream = open(self._saved, "wb", closefd=False)  # noqa: SIM115 (closed in release)

    def release(self) -> None:
        """Flush the stream and give file descriptor 1 back to it."""
        with contextlib.suppress(OSError, ValueError):  # a reader that went away: nothing left to flush to
            self.stream.flush()
        if self._saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):  # closes even when its last flush fails
            self.stream.close()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self._saved = None


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _is_terminal(stream: object) -> bool:
    number = _fileno(stream)
    return number is not None and os.isatty(number)


class StreamTail:
    """A write-only stream seen as a file whose last bytes may still be rewritten until `commit()` sends them.

    The Matroska writer patches the size and CRC-32 of the element it is building (a Cluster, the
    head); on a pipe those bytes wait here, so nothing is sent unfinished and nothing is sent twice.
    `tell()` counts every byte written, sent or not.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.sent = 0
        self._tail = bytearray()
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int) -> int:
        """Move within the unsent bytes (or to their end); earlier bytes are gone down the pipe."""
        if not self.sent <= offset <= self.sent + len(self._tail):
            raise ValueError(f"cannot seek to byte {offset} of a stream: bytes before {self.sent} are already sent")
        self._pos = offset
        return offset

    def write(self, data: bytes) -> int:
        start = self._pos - self.sent
        self._tail[start : start + len(data)] = data
        self._pos += len(data)
        return len(data)

    def commit(self) -> None:
        """Send every byte written so far and flush, so a reader downstream sees it now."""
        self.stream.write(self._tail)
        self.stream.flush()
        self.sent += len(self._tail)
        self._tail.clear()
        self._pos = self.sent
