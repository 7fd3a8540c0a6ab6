"""`streamcodec engines build|list` and `streamcodec bench`: compiled engines and their speed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from .base import CONTEXT, Checked, Command, Group, argument, command, option

ENGINE_CHOICES = ("auto", "torch", "compile", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "bbb_640x360.mp4"
F = TypeVar("F", bound=Callable[..., Any])


def frame_size(text: str) -> tuple[int, int]:
    """'640x480' → (640, 480); both positive."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise ValueError(f"{text!r} is not a size WxH such as 640x480")
    return int(width), int(height)


def engine_spec(text: str) -> str:
    """Check an --engine value ("NAME" or "NAME:cpu|cuda[:N]", then "@PRECISION" if asked; "cuda" is the old
    name of compile:cuda)."""
    base, at, precision = text.partition("@")
    name, _, device = base.partition(":")
    if name not in (*ENGINE_CHOICES, "cuda") or (device and device != "cpu" and not device.startswith("cuda")):
        raise ValueError(
            f"unknown engine {text!r} (choose from {', '.join(ENGINE_CHOICES)}; torch:cpu, compile:cuda, onnxruntime@int8, ...)"
        )
    if at and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} in {text!r} (choose from {', '.join(PRECISIONS)})")
    return text


ENGINE_HELP = (
    "inference engine of the networks: auto (default: the fastest here, said on stderr: tensorrt > compile on a "
    "CUDA GPU, onnxruntime > torch on a CPU), torch, compile, onnxruntime, tensorrt; torch and compile take "
    ":cpu or :cuda (e.g. compile:cuda); @PRECISION picks a lower precision: onnxruntime@int8 (G in int8, twice "
    "as fast on a CPU with VNNI; the same stream), compile:cuda@bf16, tensorrt@fp16. --backend is the old name"
)


def engine_option(function: F) -> F:
    """`--engine` (alias `--backend`); the value comes as `engine`."""
    spec = Checked("ENGINE", engine_spec)
    return option("--engine", "--backend", "engine", type=spec, default="auto", metavar="ENGINE", help=ENGINE_HELP)(function)


def workers_option(what: str) -> Callable[[F], F]:
    """`--workers N`: GC entropy coding on N processes (`what`: "encode" or "decode"); checked when the command runs."""
    return option(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"gc: entropy-{what} on N processes (frames in batches; same output, more memory); default 1",
    )


def size_list(text: str) -> list[tuple[int, int]]:
    return [frame_size(part.strip()) for part in text.split(",") if part.strip()]


def add_engine_commands(cli: Group) -> None:
    """Register `engines` (build, list) and `bench` on the top-level group."""
    cli.add_command(engines)
    cli.add_command(bench)


@click.group(
    "engines",
    cls=Group,
    context_settings=CONTEXT,
    short_help="build and list compiled inference engines (ONNX Runtime, TensorRT)",
    help="Build and list compiled inference engines (ONNX Runtime, TensorRT).",
)
def engines() -> None:
    """The `engines` group: build, list."""


@command(
    engines,
    "build",
    short_help="export/compile a model's networks into the engines cache folder (reused while their manifest matches)",
    help="Export and compile a registered model's networks (GC: encoder+quantizer and generator; SC: its "
    "generator) into the engines folder (~/.cache/streamcodec/engines, or $STREAMCODEC_ENGINES; `engines list` "
    "says which), each artifact with a JSON manifest: model id and weights sha256, engine, precision, shape range, "
    "library versions, device and the artifact's sha256. A current artifact is reused; a stale or damaged one "
    "(other weights, other library version, bytes that no longer match) is rebuilt, never used.",
)
@option("--model", default=None, help="registered model (default gc-small; see `streamcodec models`)")
@option("--engine", type=click.Choice([e for e in ENGINE_CHOICES if e not in ("torch", "compile")]), default="auto")
@option("--precision", type=click.Choice(PRECISIONS), default="fp32")
@option("--max-size", type=Checked("WxH", frame_size), metavar="WxH",
        help="largest frame the engine takes (default: the engine's)")
