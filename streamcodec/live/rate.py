"""The live rate controller: holds `--max-kbps` by dropping frames before they are encoded (progressive
mode first sheds a packet's trailing iterations, `shed_iterations`, to fit what the bucket allows).

A token bucket: it starts empty, fills at max_kbps and holds at most BURST_S seconds of it; a frame
is encoded only while the bucket is not in debt, and its packet's bits are taken out afterwards (a
keyframe may overdraw it, and the frames after it are then dropped until it is paid back). So the
bits sent by time t never pass max_kbps·t plus one packet, nor one second's burst after a lull. Nothing ever waits in a
queue, so a rate cap costs frames, never latency. Quality follows alongside through the mode's
own rate target where it has one (selective mode moves its fidelity CRF at keyframes), aimed at
TARGET_SHARE of the cap per frame actually sent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..bitstream import cut_packet, iteration_sections, unpack_frame

#: Seconds of budget the bucket holds: one keyframe's burst, not a backlog.
BURST_S = 1.0
#: Share of the cap given to the codec's own rate target, leaving room for keyframes' bursts.
TARGET_SHARE = 0.7
#: Seconds over which the sent rate is measured.
WINDOW_S = 2.0


class RateController:
    """Token bucket over the codec's packets (None = no cap).

    Args:
        max_kbps: the cap in kbit/s, or None to admit every frame.
        clock: seconds, monotonic (tests give their own).
    """

    def __init__(self, max_kbps: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_kbps is not None and max_kbps <= 0:
            raise ValueError(f"--max-kbps {max_kbps} must be positive")
        self.max_kbps = max_kbps
        self._tokens = 0.0  # empty at the start: the first keyframe's bits are paid back before more frames
        self._clock = clock
        self._last = clock()
        self._sent: deque[tuple[float, int]] = deque()

    def admit(self) -> bool:
        """Whether the next frame may be encoded now."""
        now = self._clock()
        if self.max_kbps is None:
            return True
        capacity = self.max_kbps * 1000 * BURST_S
        self._tokens = min(capacity, self._tokens + (now - self._last) * self.max_kbps * 1000)
        self._last = now
        return self._tokens >= 0

    def allowance(self, frame_rate: float) -> float:
        """Bits the next packet may take (with a cap): what the bucket holds now plus one frame's share of the cap."""
        return self._tokens + (self.max_kbps or 0.0) * 1000 / frame_rate

    def spend(self, bits: int) -> None:
        """Take a sent packet's bits out of the bucket."""
        self._tokens -= bits
        self._sent.append((self._clock(), bits))
        self._trim()

    def _trim(self) -> None:
        now = self._clock()
        while self._sent and self._sent[0][0] < now - WINDOW_S:
            self._sent.popleft()

    def kbps(self) -> float:
        """The rate sent over the last two seconds."""
        self._trim()
        return sum(bits for _, bits in self._sent) / WINDOW_S / 1000

    def frames_per_second(self) -> float:
        """Frames sent per second over the last two seconds."""
        self._trim()
        return len(self._sent) / WINDOW_S


def shed_iterations(packet: bytes, bits: float) -> tuple[bytes, int]:
    """A progressive packet cut to the most iterations whose packet fits in `bits` (one at least; `bitstream.cut_packet`).

    Returns:
        (the packet to send, how many trailing iterations were shed).
    """
    total = len(iteration_sections(unpack_frame(packet)))
    for kept in range(total, 0, -1):
        cut = packet if kept == total else cut_packet(packet, kept)
        if 8 * len(cut) <= bits or kept == 1:
            return cut, total - kept
    raise AssertionError("unreachable: a progressive packet holds at least one iteration")
