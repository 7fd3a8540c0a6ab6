#!/usr/bin/env python3
"""The live demo's real-time figures: `streamcodec receive` and `streamcodec send` as two processes on loopback.

    python scripts/benchmarks/bench_webcam.py [--source CLIP] [--seconds 20] [--max-kbps 300] [--mode sc] [--json OUT.json]

The source (default: a 640x480 still-camera clip made by make_still_camera_clip.py, re-timed to
30 fps) is played at its own rate, looped, for --seconds; then the sender is stopped as Ctrl-C
would. Reported: fps sustained (frames sent / wall time), end-to-end latency median and p99
(capture on the sender → decoded on the receiver), kbps of the codec packets, and dropped frames
by cause, against the targets (≥ 25 fps, ≤ 150 / 300 ms, ≤ 300 kbps).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "streamcodec.cli"]
TARGETS = {"fps": 25.0, "latency_ms_median": 150.0, "latency_ms_p99": 300.0, "kbps": 300.0}


def make_source(folder: Path, frames: int) -> Path:
    """A 640x480 still-camera clip (people walking) at 30 fps."""
    made = folder / "still25.mp4"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_still_camera_clip.py"), str(made), "--frames", str(frames)], check=True
    )
    clip = folder / "still30.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(made),
            "-vf",
            "setpts=N/30/TB",
            "-r",
            "30",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
    )
    return clip


def _port_and_token(receiver: subprocess.Popen[str]) -> tuple[int, str]:
    """The link port and the token the receiver printed."""
    assert receiver.stdout is not None
    port = None
    for line in receiver.stdout:
        if line.startswith("listening for a sender on "):
            port = int(line.split(":")[1].split()[0])
        elif line.startswith("token: ") and port is not None:
            return port, line.split()[1]
    raise RuntimeError("the receiver did not start")


def run(source: Path, seconds: float, max_kbps: float | None, mode: str, folder: Path, engine: str = "auto") -> dict[str, Any]:
    """One run: receiver and sender processes (both on `engine`); their JSON summaries merged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    receiver = subprocess.Popen(
        [
            *CLI,
            "receive",
            "--listen",
            "0",
            "--port",
            "0",
            "--exit-when-done",
            "--engine",
            engine,
            "--stats-json",
            str(folder / "receiver.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    port, token = _port_and_token(receiver)
    command = [*CLI, "send", "--to", f"127.0.0.1:{port}", "--source", str(source), "--loop", "--mode", mode, "--engine", engine]
    command += ["--stats-json", str(folder / "sender.json")] + (["--max-kbps", str(max_kbps)] if max_kbps else [])
    sender = subprocess.Popen(command, env={**env, "STREAMCODEC_TOKEN": token})  # by the environment, not argv
    time.sleep(seconds)
    sender.send_signal(signal.SIGINT)
    sender.wait(timeout=60)
    receiver.wait(timeout=60)
    sent = json.loads((folder / "sender.json").read_text())
    received = json.loads((folder / "receiver.json").read_text())
    return {
        "mode": mode,
        "engine": engine,
        "max_kbps": max_kbps,
        "seconds": sent["seconds"],
        "fps": sent["fps"],
        "kbps": sent["kbps"],
        "latency_ms_median": received["latency_ms_median"],
        "latency_ms_p99": received["latency_ms_p99"],
        "encode_ms_median": sent["encode_ms_median"],
        "encode_ms_p99": sent["encode_ms_p99"],
        "frames_sent": sent["encoded"],
        "frames_decoded": received["frames"],
        "dropped_encoder_busy": sent["dropped_capture"],
        "dropped_rate_cap": sent["dropped_rate"],
        "dropped_link": sent["dropped_link"],
        "keyframes": sent["keyframes"],
        "corrupt": received["corrupt"],
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }


def table(results: dict[str, Any]) -> str:
    rows = [
        ("fps sustained", "fps", "≥"),
        ("latency median ms", "latency_ms_median", "≤"),
        ("latency p99 ms", "latency_ms_p99", "≤"),
        ("kbps", "kbps", "≤"),
    ]
    lines = [f"{'measure':<20}{'measured':>10}  target"]
    for label, key, sign in rows:
        value, target = results[key], TARGETS[key]
        met = value >= target if sign == "≥" else value <= target
        lines.append(f"{label:<20}{value:>10.1f}  {sign} {target:g} {'met' if met else 'MISSED'}")
    drops = results["dropped_encoder_busy"] + results["dropped_rate_cap"] + results["dropped_link"]
    lines.append(
        f"{'dropped frames':<20}{drops:>10d}  ({results['dropped_encoder_busy']} encoder busy, "
        f"{results['dropped_rate_cap']} rate cap, {results['dropped_link']} link; {results['frames_sent']} sent)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="a 640x480 clip (default: made, see the docstring)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-kbps", type=float, default=300.0, help="0 for no cap")
    parser.add_argument("--mode", default="sc", choices=("sc", "gc"))
    parser.add_argument("--engine", default="auto", help="engine of sender and receiver (e.g. onnxruntime@int8)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = args.source or make_source(folder, 150)
        results = run(source, args.seconds, args.max_kbps or None, args.mode, folder, args.engine)
    results["source"] = str(args.source or "make_still_camera_clip.py 640x480, 150 frames, re-timed to 30 fps")
    print(table(results))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
