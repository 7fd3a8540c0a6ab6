"""The shared engine behind the lossless side information (keep mask, label map): grids in wavefront order.

A grid cell is coded under a frozen integer table chosen from cells decoded before it: its left,
above, above-left and above-right neighbours, and the previous frame. Cells on one anti-diagonal
k = x + 2y depend only on earlier diagonals, so each diagonal is one vectorised range-coder call:
W + 2H − 2 calls per grid instead of W·H.

Encoder and decoder run the same step function through a `SymbolIO`: the encoder's `code` writes
the true symbols it is given, the decoder's ignores them and returns what it reads. One function
for both sides, so they cannot drift apart.

Payload: empty when the grid equals its reference (the previous frame's, or all zeros at a
keyframe), else whole little-endian 32-bit range-coder words. The decoder re-encodes what it
decoded and requires the same bytes, so trailing garbage and non-canonical payloads are refused.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..entropy import coder
from ..errors import CorruptStreamError

Grid = npt.NDArray[np.int64]
Cells = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


class SymbolIO(Protocol):
    """One side of the range coder: `code(tables, rows, symbols)` writes or reads a batch of symbols."""

    def code(self, tables: npt.NDArray[np.uint32], rows: Grid, symbols: Grid) -> Grid:
        """Code `symbols[i]` under `tables[rows[i]]`; returns the symbols (the true ones, or those read)."""
        ...


class GridModel(Protocol):
    """A context model: `prepare` digests the reference once per grid, `step` codes one wavefront step."""

    what: str

    def prepare(self, reference: Grid | None) -> Any:
        """Whatever `step` needs from the reference (previous frame), computed once per grid."""
        ...

    def step(self, io: SymbolIO, grid: Grid, prepared: Any, cells: Cells) -> None:
        """Code grid[cells] (the encoder's true values, or fill them in on the decoder)."""
        ...


class Writer:
    """The encoder's `SymbolIO`: writes the true symbols; `payload()` gives the bytes."""

    def __init__(self) -> None:
        self._encoder = coder.RangeEncoder()
        self.bits = 0.0

    def code(self, tables: npt.NDArray[np.uint32], rows: Grid, symbols: Grid) -> Grid:
        if symbols.size:
            probabilities = tables[rows].astype(np.float64) / coder.TOTAL
            self._encoder.encode(np.ascontiguousarray(symbols, dtype=np.int32), coder._FAMILY, probabilities)
        return symbols

    def payload(self) -> bytes:
        return bytes(self._encoder.get_compressed().astype("<u4").tobytes())


class Reader:
    """The decoder's `SymbolIO`: reads symbols from a payload, ignoring the ones it is given."""

    def __init__(self, payload: bytes) -> None:
        self._decoder = coder.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def code(self, tables: npt.NDArray[np.uint32], rows: Grid, symbols: Grid) -> Grid:
        if rows.size == 0:
            return np.zeros(0, dtype=np.int64)
        probabilities = tables[rows].astype(np.float64) / coder.TOTAL
        return np.asarray(self._decoder.decode(coder._FAMILY, probabilities), dtype=np.int64)


class Counter:
    """A `SymbolIO` that only counts (row, symbol) per table, for fitting the frozen tables."""

    def __init__(self) -> None:
        self.counts: dict[int, npt.NDArray[np.int64]] = {}

    def code(self, tables: npt.NDArray[np.uint32], rows: Grid, symbols: Grid) -> Grid:
        counts = self.counts.setdefault(id(tables), np.zeros(tables.shape, dtype=np.int64))
        np.add.at(counts, (rows, symbols), 1)
        return symbols


@functools.lru_cache(maxsize=64)
def wavefront(height: int, width: int) -> tuple[Cells, ...]:
    """The cells of each anti-diagonal x + 2y = k, k = 0 … W + 2H − 3, in coding order."""
    steps = []
    for k in range(width + 2 * (height - 1)):
        ys = np.arange(max(0, (k - width + 2) // 2), min(height - 1, k // 2) + 1)
        xs = k - 2 * ys
        keep = (xs >= 0) & (xs < width)
        steps.append((ys[keep], xs[keep]))
    return tuple(steps)


def neighbours(grid: Grid, cells: Cells, outside: int) -> tuple[Grid, Grid, Grid, Grid]:
    """(left, above, above-left, above-right) of each cell, `outside` past the edge."""
    ys, xs = cells
    width = grid.shape[1]
    up = np.maximum(ys - 1, 0)
    left, right = np.maximum(xs - 1, 0), np.minimum(xs + 1, width - 1)
    has_up, has_left, has_right = ys > 0, xs > 0, xs < width - 1
    return (
        np.where(has_left, grid[ys, left], outside),
        np.where(has_up, grid[up, xs], outside),
        np.where(has_up & has_left, grid[up, left], outside),
        np.where(has_up & has_right, grid[up, right], outside),
    )


def _run(io: SymbolIO, grid: Grid, reference: Grid | None, model: GridModel) -> None:
    prepared = model.prepare(reference)
    for cells in wavefront(*grid.shape):
        model.step(io, grid, prepared, cells)


def encode_grid(grid: Grid, reference: Grid | None, model: GridModel) -> bytes:
    """Payload for `grid` (empty when it equals the reference, or is all zeros at a keyframe)."""
    if np.array_equal(grid, reference if reference is not None else np.zeros_like(grid)):
        return b""
    writer = Writer()
    _run(writer, grid, reference, model)
    return writer.payload()


def count_grid(grid: Grid, reference: Grid | None, model: GridModel, counter: Counter) -> None:
    """Add the (row, symbol) counts of coding `grid` to `counter` (table fitting)."""
    _run(counter, grid, reference, model)


def decode_grid(data: bytes, shape: tuple[int, int], reference: Grid | None, model: GridModel) -> Grid:
    """Inverse of `encode_grid`; raises CorruptStreamError unless `data` is exactly its canonical payload."""
    if not data:
        return reference.copy() if reference is not None else np.zeros(shape, dtype=np.int64)
    if len(data) % 4:
        raise CorruptStreamError(f"{model.what} payload of {len(data)} bytes is not a whole number of words")
    grid = np.zeros(shape, dtype=np.int64)
    try:
        _run(Reader(data), grid, reference, model)
    except (ValueError, RuntimeError, AssertionError, IndexError, OverflowError) as exc:
        raise CorruptStreamError(f"{model.what} payload does not decode: {exc}") from None
    if encode_grid(grid, reference, model) != data:
        raise CorruptStreamError(f"{model.what} payload was not consumed exactly")
    return grid


def check_shape(shape: tuple[int, ...], what: str) -> tuple[int, int]:
    """`shape` as (height, width), both ≥ 1; CorruptStreamError otherwise (shapes come from the stream)."""
    if len(shape) != 2 or min(shape) < 1:
        raise CorruptStreamError(f"{what} shape {tuple(shape)} is not (height ≥ 1, width ≥ 1)")
    return int(shape[0]), int(shape[1])


def frozen_table(counts: npt.ArrayLike, cap: int = 4096) -> npt.NDArray[np.uint32]:
    """Frequencies from fitted counts, each row's total capped at `cap` so no symbol gets under ~2⁻¹³.

    Args:
        counts: (rows, L) non-negative counts.
        cap: the most counts a row may weigh before smoothing.
    Returns:
        (rows, L) uint32 frequencies summing to 2**PRECISION per row.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    scaled = counts * np.minimum(1.0, cap / np.maximum(totals, 1.0))
    return coder.normalize_counts(scaled)
