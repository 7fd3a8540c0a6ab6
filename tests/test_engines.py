"""Engines: the same symbols from every engine, manifests that refuse stale artifacts, TensorRT's export path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamcodec import cli
from streamcodec.codec import Decoder, Encoder
from streamcodec.engines import OnnxRuntimeBackend, create_backend, engines_dir, export_onnx
from streamcodec.engines.base import Graph, TorchGraphs, build_torch_model
from streamcodec.engines.manifest import ArtifactSpec, stale_reason
from streamcodec.engines.tensorrt import export_program, input_shapes
from streamcodec.io.demux import first_frames
from streamcodec.models.registry import DEFAULT_MODEL, REGISTRY, file_sha256

from .conftest import ffmpeg

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "bbb_640x360.mp4"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Four real frames of the sample at an odd size (padded to 112x80 inside the codec)."""
    return [rgb[:75, :101] for rgb in first_frames(SAMPLE, 4, 160, 120)]


def _stream(frames: list[np.ndarray], engine: str) -> tuple[Encoder, list[bytes]]:
    encoder = Encoder(101, 75, mode="gc", gop=2, backend=create_backend(engine, REGISTRY.load(DEFAULT_MODEL)))
    return encoder, [encoder.encode(rgb).packet for rgb in frames]


def _decode(encoder: Encoder, packets: list[bytes], engine: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    decoder = Decoder(encoder.config, backend=create_backend(engine, REGISTRY.load(DEFAULT_MODEL)))
    symbols = [decoder.decode_symbols(p)[0] for p in packets]
    decoder = Decoder(encoder.config, backend=decoder.impl.backend)
    return symbols, [decoder.decode(p) for p in packets]


def test_torch_and_onnxruntime_encode_identical_packets_and_cross_decode_within_one_level(frames: list[np.ndarray]) -> None:
    encoder, by_torch = _stream(frames, "torch")
    _, by_onnx = _stream(frames, "onnxruntime")
    assert by_torch == by_onnx  # E's symbols agree, so the packets are byte-identical
    symbols_t, pixels_t = _decode(encoder, by_torch, "torch")
    symbols_o, pixels_o = _decode(encoder, by_torch, "onnxruntime")
    for a, b in zip(symbols_t, symbols_o, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(pixels_t, pixels_o, strict=True):
        assert a.shape == (75, 101, 3) and np.abs(a.astype(int) - b).max() <= 1


def test_compile_encodes_the_same_packets_and_decodes_within_one_level_of_onnxruntime(frames: list[np.ndarray]) -> None:
    encoder, by_compile = _stream(frames[:2], "compile")
    _, by_onnx = _stream(frames[:2], "onnxruntime")
    assert by_compile == by_onnx
    symbols_c, pixels_c = _decode(encoder, by_onnx, "compile")
    symbols_o, pixels_o = _decode(encoder, by_onnx, "onnxruntime")
    assert all(np.array_equal(a, b) for a, b in zip(symbols_c, symbols_o, strict=True))
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(pixels_c, pixels_o, strict=True))


def _copy_engines(tmp_path: Path) -> Path:
    """The session's prebuilt ONNX artifacts and manifests in a folder of the test's own."""
    folder = tmp_path / "engines"
    folder.mkdir()
    for path in export_onnx(REGISTRY.load(DEFAULT_MODEL), engines_dir()).values():
        for source in (path, path.with_name(path.name + ".json")):
            shutil.copy2(source, folder / source.name)
    return folder


def test_a_stale_manifest_is_listed_as_stale_and_rebuilt_never_used(tmp_path: Path) -> None:
    folder = _copy_engines(tmp_path)
    env = os.environ | {"STREAMCODEC_ENGINES": str(folder)}
    analyze = next(folder.glob("*-analyze-*.onnx"))
    synthesize = next(folder.glob("*-synthesize-*.onnx"))
    manifest = json.loads(analyze.with_name(analyze.name + ".json").read_text())
    edited = manifest | {"libraries": manifest["libraries"] | {"onnxruntime": "0.0.1"}}
    analyze.with_name(analyze.name + ".json").write_text(json.dumps(edited))
    analyze.write_bytes(b"not an onnx file")  # were the stale artifact used, the session would fail
    before = synthesize.stat().st_mtime_ns
    listing = run_cli("engines", "list", env=env)
    assert listing.returncode == 0
    assert f"{analyze.name}\tgc-small\tonnxruntime\tfp32\tmax 4096x4096\tstale (libraries" in listing.stdout
    assert f"{synthesize.name}\tgc-small\tonnxruntime\tfp32\tmax 4096x4096\tcurrent" in listing.stdout
    built = run_cli("engines", "build", "--engine", "onnxruntime", env=env)
    assert built.returncode == 0, built.stderr
    lines = built.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamcodec: rebuilding stale (libraries ") and analyze.name in lines[0]
    rebuilt = json.loads(analyze.with_name(analyze.name + ".json").read_text())
    assert rebuilt == manifest | {"artifact": analyze.name, "artifact_sha256": file_sha256(analyze)}
    assert analyze.read_bytes()[:16] != b"not an onnx file"[:16]
    assert synthesize.stat().st_mtime_ns == before  # the current one is reused, not rebuilt
    spec = ArtifactSpec(REGISTRY.entry(DEFAULT_MODEL), "analyze", "onnxruntime", "fp32", (4096, 4096))
    assert stale_reason(analyze, spec) is None


def test_an_artifact_of_other_weights_is_rebuilt(tmp_path: Path) -> None:
    folder = _copy_engines(tmp_path)
    synthesize = next(folder.glob("*-synthesize-*.onnx"))
    manifest_file = synthesize.with_name(synthesize.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps(manifest | {"weights_sha256": "0" * 64}))
    spec = ArtifactSpec(REGISTRY.entry(DEFAULT_MODEL), "synthesize", "onnxruntime", "fp32", (4096, 4096))
    assert (stale_reason(synthesize, spec) or "").startswith("weights_sha256 ")
    export_onnx(REGISTRY.load(DEFAULT_MODEL), folder)
    assert stale_reason(synthesize, spec) is None
    assert json.loads(manifest_file.read_text())["weights_sha256"] == REGISTRY.entry(DEFAULT_MODEL).sha256


def test_a_damaged_artifact_beside_an_intact_manifest_is_rebuilt_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_engines(tmp_path)
    synthesize = next(folder.glob("*-synthesize-*.onnx"))
    manifest = json.loads(synthesize.with_name(synthesize.name + ".json").read_text())
    assert manifest["artifact_sha256"] == file_sha256(synthesize)
    data = bytearray(synthesize.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\xff" * 64  # same size, same manifest: only the bytes say it
    synthesize.write_bytes(bytes(data))
    listing = run_cli("engines", "list", env=os.environ | {"STREAMCODEC_ENGINES": str(folder)})
    assert f"{synthesize.name}\tgc-small\tonnxruntime\tfp32\tmax 4096x4096\tstale (artifact sha256 " in listing.stdout
    capsys.readouterr()
    rebuilt = OnnxRuntimeBackend(REGISTRY.load(DEFAULT_MODEL), folder)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("streamcodec: rebuilding stale (artifact sha256 "), err
    assert "the file is damaged" in err[0] and synthesize.name in err[0]
    assert file_sha256(synthesize) == json.loads(synthesize.with_name(synthesize.name + ".json").read_text())["artifact_sha256"]
    frame = rebuilt.synthesize(np.zeros((1, 16, 2, 3), dtype=np.float32))
    assert frame.shape == (1, 32, 48, 3)


def test_engines_are_cached_in_the_users_cache_folder_never_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMCODEC_ENGINES")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert engines_dir() == tmp_path / "home" / ".cache" / "streamcodec" / "engines"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG spec says
    assert engines_dir() == tmp_path / "home" / ".cache" / "streamcodec" / "engines"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert engines_dir() == tmp_path / "cache" / "streamcodec" / "engines"
    listing = run_cli("engines", "list", env=dict(os.environ))
    assert listing.returncode == 0 and f"artifacts in {tmp_path / 'cache' / 'streamcodec' / 'engines'}: none" in listing.stdout
    monkeypatch.setenv("STREAMCODEC_ENGINES", str(tmp_path / "mine"))
    assert engines_dir() == tmp_path / "mine"


def test_tensorrt_export_has_symbolic_height_and_width_and_matches_eager_at_two_sizes() -> None:
    model = REGISTRY.load(DEFAULT_MODEL)
    graphs = TorchGraphs(build_torch_model(model))
    rng = np.random.default_rng(1)
    for which in ("analyze", "synthesize"):
        exported = export_program(model, which, (1920, 1088))
        shape = exported.graph_module.graph.find_nodes(op="placeholder")[-1].meta["val"].shape
        assert [isinstance(d, torch.SymInt) for d in shape] == (
            [False, True, True, False] if which == "analyze" else [False, False, True, True]
        )
        module = exported.module()
        for height, width in ((48, 64), (96, 160)):
            if which == "analyze":
                x = torch.from_numpy(rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8))
            else:
                x = torch.from_numpy(rng.choice(np.asarray(model.config.centers, np.float32), (1, 16, height // 16, width // 16)))
            with torch.inference_mode():
                got, want = module(x), Graph(graphs, which)(x)
            assert got.shape == want.shape and torch.equal(got, want)


def test_tensorrt_input_shapes_span_16x16_to_the_maximum_with_720p_as_optimum() -> None:
    model = REGISTRY.load(DEFAULT_MODEL)
    assert input_shapes(model, "analyze", (1920, 1088)) == {
        "min": (1, 16, 16, 3),
        "opt": (1, 720, 1280, 3),
        "max": (1, 1088, 1920, 3),
    }
    assert input_shapes(model, "synthesize", (640, 480))["max"] == (1, 16, 30, 40)


def _tiny_clip(tmp_path: Path) -> Path:
    source = tmp_path / "in.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-frames:v", "2", "-c:v", "ffv1", str(source))
    return source


def test_tensorrt_without_torch_tensorrt_says_how_to_install_it_in_one_line(tmp_path: Path) -> None:
    source = _tiny_clip(tmp_path)
    result = run_cli("encode", str(source), "--mode", "gc", "--engine", "tensorrt", "--no-preview")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "streamcodec encode: error: engine 'tensorrt' needs an NVIDIA GPU and `pip install streamcodec[tensorrt]` "
        "(torch-tensorrt); this machine has no CUDA GPU"
    ]
    assert not (tmp_path / "in.sc.mkv").exists() and not (tmp_path / "in.mkv.sc.mkv").exists()


def test_auto_says_which_engine_it_chose_and_backend_still_works_as_an_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _tiny_clip(tmp_path)
    auto = run_cli("encode", str(source), "-o", str(tmp_path / "a.mkv"), "--mode", "gc", "--no-preview")
    assert auto.returncode == 0 and auto.stderr == "streamcodec: engine auto → onnxruntime (ONNX Runtime on the CPU)\n"
    assert (
        cli.main(["encode", str(source), "-o", str(tmp_path / "b.mkv"), "--mode", "gc", "--no-preview", "--backend", "torch"])
        == 0
    )
    assert cli.main(["decode", str(tmp_path / "b.mkv"), "-o", str(tmp_path / "b.y4m"), "--engine", "onnxruntime"]) == 0
    assert capsys.readouterr().err == "" and (tmp_path / "b.y4m").exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["decode", str(tmp_path / "b.mkv"), "--engine", "tpu"])
    assert exit_info.value.code == 2 and "unknown engine 'tpu'" in capsys.readouterr().err


def test_sc_generator_on_onnxruntime_is_within_one_level_of_torch() -> None:
    from streamcodec.selective.synth import SynthesisModel

    torch_model, onnx_model = SynthesisModel("sc-small"), SynthesisModel("sc-small", engine="onnxruntime")
    rng = np.random.default_rng(2)
    centers = np.asarray(torch_model.config.gc.centers, dtype=np.float32)
    for h, w in ((3, 4), (5, 7)):
        w_hat = centers[rng.integers(0, len(centers), (1, 16, h, w))]
        labels = rng.integers(0, torch_model.classes, (2 * h - 1, 2 * w), dtype=np.uint8)  # padded to the grid inside
        a, b = torch_model.synthesize(w_hat, labels), onnx_model.synthesize(w_hat, labels)
        assert a.shape == (16 * h, 16 * w, 3) and np.abs(a.astype(int) - b).max() <= 1


def test_bench_reports_speed_time_shares_and_x264_x265_as_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--engine", "onnxruntime", "--sizes", "64x48,32x32", "--frames", "3", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["engine"] == "onnxruntime" and report["mode"] == "gc"
    assert [row["size"] for row in report["rows"]] == ["32x32", "64x48"]
    for row in report["rows"]:
        assert row["frames"] == 3 and row["encode_fps"] > 0 and row["decode_fps"] > 0
        assert row["x264_encode_fps"] > 0 and row["x265_encode_fps"] > 0 and row["peak_rss_mb"] > 50
        assert set(row["ms_per_frame"]) == {"demux", "encode_network", "encode_other", "decode_network", "decode_other", "mux"}
    assert result.stdout.splitlines()[1].split() == [
        "size",
        "enc",
        "fps",
        "dec",
        "fps",
        "x264",
        "x265",
        "net",
        "enc%",
        "net",
        "dec%",
        "demux",
        "ms",
        "mux",
        "ms",
        "RSS",
        "MB",
    ]
    assert [line.split()[0] for line in result.stdout.splitlines()[2:]] == ["32x32", "64x48"]
