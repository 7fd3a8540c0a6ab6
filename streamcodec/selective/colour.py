"""The fidelity layer's one colour conversion, RGB ⇄ yuv420p, the same on the encoder's and the decoder's side."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MATRICES", "even", "frame_to_rgb", "rgb_to_frame"]

Image = npt.NDArray[np.uint8]

#: The colour matrices the fidelity layer may convert with (swscale's names), by the name a stream's config
#: records ("matrix" in its extra; absent: bt601). BT.709 lets a source tagged so (most HD video) hand its
#: own planes to the codec (`planes.py`).
MATRICES: dict[str, str] = {"bt601": "ITU601", "bt709": "ITU709"}

#: One colour conversion on both sides, pinned so that neither frame tags nor core counts change it:
#: limited range, the stream's matrix (BT.601, the codecs' untagged default, unless recorded), exact
#: rounding, one swscale thread.
_SWSCALE: dict[str, Any] = {"src_color_range": "MPEG", "dst_color_range": "MPEG", "interpolation": "BILINEAR", "threads": 1}


def even(size: int) -> int:
    """`size` rounded up to even (4:2:0 planes need even sides)."""
    return size + (size & 1)


def rgb_to_frame(rgb: Image, matrix: str = "bt601") -> Any:
    """(H, W, 3) uint8 RGB → a yuv420p `av.VideoFrame` by `matrix` (of MATRICES), padded to even sizes by repeating the edge."""
    import av

    height, width = rgb.shape[:2]
    if height & 1 or width & 1:  # np.pad copies even when it adds nothing: only pad odd sizes
        rgb = np.pad(rgb, ((0, even(height) - height), (0, even(width) - width), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    space = MATRICES[matrix]
    return frame.reformat(format="yuv420p", src_colorspace=space, dst_colorspace=space, **_SWSCALE)


def frame_to_rgb(frame: Any, matrix: str = "bt601") -> Image:
    """A decoded yuv420p `av.VideoFrame` → (H, W, 3) uint8 RGB, the exact inverse setup of `rgb_to_frame`."""
    space = MATRICES[matrix]
    rgb = frame.reformat(format="rgb24", src_colorspace=space, dst_colorspace=space, **_SWSCALE)
    return np.asarray(rgb.to_ndarray())
