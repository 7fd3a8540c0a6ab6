"""The project's exceptions, and the one place where third-party failures become them.

Each exception also subclasses the builtin that fits it (as PyAV's `av.FileNotFoundError` is a
`FileNotFoundError`), so callers can catch either. Every message names the file and what is wrong
with it; the CLI prints `str(error)` on one line and exits non-zero.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path


class StreamcodecError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class InputNotFoundError(StreamcodecError, FileNotFoundError):
    """The input file does not exist."""


class UnreadableInputError(StreamcodecError, ValueError):
    """The input exists but is not a video that can be decoded (or holds no frames)."""


class CorruptStreamError(StreamcodecError, ValueError):
    """A container element or frame packet failed its checks (CRC, sizes, magic)."""

    def __init__(self, message: str, path: str | Path | None = None, offset: int | None = None) -> None:
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(message + where, path)


class TruncatedStreamError(CorruptStreamError):
    """The file ends before its last element does (an interrupted copy or download)."""


class UnsupportedStreamError(StreamcodecError, ValueError):
    """A well-formed stream this build cannot decode: unknown format version, model or codec."""


class ModelError(StreamcodecError, LookupError):
    """A model name or identifier is unknown, registered twice, or its weights fail their hash."""


class BackendUnavailableError(StreamcodecError, RuntimeError):
    """An inference backend (TensorRT, ONNX Runtime, CUDA) is not installed or failed to start."""


class FfmpegError(StreamcodecError, RuntimeError):
    """An ffmpeg program run (evaluation codecs) exited non-zero; the message carries its last lines."""


class OutputError(StreamcodecError, OSError):
    """The output cannot be written (folder missing, not writable, disk full)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output already exists and replacing it was not asked for (`--force`, `force=True`)."""


class EmptyOutputError(StreamcodecError, ValueError):
    """Nothing to write: the output would hold no frame (e.g. a Matroska file with no Cluster)."""


class MalformedMessageError(CorruptStreamError):
    """A live-link message failed its checks (magic, version, type, size): dropped and counted."""


class LinkError(StreamcodecError, ConnectionError):
    """The live link cannot be opened or was lost (address in use, peer gone)."""


@contextlib.contextmanager
def media_errors(path: str | Path, *, writing: bool = False) -> Iterator[None]:
    """Turn PyAV/FFmpeg failures on `path` into the project's exceptions."""
    import av  # local: keeps `import streamcodec.errors` free of the FFmpeg libraries

    try:
        yield
    except StreamcodecError:
        raise
    except FileNotFoundError as exc:
        if writing:
            raise OutputError(f"cannot write: {exc.strerror or exc}", path) from exc
        raise InputNotFoundError("no such file", path) from exc
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        if writing:
            raise OutputError(f"FFmpeg refused the output: {exc}", path) from exc
        raise UnreadableInputError("not a readable media file (FFmpeg: invalid data)", path) from exc
    except av.error.FFmpegError as exc:
        kind = OutputError if writing else UnreadableInputError
        raise kind(f"FFmpeg error: {exc.strerror or exc}", path) from exc
    except PermissionError as exc:
        raise OutputError("permission denied", path) from exc
    except IsADirectoryError as exc:
        raise UnreadableInputError("is a directory, not a media file", path) from exc


@contextlib.contextmanager
def onnx_runtime_errors(path: str | Path, what: str, kind: type[StreamcodecError] = ModelError) -> Iterator[None]:
    """Turn ONNX Runtime's own failures (InvalidArgument, Fail, INVALID_PROTOBUF, ...) into `kind`.

    Args:
        path: the model or engine file, named first in the message.
        what: what was being done, e.g. "the segmenter cannot run on a (1, 3, 64, 64) float32 input".
        kind: the project's exception to raise (ModelError for a user's model, BackendUnavailableError for an engine).
    """
    try:
        yield
    except StreamcodecError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        raise kind(f"{what}: ONNX Runtime: {_onnx_runtime_message(exc)}", path) from exc


def _onnx_runtime_message(exc: Exception) -> str:
    """ORT's message without its "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :" prefix, on one line."""
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ", "", " ".join(str(exc).split()))
