"""`streamcodec engines build|list` and `streamcodec bench`: compiled engines and their speed."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ENGINE_CHOICES = ("auto", "torch", "compile", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "bbb_640x360.mp4"


def frame_size(text: str) -> tuple[int, int]:
    """'640x480' → (640, 480); both positive."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size WxH such as 640x480")
    return int(width), int(height)


def engine_spec(text: str) -> str:
    """Check an --engine value ("NAME" or "NAME:cpu|cuda[:N]", then "@PRECISION" if asked; "cuda" is the old
    name of compile:cuda)."""
    base, at, precision = text.partition("@")
    name, _, device = base.partition(":")
    if name not in (*ENGINE_CHOICES, "cuda") or (device and device != "cpu" and not device.startswith("cuda")):
        raise argparse.ArgumentTypeError(
            f"unknown engine {text!r} (choose from {', '.join(ENGINE_CHOICES)}; torch:cpu, compile:cuda, onnxruntime@int8, ...)"
        )
    if at and precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"unknown precision {precision!r} in {text!r} (choose from {', '.join(PRECISIONS)})")
    return text


ENGINE_HELP = (
    "inference engine of the networks: auto (default: the fastest here, said on stderr: tensorrt > compile on a "
    "CUDA GPU, onnxruntime > torch on a CPU), torch, compile, onnxruntime, tensorrt; torch and compile take "
    ":cpu or :cuda (e.g. compile:cuda); @PRECISION picks a lower precision: onnxruntime@int8 (G in int8, twice "
    "as fast on a CPU with VNNI; the same stream), compile:cuda@bf16, tensorrt@fp16. --backend is the old name"
)


def add_engine_argument(parser: Any) -> None:
    """Add `--engine` (alias `--backend`) to a subcommand's parser; the value is in `args.engine`."""
    parser.add_argument(
        "--engine", "--backend", dest="engine", type=engine_spec, default="auto", metavar="ENGINE", help=ENGINE_HELP
    )


def add_workers_argument(parser: Any, what: str) -> None:
    """Add `--workers N`: GC entropy coding on N processes (`what`: "encode" or "decode")."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"gc: entropy-{what} on N processes (frames in batches; same output, more memory); default 1",
    )


def size_list(text: str) -> list[tuple[int, int]]:
    return [frame_size(part.strip()) for part in text.split(",") if part.strip()]


def add_engine_commands(sub: Any) -> None:
    """Register `engines` (build, list) and `bench` on the top-level subparsers."""
    engines = sub.add_parser("engines", help="build and list compiled inference engines (ONNX Runtime, TensorRT)")
    actions = engines.add_subparsers(dest="engines_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="export/compile a model's networks into engines/ (reused while their manifest matches)",
        description=(
            "Export and compile a registered model's networks (GC: encoder+quantizer and generator; SC: its "
            "generator) into the engines folder, each artifact with a JSON manifest: model id and weights sha256, "
            "engine, precision, shape range, library versions and device. A current artifact is reused; a stale one "
            "(other weights, other library version) is rebuilt, never used."
        ),
    )
    build.add_argument("--model", default=None, help="registered model (default gc-small; see `streamcodec models`)")
    build.add_argument("--engine", choices=[e for e in ENGINE_CHOICES if e not in ("torch", "compile")], default="auto")
    build.add_argument("--precision", choices=PRECISIONS, default="fp32")
    build.add_argument(
        "--max-size", type=frame_size, metavar="WxH", help="largest frame the engine takes (default: the engine's)"
    )
    build.set_defaults(run=_run_build)
    listing = actions.add_parser("list", help="show built artifacts (current or stale) and the engines this machine has")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(run=_run_list)
    _add_bench(sub)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="encode/decode fps per frame size and engine, beside x264 and x265 on the same frames",
        description=(
            "Frames of a clip scaled to each size, held in memory: encode and decode fps, peak memory, x264's and "
            "x265's encode fps on the same frames in the same run, and the time in demux, networks, the rest of "
            "the codec (entropy coding, packing; in sc mode masks and fidelity codec) and mux."
        ),
    )
    p.add_argument("clip", type=Path, nargs="?", default=SAMPLE, help="source video (default: the bundled sample)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="auto")
    p.add_argument("--sizes", type=size_list, default=[(640, 480)], metavar="WxH,...", help="frame sizes (default 640x480)")
    p.add_argument("--mode", choices=["sc", "gc"], default="gc", help="codec mode (default gc)")
    p.add_argument("--frames", type=int, default=30, metavar="N", help="frames per size (default 30)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device of torch/compile engines (default cpu)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp16/bf16: autocast (torch, compile) or TensorRT precision; int8: onnxruntime with G in int8",
    )
    p.add_argument(
        "--compile-mode",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile mode of --engine compile (default: Inductor's on cpu, max-autotune-no-cudagraphs on cuda; "
        "reduce-overhead adds CUDA graphs)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="gc: entropy-code on N processes, the frames in one batch, the networks on up to 8 frames a call "
        "(default 1: one frame at a time)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the result as JSON to OUT")
    p.set_defaults(run=_run_bench)


def _run_build(args: argparse.Namespace) -> int:
    from ..engines import engines_dir
    from ..engines.build import build_engines
    from ..models.registry import DEFAULT_MODEL

    for path in build_engines(args.model or DEFAULT_MODEL, args.engine, args.precision, args.max_size, engines_dir()):
        print(path)
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from ..engines import engines_dir
    from ..engines.build import availability, list_artifacts

    folder = engines_dir()
    rows, engines = list_artifacts(folder), availability()
    if args.json:
        print(json.dumps({"folder": str(folder), "artifacts": [vars(r) for r in rows], "engines": dict(engines)}, indent=2))
        return 0
    print(f"artifacts in {folder}:" + ("" if rows else " none"))
    for r in rows:
        print(f"  {r.file}\t{r.model}\t{r.engine}\t{r.precision}\tmax {r.max_size}\t{r.status}")
    print("engines on this machine:")
    for name, line in engines:
        print(f"  {name:12} {line}")
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from ..eval.speed import BenchConfig, run_bench, table

    if args.frames < 2:
        raise ValueError(f"--frames {args.frames}: at least 2")
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: at least 1")
    config = BenchConfig(
        args.clip, args.sizes, args.engine, args.mode, args.frames, args.device, args.precision, args.compile_mode
    )
    config = replace(config, workers=args.workers)
    result = run_bench(config)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"→ {args.json}", file=sys.stderr)
    return 0
