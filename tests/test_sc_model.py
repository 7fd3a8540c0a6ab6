"""Selective mode's SC generator: shapes, zero-init equivalence, wrong labelers, training, the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamcodec import cli
from streamcodec.errors import ModelError
from streamcodec.models.registry import REGISTRY, Registry, register_index
from streamcodec.models.sc import SCConfig, SCGenerator
from streamcodec.selective.labels import ColourTextureLabeler
from streamcodec.selective.synth import SynthesisModel
from streamcodec.train.sc import base_gc_model

TINY_SC = """
name = "tiny-sc"
kind = "sc"
[model]
base = "gc-small"
feat_width = 4
feat_channels = 2
[train]
steps = {steps}
batch = 2
crop = 32
warmup_steps = 2
checkpoint_every = 2
log_every = 1
"""


def _sc_config(classes: int = 30) -> SCConfig:
    base = REGISTRY.entry("gc-small")
    return SCConfig(gc=REGISTRY.load("gc-small").config, classes=classes, base_model=base.model_id, feat_width=8, feat_channels=4)


def _q1_latent(x: torch.Tensor) -> torch.Tensor:
    gc = base_gc_model(_sc_config())
    with torch.no_grad():
        return gc.Q(gc.E(x)) * gc.keep_mask(2, x)


def test_untrained_sc_generator_with_zero_extra_weights_equals_gc_small_exactly() -> None:
    cfg = _sc_config()
    gc = base_gc_model(cfg)
    net = SCGenerator(cfg).eval()
    net.init_from_gc(gc.G)
    torch.manual_seed(0)
    w_hat = _q1_latent(torch.rand(1, 3, 48, 80))
    labels = torch.randint(0, 30, (1, 6, 10))
    with torch.no_grad():
        out = net(w_hat, labels)
        assert out.shape == (1, 3, 48, 80)
        assert torch.equal(out, gc.G(w_hat))
        assert net.F(torch.zeros(1, 30, 6, 10)).shape == (1, 4, 3, 5)  # F lands on the latent grid


def test_label_ids_beyond_the_trained_class_count_are_refused() -> None:
    net = SCGenerator(_sc_config(classes=19)).eval()
    with pytest.raises(ModelError, match=r"label id 25 is out of range .* trained on 19 classes"):
        net(torch.zeros(1, 16, 2, 2), torch.full((1, 4, 4), 25))
    with pytest.raises(ModelError, match=r"want labels \(1, 4, 4\)"):
        net(torch.zeros(1, 16, 2, 2), torch.zeros((1, 2, 2), dtype=torch.long))


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    ramp = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    Image.fromarray(ramp).save(folder / "b.png")
    return folder


@pytest.fixture()
def trained(data: Path, tmp_path: Path) -> Path:
    """A tiny SC model trained 2 + 2 steps (interrupted by config, then resumed) and exported."""
    run, export = tmp_path / "run", tmp_path / "export"
    args = ["train", "--data", str(data), "--out", str(run), "--export-to", str(export), "--threads", "1"]
    for steps, extra in ((2, []), (4, ["--resume", str(run / "checkpoint.pt")])):
        config = tmp_path / f"sc{steps}.toml"
        config.write_text(TINY_SC.format(steps=steps))
        assert cli.main([*args, "--config", str(config), *extra]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4 and state["kind"] == "sc"
    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]  # continued, not restarted
    return export


def test_sc_training_checkpoints_resumes_and_exports_a_verified_model(trained: Path) -> None:
    index = json.loads((trained / "registry.json").read_text())
    assert index["tiny-sc"]["kind"] == "sc" and index["tiny-sc"]["model_id"].startswith("sc-")
    assert index["tiny-sc"]["card"]["trained_steps"] == 4
    with np.load(trained / "tiny-sc.npz") as npz:
        assert {npz[k].dtype for k in npz.files if k.startswith("param/")} == {np.dtype(np.float16)}
    registry = Registry()
    register_index(registry, trained / "registry.json")
    with pytest.raises(ModelError, match="selective-mode synthesis model"):
        registry.load("tiny-sc")  # not a GC codec model

    model = SynthesisModel("tiny-sc", registry)
    frame = (np.arange(40 * 72 * 3) % 251).astype(np.uint8).reshape(40, 72, 3)
    labels = ColourTextureLabeler().labels(frame)  # (5, 9): the uncoded frame's grid
    w_hat = _q1_latent(torch.rand(1, 3, 48, 80)).numpy()
    first = model.synthesize(w_hat, labels)
    assert first.shape == (48, 80, 3) and first.dtype == np.uint8
    assert np.array_equal(first, SynthesisModel("tiny-sc", registry).synthesize(w_hat, labels))  # deterministic

    with pytest.raises(ModelError, match=r"trained on labeler colour-texture-v1-s8 \(30 classes\), not onnx-1234-s8 \(19"):
        model.check_labeler("onnx-1234-s8", 19)
    model.check_labeler("colour-texture-v1-s8", 30)


def test_damaged_sc_weights_are_refused(trained: Path) -> None:
    weights = trained / "tiny-sc.npz"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    registry = Registry()
    register_index(registry, trained / "registry.json")
    with pytest.raises(ModelError, match="sha256"):
        SynthesisModel("tiny-sc", registry)


def test_a_gc_model_is_not_a_synthesis_model() -> None:
    with pytest.raises(ModelError, match="'gc-small' is a gc model, not a selective-mode synthesis"):
        SynthesisModel("gc-small")


def test_shipped_sc_small_reads_gc_small_latents_and_builtin_labels() -> None:
    model = SynthesisModel()  # sc-small, sha256 and content id checked
    assert model.model_id.startswith("sc-") and model.classes == 30
    assert model.config.base_model == REGISTRY.entry("gc-small").model_id and model.config.keep == 2
    labeler = ColourTextureLabeler()
    model.check_labeler(labeler.name, len(labeler.classes))
    frame = np.zeros((40, 64, 3), dtype=np.uint8)
    frame[:, 32:] = (40, 160, 60)
    w_hat = _q1_latent(torch.from_numpy(np.pad(frame, ((0, 8), (0, 0), (0, 0)), mode="edge")).permute(2, 0, 1)[None] / 255.0)
    out = model.synthesize(w_hat.numpy(), labeler.labels(frame))
    assert out.shape == (48, 64, 3)
    assert out[:40, 40:, 1].mean() > out[:40, :24, 1].mean() + 50  # the green half comes out green
    symbols = (w_hat[0, :2] + 2).round().long().numpy()  # centers -2 … 2 → indices 0 … 4
    assert np.array_equal(model.synthesize_symbols(symbols, labeler.labels(frame)), out)
