"""One registry of models: name → weights file, its sha256, its kind and the config inside it.

Every model the package runs is an entry here, whatever its kind:

    kind     file                                   loaded by
    "gc"     .npz: params, entropy tables, config   `Registry.load` → LoadedModel (E, G, tables)
    "sc"     .npz: params (float16), config         `Registry.load_sc` → LoadedSC (selective mode's generator)
    "tflite" a vendored MediaPipe mask model        `Registry.mask_model` → its entry, run by selective.runtime
    "onnx"   a vendored ONNX mask model             `Registry.mask_model` → its entry, run by selective.runtime

A name is registered once (a second registration raises), and a file's sha256 is checked against
the registry's before it is used. The model identifier written into every stream is derived from
the weights' content (`content_id`), so a stream names the exact weights it needs, never a
position in a list. The index is `streamcodec/weights/registry.json`; files are relative to it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..entropy.context import ContextTables
from ..errors import ModelError
from .gc import GCConfig
from .sc import SCGenerator, load_sc_weights

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "gc-small"
#: Every kind of model, as its errors name it.
KINDS = {
    "gc": "GC codec model",
    "sc": "selective-mode synthesis model",
    "progressive": "progressive-mode model (streamcodec.progressive)",
    "tflite": "LiteRT mask model",
    "onnx": "ONNX Runtime mask model",
}
MASK_KINDS = ("tflite", "onnx")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its weights file, the file's sha256 and the content identifier."""

    name: str
    path: Path
    sha256: str
    model_id: str
    card: dict[str, Any]
    #: One of KINDS: "gc", "sc" (selective mode's synthesis generator), "tflite" or "onnx" (mask models).
    kind: str = "gc"


@dataclass(frozen=True)
class LoadedModel:
    """A verified GC model: its config, float32 parameters and frozen entropy tables."""

    entry: ModelEntry
    config: GCConfig
    params: dict[str, npt.NDArray[np.float32]]
    tables: ContextTables


@dataclass(frozen=True)
class LoadedSC:
    """A verified SC generator (F and G) in eval mode on the CPU."""

    entry: ModelEntry
    net: SCGenerator


def content_id(params: dict[str, np.ndarray], tables: ContextTables, config: GCConfig) -> str:
    """Stable identifier of a model: sha256 over sorted names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    items = {f"param/{k}": v for k, v in params.items()}
    items |= {"tables/intra": tables.intra, "tables/inter": tables.inter}
    for name in sorted(items):
        array = np.ascontiguousarray(items[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    return "gc-" + digest.hexdigest()[:24]


def save_weights(path: Path, params: dict[str, np.ndarray], tables: ContextTables, config: GCConfig) -> str:
    """Write a weights file; returns its model identifier."""
    arrays: dict[str, np.ndarray] = {f"param/{k}": np.asarray(v, dtype=np.float32) for k, v in params.items()}
    arrays["tables/intra"] = tables.intra.astype(np.uint32)
    arrays["tables/inter"] = tables.inter.astype(np.uint32)
    arrays["config"] = np.frombuffer(json.dumps(config.to_dict(), sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    return content_id({k: arrays[f"param/{k}"] for k in params}, tables, config)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ModelError(f"model {key!r} is registered twice", WEIGHTS_DIR / "registry.json")
        seen[key] = value
    return seen


class Registry:
    """Name → ModelEntry, with lookup by stream model identifier and a loader per kind."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._verified: set[str] = set()
        self._lock = threading.Lock()

    def register(
        self, name: str, path: Path, sha256: str, model_id: str, card: dict[str, Any] | None = None, kind: str = "gc"
    ) -> None:
        """Add a model; a name registered twice, or an unknown kind, raises ModelError."""
        if name in self._entries:
            raise ModelError(f"model {name!r} is already registered")
        if kind not in KINDS:
            raise ModelError(f"model {name!r} has unknown kind {kind!r} (one of {', '.join(KINDS)})")
        self._entries[name] = ModelEntry(name, path, sha256, model_id, card or {}, kind)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def entry(self, name: str) -> ModelEntry:
        """The entry of `name`; ModelError naming the registered ones when there is none."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ModelError(f"unknown model {name!r} (registered: {known})") from None

    def by_id(self, model_id: str) -> ModelEntry:
        """The entry whose content identifier a stream names; ModelError when this installation lacks it."""
        for entry in self._entries.values():
            if entry.model_id == model_id:
                return entry
        raise ModelError(
            f"stream was made by model {model_id}, which this installation does not have "
            f"(registered: {', '.join(e.model_id + ' ' + e.name for e in self._entries.values()) or 'none'})"
        )

    def load(self, name: str) -> LoadedModel:
        """Read and verify a GC model's weights (hash and content id); cached per name."""
        with self._lock:
            if name not in self._loaded:
                entry = self.entry(name)
                if entry.kind != "gc":
                    raise ModelError(f"model {name!r} is a {KINDS[entry.kind]} ({entry.kind}), not a GC codec model")
                self._loaded[name] = _load_entry(entry)
            return self._loaded[name]

    def load_sc(self, name: str) -> LoadedSC:
        """Read and verify an SC generator's weights (hash and content id); a fresh network each call."""
        entry = self.entry(name)
        if entry.kind != "sc":
            raise ModelError(f"model {name!r} is a {entry.kind} model, not a selective-mode synthesis (sc) model")
        check_file(entry)
        return LoadedSC(entry, load_sc_weights(entry.path, entry.model_id))

    def mask_model(self, name: str) -> ModelEntry:
        """A registered mask model ("selfie", "face"), its file checked against its sha256 once per process."""
        entry = self._entries.get(name)
        if entry is None or entry.kind not in MASK_KINDS:
            known = ", ".join(n for n in self.names() if self._entries[n].kind in MASK_KINDS)
            raise ModelError(f"unknown mask model {name!r} (known: {known})")
        with self._lock:
            if name not in self._verified:
                check_file(entry)
                self._verified.add(name)
        return entry


def check_file(entry: ModelEntry) -> None:
    """Refuse a model whose weights file is missing or whose sha256 is not the registry's."""
    if not entry.path.is_file():
        raise ModelError(f"weights file of model {entry.name!r} is missing (broken install?)", entry.path)
    actual = file_sha256(entry.path)
    if actual != entry.sha256:
        raise ModelError(f"weights sha256 {actual[:12]}… does not match the registry's {entry.sha256[:12]}…", entry.path)


def _load_entry(entry: ModelEntry) -> LoadedModel:
    check_file(entry)
    with np.load(entry.path) as npz:
        params = {k[len("param/") :]: npz[k] for k in npz.files if k.startswith("param/")}
        tables = ContextTables(npz["tables/intra"], npz["tables/inter"])
        config = GCConfig.from_dict(json.loads(npz["config"].tobytes().decode()))
    if content_id(params, tables, config) != entry.model_id:
        raise ModelError(f"weights content does not match model id {entry.model_id}", entry.path)
    return LoadedModel(entry, config, params, tables)


def register_index(registry: Registry, index: Path) -> None:
    """Register every model of a `registry.json` (as written by export); files are relative to it."""
    for name, item in json.loads(index.read_text(), object_pairs_hook=_no_duplicates).items():
        path = (index.parent / item["file"]).resolve()
        registry.register(name, path, item["sha256"], item["model_id"], item.get("card", {}), item.get("kind", "gc"))


def _builtin_registry() -> Registry:
    registry = Registry()
    if (WEIGHTS_DIR / "registry.json").exists():
        register_index(registry, WEIGHTS_DIR / "registry.json")
    return registry


REGISTRY = _builtin_registry()
