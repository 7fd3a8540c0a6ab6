"""Training mechanics on a tiny network: checkpoints, resume, export, registry checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamcodec import cli
from streamcodec.errors import ModelError
from streamcodec.models.registry import Registry, register_index

from .conftest import ffmpeg

TINY = """
name = "tiny"
[model]
channels = 4
levels = 5
enc_widths = [4, 4, 4, 4]
gen_width = 8
gen_blocks = 1
up_widths = [4, 4, 4, 4]
quality_channels = [2, 4]
[train]
steps = {steps}
batch = 2
crop = 32
warmup_steps = 2
checkpoint_every = 2
log_every = 1
"""


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "4", "-c:v", "ffv1", str(folder / "b.mkv"))
    return folder


def _config(tmp_path: Path, steps: int) -> Path:
    path = tmp_path / f"tiny{steps}.toml"
    path.write_text(TINY.format(steps=steps))
    return path


def test_train_checkpoints_resumes_and_exports_a_loadable_model(data: Path, tmp_path: Path) -> None:
    run, export = tmp_path / "run", tmp_path / "export"
    args = ["train", "--data", str(data), "--out", str(run), "--export-to", str(export), "--threads", "1"]
    assert cli.main([*args, "--config", str(_config(tmp_path, 4))]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 4
    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]

    assert cli.main([*args, "--config", str(_config(tmp_path, 6)), "--resume", str(run / "checkpoint.pt")]) == 0
    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6]  # continued, not restarted

    registry = Registry()
    register_index(registry, export / "registry.json")
    model = registry.load("tiny")
    assert model.entry.model_id.startswith("gc-") and model.config.channels == 4
    assert model.tables.intra.shape == (4, 36, 5) and (model.tables.intra.sum(-1) == 1 << 14).all()
    assert json.loads((export / "registry.json").read_text())["tiny"]["card"]["trained_steps"] == 6


def test_weights_whose_hash_does_not_match_are_refused(data: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--export-to", str(export), "--threads", "1"]
    assert cli.main([*args, "--config", str(_config(tmp_path, 2))]) == 0
    weights = export / "tiny.npz"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    registry = Registry()
    register_index(registry, export / "registry.json")
    with pytest.raises(ModelError, match="sha256"):
        registry.load("tiny")


def test_registering_a_name_twice_raises(tmp_path: Path) -> None:
    registry = Registry()
    registry.register("a", tmp_path / "a.npz", "0" * 64, "gc-1")
    with pytest.raises(ModelError, match="already registered"):
        registry.register("a", tmp_path / "b.npz", "1" * 64, "gc-2")


def test_gpu_recipe_packs_trains_within_its_budget_and_exports(data: Path, tmp_path: Path) -> None:
    from streamcodec import train_gpu
    from streamcodec.models.export import export_checkpoint

    packed = tmp_path / "packed.npz"
    figures = train_gpu.pack([data], packed, crop=32)
    assert figures["pictures"] >= 2 and packed.stat().st_size < 1e6
    crops = train_gpu.PackedCrops(packed, 32, seed=1).batch(3)
    assert crops.shape == (3, 32, 32, 3) and crops.dtype == torch.uint8

    run = tmp_path / "run"
    args = ["--config", str(_config(tmp_path, 3)), "--data", str(packed), "--out", str(run), "--device", "cpu"]
    assert train_gpu.main([*args, "--minutes", "5", "--warmup-fraction", "0"]) == 0
    state = torch.load(run / "model.pt", weights_only=False)
    assert state["step"] == 3 and "opt_g" not in state  # weights only: small enough to fetch from a GPU machine
    assert (run / "model_warmup.pt").exists()

    assert train_gpu.main([*args, "--minutes", "0"]) == 0  # an exhausted budget stops before the first step
    assert torch.load(run / "model.pt", weights_only=False)["step"] == 0

    export = tmp_path / "export"
    export_checkpoint(run / "model.pt", [data], "tiny", export)
    registry = Registry()
    register_index(registry, export / "registry.json")
    assert registry.load("tiny").config.channels == 4
