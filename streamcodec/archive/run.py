"""`streamcodec archive SRC... --out DIR`: plan, run the files on a pool, commit each as it lands.

    lock DIR ─▶ recover (rows left running) ─▶ walk + hash sources ─▶ plan: skip done content,
    mark copies duplicate ─▶ pool (processes or Ray) runs `task.archive_one` ─▶ driver commits
The catalogue is written by this process only. One run at a time holds DIR's lock; a second is
refused. A full disk stops scheduling: the files already in flight finish or fail, the one that
hit the full disk goes back to pending, and the rerun continues.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ..errors import OutputError
from .catalogue import Catalogue, FileRow
from .paths import is_inside
from .pool import local_pool
from .scan import SourceFile, output_name, sha256_file, walk
from .task import TEMP_FOLDER, Result, Task, archive_one, disk_full, publish

LOCK_NAME = ".archive.lock"
#: Test hook: the name of a point where the driver exits at once (as a crash would), e.g. "before-commit".
CRASH_ENV = "STREAMCODEC_ARCHIVE_CRASH"
_OURS_IN_TEMP = re.compile(r"\.?\d+\.(mkv|json)(\.partial(-[a-z0-9_]{8})?)?")


class Pool(Protocol):
    """What the driver needs of a pool: how many files at once, submit, shut down."""

    slots: int
    engine: str

    def submit(self, fn: Callable[[Task], Result], task: Task) -> Future[Result]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


@dataclass
class ArchiveOptions:
    """`archive`'s arguments: sources, archive folder, codec settings and where the work runs."""

    sources: list[Path]
    archive: Path
    mode: str = "sc"
    quality: int | None = None
    backend: str = "auto"
    keep: tuple[str, ...] | None = None
    preset: str | None = None  # sc: the kept region's codec preset (None: task.ARCHIVE_PRESET)
    jobs: int = 1
    threads: int | None = None  # per job; None: the cores shared between the jobs (see pool.thread_share)
    ray: str | None = None  # None: local processes; "" : a local Ray; else a cluster address
    progress: bool = False
    command: str = ""


@dataclass
class RunSummary:
    """What one run did; `text()` is the summary printed at the end."""

    found: int = 0
    done: int = 0
    skipped: int = 0
    duplicates: int = 0
    failed: int = 0
    footage_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    workers: int = 1
    engine: str = ""
    disk_full: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        ratio = self.bytes_in / self.bytes_out if self.bytes_out else 0.0
        speed = self.footage_s / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.found} files: {self.done} archived, {self.skipped} already archived, "
            f"{self.duplicates} duplicates, {self.failed} failed",
            f"{self.footage_s / 3600:.3f} h of footage, {self.bytes_in / 1e6:.2f} MB in, {self.bytes_out / 1e6:.2f} MB out "
            f"(ratio {ratio:.1f}), {self.seconds:.1f} s ({speed:.2f}x real time, {speed / self.workers:.2f}x per worker; "
            f"{self.engine})",
        ]
        if self.disk_full:
            lines.append("stopped: the disk is full; free space and rerun the same command to continue")
        return "\n".join(lines)


def archive(options: ArchiveOptions) -> RunSummary:
    """Archive every video under `options.sources` into `options.archive` (see the module docstring)."""
    folder = options.archive
    if folder.exists() and not folder.is_dir():
        raise OutputError("is a file; --out names the archive folder", folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEMP_FOLDER).mkdir(exist_ok=True)
    started = time.perf_counter()
    with locked(folder), Catalogue(folder, create=True) as catalogue:
        recover(catalogue, folder)
        summary, tasks, later = _plan(catalogue, options)
        run_id = catalogue.start_run(options.command, "ray" if options.ray is not None else "processes", options.jobs)
        outcome = "interrupted"
        try:
            with _pool(options) as pool:
                summary.workers, summary.engine = pool.slots, pool.engine
                _Driver(catalogue, pool, summary, options.progress).run(tasks)
                if later and not summary.disk_full:  # copies found in this run: archived once, the rest are duplicates
                    copies = _plan_copies(catalogue, later, summary, options)
                    _Driver(catalogue, pool, summary, options.progress).run(copies)
            outcome = "disk full" if summary.disk_full else "complete"
        finally:
            summary.seconds = time.perf_counter() - started
            totals = {"done": summary.done, "failed": summary.failed, "footage_s": summary.footage_s}
            with contextlib.suppress(OutputError):  # a full disk: the run's own record is the one thing we may lose
                catalogue.end_run(run_id, outcome, bytes_in=summary.bytes_in, bytes_out=summary.bytes_out, **totals)
    return summary


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the archive's lock (`archive` and `archive thin` take it): a second run is refused, not made to wait."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError("another `streamcodec archive` run is using this archive", folder) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _pool(options: ArchiveOptions) -> Iterator[Pool]:
    if options.ray is not None:
        from .ray_runner import ray_pool

        with ray_pool(options.ray, options.jobs, options.threads) as pool:
            yield pool
    else:
        with local_pool(options.jobs, options.threads) as local:
            yield local


