"""`--ray [ADDRESS]`: the same per-file tasks as Ray remote functions; the catalogue stays on the driver.

With an ADDRESS (or RAY_ADDRESS) the run joins that cluster; `--ray` alone starts a local Ray
with `--jobs` CPUs. Each task asks for one GPU when the cluster has any, else one CPU. Workers
read the sources and write into the archive folder by the same paths as the driver, so on a
cluster both must be on a shared filesystem. Ray is the optional extra `streamcodec[cluster]`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from ..errors import BackendUnavailableError
from .task import Result, Task


class RayPool:
    """Tasks run by `ray.remote`; `slots` is what the cluster can run at once (GPUs, else CPUs)."""

    engine = "ray"

    def __init__(self, ray: Any, threads: int = 1) -> None:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        self.slots = max(1, gpus or cpus)
        self.engine = f"ray, {gpus} GPU" if gpus else f"ray, {cpus} CPU"
        self._remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_retries=0)(_run)
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
def ray_pool(address: str, jobs: int) -> Iterator[RayPool]:
    """Connect to the Ray cluster at `address` ("" starts a local one with `jobs` CPUs), yield a RayPool."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("--ray needs Ray: pip install 'streamcodec[cluster]'") from None
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # A local Ray shares this machine's cores between its workers; a cluster's tasks get one CPU each.
    pool = RayPool(ray, 1 if address else max(1, (os.cpu_count() or 1) // jobs))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        ray.shutdown()
