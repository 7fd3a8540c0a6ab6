"""ONNX Runtime engine: a Program's graphs exported by the dynamo exporter, H and W multiples of 16."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import BackendUnavailableError, onnx_runtime_errors
from ..models.registry import LoadedModel
from .base import Backend, Program, as_gc_model, as_program, engines_dir, quiet_exporter
from .int8 import quantize_synthesize
from .manifest import ArtifactSpec, ensure_artifact

#: ONNX graphs keep H and W symbolic: the range is recorded, not enforced by ONNX Runtime.
ONNX_MAX_SIZE = (4096, 4096)
#: int8: G quantized, E float32 (engines.int8).
ONNX_PRECISIONS = ("fp32", "int8")


def onnx_exporter(module: torch.nn.Module, args: tuple[Any, ...], shapes: Any) -> Callable[[Path], None]:
    """A build step that writes `module` as one self-contained ONNX file."""

    def build(path: Path) -> None:
        with quiet_exporter():
            torch.onnx.export(module, args, str(path), dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False)

    return build


def export_onnx(
    model: LoadedModel | Program, folder: Path, precision: str = "fp32", max_size: tuple[int, int] = ONNX_MAX_SIZE
) -> dict[str, Path]:
    """Export every graph of a model to ONNX (dynamic sizes), reused while their manifests match.

    Args:
        model: a loaded GC model (E+Q and G), or any model's Program (the SC generator).
        folder: the engines folder.
        precision: "fp32", or "int8" (GC models): G quantized (see engines.int8), E still fp32.
        max_size: (W, H) recorded in the manifest as the shape range.
    Returns:
        Graph name ("analyze", "synthesize") → artifact path.
    """
    if precision not in ONNX_PRECISIONS:
        raise BackendUnavailableError(f"engine 'onnxruntime' runs {' or '.join(ONNX_PRECISIONS)} on the CPU, not {precision}")
    program = as_program(model)
    paths = {}
    for which, module in program.modules.items():
        if which == "synthesize" and precision == "int8":
            spec = ArtifactSpec(program.entry, which, "onnxruntime", "int8", max_size)
            paths[which] = ensure_artifact(folder, spec, ".onnx", quantize_synthesize(as_gc_model(program)))
            continue
        spec = ArtifactSpec(program.entry, which, "onnxruntime", "fp32", max_size)
        build = onnx_exporter(module, program.example(which), program.dynamic_shapes(which, max_size))
        paths[which] = ensure_artifact(folder, spec, ".onnx", build)
    return paths


#: Intra-op threads of the sessions made from now on; 0: ONNX Runtime's default (one per physical core).
_intra_op_threads = 0


def set_session_threads(threads: int) -> None:
    """Give sessions made from now on `threads` intra-op threads (an archive worker's share of the cores)."""
    global _intra_op_threads
    _intra_op_threads = threads


def ort_session(path: Path) -> Any:
    """An ONNX Runtime CPU session, or BackendUnavailableError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailableError("engine 'onnxruntime' needs `pip install streamcodec[onnx]`") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = _intra_op_threads
    with onnx_runtime_errors(path, "ONNX Runtime cannot load this engine", BackendUnavailableError):
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session: Any, *arrays: np.ndarray) -> np.ndarray:
    """Run a one-output session on its inputs in order."""
    feeds = {spec.name: array for spec, array in zip(session.get_inputs(), arrays, strict=True)}
    return np.asarray(session.run(None, feeds)[0])


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the CPU: about twice as fast as eager torch on this project's 2-core machines.

    Args:
        model: a loaded GC model, or any model's Program (e.g. selective mode's SC generator).
        folder: the engines folder (default `engines_dir()`).
        precision: "fp32", or "int8" (GC models: G quantized).
    """

    name = "onnxruntime"

    def __init__(self, model: LoadedModel | Program, folder: Path | None = None, precision: str = "fp32") -> None:
        try:  # fail with the install line before exporting anything
            import onnxruntime  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("engine 'onnxruntime' needs `pip install streamcodec[onnx]`") from None
        program = as_program(model)
        self.signature = program.signature
        try:
            paths = export_onnx(program, folder or engines_dir(), precision)
        except BackendUnavailableError:
            raise
        except Exception as exc:  # the exporter raises many types; all mean "no engine"
            raise BackendUnavailableError(f"could not build the ONNX engine: {exc}") from exc
        self._sessions = {which: ort_session(path) for which, path in paths.items()}

    def _execute(self, graph: str, inputs: tuple[npt.NDArray[Any], ...]) -> npt.NDArray[Any]:
        return run_session(self._sessions[graph], *inputs)
