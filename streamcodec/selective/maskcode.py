"""Lossless coding of selective mode's keep mask, as transmitted: one bit per B×B block.

The kept masks are block-aligned (plus the raw union inside kept blocks), and the decoder composites
with a feathered version of the block mask, so the block mask is what goes in the stream:

    kept (H, W) bool ─block_mask─▶ (⌈H/B⌉, ⌈W/B⌉) bool ─encode_mask(·, previous)─▶ bytes
    bytes ─decode_mask(·, shape, previous)─▶ blocks ─expand─▶ (H, W) bool

Each block bit is range-coded under a frozen table (`side_tables`) picked by
  keyframe: the decoded left, above, above-left and above-right blocks (16 contexts);
  inter:    the previous frame's block at the same place, how many of its 8 neighbours were kept
            (bucketed), and how many of the decoded left/above/above-left/above-right blocks
            changed from the previous frame (30 contexts).
An unchanged mask (or an empty one at a keyframe) costs 0 bytes; see `sidecode` for the payload.

`MODEL` states the contexts one wavefront step at a time (`sidecode`'s engine, used to fit the
tables); `encode_mask` and `decode_mask` compute the very same contexts in bulk, because they run
on every frame: the encoder knows the whole grid, so it computes every context at once and codes
them in one range-coder call (a queue coder: the same bytes as one call per step); the decoder
walks the wavefront on a zero-padded grid with precomputed neighbour indices.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import CorruptStreamError
from . import side_tables
from .base import Mask
from .sidecode import Cells, Grid, Reader, SymbolIO, Writer, check_shape, neighbours, wavefront

__all__ = ["DEFAULT_BLOCK", "block_mask", "decode_mask", "encode_mask", "expand"]

DEFAULT_BLOCK = 16

INTRA = np.array(side_tables.MASK_INTRA, dtype=np.uint32)
INTER = np.array(side_tables.MASK_INTER, dtype=np.uint32)

#: Previous-frame neighbourhood (kept among the 8 around a block) → bucket: none, few, half, most, all.
_NEIGHBOUR_BUCKET = np.array([0, 1, 1, 2, 2, 2, 3, 3, 4])


def block_mask(mask: Mask, block: int = DEFAULT_BLOCK) -> Mask:
    """The blocks a pixel mask touches: a block is kept if any of its pixels is.

    Args:
        mask: (H, W) bool.
        block: block side in pixels (≥ 1).
    Returns:
        (⌈H/block⌉, ⌈W/block⌉) bool.
    """
    if block < 1:
        raise ValueError(f"mask block {block} is out of range (≥ 1)")
    height, width = mask.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), dtype=bool)
    padded[:height, :width] = mask
    return np.asarray(padded.reshape(rows, block, cols, block).any(axis=(1, 3)))


def expand(blocks: Mask, height: int, width: int, block: int = DEFAULT_BLOCK) -> Mask:
    """Blocks back to pixels: (height, width) bool, each block's pixels set as the block is.

    Args:
        blocks: (⌈height/block⌉, ⌈width/block⌉) bool.
        height, width: the frame's size in pixels.
        block: block side in pixels.
    Returns:
        (height, width) bool.
    """
    if blocks.shape != (-(-height // block), -(-width // block)):
        raise ValueError(f"block mask {blocks.shape} does not cover {height}x{width} pixels in {block}-px blocks")
    return np.asarray(np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width])


class _MaskModel:
    what = "keep mask"

    def prepare(self, reference: Grid | None) -> Any:
        if reference is None:
            return None
        padded = np.pad(reference, 1, mode="edge")
        height, width = reference.shape
        around = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)) - reference
        return reference, _NEIGHBOUR_BUCKET[around]

    def step(self, io: SymbolIO, grid: Grid, prepared: Any, cells: Cells) -> None:
        left, above, above_left, above_right = neighbours(grid, cells, 0)
        if prepared is None:
            rows = left + 2 * above + 4 * above_left + 8 * above_right
            grid[cells] = io.code(INTRA, rows, grid[cells])
            return
        reference, bucket = prepared
        ref_left, ref_above, ref_above_left, ref_above_right = neighbours(reference, cells, 0)
        changed = (
            (left != ref_left).astype(np.int64)
            + (above != ref_above)
            + (above_left != ref_above_left)
            + (above_right != ref_above_right)
        )
        rows = (reference[cells] * 5 + bucket[cells]) * 3 + np.minimum(changed, 2)
        grid[cells] = io.code(INTER, rows, grid[cells])


MODEL = _MaskModel()


@functools.lru_cache(maxsize=16)
def _order(height: int, width: int) -> npt.NDArray[np.int64]:
    """Flat indices of a height x width grid's cells in wavefront (coding) order."""
    return np.concatenate([ys * width + xs for ys, xs in wavefront(height, width)])


@functools.lru_cache(maxsize=16)
def _steps(height: int, width: int) -> tuple[tuple[int, ...], npt.NDArray[np.int64]]:
    """Wavefront step boundaries, and each cell's index in the (height + 1, width + 2) zero-padded grid."""
    order = _order(height, width)
    ends = np.cumsum([len(ys) for ys, _ in wavefront(height, width)])
    ys, xs = np.divmod(order, width)
    return tuple(int(end) for end in ends), (ys + 1) * (width + 2) + xs + 1


