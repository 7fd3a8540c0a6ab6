"""The embedded pool: `--jobs N` worker processes on this machine, each with its share of the cores."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from .task import Result, Task


class LocalPool:
    """`jobs` spawned worker processes; each task gets `threads` threads (default cores // jobs, at least 1)."""

    def __init__(self, jobs: int, threads: int | None = None) -> None:
        self.slots = jobs
        self.threads = threads or thread_share(jobs)
        self.engine = f"processes, {self.threads} thread{'s' if self.threads > 1 else ''} each"
        context = multiprocessing.get_context("spawn")  # no forked copies of torch/ONNX thread pools
        self._executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_started)

    def submit(self, fn: Callable[[Task], Result], task: Task) -> Future[Result]:
        from dataclasses import replace

        return self._executor.submit(fn, replace(task, threads=self.threads))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not wait:  # interrupted: stop the workers now; whatever they leave, the next run recovers or removes
            # (ProcessPoolExecutor has no public way to stop running work before Python 3.14's terminate_workers.)
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.terminate()
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)


def thread_share(jobs: int) -> int:
    """This machine's cores shared between `jobs` workers: the threads each may use (at least 1)."""
    return max(1, (os.cpu_count() or 1) // jobs)


@contextlib.contextmanager
def local_pool(jobs: int, threads: int | None = None) -> Iterator[LocalPool]:
    """A LocalPool, shut down on the way out (pending work cancelled if the driver is interrupted)."""
    pool = LocalPool(jobs, threads)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _worker_started() -> None:
    """Die with the driver (even a SIGKILLed one), so no orphan keeps writing into the archive; Ctrl-C is the driver's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
