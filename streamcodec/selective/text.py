"""Text: the PP-OCRv4 detector (DB, Liao et al. 2020) that `rapidocr-onnxruntime` ships, in ONNX Runtime.

frame ─BGR, [-1, 1], sides rounded to 32─▶ DB detector ─▶ p(text) ─> 0.3─▶ (H, W) bool

DB marks each text line's shrunk core (PP-OCR grows its boxes back by 1.6x); the stabiliser's
dilation and 16-px blocks grow it here. Opt-in (`--keep ...,text`): the slowest kind by far
(`scripts/benchmarks/bench_masks.py --text`). Only the model file is used, so `pip install --no-deps
rapidocr-onnxruntime` suffices (its own dependencies pull the GUI build of OpenCV, which clashes
with the headless one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from ..models.registry import file_sha256
from .base import Frame, Mask, resize, upscale_probability
from .runtime import onnx_session

PACKAGE = "rapidocr_onnxruntime"
DETECTOR = "models/ch_PP-OCRv4_det_infer.onnx"


def find_text_model() -> Path:
    """The PP-OCRv4 detector inside the installed `rapidocr-onnxruntime` (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / DETECTOR).is_file():
            return Path(folder) / DETECTOR
    raise BackendUnavailableError("text masks need the PP-OCR detector: pip install --no-deps rapidocr-onnxruntime")


class TextDetector:
    """Text pixels by PP-OCRv4's differentiable-binarization map, frames at most `max_side` wide or tall."""

    def __init__(self, model: Path | None = None, threads: int = 1, threshold: float = 0.3, max_side: int = 960) -> None:
        path = model or find_text_model()
        self._session = onnx_session(path, threads)
        self._input_name = self._session.get_inputs()[0].name
        self._threshold = threshold
        self._max_side = max_side
        self.name = f"ppocr-det-{file_sha256(path)[:8]}-t{threshold}-s{max_side}"

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def mask(self, frame: Frame) -> Mask:
        """Text pixels of one RGB frame: (H, W) bool."""
        height, width = frame.shape[:2]
        scale = min(1.0, self._max_side / max(height, width))
        net_h, net_w = (max(32, round(n * scale / 32) * 32) for n in (height, width))
        bgr = cv2.cvtColor(np.asarray(resize(frame, net_w, net_h)), cv2.COLOR_RGB2BGR)  # PaddleOCR reads with cv2
        x = (bgr.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        probability = np.asarray(self._session.run(None, {self._input_name: x})[0], dtype=np.float32)[0, 0]
        return upscale_probability(probability, height, width, self._threshold)