def recover(catalogue: Catalogue, folder: Path) -> None:
    """Settle what a killed run left: commit files published without a commit, clear our temporaries."""
    for row in catalogue.rows("running"):
        record = folder / TEMP_FOLDER / f"{row.id}.json"
        result = Result.from_json(record.read_text(encoding="utf-8")) if record.is_file() else None
        if result is not None and is_inside(folder, row.output) and _adopt(folder, row, result):
            catalogue.finish(row.id, {**result.values, "status": "done", "finished": time.time(), "error": None}, result.kinds)
        else:
            catalogue.update(row.id, status="pending")
    temp = folder / TEMP_FOLDER
    for entry in os.scandir(temp):
        if _OURS_IN_TEMP.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)  # we hold the archive's lock: no live writer owns these


def _adopt(folder: Path, row: FileRow, result: Result) -> bool:
    """Whether the file a killed run finished is in place (publishing it first if it stopped just before)."""
    assert row.output is not None
    target, temp = folder / row.output, folder / TEMP_FOLDER / f"{row.id}.mkv"
    wanted = result.values["output_sha256"]
    if not os.path.lexists(target) and temp.is_file() and sha256_file(temp) == wanted:
        publish(temp, target)
    return target.is_file() and sha256_file(target) == wanted


def _plan(catalogue: Catalogue, options: ArchiveOptions) -> tuple[RunSummary, list[Task], list[SourceFile]]:
    """Tasks for the files still to archive; those already archived (by name or content) are skipped."""
    summary, tasks, later = RunSummary(), [], []
    taken, planned = catalogue.outputs(), set()
    for found in walk(options.sources, options.archive):
        summary.found += 1
        row = _unchanged(catalogue, found, options.archive)
        if row is not None:
            summary.skipped += 1
            continue
        row = catalogue.upsert_source(str(found.path), found.size, found.mtime_ns, sha256_file(found.path))
        if _already_archived(catalogue, row, found, options.archive, summary):
            continue
        if row.sha256 in planned:
            later.append(found)
            continue
        planned.add(row.sha256)
        tasks.append(_task(catalogue, row, found, taken, options))
    return summary, tasks, later


def _unchanged(catalogue: Catalogue, found: SourceFile, folder: Path) -> FileRow | None:
    """The finished row of a file whose name, size and mtime are unchanged (no need to hash it again)."""
    row = catalogue.by_source(str(found.path))
    same = row is not None and row.size == found.size and row.mtime_ns == found.mtime_ns
    if same and row is not None and row.status in ("done", "duplicate") and _in_place(folder, row):
        return row
    return None


def _in_place(folder: Path, row: FileRow) -> bool:
    """Whether the row's archived file is there, at a path inside the archive (a catalogue path is not trusted)."""
    return is_inside(folder, row.output) and (folder / str(row.output)).is_file()


def _already_archived(catalogue: Catalogue, row: FileRow, found: SourceFile, folder: Path, summary: RunSummary) -> bool:
    """Content already in the archive: this row's own, or another source's (then this one is a duplicate).

    A duplicate keeps its own place in the layout (`relative`), where restore writes it back.
    """
    if row.status in ("done", "duplicate") and _in_place(folder, row):
        summary.skipped += 1
        return True
    same = catalogue.done_with_sha(row.sha256)
    if same is None or same.id == row.id or not _in_place(folder, same):
        return False
    catalogue.update(
        row.id, status="duplicate", output=same.output, output_size=same.output_size, duration_s=same.duration_s,
        ratio=same.ratio, error=None, finished=time.time(), relative=found.relative.as_posix(),
    )  # fmt: skip
    summary.duplicates += 1
    _line(f"same content as {same.source}: {row.source} (kept as a duplicate of {same.output})")
    return True


