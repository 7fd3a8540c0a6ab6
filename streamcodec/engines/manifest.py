"""One JSON manifest beside every engine artifact, and the rule that decides whether it is current.

An artifact is reused only while its manifest says it was built from the same weights (model id
and weights sha256), by the same engine at the same precision and shape range, with the same
versions of the libraries that engine depends on, for the same device, and while the artifact's
bytes still have the sha256 its manifest recorded when it was built (a damaged or replaced file
beside an intact manifest). Anything else is stale: it is rebuilt, said on stderr, never silently used.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..models.registry import ModelEntry, file_sha256

FORMAT = 1
#: The libraries whose version an engine's artifacts depend on (distribution names).
ENGINE_LIBRARIES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("torch", "onnx", "onnxruntime"),
    "tensorrt": ("torch", "torch-tensorrt", "tensorrt"),
}


def library_version(distribution: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def device_name(device: str) -> str:
    """'cpu', or the GPU's name and compute capability (TensorRT engines are built for one GPU)."""
    if device == "cpu":
        return "cpu"
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"


@dataclass(frozen=True)
class ArtifactSpec:
    """What an artifact must have been built from to be used."""

    entry: ModelEntry
    graph: str
    engine: str
    precision: str
    max_size: tuple[int, int]
    device: str = "cpu"

    def stem(self) -> str:
        """The artifact's file name without suffix: model id, graph, engine, precision, max size, device."""
        device = "" if self.device == "cpu" else "-cuda"
        return f"{self.entry.model_id}-{self.graph}-{self.engine}-{self.precision}-{self.max_size[0]}x{self.max_size[1]}{device}"

    def expected(self) -> dict[str, Any]:
        """The manifest an artifact built now, on this machine, would carry."""
        libraries = ENGINE_LIBRARIES.get(self.engine, ("torch",))
        expected = {
            "format": FORMAT,
            "model": self.entry.name,
            "model_id": self.entry.model_id,
            "weights_sha256": self.entry.sha256,
            "graph": self.graph,
            "engine": self.engine,
            "precision": self.precision,
            "shape_range": {"min": [16, 16], "max": list(self.max_size), "multiple_of": 16},
            "libraries": {name: library_version(name) for name in libraries},
            "device": device_name(self.device),
        }
        if self.precision == "int8":  # built from a calibration set, for one kind of int8 kernel
            from .int8 import calibration_sha256, int8_kernels

            expected |= {"calibration_sha256": calibration_sha256(self.entry), "int8_kernels": int8_kernels()}
        return expected


def manifest_path(artifact: Path) -> Path:
    """`<artifact>.json`, beside the artifact."""
    return artifact.with_name(artifact.name + ".json")


def read_manifest(artifact: Path) -> dict[str, Any] | None:
    """The manifest beside `artifact`, or None when it is missing or unreadable."""
    try:
        data = json.loads(manifest_path(artifact).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stale_reason(artifact: Path, spec: ArtifactSpec) -> str | None:
    """None if `artifact` exists and its manifest matches `spec` on this machine; else why not."""
    if not artifact.exists():
        return "not built"
    found = read_manifest(artifact)
    if found is None:
        return "no manifest"
    for key, want in spec.expected().items():
        if found.get(key) != want:
            return f"{key} {_short(found.get(key))} ≠ {_short(want)}"
    return _damage(artifact, found.get("artifact_sha256"))


def _damage(artifact: Path, recorded: object) -> str | None:
    """Why the artifact's bytes are not those its manifest recorded, or None when they are."""
    if not isinstance(recorded, str):
        return "the manifest records no artifact sha256"
    try:
        actual = file_sha256(artifact)
    except OSError as exc:
        return f"the artifact cannot be read ({exc.strerror or exc})"
    if actual != recorded:
        return f"artifact sha256 {actual[:12]}… ≠ {recorded[:12]}… in the manifest: the file is damaged"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 80 else text[:77] + "..."


def write_manifest(artifact: Path, spec: ArtifactSpec) -> Path:
    """Write the manifest of a just-built artifact atomically; returns its path."""
    path = manifest_path(artifact)
    data = spec.expected() | {"artifact": artifact.name, "artifact_sha256": file_sha256(artifact)}
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".partial", delete=False) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)
    return path


def ensure_artifact(folder: Path, spec: ArtifactSpec, suffix: str, build: Callable[[Path], None]) -> Path:
    """The current artifact for `spec` in `folder`, built (or rebuilt, saying why) when missing or stale.

    Args:
        folder: the engines folder.
        spec: what the artifact must match.
        suffix: its file suffix (".onnx", ".ep").
        build: writes the artifact to the path it is given.
    Returns:
        The artifact's path; its manifest lies beside it.
    """
    path = folder / (spec.stem() + suffix)
    reason = stale_reason(path, spec)
    if reason is None:
        return path
    verb = "building" if reason in ("not built", "no manifest") else f"rebuilding stale ({reason})"
    print(f"streamcodec: {verb} {spec.engine} engine {path.name} in {folder}", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path(path).unlink(missing_ok=True)  # a half-replaced pair must never look current
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staged = Path(tmp) / path.name
        build(staged)
        os.replace(staged, path)  # atomic: concurrent builders never see half a file
    write_manifest(path, spec)
    return path
