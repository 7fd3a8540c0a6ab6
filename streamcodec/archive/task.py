"""One file's work, the same in a local process pool and on a Ray worker: encode, index, publish.

    source ──encode_file──▶ DIR/.archive-tmp/ID.mkv (complete, fsynced: the writer publishes it so)
           ──sha256, kinds──▶ DIR/.archive-tmp/ID.json (the result, fsynced)
           ──link + unlink──▶ DIR/<mirrored path>.mkv (never over an existing file), folder fsynced
The driver commits the catalogue row after this returns and only then removes ID.json, so a crash
at any point leaves either nothing, a temporary file the next run removes, or a published file
whose result record (matched by the file's sha256) lets the next run commit it without redoing it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..codec import DEFAULT_KEEP, SelectiveOptions, set_session_threads
from ..errors import StreamcodecError
from ..io.safe_output import publish_file
from .scan import sha256_file

#: SVT-AV1's preset for archives (`encode` codes files at 2): on two cores, 640x480 still-camera footage at
#: 10 fps archives at about 2.9x real time at preset 4 (README, `scripts/benchmarks/bench_archive.py`), and at 2, whose
#: kept region takes 11-20 % fewer bits, encode runs about 2.5x slower, under the 2x real time archiving needs.
ARCHIVE_PRESET = "4"

TEMP_FOLDER = ".archive-tmp"
#: A region smaller than this share of the frame is noise (a few motion pixels), not a thing seen.
MIN_REGION_SHARE = 0.001


@dataclass(frozen=True)
class Task:
    """What a worker needs for one file: paths, codec settings, and the thread budget."""

    file_id: int
    source: str
    archive: str
    output: str  # relative to the archive
    mode: str = "sc"
    quality: int | None = None
    backend: str = "auto"
    keep: tuple[str, ...] | None = None
    threads: int = 1
    preset: str | None = None  # sc: the kept region's codec preset (None: ARCHIVE_PRESET)

    def temp(self, suffix: str) -> Path:
        return Path(self.archive) / TEMP_FOLDER / f"{self.file_id}{suffix}"


@dataclass
class Result:
    """A worker's answer: the catalogue values and per-second kinds, or the error and whether the disk is full."""

    file_id: int
    values: dict[str, Any] = field(default_factory=dict)
    kinds: list[tuple[int, str, int, float]] = field(default_factory=list)
    error: str | None = None
    disk_full: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        data["kinds"] = [tuple(row) for row in data["kinds"]]
        return cls(**data)


class KindIndex:
    """Per second of footage, per kind: the most regions seen in one frame and the largest area share."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, str], tuple[int, float]] = defaultdict(lambda: (0, 0.0))
        self.first: Fraction | None = None
        self.kept: list[float] = []
        #: The CPU threads the encoder was given (sc: its x265 threads), read from the encoder itself.
        self.threads: int | None = None

    def __call__(self, time: Fraction, encoder: Any) -> None:
        if self.first is None:
            self.first = time
            options = getattr(encoder, "options", None)
            self.threads = options.codec_threads if options is not None else _torch_threads()
        second = int(time - self.first)
        kept = getattr(encoder, "last_mask", None)
        if kept is None:
            return  # gc mode keeps no regions
        for kind, mask in {**encoder.last_mask_kinds, "kept": kept}.items():
            regions, area = _regions(mask)
            old = self.cells[(second, kind)]
            self.cells[(second, kind)] = (max(old[0], regions), max(old[1], area))
        self.kept.append(float(kept.mean()))

    def rows(self) -> list[tuple[int, str, int, float]]:
        return [(second, kind, regions, round(area, 4)) for (second, kind), (regions, area) in sorted(self.cells.items())]


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _regions(mask: npt.NDArray[np.bool_]) -> tuple[int, float]:
    """Connected regions of a mask larger than MIN_REGION_SHARE, and the mask's area share."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    smallest = MIN_REGION_SHARE * mask.size
    return int(np.count_nonzero(stats[1:count, cv2.CC_STAT_AREA] >= smallest)), float(mask.mean())


def archive_one(task: Task) -> Result:
    """Encode, index and publish one file; never raises for a bad input or a full disk (see Result)."""
    _limit_threads(task.threads)
    temp = task.temp(".mkv")
    try:
        return _archive(task, temp)
    except (StreamcodecError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        return Result(task.file_id, error=_one_line(exc).removeprefix(f"{task.source}: "), disk_full=disk_full(exc))


def _archive(task: Task, temp: Path) -> Result:
    from ..pipeline.encode import encode_file

    index = KindIndex()
    summary = encode_file(
        Path(task.source),
        temp,
        mode=task.mode,
        quality=task.quality,
        backend=task.backend,
        preview=False,  # archives are for our own tools; a preview track would only cost bytes
        on_frame=index,
        selective=SelectiveOptions.for_files(
            keep=task.keep or DEFAULT_KEEP, preset=task.preset or ARCHIVE_PRESET
        ).with_thread_budget(task.threads)
        if task.mode == "sc"
        else None,
    )
    size = temp.stat().st_size
    values = {
        "output_size": size,
        "output_sha256": sha256_file(temp),
        "ratio": Path(task.source).stat().st_size / size,
        "duration_s": summary.duration_s,
        "width": summary.width,
        "height": summary.height,
        "frames": summary.frames,
        "mode": task.mode,
        "model_id": summary.model_id,
        "quality": summary.quality,
        "kbps": summary.file_kbps,
        "bpp": summary.bpp,
        "kept_share": float(np.mean(index.kept)) if index.kept else None,
        "encode_s": summary.seconds,
        "fps": summary.fps,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "threads": index.threads,
    }
    result = Result(task.file_id, values, index.rows())
    write_synced(task.temp(".json"), result.to_json())
    publish(temp, Path(task.archive) / task.output)
    return result


def publish(temp: Path, target: Path) -> None:
    """Move a finished file to its place (refusing to replace anything) and make the rename durable."""
    target.parent.mkdir(parents=True, exist_ok=True)
    publish_file(temp, target, force=False)
    fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse to fsync a folder
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_synced(path: Path, text: str) -> None:
    """Write `path` whole and durable: a temporary name, fsync, rename."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)  # our own temporary folder: nothing of the user's lives here
    fsync_folder(path.parent)


def _limit_threads(threads: int) -> None:
    """Share the cores between workers instead of every worker claiming them all."""
    import cv2
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    set_session_threads(threads)  # gc's ONNX Runtime engine (the selective mask models have 1 thread each)


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a full disk."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "errno", None) == errno.ENOSPC or "No space left" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, StreamcodecError) else f"{type(exc).__name__}: {text}"
