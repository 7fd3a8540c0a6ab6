"""Context model for the quantized bottleneck: integer symbols in, table indices out.

Only already-decoded integer symbols choose a table, never a float network output, so a stream
decodes identically on every machine and backend.

Intra frames (no reference): symbol (c, y, x) is coded with the table of channel c selected by
    (symbol above it in the same channel, symbol at the same place in channel c−1),
with L standing for "outside". Every (c, y) row whose neighbours are known can be decoded at
once, so decoding walks the anti-diagonals c + y = k: C + H − 1 vectorised calls.

Inter frames (previous frame's symbols as reference): the table is selected by
    (symbol at the same place in the reference, symbol at the same place in channel c−1),
decoded channel by channel: C calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import CorruptStreamError
from . import coder

Symbols = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ContextTables:
    """Frozen integer frequency tables, shipped with the weights.

    intra: (C, (L+1)**2, L) uint32; inter: (C, L*(L+1), L) uint32.
    """

    intra: npt.NDArray[np.uint32]
    inter: npt.NDArray[np.uint32]

    @property
    def levels(self) -> int:
        return int(self.intra.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.intra.shape[0])

    def flat(self, reference: bool) -> npt.NDArray[np.uint32]:
        table = self.inter if reference else self.intra
        return table.reshape(-1, self.levels)


def _shifted(sym: Symbols, axis: int, fill: int) -> Symbols:
    """`sym` moved one step forward along `axis`, the first slice filled with `fill`."""
    out = np.full_like(sym, fill)
    index = [slice(None)] * sym.ndim
    source = list(index)
    index[axis] = slice(1, None)
    source[axis] = slice(None, -1)
    out[tuple(index)] = sym[tuple(source)]
    return out


def table_index(sym: Symbols, reference: Symbols | None, levels: int) -> Symbols:
    """Table row of every symbol of a (K, H, W) frame, K ≤ C transmitted channels."""
    edge = levels
    prev_channel = _shifted(sym, 0, edge)
    channel = np.arange(sym.shape[0]).reshape(-1, 1, 1)
    if reference is None:
        above = _shifted(sym, 1, edge)
        return (channel * (levels + 1) + above) * (levels + 1) + prev_channel
    return (channel * levels + reference[: sym.shape[0]]) * (levels + 1) + prev_channel


def coding_order(shape: tuple[int, int, int], reference: bool) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """The decode steps: for each, the channel and row of every (c, y) row decoded in it."""
    channels, height, _ = shape
    if reference:
        return [(np.array([c]), np.arange(height)) for c in range(channels)]
    steps = []
    for k in range(channels + height - 1):
        c = np.arange(max(0, k - height + 1), min(channels - 1, k) + 1)
        steps.append((c, k - c))
    return steps


def _step_rows(sym_or_index: Symbols, c: npt.NDArray[np.int64], y: npt.NDArray[np.int64]) -> Symbols:
    if c.size == 1 and y.size > 1:  # one whole channel
        return sym_or_index[int(c[0])]
    return sym_or_index[c, y]


def encode_frame(sym: Symbols, reference: Symbols | None, tables: ContextTables) -> tuple[bytes, float]:
    """Range-code a (K, H, W) symbol array. Returns (payload, the model's estimate in bits)."""
    index = table_index(sym, reference, tables.levels)
    channels, height, width = sym.shape
    order = coding_order((channels, height, width), reference is not None)
    flat_sym = np.concatenate([_step_rows(sym, c, y).ravel() for c, y in order]) if order else sym.ravel()
    flat_idx = np.concatenate([_step_rows(index, c, y).ravel() for c, y in order]) if order else index.ravel()
    table = tables.flat(reference is not None)
    return coder.encode(flat_sym, flat_idx, table), coder.ideal_bits(flat_sym, flat_idx, table)


def decode_frame(
    payload: bytes, shape: tuple[int, int, int], reference: Symbols | None, tables: ContextTables
) -> tuple[Symbols, bool]:
    """Inverse of `encode_frame`. Returns (symbols, whether the payload was consumed exactly).

    Exactness is checked by re-encoding the decoded symbols and comparing bytes: the range
    decoder alone cannot tell trailing garbage from its read-ahead.

    Raises:
        CorruptStreamError: the payload is not a valid code under these tables (whatever the
            range coder raised on it: AssertionError, ValueError, a Rust panic, ...).
    """
    try:
        return _decode_frame(payload, shape, reference, tables)
    except BaseException as exc:
        # constriction reports invalid data as AssertionError (and a Rust panic as pyo3's
        # PanicException, a BaseException); anything else of BaseException's (Ctrl-C) passes.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        raise CorruptStreamError(f"entropy decoding failed: {type(exc).__name__}: {first_line}") from None


def _decode_frame(
    payload: bytes, shape: tuple[int, int, int], reference: Symbols | None, tables: ContextTables
) -> tuple[Symbols, bool]:
    levels = tables.levels
    decoder = coder.StreamDecoder(payload, tables.flat(reference is not None))
    sym = np.zeros(shape, dtype=np.int64)
    if reference is not None:
        for c in range(shape[0]):
            prev = sym[c - 1] if c else np.full(shape[1:], levels)
            sym[c] = decoder.decode((c * levels + reference[c]) * (levels + 1) + prev)
        return sym, _reencodes_to(sym, reference, tables, payload)
    for cs, ys in coding_order(shape, False):
        above = np.where((ys > 0)[:, None], sym[cs, np.maximum(ys - 1, 0)], levels)
        prev_channel = np.where((cs > 0)[:, None], sym[np.maximum(cs - 1, 0), ys], levels)
        sym[cs, ys] = decoder.decode((cs[:, None] * (levels + 1) + above) * (levels + 1) + prev_channel)
    return sym, _reencodes_to(sym, reference, tables, payload)


def _reencodes_to(sym: Symbols, reference: Symbols | None, tables: ContextTables, payload: bytes) -> bool:
    return encode_frame(sym, reference, tables)[0] == payload


def count_contexts(sym: Symbols, reference: Symbols | None, levels: int, channels: int) -> npt.NDArray[np.int64]:
    """Histogram of (table row, symbol) for building tables at export: (rows, L) int64."""
    rows = channels * ((levels + 1) ** 2 if reference is None else levels * (levels + 1))
    index = table_index(sym, reference, levels)
    counts = np.bincount((index * levels + sym).ravel(), minlength=rows * levels)
    return counts.reshape(rows, levels)
