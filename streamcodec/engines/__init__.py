"""Inference engines behind one small interface (`Backend`): eager torch, torch.compile, ONNX
Runtime and TensorRT run any model's `Program` (its entry points with declared inputs and
outputs: `GC_SIGNATURE`, `engines.sc.SC_SIGNATURE`), with their artifacts and manifests cached in
`engines_dir()` (the user's cache folder, `~/.cache/streamcodec/engines`; `$STREAMCODEC_ENGINES` overrides)."""

from .base import (
    GC_SIGNATURE,
    GRAPHS,
    STRIDE,
    Backend,
    EntryPoint,
    Graph,
    Program,
    Signature,
    TensorSpec,
    TorchGraphs,
    build_torch_model,
    engines_dir,
    gc_program,
)
from .manifest import ArtifactSpec, read_manifest, stale_reason
from .onnx import OnnxRuntimeBackend, export_onnx
from .select import ENGINE_NAMES, auto_engine, create_backend, parse_engine
from .tensorrt import TensorRTBackend
from .torch_engine import TorchBackend

__all__ = [
    "ENGINE_NAMES",
    "GC_SIGNATURE",
    "GRAPHS",
    "STRIDE",
    "ArtifactSpec",
    "Backend",
    "EntryPoint",
    "Graph",
    "OnnxRuntimeBackend",
    "Program",
    "Signature",
    "TensorRTBackend",
    "TensorSpec",
    "TorchBackend",
    "TorchGraphs",
    "auto_engine",
    "build_torch_model",
    "create_backend",
    "engines_dir",
    "export_onnx",
    "gc_program",
    "parse_engine",
    "read_manifest",
    "stale_reason",
]
