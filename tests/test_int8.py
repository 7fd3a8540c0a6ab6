"""onnxruntime@int8: G's exact sub-pixel rewrite, the same stream as fp32, pixels within the stated bound."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from streamcodec import cli
from streamcodec.codec import Decoder, Encoder
from streamcodec.engines import create_backend, engines_dir, export_onnx
from streamcodec.engines import int8 as int8_module
from streamcodec.engines.base import TorchGraphs, build_torch_model
from streamcodec.engines.int8 import SubPixelUp, calibration_inputs, subpixel_graphs
from streamcodec.engines.manifest import ArtifactSpec, stale_reason
from streamcodec.errors import BackendUnavailableError
from streamcodec.io.demux import first_frames
from streamcodec.metrics import psnr
from streamcodec.models.registry import DEFAULT_MODEL, REGISTRY

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "bbb_640x360.mp4"


@pytest.mark.parametrize(("cin", "cout", "height", "width"), [(5, 3, 7, 9), (16, 8, 4, 4), (3, 6, 1, 1)])
def test_subpixel_rewrite_equals_the_transposed_convolution(cin: int, cout: int, height: int, width: int) -> None:
    torch.manual_seed(cin)
    up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    x = torch.randn(2, cin, height, width)
    with torch.no_grad():
        want, got = up(x), SubPixelUp(up)(x)
    assert got.shape == want.shape == (2, cout, 2 * height, 2 * width)
    assert torch.allclose(got, want, atol=1e-5)


def test_subpixel_rewrite_refuses_other_transposed_convolutions() -> None:
    with pytest.raises(ValueError, match="k=4, s=2, p=1"):
        SubPixelUp(nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1))


def test_the_rewritten_generator_matches_the_shipped_one() -> None:
    model = REGISTRY.load(DEFAULT_MODEL)
    inputs = next(calibration_inputs(model))
    original, rewritten = TorchGraphs(build_torch_model(model)), subpixel_graphs(model)
    with torch.no_grad():
        a = original.synthesize(torch.from_numpy(inputs)).numpy().astype(int)
        b = rewritten.synthesize(torch.from_numpy(inputs)).numpy().astype(int)
    assert np.abs(a - b).max() <= 1


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return first_frames(SAMPLE, 4, 160, 112)


def test_int8_writes_the_same_stream_and_decodes_the_same_symbols_close_to_fp32(frames: list[np.ndarray]) -> None:
    model = REGISTRY.load(DEFAULT_MODEL)
    packets = {}
    for spec in ("torch", "onnxruntime@int8"):
        encoder = Encoder(160, 112, mode="gc", gop=2, backend=create_backend(spec, model))
        packets[spec] = [encoder.encode(rgb).packet for rgb in frames]
    assert packets["torch"] == packets["onnxruntime@int8"]  # E stays fp32: byte-identical streams
    decoded = {}
    for spec in ("onnxruntime", "onnxruntime@int8"):
        backend = create_backend(spec, model)
        decoder = Decoder(encoder.config, backend=backend)
        symbols = [decoder.decode_symbols(p)[0] for p in packets["torch"]]
        decoder = Decoder(encoder.config, backend=backend)
        decoded[spec] = (symbols, [decoder.decode(p) for p in packets["torch"]])
    (sym32, pix32), (sym8, pix8) = decoded["onnxruntime"], decoded["onnxruntime@int8"]
    assert all(np.array_equal(a, b) for a, b in zip(sym32, sym8, strict=True))
    for a, b, source in zip(pix32, pix8, frames, strict=True):
        assert psnr(b, a) >= 38.0  # README, Engines: about 43 dB at 640x480
        assert psnr(b, source) >= psnr(a, source) - 0.2


def test_int8_manifest_names_its_calibration_and_kernels_and_a_changed_set_is_stale(tmp_path: Path) -> None:
    model = REGISTRY.load(DEFAULT_MODEL)
    path = export_onnx(model, engines_dir(), "int8")["synthesize"]
    folder = tmp_path / "engines"
    folder.mkdir()
    for source in (path, path.with_name(path.name + ".json")):
        shutil.copy2(source, folder / source.name)
    manifest = json.loads((folder / (path.name + ".json")).read_text())
    assert manifest["precision"] == "int8" and manifest["int8_kernels"] == int8_module.int8_kernels()
    assert manifest["calibration_sha256"] == int8_module.calibration_sha256(model.entry)
    spec = ArtifactSpec(model.entry, "synthesize", "onnxruntime", "int8", (4096, 4096))
    assert stale_reason(folder / path.name, spec) is None
    (folder / (path.name + ".json")).write_text(json.dumps(manifest | {"calibration_sha256": "0" * 64}))
    assert (stale_reason(folder / path.name, spec) or "").startswith("calibration_sha256 ")


def test_int8_without_a_calibration_set_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(int8_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(BackendUnavailableError, match=r"scripts/data/make_calibration\.py --model gc-small"):
        next(calibration_inputs(REGISTRY.load(DEFAULT_MODEL)))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("torch@int8", "int8 runs on engine onnxruntime"), ("onnxruntime@fp16", "runs fp32 or int8 on the CPU")],
)
def test_a_precision_an_engine_lacks_is_refused_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(BackendUnavailableError, match=message):
        create_backend(spec, REGISTRY.load(DEFAULT_MODEL))


def test_an_unknown_precision_in_engine_is_an_argument_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["decode", str(tmp_path / "x.mkv"), "--engine", "onnxruntime@int4"])
    assert exit_info.value.code == 2
    assert "unknown precision 'int4' in 'onnxruntime@int4'" in capsys.readouterr().err
