"""Selective mode's speed: encode and decode fps at one size, with the time split by stage.

    python scripts/benchmarks/bench_sc.py [CLIP] [--width 640 --height 480 --frames 50 --gop 25 --quality 4]

The encoder runs twice on the same frames: serially (each frame's masks, then its fidelity layer),
and with each frame given to `Encoder.prepare` one frame early, so its keep mask is found on a
worker thread while x265 codes the frame before (as a live loop that has the next frame would);
the two must give identical packets. Frames are the clip's, scaled to width x height and held in
memory, so file reading is not timed;
"mux" is the Matroska writer alone on the packets. Stages (seconds summed over the frames):
encoder masks (segmenter + face + motion + stabiliser), mask coding, fidelity (fill + x265/SVT-AV1),
plate (running estimate check + plate coding at keyframes), decode-in-loop (the encoder's own
fidelity decoder), masks ahead (on the worker, overlapped); decoder layers (mask + plate), fidelity, composite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamcodec.codec import Decoder, Encoder, SelectiveOptions
from streamcodec.eval.speed import standard_fps
from streamcodec.io.demux import first_frames
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec

ROOT = Path(__file__).resolve().parents[2]


def mux_seconds(packets: list[bytes], config_bytes: bytes, width: int, height: int) -> float:
    track = TrackSpec(
        number=1,
        kind="video",
        codec_id="V_STREAMCODEC",
        codec_private=config_bytes,
        default_duration_ns=40_000_000,
        width=width,
        height=height,
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        with MatroskaWriter(Path(folder) / "x.mkv", [track], writing_app="bench_sc") as writer:
            for index, packet in enumerate(packets):
                writer.write(1, Fraction(index, 25), packet, index % 25 == 0)
        return time.perf_counter() - started


def reference_fps(frames: list[np.ndarray], codec: str, options: dict[str, str]) -> float:
    """Whole-frame encode speed of a standard codec on the same frames (PyAV), for a ratio that holds across machines."""
    return standard_fps(frames, codec, options)


def encode_all(
    frames: list[np.ndarray], args: argparse.Namespace, options: SelectiveOptions, *, ahead: bool
) -> tuple[list[bytes], Encoder, float, float]:
    """Encode the frames (with `ahead`, each given to prepare() one frame early): packets, encoder, seconds, CPU seconds."""
    encoder = Encoder(args.width, args.height, quality=args.quality, gop=args.gop, selective=options)
    started, cpu = time.perf_counter(), time.process_time()
    if ahead:
        encoder.prepare(frames[0])
    packets = []
    for index, rgb in enumerate(frames):
        if ahead and index + 1 < len(frames):
            encoder.prepare(frames[index + 1])
        packets.append(encoder.encode(rgb).packet)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    encoder.close()
    return packets, encoder, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, nargs="?", default=ROOT / "samples" / "bbb_640x360.mp4")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--gop", type=int, default=25)
    parser.add_argument("--quality", type=int, default=4)
    parser.add_argument("--fidelity", default="hevc")
    parser.add_argument("--background", default="plate")
    parser.add_argument("--preset", default=None, help="the fidelity codec's preset (default the codec's)")
    parser.add_argument("--saliency", default="off", help="--saliency of the encoder (default off)")
    args = parser.parse_args()
    frames = first_frames(args.clip, args.frames, args.width, args.height)
    options = SelectiveOptions(fidelity=args.fidelity, background=args.background, preset=args.preset, saliency=args.saliency)
    runs = {ahead: encode_all(frames, args, options, ahead=ahead) for ahead in (False, True)}
    if runs[False][0] != runs[True][0]:
        raise SystemExit("the pipelined encoder's packets differ from the serial encoder's")
    packets, encoder, encode_s, encode_cpu = runs[False]
    decoder = Decoder(encoder.config)
    started = time.perf_counter()
    for packet in packets:
        decoder.decode(packet)
    decode_s = time.perf_counter() - started
    mux = mux_seconds(packets, encoder.config.pack(), args.width, args.height)
    n = len(frames)
    kbps = sum(len(p) for p in packets) * 8 / 1000 / (n / 25)
    print(f"{n} frames {args.width}x{args.height}, q{args.quality} {args.fidelity}/{args.background}, {kbps:.1f} kbps at 25 fps")
    ahead_s = runs[True][2]
    print(
        f"encode {n / encode_s:.1f} fps serial ({1000 * encode_s / n:.1f} ms/frame), {n / ahead_s:.1f} fps with masks "
        f"found ahead ({1000 * ahead_s / n:.1f} ms/frame, same packets); "
        f"decode {n / decode_s:.1f} fps ({1000 * decode_s / n:.1f} ms/frame)"
    )
    print(
        f"encoder CPU time (all threads): {1000 * encode_cpu / n:.1f} ms/frame serial, "
        f"{1000 * runs[True][3] / n:.1f} ms/frame ahead (on a loaded machine, wall time exceeds it)"
    )
    for side, timings in (("serial", encoder.timings), ("ahead", runs[True][1].timings), ("decode", decoder.timings)):
        for stage, seconds in timings.items():
            print(f"  {side:6} {stage:14} {1000 * seconds / n:7.2f} ms/frame")
    print(f"  mux    {'writer':14} {1000 * mux / n:7.2f} ms/frame")
    x265 = {"preset": "fast", "tune": "zerolatency", "x265-params": "log-level=none"}
    print(
        f"same frames, same run: x265 (fast, zerolatency) encodes {reference_fps(frames, 'libx265', x265):.1f} fps, "
        f"x264 (medium) {reference_fps(frames, 'libx264', {'preset': 'medium'}):.1f} fps"
    )


if __name__ == "__main__":
    main()
