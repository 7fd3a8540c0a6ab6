"""Export a trained checkpoint as a registered model: weights, frozen entropy tables, identifier.

GC: the entropy tables are histograms of the context model's (table, symbol) pairs over the training
media, run through the encoder at full frame size: intra statistics from every picture, inter
statistics from consecutive video frames. SC (a checkpoint with `kind = "sc"`): the generator's
weights as float16; its latents are the base GC model's, coded with that model's tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from ..entropy import coder, context
from ..models.gc import GCConfig, GCModel
from ..models.registry import WEIGHTS_DIR, file_sha256, save_weights
from ..models.sc import SCConfig, SCGenerator, save_sc_weights
from .data import IMAGE_SUFFIXES, VIDEO_SUFFIXES, find_media


def _padded(rgb: np.ndarray, factor: int) -> torch.Tensor:
    h, w = rgb.shape[:2]
    ph, pw = -h % factor, -w % factor
    rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _clips(paths: list[Path], max_side: int, max_frames: int) -> Iterator[list[np.ndarray]]:
    """Each picture as a one-frame clip; each video as consecutive frames, downscaled."""
    for path in paths:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = Image.open(path).convert("RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            yield [np.asarray(image)]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            frames = []
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    scale = min(1.0, max_side / max(frame.width, frame.height))
                    w, h = round(frame.width * scale), round(frame.height * scale)
                    frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
                    if len(frames) == max_frames:
                        break
            yield frames


@torch.inference_mode()
def build_tables(model: GCModel, paths: list[Path], max_side: int = 640, max_frames: int = 200) -> context.ContextTables:
    """Frozen intra and inter context tables of `model`'s symbols over the media at `paths`.

    Args:
        model: the GC model, in eval mode.
        paths: pictures and videos; videos are read up to `max_frames` frames.
        max_side: pictures and frames are downscaled to at most this many pixels on their long side.
    Returns:
        the normalized integer frequency tables the entropy coder ships with the weights.
    """
    cfg: GCConfig = model.cfg
    levels, channels = cfg.levels, cfg.channels
    intra = np.zeros((channels * (levels + 1) ** 2, levels), dtype=np.int64)
    inter = np.zeros((channels * levels * (levels + 1), levels), dtype=np.int64)
    for clip in _clips(paths, max_side, max_frames):
        previous = None
        for rgb in clip:
            sym = model.Q.symbols(model.E(_padded(rgb, cfg.factor)))[0].numpy()
            intra += context.count_contexts(sym, None, levels, channels)
            if previous is not None:
                inter += context.count_contexts(sym, previous, levels, channels)
            previous = sym
    return context.ContextTables(
        coder.normalize_counts(intra.reshape(channels, -1, levels)),
        coder.normalize_counts(inter.reshape(channels, -1, levels)),
    )


def _register(out_dir: Path, name: str, path: Path, model_id: str, state: dict[str, Any], **extra: str) -> dict[str, str]:
    """Add (or replace) `name` in `out_dir/registry.json`, keeping its model card and adding the run's figures."""
    index_path = out_dir / "registry.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    card = index.get(name, {}).get("card", {})
    card |= {"trained_steps": int(state["step"]), "train_config": state["train_cfg"]}
    index[name] = {"file": path.name, "sha256": file_sha256(path), "model_id": model_id, **extra, "card": card}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return {"name": name, "model_id": model_id, "path": str(path)}


def _export_gc(state: dict[str, Any], data: list[Path], name: str, out_dir: Path, half: bool) -> dict[str, str]:
    cfg = GCConfig.from_dict(state["model_cfg"])
    model = GCModel(cfg)
    model.load_state_dict(state["model"])
    if half:
        model.half().float()
    model.eval()
    tables = build_tables(model, find_media(data))
    params = {k: (v.half() if half else v).numpy() for k, v in model.state_dict().items()}
    path = out_dir / f"{name}.npz"
    return _register(out_dir, name, path, save_weights(path, params, tables, cfg), state)


def _export_sc(state: dict[str, Any], data: list[Path], name: str, out_dir: Path, half: bool) -> dict[str, str]:
    # SC weights are always float16 and need no tables: `data` and `half` do not apply.
    net = SCGenerator(SCConfig.from_dict(state["model_cfg"]))
    net.load_state_dict(state["model"])
    path = out_dir / f"{name}.npz"
    return _register(out_dir, name, path, save_sc_weights(path, net), state, kind="sc")


def _export_progressive(state: dict[str, Any], data: list[Path], name: str, out_dir: Path, half: bool) -> dict[str, str]:
    # Always float16, no tables (the entropy model of progressive mode is built apart): `data`, `half` do not apply.
    from .progressive import export_progressive

    path, model_id = export_progressive(state, name, out_dir)
    return _register(out_dir, name, path, model_id, state, kind="progressive")


_EXPORTERS: dict[str, Callable[[dict[str, Any], list[Path], str, Path, bool], dict[str, str]]] = {
    "gc": _export_gc,
    "sc": _export_sc,
    "progressive": _export_progressive,
}


def export_checkpoint(
    checkpoint: Path, data: list[Path], name: str | None = None, out_dir: Path = WEIGHTS_DIR, half: bool = False
) -> dict[str, str]:
    """Write `<name>.npz` into `out_dir` and register it in `out_dir/registry.json`.

    Args:
        checkpoint: a trainer's checkpoint.pt (or the GPU recipe's weights-only model.pt).
        data: the training media, for a GC model's entropy tables.
        name: the registered name (default: the run's name).
        out_dir: the weights folder (default: the package's `streamcodec/weights/`).
        half: GC only: store the weights as float16 (half the file; they run as float32). The model
            is rounded first, so the entropy tables and the identifier are those of the weights shipped.
    Returns:
        {"name", "model_id", "path"} of the registered model.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return _EXPORTERS[state.get("kind", "gc")](state, data, name or str(state["name"]), out_dir, half)