def _task(catalogue: Catalogue, row: FileRow, found: SourceFile, taken: set[str], options: ArchiveOptions) -> Task:
    folder = options.archive
    if row.output is not None and is_inside(folder, row.output) and not os.path.lexists(folder / row.output):
        output = row.output  # an earlier attempt's name, still free
    else:
        if row.output is not None and not is_inside(folder, row.output):
            _line(f"refused: catalogue row {row.id} ({row.source}): output {row.output!r} is outside the archive; "
                  "archiving it again under a new name")  # fmt: skip
        output = output_name(found.relative, row.sha256, taken, folder)
    taken.add(output)
    catalogue.update(row.id, status="pending", output=output, error=None)
    settings = (options.mode, options.quality, options.backend, options.keep)
    return Task(row.id, row.source, str(folder.resolve()), output, *settings, preset=options.preset)


def _plan_copies(catalogue: Catalogue, copies: list[SourceFile], summary: RunSummary, options: ArchiveOptions) -> list[Task]:
    """Copies met in this run after their first: duplicates now, or their own task if the first failed."""
    tasks = []
    for found in copies:
        row = catalogue.by_source(str(found.path))
        assert row is not None
        if not _already_archived(catalogue, row, found, options.archive, summary):
            tasks.append(_task(catalogue, row, found, catalogue.outputs(), options))
    return tasks


def _line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


class _Driver:
    """Keeps the pool busy, commits each result as it lands, and shows progress."""

    def __init__(self, catalogue: Catalogue, pool: Pool, summary: RunSummary, progress: bool) -> None:
        self.catalogue, self.pool, self.summary = catalogue, pool, summary
        self.progress = progress

    def run(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        sizes = {task.file_id: os.path.getsize(task.source) for task in tasks}
        bar = tqdm(
            total=sum(sizes.values()), unit="B", unit_scale=True, desc="archive", file=sys.stderr, disable=not self.progress
        )
        queue, running = deque(tasks), dict[Future[Result], Task]()
        try:
            while queue or running:
                while queue and len(running) < self.pool.slots and not self.summary.disk_full:
                    task = queue.popleft()
                    with self._disk_full_stops():
                        self.catalogue.update(task.file_id, status="running", started=time.time())
                        running[self.pool.submit(archive_one, task)] = task
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    with self._disk_full_stops():
                        self._commit(task, _result(future, task), sizes[task.file_id])
                    bar.update(sizes[task.file_id])
        finally:
            bar.close()

    @contextlib.contextmanager
    def _disk_full_stops(self) -> Iterator[None]:
        """A catalogue that cannot be written for a full disk stops the run (what is in place is recovered next time)."""
        try:
            yield
        except OutputError as exc:
            if not disk_full(exc):
                raise
            if not self.summary.disk_full:
                _line(f"disk full: {exc}")
            self.summary.disk_full = True

    def _commit(self, task: Task, result: Result, size: int) -> None:
        record = task.temp(".json")
        if result.error is not None:
            status = "pending" if result.disk_full else "failed"
            self.catalogue.update(task.file_id, status=status, error=result.error, finished=time.time())
            self.summary.disk_full |= result.disk_full
            self.summary.failed += not result.disk_full
            self.summary.failures.append((task.source, result.error))
            _line(f"{'disk full' if result.disk_full else 'failed'}: {task.source}: {result.error}")
        else:
            _crash_point("before-commit")
            values = {**result.values, "status": "done", "finished": time.time(), "error": None}
            self.catalogue.finish(task.file_id, values, result.kinds)
            self._count(task, result.values, size)
        record.unlink(missing_ok=True)

    def _count(self, task: Task, values: dict[str, Any], size: int) -> None:
        s = self.summary
        s.done += 1
        s.footage_s += values["duration_s"]
        s.bytes_in += size
        s.bytes_out += values["output_size"]
        speed = values["duration_s"] / values["encode_s"] if values["encode_s"] else 0.0
        _line(
            f"archived {task.source} → {task.output}: {values['duration_s']:.1f} s, "
            f"{size / 1e6:.2f} → {values['output_size'] / 1e6:.3f} MB (ratio {values['ratio']:.1f}), "
            f"{values['encode_s']:.1f} s ({speed:.2f}x real time, {_threads(values.get('threads'))})"
        )


def _threads(count: int | None) -> str:
    return f"{count} thread{'' if count == 1 else 's'}"


def _result(future: Future[Result], task: Task) -> Result:
    """The worker's result; a worker that died (killed, out of memory) is a failure of that file."""
    try:
        return future.result()
    except Exception as exc:  # the pool's own failures (BrokenProcessPool, Ray task errors) name no file
        return Result(task.file_id, error=f"worker failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
