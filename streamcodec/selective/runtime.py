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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import BackendUnavailableError, ModelError, onnx_runtime_errors
from ..models.registry import ModelEntry
from .base import Frame, resize

#: What a user's image model (`--segmenter onnx:`, `--labels onnx:`) must take.
IMAGE_INPUT = "one float32 RGB input (1, 3, H, W) or (1, H, W, 3)"


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
    options.log_severity_level = 4  # its failures reach the user as our one-line errors, not its log
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for unreadable models
        raise ModelError(f"ONNX Runtime cannot load it: {str(exc).splitlines()[0]}", path) from exc


@dataclass(frozen=True)
class ImageInput:
    """A user's ONNX model's image input: its name, layout and fixed (H, W) if it has one."""

    name: str
    channels_first: bool
    size: tuple[int, int] | None

    def feed(self, frame: Frame) -> npt.NDArray[np.float32]:
        """An (H, W, 3) uint8 RGB frame as this input: float32 in [0, 1], the fixed size or the frame's rounded to 32."""
        height, width = self.size or (max(32, round(frame.shape[0] / 32) * 32), max(32, round(frame.shape[1] / 32) * 32))
        x = resize(frame, int(width), int(height)).astype(np.float32) / 255.0
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None] if self.channels_first else x[None])


def image_input(session: Any, path: Path, role: str) -> ImageInput:
    """The image input of a user's model, checked when it is loaded; ModelError naming the needed and actual shapes.

    Args:
        session: its ONNX Runtime session.
        path: the model file (named in the error).
        role: "segmenter" or "labeler" (named in the error).
    """
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    fixed = [n if isinstance(n, int) else None for n in shape]
    layout_ok = len(shape) == 4 and fixed[0] in (1, None) and 3 in (fixed[1], fixed[3])
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or not layout_ok:
        raise ModelError(f"the {role} needs {IMAGE_INPUT}; this model takes {describe(inputs)}", path)
    channels_first = fixed[1] == 3
    size = shape[2:4] if channels_first else shape[1:3]
    return ImageInput(inputs[0].name, channels_first, (size[0], size[1]) if None not in size else None)


def run_image_model(session: Any, model_input: ImageInput, x: npt.NDArray[np.float32], path: Path, role: str) -> npt.NDArray[Any]:
    """The first output of a user's model on input `x`; ONNX Runtime's failures as ModelError naming the input's shape."""
    with onnx_runtime_errors(path, f"the {role} cannot run on a {shape_text(x.shape)} float32 input"):
        return np.asarray(session.run(None, {model_input.name: x})[0])


def describe(args: Sequence[Any]) -> str:
    """ONNX Runtime's inputs or outputs as text: "'x' uint8 (1, 3, H, W), ..."."""
    return ", ".join(f"{arg.name!r} {_dtype(arg.type)} {shape_text(arg.shape)}" for arg in args) or "no input"


def shape_text(shape: Sequence[Any]) -> str:
    """(1, 3, H, W): fixed sizes as numbers, symbolic ones by name ("?" when unnamed)."""
    return "(" + ", ".join(str(n) if n is not None else "?" for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _dtype(onnx_type: str) -> str:
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(name, name)
