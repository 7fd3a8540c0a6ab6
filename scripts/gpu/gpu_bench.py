#!/usr/bin/env python3
"""GC networks and codec on a CUDA GPU: speed per engine variant, FLOPs, and CUDA ↔ CPU agreement.

    python scripts/gpu/gpu_bench.py --frames data/bench_frames.npz --out OUT/gpu_bench.json [--weights gc-gpu=OUT/model.pt]

For each profile (the shipped gc-small, the gc-gpu architecture with its trained or random
weights) it times E+Q ("analyze", frames → symbols) and G ("synthesize", symbols → frames) at
1080p in several variants: eager float32, eager bf16 autocast, torch.compile bf16, and
torch.compile bf16 with CUDA graphs, at batch 1 and batch 8 (median of CUDA-event timings after
warm-up). It counts the FLOPs per frame (torch.utils.flop_counter) and sets the best time beside
the GPU's measured bf16 matrix rate. Then it runs the whole GC codec (entropy coding on the CPU
included) at 1080p, one frame at a time and in batches with entropy coding on every core
(encode_batch / decode_many, streamcodec/gc/parallel.py), and checks that CUDA and CPU agree:
symbols of E, pixels of G, and a stream encoded on the CPU decoded on CUDA. libx265 at 1080p
(the fidelity layer of selective mode) is timed on the same frames when PyAV is importable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from streamcodec.models.gc import GCConfig, GCModel
from streamcodec.train.gc import load_config

Graph = Callable[[torch.Tensor], torch.Tensor]


def cuda_ms(fn: Callable[[], Any], iters: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of `fn` by CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def load_profile(name: str, weights: Path | None) -> GCModel:
    if name == "gc-small":
        from streamcodec.engines import build_torch_model
        from streamcodec.models.registry import REGISTRY

        return build_torch_model(REGISTRY.load("gc-small")).float()
    _, cfg, _ = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.toml")
    assert isinstance(cfg, GCConfig)
    net = GCModel(cfg)
    if weights is not None:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=False)["model"])
    return net.eval()


def graphs(net: GCModel) -> tuple[Graph, Graph]:
    """analyze: uint8 (B,H,W,3) → uint8 symbols; synthesize: float w_hat → uint8 (B,H,W,3)."""

    def analyze(rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=torch.channels_last)
        return net.Q.symbols(net.E(x).float()).to(torch.uint8)

    def synthesize(w_hat: torch.Tensor) -> torch.Tensor:
        x_hat = net.G(w_hat.contiguous(memory_format=torch.channels_last)).float()
        return x_hat.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    return analyze, synthesize


def flops_per_frame(net: GCModel, h: int, w: int) -> dict[str, float]:
    analyze, synthesize = graphs(net)
    device = next(net.parameters()).device
    out = {}
    for which, fn, x in (
        ("analyze", analyze, torch.zeros(1, h, w, 3, dtype=torch.uint8, device=device)),
        ("synthesize", synthesize, torch.zeros(1, net.cfg.channels, h // 16, w // 16, device=device)),
    ):
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            fn(x)
        out[which] = counter.get_total_flops() / 1e9
    return out


def variant(fn: Graph, kind: str) -> Graph:
    bf16 = kind != "eager-fp32"

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return fn(x)

    if kind == "compile-bf16":
        return torch.compile(run, mode="max-autotune-no-cudagraphs")
    if kind == "compile-bf16-cudagraphs":
        return torch.compile(run, mode="max-autotune")
    return run


def time_variants(net: GCModel, frames: torch.Tensor, batches: list[int]) -> list[dict[str, Any]]:
    analyze, synthesize = graphs(net)
    rows = []
    for kind in ("eager-fp32", "eager-bf16", "compile-bf16", "compile-bf16-cudagraphs"):
        torch._dynamo.reset()
        fa, fs = variant(analyze, kind), variant(synthesize, kind)
        for batch in batches:
            rgb = frames[:1].expand(batch, -1, -1, -1).contiguous()
            started = time.time()
            with torch.inference_mode():
                sym = fa(rgb)
                w_hat = (sym.float() - (net.cfg.levels - 1) / 2).clone()
                ms_a = cuda_ms(lambda f=fa, x=rgb: f(x))
                ms_s = cuda_ms(lambda f=fs, x=w_hat: f(x))
            rows.append({"variant": kind, "batch": batch, "analyze_fps": round(batch * 1000 / ms_a, 1),
                         "synthesize_fps": round(batch * 1000 / ms_s, 1), "analyze_ms": round(ms_a, 3),
                         "synthesize_ms": round(ms_s, 3), "setup_s": round(time.time() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def matmul_tflops() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = cuda_ms(lambda: a @ b, iters=20)
    return 2 * 8192**3 / (ms / 1000) / 1e12


def agreement(net: GCModel, frames: torch.Tensor) -> dict[str, float]:
    """E's symbols and G's pixels on CUDA (fp32 and bf16) against the CPU in float32."""
    cpu = GCModel(net.cfg)
    cpu.load_state_dict({k: v.cpu() for k, v in net.state_dict().items()})
    cpu.eval()
    ana_cpu, syn_cpu = graphs(cpu)
    ana_gpu, syn_gpu = graphs(net)
    out: dict[str, float] = {}
    with torch.inference_mode():
        sym_cpu = ana_cpu(frames.cpu())
        w_hat = sym_cpu.float() - (net.cfg.levels - 1) / 2
        pix_cpu = syn_cpu(w_hat).int()
        for bf16 in (False, True):
            tag = "bf16" if bf16 else "fp32"
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                sym = ana_gpu(frames.cuda()).cpu()
                pix = syn_gpu(w_hat.cuda()).cpu().int()
            out[f"symbols_equal_{tag}"] = float((sym == sym_cpu).float().mean())
            out[f"pixels_max_abs_diff_{tag}"] = float((pix - pix_cpu).abs().max())
            out[f"pixels_mean_abs_diff_{tag}"] = float((pix - pix_cpu).abs().float().mean())
    return out


def codec_run(frames: np.ndarray, backend: str, n: int) -> dict[str, Any]:
    """The whole GC codec, entropy coding included, one frame at a time; and CPU→CUDA decode."""
    from streamcodec.codec import Decoder, Encoder

    h, w = frames.shape[1:3]
    enc = Encoder(w, h, mode="gc", backend=backend)
    warm = [enc.encode(frames[i % len(frames)]).packet for i in range(3)]  # compile, allocate
    started = time.perf_counter()
    packets = [enc.encode(frames[i % len(frames)]).packet for i in range(n)]
    enc_s = time.perf_counter() - started
    dec = Decoder(enc.config, backend=backend)
    for p in warm:
        dec.decode(p)
    started = time.perf_counter()
    decoded = [dec.decode(p) for p in packets]
    dec_s = time.perf_counter() - started
    kbits = sum(len(p) for p in packets) * 8 / 1000
    return {"backend": backend, "frames": n, "encode_fps": round(n / enc_s, 1), "decode_fps": round(n / dec_s, 1),
            "kbit_per_frame": round(kbits / n, 2), "packets": packets, "decoded": decoded}


def serial_reference(frames: np.ndarray, backend: str, n: int) -> dict[str, list[Any]]:
    """Packets and decoded frames of a fresh stream's first n frames, one frame at a time."""
    from streamcodec.codec import Decoder, Encoder

    enc = Encoder(frames.shape[2], frames.shape[1], mode="gc", backend=backend)
    packets = [enc.encode(frames[i % len(frames)]).packet for i in range(n)]
    dec = Decoder(enc.config, backend=backend)
    return {"packets": packets, "decoded": [dec.decode(p) for p in packets]}