def build(model: str | None, engine: str, precision: str, max_size: tuple[int, int] | None) -> int:
    from ..engines import engines_dir
    from ..engines.build import build_engines
    from ..models.registry import DEFAULT_MODEL

    for path in build_engines(model or DEFAULT_MODEL, engine, precision, max_size, engines_dir()):
        print(path)
    return 0


@command(
    engines,
    "list",
    short_help="show built artifacts (current or stale) and the engines this machine has",
    help="Show built artifacts (current or stale) and the engines this machine has.",
)
@option("--json", "as_json", is_flag=True, help="print as JSON")
def listing(as_json: bool) -> int:
    from ..engines import engines_dir
    from ..engines.build import availability, list_artifacts

    folder = engines_dir()
    rows, found = list_artifacts(folder), availability()
    if as_json:
        print(json.dumps({"folder": str(folder), "artifacts": [vars(r) for r in rows], "engines": dict(found)}, indent=2))
        return 0
    print(f"artifacts in {folder}:" + ("" if rows else " none"))
    for r in rows:
        print(f"  {r.file}\t{r.model}\t{r.engine}\t{r.precision}\tmax {r.max_size}\t{r.status}")
    print("engines on this machine:")
    for name, line in found:
        print(f"  {name:12} {line}")
    return 0


@click.command(
    "bench",
    cls=Command,
    context_settings=CONTEXT,
    short_help="encode/decode fps per frame size and engine, beside x264 and x265 on the same frames",
    help="Frames of a clip scaled to each size, held in memory: encode and decode fps, peak memory, x264's and "
    "x265's encode fps on the same frames in the same run, and the time in demux, networks, the rest of "
    "the codec (entropy coding, packing; in sc mode masks and fidelity codec) and mux.",
)
@argument("clip", "source video (default: the bundled sample)", type=click.Path(path_type=Path), required=False,
          default=SAMPLE)  # fmt: skip
@option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto")
@option("--sizes", type=Checked("WxH,...", size_list), default="640x480", metavar="WxH,...", help="frame sizes (default 640x480)")
@option("--mode", type=click.Choice(["sc", "gc"]), default="gc", help="codec mode (default gc)")
@option("--frames", type=int, default=30, metavar="N", help="frames per size (default 30)")
@option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="device of torch/compile engines (default cpu)")
@option("--precision", type=click.Choice(PRECISIONS), default="fp32",
        help="fp16/bf16: autocast (torch, compile) or TensorRT precision; int8: onnxruntime with G in int8")
@option("--compile-mode", type=click.Choice(["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]),
        help="torch.compile mode of --engine compile (default: Inductor's on cpu, max-autotune-no-cudagraphs on cuda; "
        "reduce-overhead adds CUDA graphs)")
@option("--workers", type=int, default=1, metavar="N",
        help="gc: entropy-code on N processes, the frames in one batch, the networks on up to 8 frames a call "
        "(default 1: one frame at a time)")
@option("--saliency", default="off", metavar="WEIGHTS", help="sc: faces first, as `encode --saliency` (default off)")
@option("--json", "json_out", type=click.Path(path_type=Path), metavar="OUT", help="also write the result as JSON to OUT")
def bench(clip: Path, engine: str, sizes: list[tuple[int, int]], mode: str, frames: int, device: str, precision: str,
          compile_mode: str | None, workers: int, saliency: str, json_out: Path | None) -> int:  # fmt: skip
    from ..eval.speed import BenchConfig, run_bench, table

    if frames < 2:
        raise ValueError(f"--frames {frames}: at least 2")
    if workers < 1:
        raise ValueError(f"--workers {workers}: at least 1")
    config = BenchConfig(clip, sizes, engine, mode, frames, device, precision, compile_mode)
    config = replace(config, workers=workers, saliency=saliency)
    result = run_bench(config)
    print(table(result))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"→ {json_out}", file=sys.stderr)
    return 0
