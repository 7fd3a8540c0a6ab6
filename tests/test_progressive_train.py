"""Progressive training's options: the loss ("l1" / "ms-ssim"), the differentiable MS-SSIM, and `init`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from streamcodec.metrics import ms_ssim
from streamcodec.progressive import load_codec
from streamcodec.progressive.net import ProgressiveConfig, ProgressiveNet
from streamcodec.progressive.weights import save_progressive_weights
from streamcodec.train.ms_ssim import ms_ssim_torch
from streamcodec.train.progressive import (
    ProgressiveTrainConfig,
    ProgressiveTrainer,
    initial_weights,
    l1_loss,
    parse_config,
)

TINY = ProgressiveConfig(bits=4, iterations=2, enc_widths=(4, 8, 8, 8), dec_widths=(8, 8, 8, 4))


def _photo(size: int) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[60 : 60 + size, 120 : 120 + size])


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255


class _Crops:
    """Crops of one photograph, as the trainer's sampler gives them."""

    def __init__(self, crop: int) -> None:
        self.rng = np.random.default_rng(0)
        self.photo, self.crop = _photo(256), crop

    def batch(self, size: int) -> np.ndarray:
        ys, xs = self.rng.integers(0, 256 - self.crop, size=(2, size))
        return np.stack([self.photo[y : y + self.crop, x : x + self.crop] for y, x in zip(ys, xs, strict=True)])


@pytest.mark.parametrize("size", [192, 128, 64, 40])
def test_ms_ssim_torch_agrees_with_the_evaluation_metric(size: int) -> None:
    reference = _photo(size)
    blurred = np.asarray(Image.fromarray(reference).resize((size // 4, size // 4)).resize((size, size)))
    noisy = np.clip(reference + np.random.default_rng(1).normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
    for other in (blurred, noisy):
        expected = ms_ssim(reference, other)
        assert ms_ssim_torch(_tensor(reference), _tensor(other)).item() == pytest.approx(expected, abs=1e-4)


def test_ms_ssim_torch_is_one_for_identical_pictures_and_has_finite_gradients() -> None:
    x = _tensor(_photo(64))
    assert ms_ssim_torch(x, x).item() == pytest.approx(1.0, abs=1e-5)
    y = torch.rand_like(x).requires_grad_(True)  # unrelated noise: some scales' cs go negative
    ms_ssim_torch(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_ms_ssim_torch_rejects_mismatched_or_tiny_pictures() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ms_ssim_torch(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 16))
    with pytest.raises(ValueError, match="11x11"):
        ms_ssim_torch(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_loss_option_parses_and_defaults_to_l1(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    assert parse_config({"train": {}}, path)[2].loss == "l1"
    cfg = parse_config({"train": {"loss": "ms-ssim", "l1_weight": 0.05, "init": "progressive-small"}}, path)[2]
    assert (cfg.loss, cfg.l1_weight, cfg.init) == ("ms-ssim", 0.05, "progressive-small")


@pytest.mark.parametrize(("train", "message"), [({"loss": "ssim"}, "unknown loss 'ssim'"), ({"l1_weight": -1}, "l1_weight")])
def test_config_refuses_an_unknown_loss_or_a_negative_l1_weight(tmp_path: Path, train: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_config({"train": train}, tmp_path / "bad.toml")
    assert "bad.toml" in str(error.value)


def test_l1_loss_is_the_mean_over_iterations_of_the_residuals_l1() -> None:
    x = torch.rand(2, 3, 16, 16)
    pictures = [torch.rand_like(x) for _ in range(3)]
    loss, logs = l1_loss(x, pictures, 123.0)
    expected = np.mean([float((x - p).abs().mean()) for p in pictures])
    assert loss.item() == pytest.approx(expected) and logs["l1_first"] == pytest.approx(float((x - pictures[0]).abs().mean()))


def test_a_training_step_with_the_ms_ssim_loss_runs_and_moves_the_weights(tmp_path: Path) -> None:
    cfg = ProgressiveTrainConfig(batch=2, crop=48, loss="ms-ssim", lr=1e-3)
    trainer = ProgressiveTrainer("tiny", TINY, cfg, [], tmp_path, sampler=_Crops(48))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    logs = [trainer.train_step() for _ in range(3)][-1]
    assert all(np.isfinite(v) for v in logs.values())
    assert 0 < logs["msssim_first"] <= 1 and 0 < logs["msssim_last"] <= 1
    assert logs["loss"] == pytest.approx(np.mean([1 - logs["msssim_first"], 1 - logs["msssim_last"]]) + 0.1 * np.mean(
        [logs["l1_first"], logs["l1_last"]]), rel=1e-5)  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_init_starts_from_a_registered_model_even_over_more_iterations(tmp_path: Path) -> None:
    shipped = load_codec("progressive-small").net
    model_cfg = ProgressiveConfig(**{**shipped.cfg.__dict__, "iterations": shipped.cfg.iterations + 1})
    state = initial_weights("progressive-small", model_cfg)
    assert all(torch.equal(state[k], v) for k, v in shipped.state_dict().items())


def test_init_from_an_npz_loads_it_and_other_sizes_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(3)
    path = tmp_path / "start.npz"
    save_progressive_weights(path, ProgressiveNet(TINY))
    cfg = ProgressiveTrainConfig(batch=1, crop=32, init=str(path))
    trainer = ProgressiveTrainer("tiny", TINY, cfg, [], tmp_path, sampler=_Crops(32))
    saved = initial_weights(str(path), TINY)
    assert all(torch.equal(saved[k], v) for k, v in trainer.model.state_dict().items())
    wider = ProgressiveConfig(bits=4, iterations=2, enc_widths=(4, 8, 8, 16), dec_widths=(8, 8, 8, 4))
    with pytest.raises(ValueError, match="sizes"):
        initial_weights(str(path), wider)