def codec_run_batched(frames: np.ndarray, backend: str, n: int, workers: int) -> dict[str, Any]:
    """The whole GC codec with entropy coding on `workers` processes: encode_batch in chunks of 64
    frames, decode_many over all packets (GOP-parallel, so n should hold ≥ 2 GOPs per worker), the
    networks 8 frames per call. Packets and pixels are compared with a serial run's first 30 frames."""
    from streamcodec.codec import Decoder, Encoder

    serial = serial_reference(frames, backend, min(n, 30))
    h, w = frames.shape[1:3]
    chunk = 64
    warm = Encoder(w, h, mode="gc", backend=backend)  # compile and allocate for batches of 8
    warm_packets = [e.packet for e in warm.encode_batch(list(frames[:8]), network_batch=8)]
    list(Decoder(warm.config, backend=backend).decode_many(warm_packets, network_batch=8))
    enc = Encoder(w, h, mode="gc", backend=backend)
    enc.start_workers(workers)
    started = time.perf_counter()
    packets: list[bytes] = []
    for first in range(0, n, chunk):
        batch = [frames[i % len(frames)] for i in range(first, min(n, first + chunk))]
        packets += [e.packet for e in enc.encode_batch(batch, workers=workers, network_batch=8)]
    enc_s = time.perf_counter() - started
    enc.close()
    dec = Decoder(enc.config, backend=backend)
    dec.start_workers(workers)
    started, decoded, errors = time.perf_counter(), [], 0
    for index, item in enumerate(dec.decode_many(packets, workers=workers, network_batch=8)):
        errors += isinstance(item, Exception)
        if index < len(serial["decoded"]):
            decoded.append(item)
    dec_s = time.perf_counter() - started
    dec.close()
    same = sum(a == b for a, b in zip(packets, serial["packets"], strict=False))
    diff = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(decoded, serial["decoded"], strict=False))
    return {"backend": backend, "frames": n, "workers": workers, "network_batch": 8,
            "encode_fps": round(n / enc_s, 1), "decode_fps": round(n / dec_s, 1), "decode_errors": errors,
            "packets_identical_to_serial": f"{same}/{min(n, len(serial['packets']))}",
            "pixels_max_abs_diff_vs_serial": diff}


