"""TensorRT engine (optional extra `streamcodec[tensorrt]`), along torch-tensorrt's documented AOT path.

    torch.export.export(graph, example, dynamic_shapes=H, W multiples of 16)
      → torch_tensorrt.dynamo.compile(exported, inputs=[torch_tensorrt.Input(min, opt, max, dtype)],
                                      enabled_precisions={fp32 | fp16 | bf16})
      → torch_tensorrt.save(trt_gm, "<artifact>.ep", inputs=[example])
    load: torch.export.load("<artifact>.ep").module()   (no recompilation)

torch-tensorrt is imported only here and only when asked for; everything up to the compile call
(the exported program and its symbolic H and W) runs and is tested on the CPU.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy.typing as npt
import torch

from ..errors import BackendUnavailableError
from ..models.registry import LoadedModel
from .base import GRAPHS, STRIDE, Backend, Graph, TorchGraphs, build_torch_model, dynamic_shapes, engines_dir, example_inputs
from .manifest import ArtifactSpec, ensure_artifact, read_manifest, stale_reason
from .torch_engine import PRECISIONS

#: Default shape range: up to 1080p (1088 rows once padded to the stride); optimised for 720p.
TRT_MAX_SIZE = (1920, 1088)
OPT_SIZE = (1280, 720)
INSTALL = "engine 'tensorrt' needs an NVIDIA GPU and `pip install streamcodec[tensorrt]` (torch-tensorrt)"


def import_torch_tensorrt() -> Any:
    """torch_tensorrt, or BackendUnavailableError with the one line that says how to get it."""
    if not torch.cuda.is_available():
        raise BackendUnavailableError(INSTALL + "; this machine has no CUDA GPU")
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendUnavailableError(INSTALL) from None
    return torch_tensorrt


def export_program(model: LoadedModel, which: str, max_size: tuple[int, int], device: str = "cpu") -> Any:
    """torch.export of graph `which` with symbolic H and W (multiples of 16, up to max_size (W, H))."""
    graph = Graph(TorchGraphs(build_torch_model(model)), which).to(device)
    example = example_inputs(model, which).to(device)
    return torch.export.export(graph, (example,), dynamic_shapes=dynamic_shapes(which, max_size))


def input_shapes(model: LoadedModel, which: str, max_size: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """min/opt/max input shapes of graph `which` for torch_tensorrt.Input."""
    opt = (min(OPT_SIZE[0], max_size[0]), min(OPT_SIZE[1], max_size[1]))
    sizes = {"min": (STRIDE, STRIDE), "opt": opt, "max": max_size}
    return {key: tuple(example_inputs(model, which, h - h % STRIDE, w - w % STRIDE).shape) for key, (w, h) in sizes.items()}


def compile_and_save(model: LoadedModel, which: str, precision: str, max_size: tuple[int, int], path: Path) -> None:
    """Compile graph `which` with TensorRT and save it as an ExportedProgram at `path`."""
    trt = import_torch_tensorrt()
    exported = export_program(model, which, max_size, "cuda")
    shapes = input_shapes(model, which, max_size)
    dtype = torch.uint8 if which == "analyze" else torch.float32
    spec = trt.Input(min_shape=shapes["min"], opt_shape=shapes["opt"], max_shape=shapes["max"], dtype=dtype)
    trt_gm = trt.dynamo.compile(exported, inputs=[spec], enabled_precisions={PRECISIONS[precision]})
    example = torch.zeros(shapes["opt"], dtype=dtype, device="cuda")
    trt.save(trt_gm, str(path), inputs=[example])


def build_tensorrt(model: LoadedModel, folder: Path, precision: str, max_size: tuple[int, int]) -> dict[str, Path]:
    """Both graphs as TensorRT artifacts in `folder`, reused while their manifests match."""
    if precision not in PRECISIONS:
        raise BackendUnavailableError(
            f"engine 'tensorrt' builds {', '.join(PRECISIONS)}, not {precision} (int8 is onnxruntime's, on the CPU)"
        )
    import_torch_tensorrt()
    paths = {}
    for which in GRAPHS:
        spec = ArtifactSpec(model.entry, which, "tensorrt", precision, max_size, device="cuda")
        paths[which] = ensure_artifact(
            folder, spec, ".ep", functools.partial(compile_and_save, model, which, precision, max_size)
        )
    return paths


def built_variant(model: LoadedModel, folder: Path) -> tuple[str, tuple[int, int]] | None:
    """(precision, max size) of a current TensorRT build of both graphs in `folder` (fp16 first), if any."""
    found = []
    for manifest in folder.glob(f"{model.entry.model_id}-analyze-tensorrt-*.ep.json"):
        data = read_manifest(manifest.with_suffix("")) or {}
        precision, size = data.get("precision"), tuple(data.get("shape_range", {}).get("max", ()))
        if precision in PRECISIONS and len(size) == 2:
            found.append((str(precision), (int(size[0]), int(size[1]))))
    for precision, size in sorted(found, key=lambda item: item[0] == "fp32"):
        specs = [ArtifactSpec(model.entry, which, "tensorrt", precision, size, device="cuda") for which in GRAPHS]
        if all(stale_reason(folder / (spec.stem() + ".ep"), spec) is None for spec in specs):
            return precision, size
    return None


class TensorRTBackend(Backend):
    """TensorRT engines loaded from `engines/`: a current build of `streamcodec engines build` when there is
    one and no precision is asked for, else built there first (fp32, up to 1920x1088 by default)."""

    name = "tensorrt"

    def __init__(
        self,
        model: LoadedModel,
        precision: str | None = None,
        max_size: tuple[int, int] | None = None,
        folder: Path | None = None,
    ) -> None:
        folder = folder or engines_dir()
        import_torch_tensorrt()
        variant = built_variant(model, folder) if precision is None and max_size is None else None
        precision, max_size = variant or (precision or "fp32", max_size or TRT_MAX_SIZE)
        paths = build_tensorrt(model, folder, precision, max_size)
        self.max_size = max_size
        self._modules = {which: torch.export.load(str(path)).module() for which, path in paths.items()}

    def _execute(self, graph: str, inputs: tuple[npt.NDArray[Any], ...]) -> npt.NDArray[Any]:
        (array,) = inputs
        if graph == "analyze" and (array.shape[2] > self.max_size[0] or array.shape[1] > self.max_size[1]):
            raise BackendUnavailableError(
                f"frame {array.shape[2]}x{array.shape[1]} is larger than the TensorRT engine's "
                f"{self.max_size[0]}x{self.max_size[1]}: streamcodec engines build --engine tensorrt --max-size WxH"
            )
        with torch.inference_mode():
            return self._modules[graph](torch.from_numpy(array).cuda()).cpu().numpy()
