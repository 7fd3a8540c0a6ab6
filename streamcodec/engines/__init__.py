"""Inference engines behind one small interface (`Backend`): eager torch, torch.compile, ONNX
Runtime and TensorRT, with their artifacts and manifests in the top-level `engines/` folder."""

from .base import GRAPHS, STRIDE, Backend, Graph, TorchGraphs, build_torch_model, engines_dir
from .manifest import ArtifactSpec, read_manifest, stale_reason
from .onnx import OnnxRuntimeBackend, export_onnx
from .select import ENGINE_NAMES, auto_engine, create_backend, parse_engine
from .tensorrt import TensorRTBackend
from .torch_engine import TorchBackend

__all__ = [
    "ENGINE_NAMES",
    "GRAPHS",
    "STRIDE",
    "ArtifactSpec",
    "Backend",
    "Graph",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
    "TorchGraphs",
    "auto_engine",
    "build_torch_model",
    "create_backend",
    "engines_dir",
    "export_onnx",
    "parse_engine",
    "read_manifest",
    "stale_reason",
]
