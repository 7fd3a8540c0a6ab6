"""Entropy coding of GC frames on worker processes: frame-parallel encoding, GOP-parallel decoding.

    encode: symbols of frames 0..n ──split in runs──► workers ──► packets, in order
    decode: packets ──split at intra frames (GOPs)──► workers ──► symbols or errors, in order

A frame's packet depends only on its own symbols and the previous frame's, all known once the
batch is analysed, so any run of frames can be coded apart from the others. Decoding needs the
previous frame's decoded symbols, but an intra frame needs nothing from before it, so each GOP
decodes apart. `constriction` holds the GIL while it codes (two threads run no faster than one),
hence processes, not threads. Workers get the tables once (pool initializer); frames travel as
uint8 symbols (levels ≤ 256), about 1/8 of int64. Every worker runs the serial codec's own
`encode_packet` and `SymbolDecoder`, so packets and errors are those of the serial path.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..bitstream import StreamConfig
from ..entropy.context import ContextTables
from ..errors import StreamcodecError
from .symbols import EncodedFrame, SymbolDecoder, Symbols, encode_packet, starts_gop

Small = npt.NDArray[np.uint8]
#: What decoding one packet gives: its symbols, or the error the serial decoder would raise.
Decoded = Symbols | StreamcodecError


@dataclass(frozen=True)
class CodingState:
    """What a worker needs to code one stream's frames."""

    config: StreamConfig
    tables: ContextTables
    factor: int


# fork on Linux: workers start in milliseconds and need no `if __name__ == "__main__"` guard in the
# caller's script (spawn re-runs it). They touch only numpy and constriction, never torch or CUDA,
# which are what a fork copies badly. Elsewhere (macOS) fork is unsafe with system frameworks: spawn.
_START_METHOD = "fork" if sys.platform == "linux" else "spawn"

_WORKER_STATE: list[CodingState] = []  # set once per worker process by `_init_worker`


def _init_worker(state: CodingState) -> None:
    _WORKER_STATE[:] = [state]


def _small(sym: Symbols | None) -> Small | None:
    return None if sym is None else sym.astype(np.uint8)


def _wide(sym: Small | None) -> Symbols | None:
    return None if sym is None else sym.astype(np.int64)


def encode_run(state: CodingState, reference: Small | None, symbols: Small, keyframes: list[bool]) -> list[EncodedFrame]:
    """Packets of consecutive frames; frame i > 0 refers to frame i − 1, frame 0 to `reference`.

    Args:
        state: the stream's tables.
        reference: (K, h, w) symbols of the frame before the run (None when the run starts a GOP).
        symbols: (n, K, h, w) symbols of the run's frames.
        keyframes: for each frame, whether it is intra.
    Returns:
        n encoded frames, the same as `encode_packet` one at a time.
    """
    held, out = _wide(reference), []
    for small, keyframe in zip(symbols, keyframes, strict=True):
        sym = small.astype(np.int64)
        out.append(encode_packet(sym, None if keyframe else held, state.tables))
        held = sym
    return out


def decode_run(state: CodingState, reference: Small | None, packets: list[bytes]) -> list[Small | StreamcodecError]:
    """Symbols (uint8) or the StreamcodecError of each packet, decoded in order from `reference`."""
    decoder = SymbolDecoder(state.config, state.tables, state.factor)
    decoder.reference = _wide(reference)
    out: list[Small | StreamcodecError] = []
    for packet in packets:
        try:
            out.append(decoder.decode_symbols(packet)[0].astype(np.uint8))
        except StreamcodecError as exc:
            out.append(exc)
    return out


def _worker_encode(reference: Small | None, symbols: Small, keyframes: list[bool]) -> list[EncodedFrame]:
    return encode_run(_WORKER_STATE[0], reference, symbols, keyframes)


def _worker_decode(reference: Small | None, packets: list[bytes]) -> list[Small | StreamcodecError]:
    return decode_run(_WORKER_STATE[0], reference, packets)


def gops(packets: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The packets in runs that each start at an intact intra frame (the first run may not)."""
    run: list[bytes] = []
    for packet in packets:
        if run and starts_gop(packet):
            yield run
            run = []
        run.append(packet)
    if run:
        yield run


class EntropyPool:
    """Entropy coding of one stream's frames on `workers` processes (1: in this process, no pool).

    Args:
        state: the stream configuration, tables and factor, sent to each worker once.
        workers: ≥ 1 processes.
    """

    def __init__(self, state: CodingState, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers} must be at least 1")
        self.state, self.workers = state, workers
        self._executor: ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context(_START_METHOD)
            self._executor = ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(state,))

    def start(self) -> None:
        """Start the worker processes now rather than with the first batch (for timing)."""
        if self._executor is not None:
            self._executor.submit(int).result()  # the first task starts every process of the pool

    def close(self) -> None:
        """Stop the worker processes (the pool cannot be used afterwards)."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    def encode(self, reference: Symbols | None, symbols: list[Symbols], keyframes: list[bool]) -> list[EncodedFrame]:
        """Packets of consecutive frames, as `encode_run`, the frames split in one run per worker."""
        if self._executor is None:
            return encode_run(self.state, _small(reference), np.stack(symbols).astype(np.uint8), keyframes)
        bounds = np.linspace(0, len(symbols), min(self.workers, len(symbols)) + 1).astype(int)
        futures = []
        for start, stop in itertools.pairwise(bounds):
            before = reference if start == 0 else symbols[start - 1]
            run = np.stack(symbols[start:stop]).astype(np.uint8)
            futures.append(self._executor.submit(_worker_encode, _small(before), run, keyframes[start:stop]))
        return [frame for future in futures for frame in future.result()]

    def decode(self, reference: Symbols | None, packets: Iterable[bytes]) -> Iterator[Decoded]:
        """Each packet's symbols or error, in order, as `SymbolDecoder` holding `reference` would give.

        GOPs decode on the workers, up to two per worker read ahead of what has been taken.
        """
        if self._executor is None:
            decoder = SymbolDecoder(self.state.config, self.state.tables, self.state.factor)
            decoder.reference = reference
            for packet in packets:
                try:
                    yield decoder.decode_symbols(packet)[0]
                except StreamcodecError as exc:
                    yield exc
            return
        pending: deque[Future[list[Small | StreamcodecError]]] = deque()
        for index, run in enumerate(gops(packets)):
            # Only the first run can start with an inter frame; later ones start at an intra frame.
            pending.append(self._executor.submit(_worker_decode, _small(reference) if index == 0 else None, run))
            if len(pending) > 2 * self.workers:
                yield from _widened(pending.popleft().result())
        while pending:
            yield from _widened(pending.popleft().result())


def _widened(results: list[Small | StreamcodecError]) -> Iterator[Decoded]:
    for item in results:
        yield item if isinstance(item, StreamcodecError) else item.astype(np.int64)