def _around(grid: Grid) -> tuple[Grid, Grid, Grid, Grid]:
    """(left, above, above-left, above-right) of every cell, 0 past the edge (as `neighbours(·, ·, 0)`)."""
    p = np.pad(grid, ((1, 0), (1, 1)))
    return p[1:, :-2], p[:-1, 1:-1], p[:-1, :-2], p[:-1, 2:]


def _inter_context(reference: Grid) -> tuple[Grid, tuple[Grid, Grid, Grid, Grid]]:
    """Per cell: the reference's part of the inter row, and the reference's own four neighbours."""
    _, bucket = MODEL.prepare(reference)
    return (reference * 5 + bucket) * 3, _around(reference)


def _all_rows(grid: Grid, reference: Grid | None) -> Grid:
    """Every cell's table row, as `MODEL.step` computes it (grid shape)."""
    left, above, above_left, above_right = _around(grid)
    if reference is None:
        return left + 2 * above + 4 * above_left + 8 * above_right
    base, ref_around = _inter_context(reference)
    return base + np.minimum(_changed((left, above, above_left, above_right), ref_around), 2)


def _changed(around: tuple[Grid, ...], ref_around: tuple[Grid, ...] | list[Grid]) -> Grid:
    """How many of the four decoded neighbours differ from the reference's."""
    return np.asarray(sum((n != r).astype(np.int64) for n, r in zip(around, ref_around, strict=True)), dtype=np.int64)


def _encode(grid: Grid, reference: Grid | None) -> bytes:
    if np.array_equal(grid, reference if reference is not None else np.zeros_like(grid)):
        return b""
    order = _order(*grid.shape)
    writer = Writer()
    writer.code(INTRA if reference is None else INTER, _all_rows(grid, reference).ravel()[order], grid.ravel()[order])
    return writer.payload()


def _decode(data: bytes, shape: tuple[int, int], reference: Grid | None) -> Grid:
    height, width = shape
    ends, cells = _steps(height, width)
    padded = np.zeros((height + 1) * (width + 2), dtype=np.int64)
    offsets = (-1, -(width + 2), -(width + 3), -(width + 1))  # left, above, above-left, above-right
    if reference is not None:
        order = _order(height, width)
        base, around = _inter_context(reference)
        base, ref_around = base.ravel()[order], [r.ravel()[order] for r in around]
    reader, start = Reader(data), 0
    for end in ends:
        here = cells[start:end]
        left, above, above_left, above_right = (padded[here + offset] for offset in offsets)
        if reference is None:
            rows = left + 2 * above + 4 * above_left + 8 * above_right
        else:
            part = slice(start, end)
            changed = _changed((left, above, above_left, above_right), [r[part] for r in ref_around])
            rows = base[part] + np.minimum(changed, 2)
        padded[here] = reader.code(INTRA if reference is None else INTER, rows, rows)
        start = end
    return padded.reshape(height + 1, width + 2)[1:, 1:-1].copy()


def encode_mask(blocks: Mask, previous: Mask | None) -> bytes:
    """Losslessly code one frame's block mask, given the previous frame's (None at a keyframe).

    Args:
        blocks: (h, w) bool block mask (see `block_mask`).
        previous: the previous frame's (h, w) block mask, or None.
    Returns:
        The payload: b"" when `blocks` equals `previous` (or is all False at a keyframe).
    """
    if previous is not None and previous.shape != blocks.shape:
        raise ValueError(f"previous block mask {previous.shape} is not {blocks.shape}")
    check_shape(blocks.shape, "block mask")
    reference = None if previous is None else previous.astype(np.int64)
    return _encode(blocks.astype(np.int64), reference)


def decode_mask(data: bytes, shape: tuple[int, int], previous: Mask | None) -> Mask:
    """Inverse of `encode_mask`.

    Args:
        data: the payload.
        shape: (h, w) of the block mask.
        previous: the previous frame's decoded block mask, or None at a keyframe.
    Returns:
        (h, w) bool. Raises CorruptStreamError unless `data` decodes and is consumed exactly.
    """
    shape = check_shape(shape, "block mask")
    if previous is not None and previous.shape != shape:
        raise CorruptStreamError(f"block mask {shape} does not match the previous frame's {previous.shape}")
    reference = None if previous is None else previous.astype(np.int64)
    if not data:
        return np.zeros(shape, dtype=bool) if previous is None else previous.astype(bool)
    if len(data) % 4:
        raise CorruptStreamError(f"{MODEL.what} payload of {len(data)} bytes is not a whole number of words")
    try:
        grid = _decode(bytes(data), shape, reference)
    except (ValueError, RuntimeError, AssertionError, IndexError, OverflowError) as exc:
        raise CorruptStreamError(f"{MODEL.what} payload does not decode: {exc}") from None
    if grid.max(initial=0) > 1 or _encode(grid, reference) != data:
        raise CorruptStreamError(f"{MODEL.what} payload was not consumed exactly")
    return np.asarray(grid.astype(bool))
