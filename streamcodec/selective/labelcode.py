"""Lossless coding of the label map (one class id per cell), whatever labeler made it.

The coder does not know what the classes mean or how many there are in advance: each cell is coded
as its position in a short list of candidate labels drawn from cells already decoded, or as an
escape followed by the label itself (uniform over the `classes` ids):

    keyframe: candidates = left, above, above-right, above-left (distinct, in that order)
    inter:    candidates = previous frame's label here, then left, above, above-right, above-left,
              then the previous frame's right, below, left and above neighbours

The position is range-coded under a frozen table (`side_tables`) chosen by how many distinct
candidates there are and, for inter frames, how many decoded neighbours changed since the previous
frame and whether the previous frame's 3×3 neighbourhood was one class. So a static map costs 0
bytes, and a label map from a Cityscapes (19 classes), ADE20K (150) or the built-in labeler codes
the same way.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from ..entropy import coder
from ..errors import CorruptStreamError
from . import side_tables
from .sidecode import Cells, Grid, SymbolIO, check_shape, decode_grid, encode_grid, neighbours

__all__ = ["MAX_CLASSES", "decode_labels", "encode_labels"]

MAX_CLASSES = 256

INTRA = np.array(side_tables.LABEL_INTRA, dtype=np.uint32)
INTER = np.array(side_tables.LABEL_INTER, dtype=np.uint32)
_OUTSIDE = -1


@functools.lru_cache(maxsize=8)
def _uniform(classes: int) -> npt.NDArray[np.uint32]:
    """One table row, uniform over `classes` ids, for escaped labels."""
    return coder.normalize_counts(np.ones((1, classes)))


def _candidates(columns: list[Grid]) -> tuple[Grid, Grid]:
    """Distinct valid labels of each cell, first-seen order, packed left: ((N, M) labels, (N,) count)."""
    stacked = np.stack(columns, axis=1)
    valid = stacked != _OUTSIDE
    for j in range(1, stacked.shape[1]):
        valid[:, j] &= ~(stacked[:, :j] == stacked[:, j : j + 1]).any(axis=1)
    order = np.argsort(~valid, axis=1, kind="stable")
    return np.take_along_axis(stacked, order, axis=1), valid.sum(axis=1)


def _code_cells(io: SymbolIO, grid: Grid, cells: Cells, candidates: tuple[Grid, Grid], coding: tuple[Any, Grid, int]) -> None:
    """Code each cell as its candidate position (escape = the count), then the escaped labels literally."""
    labels, count = candidates
    table, rows, classes = coding
    truth = grid[cells]
    width = labels.shape[1]
    match = (labels == truth[:, None]) & (np.arange(width) < count[:, None])
    position = io.code(table, rows, np.where(match.any(axis=1), match.argmax(axis=1), count))
    if (position > count).any():
        raise ValueError("a candidate position past the candidates")
    escaped = position == count
    literal = io.code(_uniform(classes), np.zeros(int(escaped.sum()), dtype=np.int64), truth[escaped])
    picked = np.take_along_axis(labels, np.minimum(position, width - 1)[:, None], axis=1)[:, 0]
    picked[escaped] = literal
    grid[cells] = picked


class _LabelModel:
    what = "label map"

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def prepare(self, reference: Grid | None) -> Any:
        if reference is None:
            return None
        height, width = reference.shape
        edge = np.pad(reference, 1, mode="edge")
        uniform = np.ones(reference.shape, dtype=bool)
        for dy in range(3):
            for dx in range(3):
                uniform &= edge[dy : dy + height, dx : dx + width] == reference
        outside = np.pad(reference, 1, constant_values=_OUTSIDE)
        shifted = {name: outside[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for name, (dy, dx) in _AROUND.items()}
        return reference, uniform, shifted

    def step(self, io: SymbolIO, grid: Grid, prepared: Any, cells: Cells) -> None:
        left, above, above_left, above_right = neighbours(grid, cells, _OUTSIDE)
        if prepared is None:
            candidates = _candidates([left, above, above_right, above_left])
            rows = candidates[1] * 2 + ((left == above) & (left != _OUTSIDE))
            _code_cells(io, grid, cells, candidates, (INTRA, rows, self.classes))
            return
        reference, uniform, shifted = prepared
        ref = {name: grid_around[cells] for name, grid_around in shifted.items()}
        columns = [reference[cells], left, above, above_right, above_left, ref["right"], ref["below"], ref["left"], ref["above"]]
        changed = (
            (left != ref["left"]).astype(np.int64)
            + (above != ref["above"])
            + (above_left != ref["above_left"])
            + (above_right != ref["above_right"])
        )
        candidates = _candidates(columns)
        rows = (np.minimum(changed, 2) * 2 + uniform[cells]) * 3 + np.minimum(candidates[1], 3) - 1
        _code_cells(io, grid, cells, candidates, (INTER, rows, self.classes))


#: The previous frame's neighbours a cell's context reads: name → (dy, dx).
_AROUND = {"left": (0, -1), "above": (-1, 0), "above_left": (-1, -1), "above_right": (-1, 1), "right": (0, 1), "below": (1, 0)}


def _check_classes(classes: int) -> int:
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"{classes} label classes is out of range (1 … {MAX_CLASSES})")
    return classes


def encode_labels(labels: npt.NDArray[np.uint8], previous: npt.NDArray[np.uint8] | None, classes: int) -> bytes:
    """Losslessly code one frame's label map, given the previous frame's (None at a keyframe).

    Args:
        labels: (h, w) uint8 class ids, each < `classes`.
        previous: the previous frame's (h, w) label map, or None.
        classes: how many classes the labeler has (1 … 256), e.g. `len(labeler.classes)`.
    Returns:
        The payload: b"" when `labels` equals `previous` (or is all 0 at a keyframe).
    """
    _check_classes(classes)
    check_shape(labels.shape, "label map")
    for name, grid in (("label map", labels), ("previous label map", previous)):
        if grid is not None and (grid.shape != labels.shape or (grid.size and int(grid.max()) >= classes)):
            raise ValueError(f"{name} {grid.shape} has ids ≥ {classes} or a shape other than {labels.shape}")
    reference = None if previous is None else previous.astype(np.int64)
    return encode_grid(labels.astype(np.int64), reference, _LabelModel(classes))


def decode_labels(
    data: bytes, shape: tuple[int, int], previous: npt.NDArray[np.uint8] | None, classes: int
) -> npt.NDArray[np.uint8]:
    """Inverse of `encode_labels`.

    Args:
        data: the payload.
        shape: (h, w) of the label map.
        previous: the previous frame's decoded label map, or None at a keyframe.
        classes: the class count the encoder used.
    Returns:
        (h, w) uint8. Raises CorruptStreamError unless `data` decodes and is consumed exactly.
    """
    shape = check_shape(shape, "label map")
    if not 1 <= classes <= MAX_CLASSES:
        raise CorruptStreamError(f"{classes} label classes is out of range (1 … {MAX_CLASSES})")
    if previous is not None and (previous.shape != shape or int(previous.max()) >= classes):
        raise CorruptStreamError(f"previous label map {previous.shape} does not fit {shape} with {classes} classes")
    reference = None if previous is None else previous.astype(np.int64)
    return decode_grid(bytes(data), shape, reference, _LabelModel(classes)).astype(np.uint8)
