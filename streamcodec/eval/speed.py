"""`streamcodec bench`: encode and decode speed per frame size and engine, beside x264 and x265.

Frames are the clip's first N, scaled to each size and held in memory (their demux + decode +
scaling is timed apart as "demux"); the codec runs `Encoder.encode` and `Decoder.decode` on them,
the networks through a timing wrapper, so the time splits into network and the rest (entropy
coding, packing; in SC mode the fidelity codec, mask coding and compositing). In SC mode the
encoder's "masks" stage (LiteRT segmenter and face detector, plus MOG2 and the stabiliser) counts
as network. "mux" is the Matroska writer alone.
"""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import torch

from ..codec import Decoder, Encoder, SelectiveOptions
from ..engines import Backend, create_backend
from ..io.demux import first_frames
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..models.registry import DEFAULT_MODEL, REGISTRY

X264 = ("libx264", {"preset": "medium"})
X265 = ("libx265", {"preset": "fast", "tune": "zerolatency", "x265-params": "log-level=none"})


class TimedBackend(Backend):
    """Delegates to an engine and adds up the seconds spent in it (synchronised on CUDA)."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.name, self.seconds, self.max_batch = inner, inner.name, 0.0, inner.max_batch

    def _timed(self, call: Any, array: np.ndarray) -> Any:
        started = time.perf_counter()
        out = call(array)  # numpy out: the GPU work is finished when it returns
        self.seconds += time.perf_counter() - started
        return out

    def analyze(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        return self._timed(self.inner.analyze, rgb)

    def synthesize(self, w_hat: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        return self._timed(self.inner.synthesize, w_hat)


@dataclass(frozen=True)
class BenchConfig:
    clip: Path
    sizes: list[tuple[int, int]]
    engine: str = "auto"
    mode: str = "gc"
    frames: int = 30
    device: str = "cpu"
    precision: str = "fp32"
    compile_mode: str | None = None
    workers: int = 1  # gc: entropy-coding processes; above 1 the codec runs in batches (encode_batch, decode_many)
    saliency: str = "off"  # sc: `--saliency` (SelectiveOptions.saliency)


def engine_spec(config: BenchConfig) -> str:
    """The engine to create: auto, torch and compile take the device; the others have their own."""
    return f"{config.engine}:{config.device}" if config.engine in ("auto", "torch", "compile") else config.engine


def standard_fps(frames: list[np.ndarray], codec: str, options: dict[str, str]) -> float:
    """Whole-frame encode speed of a standard codec on the same frames (PyAV, yuv420p)."""
    context: Any = av.CodecContext.create(codec, "w")
    height, width = frames[0].shape[:2]
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base, context.options = Fraction(1, 25), options
    started = time.perf_counter()
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        context.encode(frame)
    context.encode(None)
    return len(frames) / (time.perf_counter() - started)


def mux_seconds(packets: list[bytes], config_bytes: bytes, width: int, height: int) -> float:
    """The Matroska writer alone on the packets."""
    track = TrackSpec(
        1, "video", "V_STREAMCODEC", codec_private=config_bytes, default_duration_ns=40_000_000, width=width, height=height
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        with MatroskaWriter(Path(folder) / "bench.mkv", [track], writing_app="streamcodec bench") as writer:
            for index, packet in enumerate(packets):
                writer.write(1, Fraction(index, 25), packet, index % 25 == 0)
        return time.perf_counter() - started


def _codec(config: BenchConfig, width: int, height: int, backend: Backend) -> tuple[Any, Any]:
    encoder = Encoder(width, height, mode=config.mode, backend=backend, selective=SelectiveOptions(saliency=config.saliency))
    return encoder, Decoder(encoder.config, backend=backend)


def _warm_up(config: BenchConfig, frame: np.ndarray, backend: Backend) -> None:
    """First calls compile (torch.compile, CUDA kernels) and allocate; time none of that."""
    encoder, decoder = _codec(config, frame.shape[1], frame.shape[0], backend)
    for _ in range(3):  # torch.compile settles after a few calls, not one
        decoder.decode(encoder.encode(frame).packet)


def _encode_all(encoder: Any, frames: list[np.ndarray], workers: int) -> list[bytes]:
    """Packets of every frame: one at a time (workers 0), or one batch on `workers` processes."""
    if not workers:
        return [encoder.encode(rgb).packet for rgb in frames]
    batch = encoder.backend.max_batch
    return [e.packet for e in encoder.encode_batch(frames, workers=workers, network_batch=batch)]


def _decode_all(decoder: Any, packets: list[bytes], workers: int) -> None:
    if not workers:
        for packet in packets:
            decoder.decode(packet)
        return
    for item in decoder.decode_many(packets, workers=workers, network_batch=decoder.backend.max_batch):
        if isinstance(item, Exception):
            raise item


def bench_size(config: BenchConfig, size: tuple[int, int], timed: TimedBackend) -> dict[str, Any]:
    """One row: fps, time shares and memory at one size."""
    width, height = size
    started = time.perf_counter()
    frames = first_frames(config.clip, config.frames, width, height)
    demux = time.perf_counter() - started
    _warm_up(config, frames[0], timed)
    if config.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    encoder, decoder = _codec(config, width, height, timed)
    batched = config.workers > 1 and config.mode == "gc"
    if batched:  # worker processes start before the clock does, as an engine is built before
        encoder.start_workers(config.workers), decoder.start_workers(config.workers)
    timed.seconds, started = 0.0, time.perf_counter()
    packets = _encode_all(encoder, frames, config.workers if batched else 0)
    encode, encode_net = time.perf_counter() - started, timed.seconds
    timed.seconds, started = 0.0, time.perf_counter()
    _decode_all(decoder, packets, config.workers if batched else 0)
    decode, decode_net = time.perf_counter() - started, timed.seconds
    if batched:
        encoder.close(), decoder.close()
    mux = mux_seconds(packets, encoder.config.pack(), width, height)
    n = len(frames)
    # Selective mode's keep masks are networks too (LiteRT segmenter and face detector, with MOG2).
    encode_net += getattr(encoder, "timings", {}).get("masks", 0.0)
    row: dict[str, Any] = {
        "size": f"{width}x{height}",
        "frames": n,
        "encode_fps": n / encode,
        "decode_fps": n / decode,
        "x264_encode_fps": standard_fps(frames, *X264),
        "x265_encode_fps": standard_fps(frames, *X265),
        "ms_per_frame": {
            "demux": 1000 * demux / n,
            "encode_network": 1000 * encode_net / n,
            "encode_other": 1000 * (encode - encode_net) / n,
            "decode_network": 1000 * decode_net / n,
            "decode_other": 1000 * (decode - decode_net) / n,
            "mux": 1000 * mux / n,
        },
        "kbps_at_25fps": sum(map(len, packets)) * 8 / 1000 / (n / 25),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for side in ("encoder", "decoder"):
        stages = getattr(encoder if side == "encoder" else decoder, "timings", None)
        if stages:
            row[f"{side}_stages_ms"] = {k: 1000 * v / n for k, v in stages.items()}
    if config.device.startswith("cuda"):
        row["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Every size in ascending order (peak RSS is the process's peak so far), one engine."""
    model = REGISTRY.load(DEFAULT_MODEL)
    backend = TimedBackend(create_backend(engine_spec(config), model, config.precision, config.compile_mode))
    rows = [bench_size(config, size, backend) for size in sorted(config.sizes, key=lambda s: s[0] * s[1])]
    return {
        "engine": backend.name,
        "mode": config.mode,
        "device": config.device,
        "precision": config.precision,
        "compile_mode": config.compile_mode,
        "workers": config.workers,
        "torch_threads": torch.get_num_threads(),
        "clip": str(config.clip),
        "rows": rows,
    }


COLUMNS = ("size", "enc fps", "dec fps", "x264", "x265", "net enc%", "net dec%", "demux ms", "mux ms", "RSS MB")


def table(result: dict[str, Any]) -> str:
    """The result as a plain-text table, one line per size."""
    head = (
        f"engine {result['engine']}, mode {result['mode']}, device {result['device']}, {result['precision']}, "
        f"{result['torch_threads']} torch threads"
    )
    if result.get("workers", 1) > 1:
        head += f", entropy coding on {result['workers']} processes (batches, network batch up to the engine's)"
    lines = [head, " ".join(f"{name:>9}" for name in COLUMNS)]
    for row in result["rows"]:
        ms = row["ms_per_frame"]
        cells = [
            row["encode_fps"],
            row["decode_fps"],
            row["x264_encode_fps"],
            row["x265_encode_fps"],
            100 * ms["encode_network"] / (ms["encode_network"] + ms["encode_other"]),
            100 * ms["decode_network"] / (ms["decode_network"] + ms["decode_other"]),
            ms["demux"],
            ms["mux"],
            row["peak_rss_mb"],
        ]
        lines.append(f"{row['size']:>9} " + " ".join(f"{value:9.1f}" for value in cells))
    return "\n".join(lines)
