"""Per-block quantizer offsets for x265, as FFmpeg's regions-of-interest side data on a PyAV frame.

A block map of QP offsets (negative: more bits) becomes rectangles, one per run of equal offset
merged over consecutive block rows; each rectangle is attached to the frame by one `addroi` filter
of PyAV's bundled libavfilter, which appends an AVRegionOfInterest to the frame's
AV_FRAME_DATA_REGIONS_OF_INTEREST side data. PyAV 18 can read side data but not add it; the filter
is its public way in.

    offsets (rows, cols) QP ─runs, merged down rows─▶ RoiRegion(x, y, w, h, qoffset) …
        ─addroi … addroi (one filter graph per frame)─▶ av.VideoFrame + ROI side data ─▶ libx265

FFmpeg's libx265 wrapper turns the side data into x265's `quantOffsets` (one float per 16x16 block,
qoffset × 51 QP at 8 bits) when adaptive quantization is on; with aq-mode=0, as in x265's ultrafast
and superfast presets, it skips them. The libsvtav1 wrapper ignores the side data, and SVT-AV1's own
ROI map is not reachable through `svtav1-params` (docs/selective.md, issue 22).

Not wired into the fidelity layer: nothing here changes today's packets.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import av.filter
import numpy as np
import numpy.typing as npt
from av.sidedata.sidedata import SideDataContainer, Type

__all__ = ["BLOCK", "X265_QP_RANGE", "RoiRegion", "block_offsets", "frame_roi", "roi_regions", "with_roi"]

#: The granularity at which FFmpeg's libx265 wrapper applies ROI offsets (8 only with qg-size=8).
BLOCK = 16
#: x265's QP range at 8 bits: the wrapper scales a qoffset of ±1 to ±51 QP.
X265_QP_RANGE = 51
#: AVRegionOfInterest: uint32 self_size; int top, bottom, left, right; AVRational qoffset.
_ROI_STRUCT = struct.Struct("=I4i2i")


@dataclass(frozen=True)
class RoiRegion:
    """One rectangle of the frame in pixels, coded at `qoffset` (−1..1 of the encoder's QP range)."""

    x: int
    y: int
    width: int
    height: int
    qoffset: Fraction


def block_offsets(mask: npt.NDArray[np.bool_], qp_offset: int, block: int = BLOCK) -> npt.NDArray[np.int16]:
    """A block map giving `qp_offset` to every block that `mask` touches, 0 elsewhere.

    Args:
        mask: (H, W) bool, e.g. a face mask.
        qp_offset: QP offset of the touched blocks (negative: finer).
        block: block size in pixels.

    Returns:
        (ceil(H / block), ceil(W / block)) int16.
    """
    height, width = mask.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block), dtype=bool)
    padded[:height, :width] = mask
    touched = padded.reshape(rows, block, cols, block).any(axis=(1, 3))
    return np.where(touched, qp_offset, 0).astype(np.int16)


def _runs(row: npt.NDArray[np.integer]) -> list[tuple[int, int, int]]:
    """(start, end, value) of each run of one nonzero value along a row of blocks."""
    changes = (np.flatnonzero(np.diff(row.astype(np.int32))) + 1).tolist()
    bounds = [0, *changes, len(row)]
    return [(start, end, int(row[start])) for start, end in itertools.pairwise(bounds) if row[start] != 0]


def roi_regions(
    offsets: npt.NDArray[np.integer], width: int, height: int, block: int = BLOCK, qp_range: int = X265_QP_RANGE
) -> list[RoiRegion]:
    """Rectangles of equal QP offset covering every nonzero block, clipped to the frame.

    Args:
        offsets: (rows, cols) int QP offsets per `block`-sized block, in -qp_range..qp_range.
        width, height: the frame's size in pixels; the map must cover it.
        block: block size in pixels.
        qp_range: the encoder's QP range, to turn QP into AVRegionOfInterest's qoffset.

    Returns:
        Non-overlapping regions in raster order of their top-left block; empty for an all-zero map.
    """
    rows, cols = offsets.shape
    if rows * block < height or cols * block < width:
        raise ValueError(f"a {cols}x{rows} map of {block}-px blocks does not cover {width}x{height}")
    if np.abs(offsets).max(initial=0) > qp_range:
        raise ValueError(f"QP offsets must lie in -{qp_range}..{qp_range}, got {offsets.min()}..{offsets.max()}")
    growing: dict[tuple[int, int, int], int] = {}  # run → first block row it appeared in
    done: list[tuple[int, int, int, int, int]] = []
    for r in range(rows + 1):
        runs = set(_runs(offsets[r])) if r < rows else set()
        for run in [run for run in growing if run not in runs]:
            done.append((growing.pop(run), run[0], r, run[1], run[2]))
        for run in runs:
            growing.setdefault(run, r)
    regions = []
    for top, left, bottom, right, value in sorted(done):
        x, y = left * block, top * block
        w, h = min(right * block, width) - x, min(bottom * block, height) - y
        regions.append(RoiRegion(x, y, w, h, Fraction(value, qp_range)))
    return regions


def with_roi(frame: av.VideoFrame, regions: list[RoiRegion]) -> av.VideoFrame:
    """`frame` carrying `regions` as AV_FRAME_DATA_REGIONS_OF_INTEREST side data (the same pixels).

    A filter graph of one `addroi` per region is built for the frame (about 0.3-0.5 ms for 1-16
    regions at 640x480); a frame with no regions is returned as it is.
    """
    if not regions:
        return frame
    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=Fraction(1, 1))
    last = source
    for region in regions:
        node = graph.add("addroi", f"x={region.x}:y={region.y}:w={region.width}:h={region.height}:qoffset={region.qoffset}")
        last.link_to(node)
        last = node
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    pts, time_base, pict_type = frame.pts, frame.time_base, frame.pict_type
    graph.push(frame)
    tagged = graph.pull()
    assert isinstance(tagged, av.VideoFrame)
    # The buffer source stamps its own time base; 0/1 is PyAV's "none", so the encoder adopts its own.
    tagged.pts, tagged.time_base, tagged.pict_type = pts, time_base or Fraction(0, 1), pict_type
    return tagged


def frame_roi(frame: av.VideoFrame) -> list[RoiRegion]:
    """The regions of interest `frame` carries (empty when none), read back from its side data."""
    # PyAV's stub types side_data as a TypedDict; at run time it is this container, keyed by Type.
    side_data = cast(SideDataContainer, frame.side_data)
    if Type.REGIONS_OF_INTEREST not in {data.type for data in side_data}:
        return []
    raw = bytes(side_data[Type.REGIONS_OF_INTEREST])
    regions = []
    for offset in range(0, len(raw), _ROI_STRUCT.size):
        _, top, bottom, left, right, num, den = _ROI_STRUCT.unpack_from(raw, offset)
        regions.append(RoiRegion(left, top, right - left, bottom - top, Fraction(num, den)))
    return regions
