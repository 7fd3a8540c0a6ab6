"""The fidelity layer's input as 4:2:0 planes, taking the kept blocks from the source's own planes.

The encoder works on RGB frames, and the fidelity codec takes 4:2:0. Converting the decoded source
RGB back to 4:2:0 is not lossless: on carphone the round trip alone is 43.8 dB (Y 46.9, U/V 51 dB),
noise that x265 or SVT-AV1 coding the file directly never see, and which costs about 0.5 dB inside
the kept region at 35 dB. When the source frame is 8-bit 4:2:0 and converts to exactly the RGB the
encoder was given (so the decoder's conversion of those planes shows the source), the kept blocks
are taken from its planes unchanged; the fill outside is converted as before.

Planes are one (H * 3 // 2, W) uint8 array, I420 order (Y, then U and V at half size each), as PyAV
reads and writes yuv420p; the 16-px blocks are 8-px cells in U and V.

The decoder's side (`PlanesCompositor`) is the same idea backwards: the kept blocks of its 4:2:0
output are the fidelity codec's own decoded planes, the background converted once per keyframe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .colour import frame_to_rgb, rgb_to_frame
from .options import feather_alpha

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Planes = npt.NDArray[np.uint8]


def usable_source(source: Any, rgb: Image, matrix: str = "bt601") -> bool:
    """Whether `source` (an av.VideoFrame) may stand in for `rgb`: yuv420p, its size, and converting to it exactly by `matrix`.

    Also needs a width even and a height a multiple of 4, so that the planes stack as one I420 array.
    """
    height, width = rgb.shape[:2]
    if source is None or source.format.name != "yuv420p" or (source.width, source.height) != (width, height):
        return False
    if width % 2 or height % 4 or min(width, height) < 16:
        return False
    return bool(np.array_equal(frame_to_rgb(source, matrix), rgb))


def source_matrix(source: Any, rgb: Image) -> str:
    """The colour matrix (of colour.MATRICES) whose conversion of `source` gives exactly `rgb`; bt601 if none does."""
    return next((matrix for matrix in ("bt709",) if usable_source(source, rgb, matrix)), "bt601")


def to_planes(rgb: Image, matrix: str = "bt601") -> Planes:
    """(H, W, 3) uint8 RGB → I420 planes, by the fidelity layer's own conversion."""
    return np.asarray(rgb_to_frame(rgb, matrix).to_ndarray(), dtype=np.uint8)


def source_planes(source: Any) -> Planes:
    """The planes of a yuv420p av.VideoFrame (a copy)."""
    return np.array(source.to_ndarray(), dtype=np.uint8)


def _plane_masks(blocks: Mask, height: int, width: int, block: int) -> tuple[Mask, Mask]:
    """The kept cells at luma and at chroma resolution."""
    luma = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width]
    half = block // 2
    chroma = np.repeat(np.repeat(blocks, half, axis=0), half, axis=1)[: height // 2, : width // 2]
    return luma, chroma


def merge(inside: Planes, outside: Planes, blocks: Mask, block: int = 16) -> Planes:
    """`inside`'s planes in the kept blocks, `outside`'s elsewhere.

    Args:
        inside, outside: I420 planes of the same (H, W) picture.
        blocks: (⌈H/block⌉, ⌈W/block⌉) bool, True where kept.
        block: the cell size in luma pixels (even).
    Returns:
        New I420 planes.
    """
    width = inside.shape[1]
    height = inside.shape[0] * 2 // 3
    luma, chroma = _plane_masks(blocks, height, width, block)
    out = np.where(np.vstack([luma, chroma.reshape(-1, width), chroma.reshape(-1, width)]), inside, outside)
    return np.asarray(out, dtype=np.uint8)


def split(planes: Planes) -> tuple[Planes, Planes, Planes]:
    """I420 planes of an even-sided picture → its Y (H, W), U and V (H/2, W/2) planes (views)."""
    width = planes.shape[1]
    height = planes.shape[0] * 2 // 3
    chroma = planes[height:].reshape(2, height // 2, width // 2)
    return planes[:height], chroma[0], chroma[1]


def join(luma: Planes, u: Planes, v: Planes) -> Planes:
    """Y, U and V planes (even sides) → one I420 array, as PyAV reads and writes yuv420p."""
    return np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(-1, luma.shape[1])


def picture_planes(picture: Any, width: int, height: int) -> Planes | None:
    """A decoded yuv420p av.VideoFrame's own planes cropped to width x height (even); None for another format or size."""
    if picture is None or picture.format.name != "yuv420p" or width % 2 or height % 2:
        return None
    if picture.width < width or picture.height < height or picture.width % 2 or picture.height % 2:
        return None
    luma, u, v = split(np.asarray(picture.to_ndarray(), dtype=np.uint8))
    return join(luma[:height, :width], u[: height // 2, : width // 2], v[: height // 2, : width // 2])


Weights = tuple[Mask, npt.NDArray[np.intp], npt.NDArray[np.float32]]


def _plane_weights(alpha: npt.NDArray[np.float32]) -> Weights:
    """Where `alpha` is 1, and the feathered band (flat indices, their alpha), as `options.composite` splits it."""
    full = alpha >= 1.0
    band = np.flatnonzero((alpha > 0) & ~full)
    return full, band, alpha.ravel()[band]


def _blend_plane(over: Planes, under: Planes, weights: Weights) -> Planes:
    full, band, alpha = weights
    out = np.where(full, over, under)
    if band.size:
        low, high = under.ravel()[band].astype(np.float32), over.ravel()[band].astype(np.float32)
        out.ravel()[band] = np.clip(low + alpha * (high - low) + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(out, dtype=np.uint8)


class PlanesCompositor:
    """The selective composite in I420: the fidelity planes where kept, the background's elsewhere.

    The feathered edge (`options.feather_alpha`, inside the kept blocks; none at the default feather 0)
    is blended in Y with the luma alpha, in U and V with its mean over each 2x2 cell. Where the alpha
    is 1 (the kept blocks but for that edge) the fidelity planes come through byte for byte.
    """

    def __init__(self, feather: int, block: int = 16) -> None:
        self._feather, self._block = feather, block
        self._cached: tuple[bytes, Weights, Weights] | None = None

    def __call__(self, fidelity: Planes, background: Planes, blocks: Mask) -> Planes:
        """Composite two I420 pictures of one even size under the block mask `blocks` ((⌈H/block⌉, ⌈W/block⌉) bool)."""
        key = np.packbits(blocks).tobytes() + bytes(str(blocks.shape), "ascii")
        fid, back = split(fidelity), split(background)
        if self._cached is None or self._cached[0] != key:
            height, width = fid[0].shape
            kept = np.repeat(np.repeat(blocks, self._block, axis=0), self._block, axis=1)[:height, :width]
            alpha = feather_alpha(kept, self._feather)
            chroma = alpha.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3), dtype=np.float32)
            self._cached = key, _plane_weights(alpha), _plane_weights(chroma)
        _, luma, chroma_weights = self._cached
        return join(
            _blend_plane(fid[0], back[0], luma),
            _blend_plane(fid[1], back[1], chroma_weights),
            _blend_plane(fid[2], back[2], chroma_weights),
        )
