"""`streamcodec engines build` and `engines list`: artifacts on disk and engines on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BackendUnavailableError
from ..io.safe_output import writing_errors
from ..models.registry import REGISTRY
from .manifest import ArtifactSpec, library_version, read_manifest, stale_reason
from .onnx import ONNX_MAX_SIZE, export_onnx
from .sc import export_sc_onnx
from .select import auto_engine
from .tensorrt import TRT_MAX_SIZE, build_tensorrt

BUILDABLE = ("onnxruntime", "tensorrt")


def build_engines(model: str, engine: str, precision: str, max_size: tuple[int, int] | None, folder: Path) -> list[Path]:
    """Build (or reuse while current) the artifacts of `engine` for registered model `model`.

    Args:
        model: a registered model name (a GC model: E+Q and G; an SC model: its generator).
        engine: "onnxruntime" or "tensorrt" ("auto": tensorrt on a GPU with it installed, else onnxruntime).
        precision: "fp32", "fp16" or "bf16".
        max_size: (W, H) of the largest frame, or None for the engine's default.
        folder: the engines folder.
    Returns:
        The artifact paths (each with its .json manifest beside it).
    """
    if engine == "auto":
        engine = "tensorrt" if auto_engine() == "tensorrt" else "onnxruntime"
    if engine not in BUILDABLE:
        raise BackendUnavailableError(
            f"engine {engine!r} has no artifact to build (torch runs eagerly; compile compiles in memory at first use): "
            f"choose from {', '.join(BUILDABLE)}"
        )
    entry = REGISTRY.entry(model)
    if entry.kind == "sc":
        return _build_sc(model, engine, precision, max_size or ONNX_MAX_SIZE, folder)
    loaded = REGISTRY.load(model)
    with writing_errors(folder):  # a read-only or full engines folder: one line naming it
        if engine == "tensorrt":
            return list(build_tensorrt(loaded, folder, precision, max_size or TRT_MAX_SIZE).values())
        return list(export_onnx(loaded, folder, precision, max_size or ONNX_MAX_SIZE).values())


def _build_sc(model: str, engine: str, precision: str, max_size: tuple[int, int], folder: Path) -> list[Path]:
    if engine != "onnxruntime" or precision != "fp32":
        raise BackendUnavailableError(f"SC model {model!r} has an onnxruntime fp32 engine only, not {engine} {precision}")
    loaded = REGISTRY.load_sc(model)
    with writing_errors(folder):
        return [export_sc_onnx(loaded.entry, loaded.net, folder, max_size)]


@dataclass(frozen=True)
class ArtifactRow:
    """One artifact in the engines folder and whether it would be used."""

    file: str
    model: str
    engine: str
    precision: str
    max_size: str
    status: str


def list_artifacts(folder: Path) -> list[ArtifactRow]:
    """Every artifact with a manifest in `folder`: current, or stale and why (it would be rebuilt)."""
    rows = []
    for manifest in sorted(folder.glob("*.json")):
        artifact = manifest.with_suffix("")
        data = read_manifest(artifact) or {}
        rows.append(
            ArtifactRow(
                artifact.name,
                str(data.get("model", "?")),
                str(data.get("engine", "?")),
                str(data.get("precision", "?")),
                "x".join(map(str, data.get("shape_range", {}).get("max", []))) or "?",
                _status(artifact, data),
            )
        )
    return rows


def _status(artifact: Path, data: dict[str, object]) -> str:
    try:
        entry = REGISTRY.entry(str(data.get("model")))
        size = tuple(data.get("shape_range", {}).get("max", (0, 0)))  # type: ignore[attr-defined]
        device = "cpu" if data.get("device") == "cpu" else "cuda"
        if device == "cuda" and not torch.cuda.is_available():
            return "built for a GPU this machine lacks"
        spec = ArtifactSpec(entry, str(data["graph"]), str(data["engine"]), str(data["precision"]), size, device)
    except Exception as exc:  # a manifest from another installation: say so, never use it
        return f"stale (unknown model or manifest: {exc})"
    reason = stale_reason(artifact, spec)
    return "current" if reason is None else f"stale ({reason}): rebuilt on next use"


def availability() -> list[tuple[str, str]]:
    """(engine, what it needs or which version runs it) for every engine, here."""
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name() if cuda else None
    ort = library_version("onnxruntime")
    trt = library_version("torch-tensorrt")
    return [
        ("torch", f"available (torch {torch.__version__}, {'cuda: ' + str(gpu) if cuda else 'cpu'})"),
        ("compile", f"available (torch.compile, {'cuda' if cuda else 'cpu'}; compiles in memory at first use)"),
        ("onnxruntime", f"available (onnxruntime {ort}, cpu)" if ort else "not installed: pip install streamcodec[onnx]"),
        (
            "tensorrt",
            f"available (torch-tensorrt {trt})"
            if trt and cuda
            else "needs an NVIDIA GPU and pip install streamcodec[tensorrt]" + ("" if cuda else " (no CUDA GPU here)"),
        ),
        ("auto", f"→ {auto_engine()}"),
        ("selective masks", _litert_line()),
    ]


def _litert_line() -> str:
    version = library_version("ai-edge-litert")
    runtime = f"ai-edge-litert {version}" if version else "ai-edge-litert (not installed)"
    return f"segmenter and face detector: vendored MediaPipe .tflite run by {runtime}; no compiled engine"
