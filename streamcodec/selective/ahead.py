"""The selective encoder's keep masks in frame order, optionally found one frame ahead on a worker thread.

    serial:     encode(n) = [masks n][fill + x265 n + recon n]  ──▶ packet n
    pipelined:  prepare(n+1), then encode(n):
                worker  [masks n+1 ...............]
                caller  [wait masks n][fill + x265 n + recon n]  ──▶ packet n

The mask models (LiteRT, OpenCV) and x265 (through PyAV) release the GIL, so on two cores the masks
of the next frame cost (almost) nothing while the fidelity codec works on this one. Masks are found
by one worker in the order the frames are given, the same calls as serially, so the masks, and
hence the packets, are identical either way (tests/test_selective_codec.py checks it). The caller
gives the next frame early; nothing is held back: each encode still returns its own packet.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .base import Frame, Mask
from .masks import SelectiveMasks

__all__ = ["MaskPipeline"]


class MaskPipeline:
    """`next(frame)` → that frame's keep mask; `prepare(frame)` starts an upcoming frame's on a worker."""

    def __init__(self, masks: SelectiveMasks) -> None:
        self._frames: list[Frame] = []
        self._masks = masks
        self._stream = masks.kept_masks(self._feed())
        #: Each kind's raw mask for the frame `next` last returned (`SelectiveMasks.last_kinds` then).
        self.last_kinds: dict[str, Mask] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: deque[tuple[Frame, Future[tuple[Mask, dict[str, Mask]]]]] = deque()
        #: Seconds spent finding masks ahead, on the worker (overlapped with the caller's work).
        self.worker_seconds = 0.0

    def _feed(self) -> Iterator[Frame]:
        while self._frames:
            yield self._frames.pop()

    def _find(self, frame: Frame) -> tuple[Mask, dict[str, Mask]]:
        self._frames.append(frame)
        mask = next(self._stream)
        return mask, dict(self._masks.last_kinds)

    def _find_timed(self, frame: Frame) -> tuple[Mask, dict[str, Mask]]:
        started = time.perf_counter()
        try:
            return self._find(frame)
        finally:
            self.worker_seconds += time.perf_counter() - started

    def prepare(self, frame: Frame) -> None:
        """Start finding the mask of an upcoming frame (frames in stream order; a copy is taken)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sc-masks")
        frame = frame.copy()  # the caller may reuse its buffer (a camera's) before the worker reads it
        self._ahead.append((frame, self._pool.submit(self._find_timed, frame)))

    def next(self, frame: Frame) -> Mask:
        """The keep mask of the next frame of the stream: prepared ahead if `prepare` was given it, else found now.

        Args:
            frame: (H, W, 3) uint8 RGB, the stream's next frame.
        Returns:
            (H, W) bool.
        Raises:
            ValueError: `prepare` was given a different frame for this place in the stream.
        """
        if not self._ahead:
            mask, self.last_kinds = self._find(frame)  # nothing queued: the worker is idle, the stream is ours
            return mask
        prepared, future = self._ahead.popleft()
        mask, self.last_kinds = future.result()
        if not np.array_equal(prepared, frame):
            raise ValueError("encode() got a frame other than the one prepare() was given for this place in the stream")
        return mask

    def close(self) -> None:
        """Stop the worker (after the masks it is finding); idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._ahead.clear()
