"""Interleaving packets of several tracks in timestamp order before they reach a Matroska Cluster.

An H.264 preview encoder's lookahead or an audio route's buffering delays their packets behind the
codec's own; Matroska readers expect blocks in timestamp order across tracks (see MATROSKA.md).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

Pending = tuple[int, int, bytes, bool]  # (ticks, track, data, keyframe)


class Interleaver:
    """Holds packets until every open track has reached their timestamp, then releases them.

    Each track keeps its own arrival order; across tracks the earliest head goes first (ties:
    lower track number). When the buffer exceeds its time span or byte budget, the earliest
    packets are released anyway, so a silent or lagging track cannot hold memory hostage.
    """

    def __init__(self, tracks: Sequence[int], max_span: int, max_bytes: int) -> None:
        self.queues: dict[int, collections.deque[Pending]] = {t: collections.deque() for t in tracks}
        self.reached: dict[int, int | None] = {t: None for t in tracks}
        self.ended: set[int] = set()
        self.max_span, self.max_bytes, self.bytes = max_span, max_bytes, 0

    def push(self, packet: Pending) -> list[Pending]:
        ticks, track = packet[0], packet[1]
        self.queues[track].append(packet)
        self.bytes += len(packet[2])
        self.reached[track] = max(ticks, self.reached[track] or 0)
        return self._release(force=False)

    def end(self, track: int) -> list[Pending]:
        self.ended.add(track)
        return self._release(force=False)

    def drain(self) -> list[Pending]:
        return self._release(force=True)

    def _earliest(self) -> int | None:
        heads = [(q[0][0], track) for track, q in self.queues.items() if q]
        return min(heads)[1] if heads else None

    def _may_release(self, ticks: int) -> bool:
        return all(track in self.ended or (r is not None and r >= ticks) for track, r in self.reached.items())

    def _over_budget(self, ticks: int) -> bool:
        newest = max((r for r in self.reached.values() if r is not None), default=ticks)
        return self.bytes > self.max_bytes or newest - ticks > self.max_span

    def _release(self, force: bool) -> list[Pending]:
        """The packets that may go to the file now, in order."""
        ready = []
        while (track := self._earliest()) is not None:
            ticks = self.queues[track][0][0]
            if not (force or self._may_release(ticks) or self._over_budget(ticks)):
                break
            ready.append(self.queues[track].popleft())
            self.bytes -= len(ready[-1][2])
        return ready
