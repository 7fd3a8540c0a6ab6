"""Range coding of integer symbols under integer frequency tables.

The coder knows nothing about images or networks: it takes symbols, the index of the table
each symbol is coded with, and a frozen table of integer frequencies. Every row of the table sums
to 2**PRECISION, so each probability handed to `constriction` is an exact dyadic float and the
fixed-point model it builds is the same on every machine (CompressAI and TFC get the same
guarantee by freezing quantized CDFs at export).
"""

from __future__ import annotations

import constriction
import numpy as np
import numpy.typing as npt

# constriction is a compiled module: its submodules are attributes, not importable paths.
Categorical = constriction.stream.model.Categorical
RangeDecoder = constriction.stream.queue.RangeDecoder
RangeEncoder = constriction.stream.queue.RangeEncoder

PRECISION = 14
TOTAL = 1 << PRECISION

_FAMILY = Categorical(perfect=False)


def normalize_counts(counts: npt.ArrayLike, precision: int = PRECISION) -> npt.NDArray[np.uint32]:
    """Integer frequencies from counts: every row sums to 2**precision, no entry is zero.

    Args:
        counts: (..., L) non-negative counts.
    Returns:
        (..., L) uint32 frequencies, each ≥ 1, rows summing to exactly 2**precision.
    """
    counts = np.asarray(counts, dtype=np.float64)
    levels = counts.shape[-1]
    total = 1 << precision
    if levels > total:
        raise ValueError(f"{levels} levels do not fit in {precision}-bit frequencies")
    flat = counts.reshape(-1, levels) + 0.5  # Krichevsky–Trofimov style smoothing
    probs = flat / flat.sum(axis=1, keepdims=True)
    freqs = np.maximum(1, np.floor(probs * (total - levels)).astype(np.int64) + 1)
    # Hand the rounding remainder to (or take it from) each row's most frequent symbol.
    rows = np.arange(len(freqs))
    freqs[rows, freqs.argmax(axis=1)] += total - freqs.sum(axis=1)
    if (freqs < 1).any():
        raise ValueError("frequency table normalisation failed")
    return freqs.reshape(counts.shape).astype(np.uint32)


def _probabilities(tables: npt.NDArray[np.uint32], table_index: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return tables[table_index].astype(np.float64) / TOTAL


def encode(symbols: npt.NDArray[np.int64], table_index: npt.NDArray[np.int64], tables: npt.NDArray[np.uint32]) -> bytes:
    """Range-code `symbols[i]` with the frequencies `tables[table_index[i]]`.

    Args:
        symbols: (N,) integers in [0, L).
        table_index: (N,) row of `tables` for each symbol.
        tables: (T, L) uint32 frequencies, rows summing to 2**PRECISION.
    Returns:
        The compressed bytes (a whole number of little-endian 32-bit words).
    """
    flat = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    encoder = RangeEncoder()
    if flat.size:
        encoder.encode(flat, _FAMILY, _probabilities(tables, np.asarray(table_index).ravel()))
    return bytes(encoder.get_compressed().astype("<u4").tobytes())


class StreamDecoder:
    """Decodes a `encode` payload in several calls, in the order it was encoded."""

    def __init__(self, payload: bytes, tables: npt.NDArray[np.uint32]) -> None:
        if len(payload) % 4:
            raise ValueError(f"range-coded payload of {len(payload)} bytes is not a whole number of words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self._decoder = RangeDecoder(words)
        self._tables = tables

    def decode(self, table_index: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The next `table_index.size` symbols, each under its table; same shape as `table_index`."""
        index = np.asarray(table_index)
        if index.size == 0:
            return np.zeros(index.shape, dtype=np.int64)
        out = self._decoder.decode(_FAMILY, _probabilities(self._tables, index.ravel()))
        return np.asarray(out, dtype=np.int64).reshape(index.shape)


def ideal_bits(symbols: npt.NDArray[np.int64], table_index: npt.NDArray[np.int64], tables: npt.NDArray[np.uint32]) -> float:
    """The model's estimate: −Σ log2 p(symbol) under the frozen frequencies."""
    freqs = tables[np.asarray(table_index).ravel(), np.asarray(symbols).ravel()].astype(np.float64)
    return float(-(np.log2(freqs) - PRECISION).sum())
