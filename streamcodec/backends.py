"""Inference backends: kept as the old import path of `streamcodec.engines` (see there)."""

from .engines import (
    ENGINE_NAMES,
    Backend,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    build_torch_model,
    create_backend,
    engines_dir,
    export_onnx,
)

__all__ = [
    "ENGINE_NAMES",
    "Backend",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
    "build_torch_model",
    "create_backend",
    "engines_dir",
    "export_onnx",
]
