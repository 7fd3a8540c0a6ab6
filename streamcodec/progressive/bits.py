"""Entropy coding of one progressive frame's binary codes: one independently decodable section per iteration.

    codes (T, B, h, w) {0,1} ──encode_iterations──► [section 0, …, section T−1] ──decode_iterations(first k)──► codes[:k]

Section t holds iteration t's (B, h, w) bits, range-coded (constriction, through `entropy.coder`) with
P(bit = 1) taken from a context of bits the decoder already holds when it reaches that bit:

    prev    the same cell and bit at iteration t−1 (0, 1, or "none" at t = 0)
    above   the same bit of the cell above, this iteration (0, 1, or "none" in the top row)
    lower   bit b−1 of the same cell, this iteration (0, 1, or "none" for b = 0)

27 contexts per (iteration, bit). A section needs only the sections before it, never one after, so
every prefix of sections decodes to exactly that prefix of iterations: cutting a stream after any
iteration is dropping sections, with no re-coding.

Inter frames (adaptive coding only) are coded against a `Memory` of their group of pictures:

    last    a fourth, temporal neighbour: the same cell and bit at iteration t of the previous frame,
            as the decoder holds it (0, 1, or "none" where that frame has fewer than t + 1
            iterations), × 3 contexts (81);
    counts  iteration t's adaptive counts start where the latest section t of the group left them,
            instead of at 1:1 (halved where a context has seen more than COUNT_LIMIT bits).

An intra frame is coded against an empty memory: the "none" third of the contexts and fresh counts,
so its sections are byte for byte what they were before inter frames existed. Section t of an inter
frame needs only sections t of the frames before it in its group (and its own earlier sections):
a stream cut to the same k iterations in every packet (`streamcodec thin`) keeps everything it
needs, and a sender that sheds iterations tells its encoder (`Memory.following` of what was sent).

Probabilities come from integer frequencies only (the coder's 2**PRECISION scale), so decoding is
identical on every machine:
    tables     `ProgressiveTables`: P(1) per (iteration, bit, context), frozen from data by `fit_tables`
               and shipped next to the model's weights (`save_tables` / `load_tables`, .npz);
    adaptive   without tables: per (bit, context) counts that start at 1:1 in every section and
               are updated after each decoding step (an anti-diagonal, below), in integer arithmetic.

Decoding order inside a section: the anti-diagonals b + y = s of (bit, row), each one vectorised
call (B + h − 1 calls per section), so `above` and `lower` are always decoded before they are used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..entropy import coder
from ..errors import CorruptStreamError

Codes = npt.NDArray[np.uint8]
Index = npt.NDArray[np.int64]
NONE = 2  # the context value of a neighbour that does not exist
CONTEXTS = 27
TEMPORAL_CONTEXTS = 3 * CONTEXTS  # adaptive coding: × the previous frame's bit (none, 0, 1)
COUNT_LIMIT = 1024  # a context's carried counts are halved between frames once they pass this
ADAPTIVE = "adaptive"
_FAMILY = coder.Categorical(perfect=False)
_ONE = np.int64(1)


@dataclass(frozen=True)
class ProgressiveTables:
    """Frozen P(bit = 1) of every (iteration, bit, context), as integer frequencies out of 2**PRECISION.

    Attributes:
        one: (T, B, 27) uint32, each in 1..2**PRECISION − 1.
    """

    one: npt.NDArray[np.uint32]

    def __post_init__(self) -> None:
        one = self.one
        if one.ndim != 3 or one.shape[2] != CONTEXTS or not one.size:
            raise ValueError(f"progressive tables of shape {one.shape}; expected (iterations, bits, {CONTEXTS})")
        if one.min() < 1 or one.max() >= coder.TOTAL:
            raise ValueError(f"progressive table frequencies must lie in 1..{coder.TOTAL - 1}")

    @property
    def iterations(self) -> int:
        return int(self.one.shape[0])

    @property
    def bits(self) -> int:
        return int(self.one.shape[1])

    @property
    def identifier(self) -> str:
        """A stable name of these tables for the stream configuration: 16 hex digits of their sha256."""
        data = np.ascontiguousarray(self.one, dtype="<u4").tobytes() + repr(self.one.shape).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Memory:
    """What the next frame of a group of pictures is coded against; `Memory()` (empty) for a keyframe.

    Attributes:
        last: the previous frame's codes as the decoder holds them, (k, B, h, w), or None.
        counts: per iteration, the adaptive counts (2, B · 81) after the group's latest section of
            that iteration, or None where no frame of the group had it yet.
    """

    last: Codes | None = None
    counts: tuple[Index | None, ...] = ()

    def start(self, t: int) -> Index | None:
        """Iteration t's counts to start from (a copy), or None: fresh ones."""
        counts = self.counts[t] if t < len(self.counts) else None
        return None if counts is None else counts.copy()

    def following(self, codes: Codes, counts: Sequence[Index]) -> Memory:
        """The memory after a frame whose held codes are `codes` (k iterations) and whose sections ended on `counts`[:k]."""
        k = codes.shape[0]
        merged: list[Index | None] = [*counts[:k], *self.counts[k:]]
        for t, c in enumerate(merged[:k]):
            if c is not None:
                total = c.sum(axis=0)
                merged[t] = np.where(total > COUNT_LIMIT, (c + 1) // 2, c)
        return Memory(np.ascontiguousarray(codes), tuple(merged))


def tables_identifier(tables: ProgressiveTables | None) -> str:
    """What a stream records for its entropy model: the tables' identifier, or "adaptive"."""
    return ADAPTIVE if tables is None else tables.identifier


def fit_tables(samples: Sequence[Codes]) -> ProgressiveTables:
    """Count every (iteration, bit, context, value) over `samples` and freeze the counts into tables.

    Args:
        samples: code arrays (T, B, h, w) of {0, 1}, one per frame; the same T and B, any h and w.
    Returns:
        The tables (Krichevsky–Trofimov smoothed: an unseen context gets P(1) = 1/2).
    """
    if not samples:
        raise ValueError("fit_tables needs at least one code array")
    shape = _checked(samples[0]).shape[:2]
    counts = np.zeros((*shape, CONTEXTS, 2), dtype=np.int64)
    for codes in samples:
        codes = _checked(codes)
        if codes.shape[:2] != shape:
            raise ValueError(f"code array of {codes.shape[:2]} (iterations, bits); the first had {shape}")
        for t in range(shape[0]):
            context = _contexts(codes, t).reshape(shape[1], -1)
            bits = codes[t].reshape(shape[1], -1).astype(np.int64)
            flat = (np.arange(shape[1])[:, None] * CONTEXTS + context) * 2 + bits
            counts[t] += np.bincount(flat.ravel(), minlength=shape[1] * CONTEXTS * 2).reshape(shape[1], CONTEXTS, 2)
    return ProgressiveTables(coder.normalize_counts(counts)[..., 1])


def save_tables(tables: ProgressiveTables, path: str | os.PathLike[str]) -> None:
    """Write the tables to an .npz (one array, "one")."""
    np.savez(path, one=tables.one)


def load_tables(path: str | os.PathLike[str]) -> ProgressiveTables:
    """Read tables written by `save_tables` (ValueError for a file that does not hold them)."""
    with np.load(path, allow_pickle=False) as data:
        if "one" not in data:
            raise ValueError(f"{os.fspath(path)}: no progressive tables (array 'one') in it")
        return ProgressiveTables(np.asarray(data["one"], dtype=np.uint32))


def encode_iterations(codes: Codes, tables: ProgressiveTables | None) -> list[bytes]:
    """Range-code each iteration of one (intra) frame's codes as its own section.

    Args:
        codes: (T, B, h, w) uint8 of {0, 1}.
        tables: the model's frozen tables (T ≤ their iterations, B = their bits), or None: adaptive.
    Returns:
        T sections (bytes, whole 32-bit words); the first k decode to codes[:k].
    """
    codes = _checked(codes)
    _check_tables(codes.shape, tables)
    return [_encode_section(codes, t, tables, None)[0] for t in range(codes.shape[0])]


def encode_frame(codes: Codes, memory: Memory) -> tuple[list[bytes], Memory]:
    """Range-code a frame of a group of pictures adaptively against `memory` (empty: a keyframe, as `encode_iterations`).

    Returns:
        (the sections, the memory after this frame if all of them reach the decoder; after a cut
        to k sections, `memory.following(codes[:k], counts[:k])` is: see `frame_counts`).
    """
    sections, counts = frame_counts(codes, memory)
    return sections, memory.following(codes, counts)


def frame_counts(codes: Codes, memory: Memory) -> tuple[list[bytes], list[Index]]:
    """`encode_frame`'s sections and the adaptive counts each section ended on."""
    codes = _checked(codes)
    _check_tables(codes.shape, None, memory.last)
    coded = [_encode_section(codes, t, None, memory) for t in range(codes.shape[0])]
    return [section for section, _ in coded], [counts for _, counts in coded]


def decode_iterations(sections: Sequence[bytes], shape: tuple[int, int, int], tables: ProgressiveTables | None) -> Codes:
    """Inverse of `encode_iterations` for its first k sections.

    Args:
        sections: the first k ≥ 1 sections of a frame, in order.
        shape: (B, h, w) of one iteration's codes.
        tables: the tables the sections were coded with, or None (adaptive).
    Returns:
        (k, B, h, w) uint8 codes.
    Raises:
        CorruptStreamError: a section that is not a whole number of words, does not decode, or is
            not exactly what its decoded bits encode to (damage, or other tables); names the iteration.
    """
    return _decode(sections, shape, tables, None)[0]


def decode_frame(sections: Sequence[bytes], shape: tuple[int, int, int], memory: Memory) -> tuple[Codes, Memory]:
    """Inverse of `encode_frame` for its first k sections: (the (k, B, h, w) codes, the memory after them).

    Raises:
        CorruptStreamError: as `decode_iterations` (also when `memory` is not the one the frame was coded against).
    """
    codes, counts = _decode(sections, shape, None, memory)
    return codes, memory.following(codes, counts)


def _decode(
    sections: Sequence[bytes], shape: tuple[int, int, int], tables: ProgressiveTables | None, memory: Memory | None
) -> tuple[Codes, list[Index]]:
    if not sections:
        raise ValueError("decode_iterations needs at least one section")
    codes = np.zeros((len(sections), *shape), dtype=np.uint8)
    _check_tables(codes.shape, tables, memory.last if memory is not None else None)
    counts = []
    for t, section in enumerate(sections):
        try:
            _decode_section(section, codes, t, tables, memory)
        except CorruptStreamError:
            raise
        except BaseException as exc:  # constriction: AssertionError, ValueError, a Rust panic (BaseException)
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            first_line = (str(exc).splitlines() or [""])[0]
            raise CorruptStreamError(f"iteration {t + 1}: entropy decoding failed: {type(exc).__name__}: {first_line}") from None
        again, ended = _encode_section(codes, t, tables, memory)
        if again != bytes(section):
            raise CorruptStreamError(f"iteration {t + 1}: section is not what its decoded bits encode to (damaged?)")
        counts.append(ended)
    return codes, counts


def ideal_bits(codes: Codes, tables: ProgressiveTables | None, memory: Memory | None = None) -> list[float]:
    """The model's estimate of each section, −Σ log2 P(bit), in bits (the payloads are at least this, rounded to words)."""
    codes = _checked(codes)
    _check_tables(codes.shape, tables, memory.last if memory is not None else None)
    out = []
    for t in range(codes.shape[0]):
        bits, one, _ = _section_probabilities(codes, t, tables, memory)
        p = np.where(bits == 1, one, coder.TOTAL - one).astype(np.float64)
        out.append(float(-(np.log2(p) - coder.PRECISION).sum()))
    return out


def _checked(codes: npt.ArrayLike) -> Codes:
    array = np.asarray(codes)
    if array.ndim != 4 or 0 in array.shape:
        raise ValueError(f"codes of shape {array.shape}; expected (iterations, bits, h, w), none empty")
    if array.dtype != np.uint8 or array.max() > 1:
        raise ValueError(f"codes must be uint8 of 0 and 1, got {array.dtype} up to {array.max()}")
    return array


def _check_tables(shape: tuple[int, ...], tables: ProgressiveTables | None, last: Codes | None = None) -> None:
    if last is not None:
        last = _checked(last)
        if last.shape[1:] != tuple(shape[1:]):
            raise ValueError(f"reference codes of shape {last.shape} for codes of {tuple(shape)}: (bits, h, w) differ")
        if tables is not None:
            raise ValueError("inter frames are coded adaptively: no entropy tables with a reference")
    if tables is None:
        return
    if shape[0] > tables.iterations or shape[1] != tables.bits:
        raise ValueError(
            f"codes of {shape[0]} iterations × {shape[1]} bits do not fit tables of {tables.iterations} × {tables.bits}"
        )


def _shift(array: Codes, axis: int) -> Index:
    """`array` moved one step forward along `axis`, the first slice NONE."""
    out = np.full(array.shape, NONE, dtype=np.int64)
    target, source = [slice(None)] * array.ndim, [slice(None)] * array.ndim
    target[axis], source[axis] = slice(1, None), slice(None, -1)
    out[tuple(target)] = array[tuple(source)]
    return out


def _temporal(last: Codes | None, t: int) -> Index | int:
    """The temporal part of iteration t's contexts: 27 · (1 + the previous frame's bit), or 0 without one."""
    return 0 if last is None or t >= last.shape[0] else CONTEXTS * (1 + last[t].astype(np.int64))


def _contexts(codes: Codes, t: int, last: Codes | None = None) -> Index:
    """(B, h, w) context of every bit of iteration t: (prev · 3 + above) · 3 + lower, + the temporal part."""
    current = codes[t]
    prev = codes[t - 1].astype(np.int64) if t else np.full(current.shape, NONE, dtype=np.int64)
    return (prev * 3 + _shift(current, 1)) * 3 + _shift(current, 0) + _temporal(last, t)


def _steps(bits: int, rows: int) -> Iterator[tuple[Index, Index]]:
    """The anti-diagonals b + y = s: for each, the bit and row of every (b, y) row decoded in it."""
    for s in range(bits + rows - 1):
        b = np.arange(max(0, s - rows + 1), min(bits - 1, s) + 1)
        yield b, s - b


class _SectionModel:
    """P(1) of each symbol of a section, step by step: from the tables, or adaptive counts updated after each step."""

    def __init__(self, tables: ProgressiveTables | None, t: int, bits: int, memory: Memory | None = None) -> None:
        self.table = None if tables is None else tables.one[t].astype(np.int64)
        self.stride = CONTEXTS if tables is not None else TEMPORAL_CONTEXTS
        start = memory.start(t) if memory is not None else None
        if start is not None and start.shape != (2, bits * self.stride):
            raise CorruptStreamError(f"iteration {t + 1}: carried counts of shape {start.shape} for {bits} bits")
        # adaptive: [value, bit · 81 + context]
        self.counts = start if start is not None else np.ones((2, bits * self.stride), dtype=np.int64)

    def one(self, key: Index) -> Index:
        """Frequencies of 1 (out of 2**PRECISION) for the keys bit · stride + context."""
        if self.table is not None:
            return self.table.reshape(-1)[key]
        zeros, ones = self.counts[0, key], self.counts[1, key]
        return np.clip((ones * coder.TOTAL + (zeros + ones) // 2) // (zeros + ones), 1, coder.TOTAL - 1)

    def update(self, key: Index, bits: Index) -> None:
        if self.table is None:
            np.add.at(self.counts, (bits.ravel(), key.ravel()), _ONE)


def _section_probabilities(
    codes: Codes, t: int, tables: ProgressiveTables | None, memory: Memory | None
) -> tuple[Index, Index, Index]:
    """Iteration t's bits in coding order, P(1) of each (the encoder's view: all bits known), the counts after them."""
    model = _SectionModel(tables, t, codes.shape[1], memory)
    last = memory.last if memory is not None else None
    key = np.arange(codes.shape[1]).reshape(-1, 1, 1) * model.stride + _contexts(codes, t, last)
    bit_parts, one_parts = [], []
    for b, y in _steps(codes.shape[1], codes.shape[2]):
        step_bits = codes[t, b, y].astype(np.int64)
        one_parts.append(model.one(key[b, y]).ravel())
        model.update(key[b, y], step_bits)
        bit_parts.append(step_bits.ravel())
    return np.concatenate(bit_parts), np.concatenate(one_parts), model.counts


def _probabilities(one: Index) -> npt.NDArray[np.float64]:
    """(N, 2) exact dyadic probabilities of 0 and 1 from integer P(1) frequencies."""
    p_one = one.astype(np.float64).reshape(-1, 1) / coder.TOTAL
    return np.concatenate([1.0 - p_one, p_one], axis=1)


def _encode_section(codes: Codes, t: int, tables: ProgressiveTables | None, memory: Memory | None) -> tuple[bytes, Index]:
    bits, one, counts = _section_probabilities(codes, t, tables, memory)
    encoder = coder.RangeEncoder()
    encoder.encode(bits.astype(np.int32), _FAMILY, _probabilities(one))
    return bytes(encoder.get_compressed().astype("<u4").tobytes()), counts


def _decode_section(section: bytes, codes: Codes, t: int, tables: ProgressiveTables | None, memory: Memory | None) -> None:
    """Fill codes[t] from its section; codes[:t] (and the memory's codes, if any) are decoded already."""
    if len(section) % 4:
        raise CorruptStreamError(f"iteration {t + 1}: section of {len(section)} bytes is not a whole number of 32-bit words")
    decoder = coder.RangeDecoder(np.frombuffer(section, dtype="<u4").astype(np.uint32))
    model = _SectionModel(tables, t, codes.shape[1], memory)
    current = codes[t]
    prev = codes[t - 1].astype(np.int64) if t else None
    temporal = _temporal(memory.last if memory is not None else None, t)
    width = codes.shape[3]
    for b, y in _steps(codes.shape[1], codes.shape[2]):
        above = np.where((y > 0)[:, None], current[b, np.maximum(y - 1, 0)], NONE).astype(np.int64)
        lower = np.where((b > 0)[:, None], current[np.maximum(b - 1, 0), y], NONE).astype(np.int64)
        before = prev[b, y] if prev is not None else np.full((b.size, width), NONE, dtype=np.int64)
        then = temporal[b, y] if isinstance(temporal, np.ndarray) else temporal
        key = b[:, None] * model.stride + (before * 3 + above) * 3 + lower + then
        bits = np.asarray(decoder.decode(_FAMILY, _probabilities(model.one(key))), dtype=np.int64).reshape(b.size, width)
        model.update(key, bits)
        current[b, y] = bits.astype(np.uint8)
