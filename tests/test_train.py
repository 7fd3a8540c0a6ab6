"""Training mechanics on a tiny network: checkpoints, resume, export, registry checks."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor
from torch.nn.utils import parametrize

from streamcodec import cli
from streamcodec.errors import ModelError
from streamcodec.models.gc import GCConfig
from streamcodec.models.registry import Registry, register_index
from streamcodec.train import TrainConfig, load_config
from streamcodec.train.gc import Trainer

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
    from streamcodec.train import gpu as train_gpu
    from streamcodec.train.export import export_checkpoint

    packed = tmp_path / "packed.npz"
    figures = train_gpu.pack([data], packed, crop=32)
    assert figures["pictures"] >= 2 and packed.stat().st_size < 1e6
    crops = train_gpu.PackedCrops(packed, 32, seed=1).batch(3)
    assert crops.shape == (3, 32, 32, 3) and crops.dtype == torch.uint8

    run, config = tmp_path / "run", _config(tmp_path, 3)
    with open(Path(__file__).parents[1] / "configs" / "gc-gpu.toml", "rb") as f:
        recipe = tomllib.load(f)["train"]
    stabiliser = {k: recipe[k] for k in ("d_lr", "r1_gamma", "r1_every", "d_spectral_norm")}  # the recipe's own
    config.write_text(config.read_text() + "".join(f"{k} = {str(v).lower()}\n" for k, v in stabiliser.items()))
    args = ["--config", str(config), "--data", str(packed), "--out", str(run), "--device", "cpu"]
    assert train_gpu.main([*args, "--minutes", "5", "--warmup-fraction", "0"]) == 0
    state = torch.load(run / "model.pt", weights_only=False)
    assert state["step"] == 3 and "opt_g" not in state  # weights only: small enough to fetch from a GPU machine
    assert {k: state["train_cfg"][k] for k in stabiliser} == stabiliser
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [("r1" in entry) for entry in logged] == [True, False, False]  # GAN from step 0, R1 every 16th
    assert (run / "model_warmup.pt").exists()

    assert train_gpu.main([*args, "--minutes", "0"]) == 0  # an exhausted budget stops before the first step
    assert torch.load(run / "model.pt", weights_only=False)["step"] == 0

    export = tmp_path / "export"
    export_checkpoint(run / "model.pt", [data], "tiny", export)
    registry = Registry()
    register_index(registry, export / "registry.json")
    assert registry.load("tiny").config.channels == 4


# -- GAN stabiliser (issue 10): D's own rate, lazy R1 on real crops, spectral norm on D -------------

TOY = GCConfig(channels=4, enc_widths=(4, 4, 4, 4), gen_width=8, gen_blocks=1, up_widths=(4, 4, 4, 4), quality_channels=(2, 4))


class NoiseCrops:
    """Seeded random crops: the `Sampler` protocol without media files."""

    def __init__(self, crop: int = 32) -> None:
        self.rng, self.crop = np.random.default_rng(0), crop

    def batch(self, size: int) -> np.ndarray:
        return self.rng.integers(0, 256, (size, self.crop, self.crop, 3), dtype=np.uint8)


def _trainer(out: Path, **train: Any) -> Trainer:
    cfg = TrainConfig(**({"steps": 6, "batch": 2, "crop": 32, "warmup_steps": 1} | train))
    return Trainer("toy", TOY, cfg, [], out, sampler=NoiseCrops())


def _steps(trainer: Trainer, n: int) -> list[dict[str, float]]:
    logs = []
    for _ in range(n):
        logs.append(trainer.train_step())
        trainer.step += 1
    return logs


def _d_outputs(trainer: Trainer) -> list[Tensor]:
    trainer.disc.eval()  # no power iteration: the stored spectral-norm vectors are used as they are
    x = torch.linspace(0, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    with torch.no_grad():
        return [t for scale in trainer.disc(x) for t in scale]


def test_r1_penalty_is_logged_on_its_steps_only(tmp_path: Path) -> None:
    logs = _steps(_trainer(tmp_path, r1_gamma=1.0, r1_every=2), 6)
    assert [i for i, entry in enumerate(logs) if "r1" in entry] == [2, 4]  # GAN from step 1, every 2nd step
    assert all(np.isfinite(logs[i]["r1"]) and logs[i]["r1"] > 0 for i in (2, 4))
    assert all("d" in entry for entry in logs[1:])
    assert not any("r1" in entry for entry in _steps(_trainer(tmp_path / "off"), 4))  # r1_gamma 0: off


def test_spectral_norm_checkpoint_loads_with_identical_discriminator(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "a", d_spectral_norm=True)
    convs = [m for m in trainer.disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(parametrize.is_parametrized(c, "weight") for c in convs)
    _steps(trainer, 3)
    checkpoint = trainer.save()
    expected = _d_outputs(trainer)
    for option in (True, False):  # the checkpoint's option wins: its weights' keys depend on it
        loaded = _trainer(tmp_path / f"b{option}", d_spectral_norm=option)
        loaded.load(checkpoint)
        assert loaded.cfg.d_spectral_norm and loaded.step == 3
        assert all(torch.equal(a, b) for a, b in zip(expected, _d_outputs(loaded), strict=True))


def test_checkpoint_without_the_stabiliser_options_still_loads(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "a")
    _steps(trainer, 2)
    state = trainer.state()
    new = {"d_lr", "r1_gamma", "r1_every", "d_spectral_norm"}
    state["train_cfg"] = {k: v for k, v in state["train_cfg"].items() if k not in new}
    old = tmp_path / "old.pt"
    torch.save(state, old)
    loaded = _trainer(tmp_path / "b", d_spectral_norm=True, r1_gamma=1.0, r1_every=2)  # the recipe's options
    loaded.load(old)
    assert not loaded.disc.spectral_norm and loaded.step == 2
    assert all(torch.equal(a, b) for a, b in zip(_d_outputs(trainer), _d_outputs(loaded), strict=True))
    assert "r1" in _steps(loaded, 1)[0]  # and it trains on, with R1 at step 2


def test_d_lr_reaches_the_discriminator_optimizer(tmp_path: Path) -> None:
    from streamcodec.train import gpu as train_gpu

    trainer = _trainer(tmp_path, lr=2e-4, d_lr=5e-5)
    assert [g["lr"] for g in trainer.opt_d.param_groups] == [5e-5]
    assert [g["lr"] for g in trainer.opt_g.param_groups] == [2e-4]
    assert [g["lr"] for g in _trainer(tmp_path / "same", lr=3e-4).opt_d.param_groups] == [3e-4]  # unset: lr
    args = train_gpu.build_parser().parse_args(
        ["--config", "c", "--data", "d", "--out", "o", "--d-lr", "1e-5", "--r1-gamma", "0", "--no-d-spectral-norm"])
    assert train_gpu._overrides(args) == {"d_lr": 1e-5, "r1_gamma": 0.0, "d_spectral_norm": False}
    with pytest.raises(ValueError, match="r1_every must be >= 1"):
        TrainConfig(r1_every=0)
    _, _, recipe = load_config(Path(__file__).parents[1] / "configs" / "gc-gpu.toml")
    assert recipe.d_lr == recipe.lr / 4 and recipe.r1_gamma > 0 and recipe.d_spectral_norm  # type: ignore[union-attr]
    _, _, cpu = load_config(Path(__file__).parents[1] / "configs" / "gc-small.toml")
    assert (cpu.d_lr, cpu.r1_gamma, cpu.d_spectral_norm) == (None, 0.0, False)  # type: ignore[union-attr]
