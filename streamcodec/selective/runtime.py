"""How selective mode's mask models run: LiteRT for .tflite files, ONNX Runtime for .onnx files.

Which models exist, where their files are and their sha256 is the model registry's business
(`models.registry`, kinds "tflite" and "onnx": `REGISTRY.mask_model("selfie")`); this module
only runs them. MediaPipe's .tflite files run in LiteRT (`ai-edge-litert`, numpy-2 compatible, and
it carries the `Convolution2DTransposeBias` custom op the selfie model needs); users' own models
and the text detector run in ONNX Runtime. Both are imported lazily, so `import streamcodec` never loads them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BackendUnavailableError, ModelError
from ..models.registry import ModelEntry


class TfliteModel:
    """A single-input .tflite model in LiteRT: `run(x) -> list of outputs` (float32 arrays).

    Args:
        model: a registered mask model of kind "tflite", its file already checked (`REGISTRY.mask_model`).
        threads: CPU threads of the interpreter.
    """

    def __init__(self, model: ModelEntry, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailableError("LiteRT is not installed: pip install ai-edge-litert", model.path) from exc
        with _quiet_native_stderr():
            self._interpreter = Interpreter(model_path=str(model.path), num_threads=threads)
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]["index"]
            self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
            self.input_shape: tuple[int, ...] = tuple(int(n) for n in self._interpreter.get_input_details()[0]["shape"])
            self.run(np.zeros(self.input_shape, dtype=np.float32))  # the delegate logs on its first run

    def run(self, x: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run one input of `input_shape`; returns copies of the outputs."""
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return [np.array(self._interpreter.get_tensor(i)) for i in self._outputs]


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence LiteRT's native "INFO: Created ... delegate" line, which would break the CLI's one-line errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for `path`, with the project's errors for a missing runtime or a bad file."""
    if not path.is_file():
        raise ModelError("no such ONNX model file", path)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailableError("ONNX Runtime is not installed: pip install onnxruntime", path) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for unreadable models
        raise ModelError(f"ONNX Runtime cannot load it: {str(exc).splitlines()[0]}", path) from exc
