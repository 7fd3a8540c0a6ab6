"""What the receiver shows: the latest pictures (for the page, with long-polling) and running statistics."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Seconds over which fps and kbps are measured.
WINDOW_S = 2.0
#: Latencies kept for the percentiles.
LATENCY_SAMPLES = 3000


@dataclass
class Picture:
    """One picture for the page: raw RGB (encoded to JPEG when asked for) or ready image bytes."""

    seq: int
    captured_us: int
    rgb: npt.NDArray[np.uint8] | None = None
    data: bytes = b""
    content_type: str = "image/jpeg"


def percentile(values: list[float], share: float) -> float:
    """The `share` (0..1) percentile by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass
class LiveState:
    """Counters and latest pictures, shared by the link thread (writer) and the page's requests (readers)."""

    state: str = "waiting for a sender"
    frames: int = 0
    sender_dropped: int = 0
    malformed: int = 0
    corrupt: int = 0
    skipped: int = 0  # packets not decodable (no keyframe yet, or too late) and dropped
    keyframe_requests: int = 0
    connections: int = 0  # senders that held the link
    disconnects: int = 0
    refused: int = 0  # connections closed unheard: no token, a bad tag, a replay, silence, or another sender live
    takeovers: int = 0  # a sender replaced a live one that had sent no frame for a while
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    arrivals: deque[tuple[float, int]] = field(default_factory=deque)
    decoded_at: deque[float] = field(default_factory=deque)
    pictures: dict[str, Picture] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def set_state(self, state: str) -> None:
        with self.lock:
            self.state = state
            self.lock.notify_all()

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def arrived(self, size: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.arrivals.append((now, size))
            _trim(self.arrivals, now)

    def decoded(self, picture: Picture, latency_ms: float) -> None:
        with self.lock:
            now = time.monotonic()
            self.frames += 1
            self.latencies_ms.append(latency_ms)
            self.decoded_at.append(now)
            while self.decoded_at and self.decoded_at[0] < now - WINDOW_S:
                self.decoded_at.popleft()
            self.pictures["decoded"] = picture
            self.lock.notify_all()

    def show(self, name: str, picture: Picture) -> None:
        with self.lock:
            self.pictures[name] = picture
            self.lock.notify_all()

    def wait_picture(self, name: str, after: int, timeout: float) -> Picture | None:
        """The newest picture `name` with seq > after, waiting up to `timeout` s; None if none came."""
        with self.lock:
            self.lock.wait_for(lambda: name in self.pictures and self.pictures[name].seq > after, timeout)
            picture = self.pictures.get(name)
            return picture if picture is not None and picture.seq > after else None

    def snapshot(self) -> dict[str, Any]:
        """The statistics as JSON-ready values."""
        with self.lock:
            now = time.monotonic()
            _trim(self.arrivals, now)
            latencies = list(self.latencies_ms)
            recent = [t for t in self.decoded_at if t >= now - WINDOW_S]
            return {
                "state": self.state,
                "frames": self.frames,
                "fps": len(recent) / WINDOW_S,
                "kbps": sum(size for _, size in self.arrivals) * 8 / 1000 / WINDOW_S,
                "latency_ms_median": statistics.median(latencies) if latencies else 0.0,
                "latency_ms_p99": percentile(latencies, 0.99),
                "latency_ms_last": latencies[-1] if latencies else 0.0,
                "sender_dropped": self.sender_dropped,
                "malformed": self.malformed,
                "corrupt": self.corrupt,
                "skipped": self.skipped,
                "keyframe_requests": self.keyframe_requests,
                "connections": self.connections,
                "disconnects": self.disconnects,
                "refused": self.refused,
                "takeovers": self.takeovers,
            }


def _trim(arrivals: deque[tuple[float, int]], now: float) -> None:
    while arrivals and arrivals[0][0] < now - WINDOW_S:
        arrivals.popleft()
