#!/usr/bin/env python3
"""Entropy coding alone on 1080p GC symbols: frames/s with 1..N worker processes, and pickling cost.

    python scripts/benchmarks/entropy_bench.py [--workers 1,2] [--frames 100] [--size 1920x1080]

Symbols come from the shipped model's analysis of the bundled sample, scaled to the size (8
distinct frames, cycled). Encoding is `EntropyPool.encode` on all frames at once; decoding is
`EntropyPool.decode` over the packets (GOP-parallel, GOPs of 25). No network runs while timing.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from streamcodec.gc.codec import GCEncoder
from streamcodec.gc.parallel import CodingState, EntropyPool
from streamcodec.io.demux import first_frames

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "bbb_640x360.mp4"


def symbols(width: int, height: int, frames: int) -> tuple[GCEncoder, list[np.ndarray]]:
    encoder = GCEncoder(width, height, backend="torch")
    distinct = [encoder.analyze(rgb)[: encoder.config.channels] for rgb in first_frames(SAMPLE, 8, width, height)]
    return encoder, [distinct[i % len(distinct)] for i in range(frames)]


def measure(encoder: GCEncoder, syms: list[np.ndarray], workers: int, gop: int) -> dict[str, float]:
    state = CodingState(encoder.config, encoder.model.tables, encoder.model.config.factor)
    pool = EntropyPool(state, workers)
    pool.start()
    keyframes = [i % gop == 0 for i in range(len(syms))]
    started = time.perf_counter()
    packets = [e.packet for e in pool.encode(None, syms, keyframes)]
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded = list(pool.decode(None, packets))
    decode_s = time.perf_counter() - started
    pool.close()
    assert all(np.array_equal(a, b) for a, b in zip(decoded, syms, strict=True))
    n = len(syms)
    return {
        "workers": workers,
        "encode_fps": round(n / encode_s, 1),
        "decode_fps": round(n / decode_s, 1),
        "encode_ms_per_frame": round(1000 * encode_s / n, 2),
        "decode_ms_per_frame": round(1000 * decode_s / n, 2),
    }


def pickling_ms(syms: list[np.ndarray]) -> float:
    """Per frame: what a worker task carries (uint8 symbols) pickled and unpickled once."""
    started = time.perf_counter()
    for sym in syms:
        pickle.loads(pickle.dumps(sym.astype(np.uint8)))
    return round(1000 * (time.perf_counter() - started) / len(syms), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--gop", type=int, default=25)
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    encoder, syms = symbols(width, height, args.frames)
    print(json.dumps({"size": args.size, "symbols": list(syms[0].shape), "pickle_ms_per_frame": pickling_ms(syms)}))
    for workers in (int(w) for w in args.workers.split(",")):
        print(json.dumps(measure(encoder, syms, workers, args.gop)), flush=True)


if __name__ == "__main__":
    main()
