"""Progressive mode's GPU recipe (train/progressive_gpu.py, configs/progressive-gpu.toml), run here on the CPU.

It must run on a lent GPU without a rehearsal there: the same code path is taken on the CPU for a few
steps from a packed set, and the weights it leaves register and load as a progressive model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from streamcodec.progressive.net import ProgressiveConfig
from streamcodec.progressive.weights import load_progressive_weights
from streamcodec.train import progressive_gpu
from streamcodec.train.export import export_checkpoint
from streamcodec.train.gpu import pack
from streamcodec.train.kinds import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "progressive-gpu.toml"


def test_the_gpu_profile_is_progressive_small_wider() -> None:
    name, model_cfg, train_cfg = load_config(CONFIG)
    assert name == "progressive-gpu" and isinstance(model_cfg, ProgressiveConfig) and train_cfg.crop == 128
    assert model_cfg.bits == 32 and model_cfg.iterations == 8
    assert model_cfg.enc_widths == (64, 128, 256, 256) and model_cfg.dec_widths == (256, 256, 128, 64)


def test_a_short_run_from_a_packed_set_leaves_weights_that_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    media = tmp_path / "media"
    media.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(media / "astronaut.png")
    Image.fromarray(skimage_data.coffee()).save(media / "coffee.png")
    packed = tmp_path / "packed.npz"
    assert pack([media], packed, crop=32)["pictures"] > 0
    out = tmp_path / "run"
    argv = ["--config", str(CONFIG), "--data", str(packed), "--out", str(out), "--device", "cpu"]
    assert progressive_gpu.main([*argv, "--steps", "2", "--batch", "1", "--crop", "32", "--minutes", "5"]) == 0
    assert '"steps": 2' in capsys.readouterr().out
    registered = export_checkpoint(out / "model.pt", [media], "progressive-gpu", tmp_path / "weights")
    net = load_progressive_weights(Path(registered["path"]), registered["model_id"])
    assert net.cfg == load_config(CONFIG)[1]
    assert registered["model_id"].startswith("pg-") and all(bool(p.detach().isfinite().all()) for p in net.parameters())
