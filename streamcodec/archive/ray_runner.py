"""`--ray [ADDRESS]`: the same per-file tasks as Ray remote functions; the catalogue stays on the driver.

With an ADDRESS (or RAY_ADDRESS) the run joins that cluster; `--ray` alone starts a local Ray
with `--jobs` × T CPUs. Each task asks for one GPU when the cluster has any, else T CPUs, and
uses T threads (T = `--threads-per-job`; by default the machine's cores // `--jobs` on a local
Ray, 1 on a cluster). Workers read the sources and write into the archive folder by the same
paths as the driver, so on a cluster both must be on a shared filesystem. Ray is the optional extra `streamcodec[cluster]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from ..errors import BackendUnavailableError
from .pool import thread_share
from .task import Result, Task


class RayPool:
    """Tasks run by `ray.remote`; `slots` is what the cluster can run at once (GPUs, else CPUs // threads)."""

    def __init__(self, ray: Any, threads: int = 1) -> None:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.slots = max(1, gpus or cpus // threads)
        self.engine = f"ray, {gpus} GPU" if gpus else f"ray, {cpus} CPU, {threads} per task"
        # A task holds as many CPUs as it runs threads, so Ray never packs more threads than cores on a node.
        self._remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else threads, max_retries=0)(_run)
        self._ray, self.threads = ray, threads
        self._refs: list[Any] = []

    def submit(self, fn: Callable[[Task], Result], task: Task) -> Future[Result]:
        ref = self._remote.remote(fn, replace(task, threads=self.threads))
        self._refs.append(ref)
        future: Future[Result] = ref.future()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for ref in self._refs:
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)


def _run(fn: Callable[[Task], Result], task: Task) -> Result:
    return fn(task)


@contextlib.contextmanager
def ray_pool(address: str, jobs: int, threads: int | None = None) -> Iterator[RayPool]:
    """Connect to the Ray cluster at `address` ("" starts a local one with `jobs` × threads CPUs), yield a RayPool.

    Args:
        address: a cluster's address, or "" for a local Ray on this machine.
        jobs: tasks at once on a local Ray.
        threads: threads (and CPUs) per task; None: cores // jobs on a local Ray, 1 on a cluster.
    Returns:
        The pool (a context manager's value; Ray is shut down on the way out).
    """
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("--ray needs Ray: pip install 'streamcodec[cluster]'") from None
    # A local Ray shares this machine's cores between its workers; a cluster's tasks get one CPU each by default.
    per_task = threads or (1 if address else thread_share(jobs))
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=jobs * per_task, include_dashboard=False, log_to_driver=False, configure_logging=False)
    pool = RayPool(ray, per_task)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        ray.shutdown()