def cross_device(frames: np.ndarray) -> dict[str, Any]:
    """A stream encoded on the CPU, decoded on CUDA and on the CPU: same packets in, pixels compared."""
    from streamcodec.codec import Decoder, Encoder

    h, w = frames.shape[1:3]
    enc = Encoder(w, h, mode="gc", backend="torch")
    packets = [enc.encode(f).packet for f in frames]
    enc_gpu = Encoder(w, h, mode="gc", backend="cuda")
    packets_gpu = [enc_gpu.encode(f).packet for f in frames]
    cpu = Decoder(enc.config, backend="torch")
    gpu = Decoder(enc.config, backend="cuda")
    diffs = [np.abs(cpu.decode(p).astype(int) - gpu.decode(p).astype(int)) for p in packets]
    same = sum(a == b for a, b in zip(packets, packets_gpu, strict=True))
    return {"frames": len(frames), "packets_identical_cpu_vs_cuda_encode": same,
            "decode_max_abs_diff": int(max(d.max() for d in diffs)),
            "decode_mean_abs_diff": float(np.mean([d.mean() for d in diffs]))}


def x265_fps(frames: np.ndarray, n: int) -> dict[str, Any]:
    try:
        import av
    except ImportError:
        return {"skipped": "PyAV not importable"}
    out = {}
    h, w = frames.shape[1:3]
    for preset in ("ultrafast", "fast"):
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.options = {"preset": preset, "tune": "zerolatency", "x265-params": "log-level=error:bframes=0"}
        video = [av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24").reformat(format="yuv420p") for i in range(n)]
        started = time.perf_counter()
        for i, frame in enumerate(video):
            frame.pts = i
            ctx.encode(frame)
        ctx.encode(None)
        out[f"x265_{preset}_zerolatency_fps"] = round(n / (time.perf_counter() - started), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=Path, required=True, help=".npz with 'frames' (N, 1080, 1920, 3) uint8")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", action="append", default=[], help="PROFILE=model.pt (trained weights)")
    p.add_argument("--profiles", default="gc-small,gc-gpu")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--codec-frames", type=int, default=60)
    p.add_argument("--skip-variants", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="entropy-coding processes of the batched codec run (default: cores)")
    p.add_argument("--batched-frames", type=int, default=0, help="frames of the batched codec run (default 50 per worker)")
    args = p.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)
    frames_np = np.load(args.frames)["frames"]
    h, w = frames_np.shape[1:3]
    frames = torch.from_numpy(np.pad(frames_np, ((0, 0), (0, -h % 16), (0, -w % 16), (0, 0)), mode="edge")).cuda()
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                              "bf16_matmul_tflops": round(matmul_tflops(), 1), "size": list(frames.shape[1:3])}
    print(json.dumps(report), flush=True)
    for name in args.profiles.split(","):
        net = load_profile(name, Path(weights[name]) if name in weights else None).cuda()
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        entry: dict[str, Any] = {"params": sum(q.numel() for q in net.parameters())}
        entry["gflops_per_frame"] = flops_per_frame(net, *frames.shape[1:3])
        entry["agreement"] = agreement(net, frames[:2])
        print(json.dumps({name: entry}), flush=True)
        if not args.skip_variants:
            entry["variants"] = time_variants(net, frames, [int(b) for b in args.batches.split(",")])
        report[name] = entry
    for backend in ("cuda", "torch"):
        run = codec_run(frames_np, backend, args.codec_frames if backend == "cuda" else 5)
        if backend == "cuda":
            workers = args.workers or os.cpu_count() or 1
            frames_b = args.batched_frames or 50 * workers  # GOPs of 25: two per worker
            batched = codec_run_batched(frames_np, backend, frames_b, workers)
            report[f"codec_gc-small_{backend}_batched"] = batched
            print(json.dumps(batched), flush=True)
        run.pop("packets"), run.pop("decoded")
        report[f"codec_gc-small_{backend}"] = run
        print(json.dumps(run), flush=True)
    report["cross_device"] = cross_device(frames_np[:3])
    report["x265_1080p"] = x265_fps(frames_np, 60)
    print(json.dumps(report["cross_device"]), json.dumps(report["x265_1080p"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
