"""The `streamcodec` command line: a thin layer over the public API (codec, pipeline, train, eval).

    streamcodec ENCODE|DECODE|INFO|MODELS|TRAIN|EVAL ...       here
                WEBCAM|SEND|RECEIVE                            live.py
                ARCHIVE|VERIFY|RESTORE                         archive.py
                THIN                                           thin.py
                ENGINES {BUILD,LIST}|BENCH                     engines.py

Every expected failure (bad input, damaged file, unknown model, unwritable output) ends as one
line on stderr and a non-zero exit status, never a traceback (base.run). Commands import the
codec (and torch) only when they run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..version import __version__
from . import selective
from .archive import add_archive_commands
from .base import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    GreedyOption,
    InputPath,
    argument,
    command,
    group,
    option,
    run,
)
from .engines import add_engine_commands, engine_option, workers_option
from .live import add_live_commands
from .thin import add_thin_command

#: gc-small's quality levels, spelled out so that `encode --help` does not load the model (and torch);
#: tests/test_cli.py checks it against `quality_levels("gc-small")`.
GC_SMALL_LEVELS = 4
#: `encode --mode`'s choices, spelled out for the same reason; tests/test_progressive_cli.py checks them against codec.MODES.
MODE_NAMES = ("sc", "gc", "progressive")

EPILOG = """examples:
  streamcodec encode clip.mp4                      # → clip.mkv, best quality, H.264 preview track
  streamcodec encode clip.mp4 -o low.mkv --quality 1 --no-preview
  streamcodec encode clip.mp4 --bitrate 40         # codec track at most ~40 kbps (preview, audio on top)
  streamcodec encode clip.mp4 -o all.mkv --mode progressive   # every quality in one stream, then:
  streamcodec thin all.mkv -o low.mkv --iterations 2          # a lower quality, by cutting packets
  cat all.mkv | streamcodec thin - -o - --iterations 2 > low.mkv   # the same, through pipes
  ffmpeg -i clip.mp4 -f yuv4mpegpipe - | streamcodec encode - -o - > clip.mkv   # a pipe in, a pipe out
  streamcodec decode clip.mkv -o clip.decoded.mp4 --reference clip.mp4   # prints PSNR / MS-SSIM
  streamcodec decode clip.mkv -o frames/           # PNG per frame
  streamcodec info clip.mkv --json
  streamcodec eval clip.mp4 --codecs streamcodec-gc,x264,x265 --out eval-results/

shell completion (bash; zsh_source and fish_source for zsh and fish):
  eval "$(_STREAMCODEC_COMPLETE=bash_source streamcodec)"   # in ~/.bashrc
"""

FORCE_FILE_HELP = (
    "replace an existing output file (by one rename, once the new file is complete); "
    "without it an existing output is refused before any work"
)


@group(
    name="streamcodec",
    help="streamcodec: a learned generative video codec in Matroska (CodecID V_STREAMCODEC).",
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", prog_name="streamcodec", message="%(prog)s %(version)s")
def cli() -> None:
    """The command group; each command is its own function below."""


def _print(summary: Any, as_json: bool, stream: Any = None) -> None:
    text = json.dumps(summary.to_dict(), indent=2, default=str) if as_json else summary.line()
    print(text, file=stream or sys.stdout)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


def _workers(workers: int) -> int:
    if workers < 1:
        raise ValueError(f"--workers {workers}: at least 1")
    return workers


@command(
    cli,
    "encode",
    short_help="encode a video into a streamcodec .mkv",
    help="Encode any video PyAV can open into Matroska: our V_STREAMCODEC track (one self-contained packet per frame), "
    "the source's audio copied untouched, and by default a small H.264 preview track so ordinary players show "
    "something. The output appears only when complete. `-` reads y4m from stdin (INPUT) or writes the stream to "
    "stdout (-o -), the summary then going to stderr.",
)
@argument("input", "source video (mp4, mkv, mov, avi, webm, y4m, ...; - for y4m on stdin)", type=InputPath(path_type=Path))
@option("-o", "--output", type=InputPath(path_type=Path),
        help="output .mkv, - for stdout (default: INPUT with .mkv suffix; a .mkv input gets .sc.mkv)")
@option("--mode", type=click.Choice(MODE_NAMES), default="sc", show_choices=True,
        help="sc (default): selective, the kept region (--keep) coded by HEVC/AV1, the rest from a background layer; "
        "gc: global generative compression, every pixel synthesized; progressive: one stream that holds every "
        "quality, each frame's packet cut later after any iteration by `streamcodec thin` (no re-encode), every "
        "frame's bits coded against the frame before it between keyframes (--gop)")
@option("--quality", type=POSITIVE_INT,
        help="rate point from 1 (lowest rate) to 4 for sc, to the model's number of levels for gc "
        f"({GC_SMALL_LEVELS} for gc-small), to the model's iterations for progressive (the iterations sent) "
        "(default: the highest)")
@option("--bitrate", type=POSITIVE_FLOAT, metavar="KBPS",
        help="target rate of the codec's own track (not the file: the preview and audio come on top): the highest "
        "quality whose rate, estimated on the first frames, fits KBPS; below the lowest quality's rate, a "
        "warning and quality 1")
@option("--model", default=None,
        help="registered model name (see `streamcodec models`; default: the mode's own, gc-small or progressive-small)")
@selective.selective_options
@option("--gop", type=POSITIVE_INT, default=25, metavar="FRAMES",
        help="an intra frame every FRAMES frames (default 25); selective mode also starts one at each scene cut "
        "(--scene-cut), counting FRAMES on from there")
@option("--preview/--no-preview", default=True,
        help="add an H.264 preview track, the one players show, capped at about half the codec track's rate (default on)")
@engine_option
@workers_option("encode")
@option("-y", "--force", is_flag=True, help=FORCE_FILE_HELP)
@option("--json", "as_json", is_flag=True, help="print the summary as JSON instead of a line")
@click.pass_context
def encode(ctx: click.Context, input: Path | str, output: Path | str | None, mode: str, quality: int | None,
           bitrate: float | None, model: str | None, save_masks: Path | None, gop: int, preview: bool, engine: str,
           workers: int, force: bool, as_json: bool, **flags: Any) -> int:  # fmt: skip
    if quality is not None and bitrate is not None:
        raise click.UsageError("argument --bitrate: not allowed with argument --quality", ctx)
    options = selective.build(ctx, mode, flags)
    if mode != "sc" and save_masks is not None:
        raise ValueError("--save-masks applies only to --mode sc")
    from ..pipeline.encode import encode_file

    target = output if output is not None else _default_output(input)
    summary = encode_file(
        input,
        target,
        mode=mode,
        model=model,
        quality=quality,
        bitrate_kbps=bitrate,
        gop=gop,
        preview=preview,
        backend=engine,
        progress=_progress(as_json),
        on_warning=_warn,
        force=force,
        save_masks=save_masks,
        workers=_workers(workers),
        selective=options,
    )
    _print(summary, as_json, sys.stderr if target == "-" else None)  # stdout holds the stream
    return 0


def _default_output(input: Path | str) -> Path:
    if input == "-":
        raise click.UsageError("reading stdin (-) needs -o OUTPUT: a file, or - for stdout")
    path = Path(input)
    return path.with_suffix(".sc.mkv" if path.suffix.lower() == ".mkv" else ".mkv")


@command(
    cli,
    "decode",
    short_help="decode a streamcodec .mkv to a video file or PNG frames",
    help="Reconstruct every frame at the source's size and timestamps. Output by suffix: .y4m (raw; a selective "
    "stream's 4:2:0 planes as the decoder made them: the kept region exactly as its codec decoded it, the "
    "background converted from RGB; global mode's RGB as 4:4:4), a folder/ (one PNG per frame, the decoder's "
    "RGB exactly), .mkv (lossless H.264 of the .y4m's frames, audio carried over; 14-16 times the stream's size; "
    "mpv, VLC and ffmpeg play it, browsers do not) or .mp4/.mov (H.264 at CRF 12 that every player plays, audio "
    "carried over: 0.6-0.9 dB below the decoder's own frames at 2.3-2.8 times the stream's size; --lossless "
    "makes them lossless). Video "
    "files are tagged with the stream's colour matrix (BT.601 or BT.709) and limited range. Damaged frames are "
    "reported and concealed with the last good frame until the next keyframe.",
)
@argument("input", "a .mkv made by streamcodec encode", type=click.Path(path_type=Path))
@option("-o", "--output", type=click.Path(),
        help="output file, or a new or empty folder/ for PNGs (default: INPUT with .decoded.mp4)")
@option("--reference", type=click.Path(path_type=Path), help="the source video: also print PSNR and MS-SSIM against it")
@engine_option
@workers_option("decode")
@option("--salvage", is_flag=True,
        help="decode what a truncated file holds instead of refusing it (the cut is reported as a warning)")
@option("--lossless", is_flag=True,
        help=".mp4/.mov: lossless H.264 (qp 0, as .mkv always is) of the .y4m's frames instead of CRF 12, "
        "about 6 times larger; browsers do not play it")
@option("-y", "--force", is_flag=True,
        help=FORCE_FILE_HELP + "; PNG frames go only into a new or empty folder, which --force never empties")
@option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def decode(input: Path, output: str | None, reference: Path | None, engine: str, workers: int, salvage: bool,
           lossless: bool, force: bool, as_json: bool) -> int:  # fmt: skip
    from ..pipeline.decode import decode_file

    summary = decode_file(
        input,
        output or input.with_suffix(".decoded.mp4"),
        reference=reference,
        backend=engine,
        progress=_progress(as_json),
        on_warning=_warn,
        salvage=salvage,
        force=force,
        workers=_workers(workers),
        lossless=lossless,
    )
    _print(summary, as_json)
    return 0


@command(
    cli,
    "info",
    short_help="show what a streamcodec .mkv holds",
    help="Stream configuration, model identifier, format version, frame count, per-frame bits, keyframes "
    "and bitrate of our track (preview and audio bytes listed separately). Every CRC and frame checksum is verified.",
)
@argument("input", "a .mkv made by streamcodec encode", type=click.Path(path_type=Path))
@option("--frames", is_flag=True, help="also list every frame's bits by layer (JSON always has them)")
@option("--json", "as_json", is_flag=True, help="print as JSON")
def info(input: Path, frames: bool, as_json: bool) -> int:
    from ..pipeline.info import stream_info

    found = stream_info(input)
    print(json.dumps(found.to_dict(), indent=2, default=str) if as_json else found.text(per_frame=frames))
    return 1 if found.damaged else 0


@command(cli, "models", short_help="list registered models", help="List the registered models.")
@option("--json", "as_json", is_flag=True, help="print name, model identifier and weights file of each as JSON")
def models(as_json: bool) -> int:
    from ..models.registry import REGISTRY

    rows = [{"name": n, "model_id": REGISTRY.entry(n).model_id, "file": str(REGISTRY.entry(n).path)} for n in REGISTRY.names()]
    print(json.dumps(rows, indent=2) if as_json else "\n".join(f"{r['name']}\t{r['model_id']}" for r in rows))
    return 0


@command(
    cli,
    "train",
    short_help="train a GC model and export it as a registered model",
    help="Train on folders of images and videos (random crops). Checkpoints go to OUT/checkpoint.pt every "
    "checkpoint_every steps and on Ctrl-C/SIGTERM; --resume continues one. At the end the model is "
    "exported: weights, frozen entropy tables and an identifier from the weights' hash.",
)
@option("--config", type=click.Path(path_type=Path), required=True, help="TOML config (see configs/gc-small.toml)")
@option("--data", type=click.Path(path_type=Path), required=True, multiple=True, cls=GreedyOption,
        metavar="PATH...", help="folders (or files) of images and videos")
@option("--out", type=click.Path(path_type=Path), help="run folder (default runs/NAME)")
@option("--resume", type=click.Path(path_type=Path), help="checkpoint to continue from")
@option("--export-to", type=click.Path(path_type=Path), help="folder for the exported model (default: the package's weights/)")
@option("--threads", type=POSITIVE_INT, help="torch CPU threads")
def train(config: Path, data: tuple[Path, ...], out: Path | None, resume: Path | None, export_to: Path | None,
          threads: int | None) -> int:  # fmt: skip
    import torch

    from ..models.registry import WEIGHTS_DIR
    from ..train import create_trainer, load_config
    from ..train.export import export_checkpoint

    if threads:
        torch.set_num_threads(threads)
    name, model_cfg, train_cfg = load_config(config)
    trainer = create_trainer(name, model_cfg, train_cfg, list(data), out or Path("runs") / name)
    if resume:
        trainer.load(resume)
    checkpoint = trainer.run()
    if trainer.step < train_cfg.steps:
        print(f"stopped at step {trainer.step}/{train_cfg.steps}: resume with --resume {checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    exported = export_checkpoint(checkpoint, list(data), name, export_to or WEIGHTS_DIR)
    print(json.dumps(exported))
    return 0


EVAL_EPILOG = """codecs:
  streamcodec-gc   our GC mode; its rate points are the model's quality levels
  streamcodec-sc   our selective mode (the default of encode); its rate points are its quality levels
  streamcodec-sc-hevc     selective mode with --fidelity hevc (x265; only when named)
  streamcodec-sc-learned  selective mode with --fidelity learned (masked GC latents; only when named)
  x264, x265       2-pass ABR via ffmpeg; svtav1: 1-pass VBR at preset 8; all with the same GOP as ours
  svtav1-p2        SVT-AV1 at preset 2, the one selective mode codes files with (slow; only when named)
  x265-roi         x265 with addroi QP offsets on the kept region (needs selective-mode masks)

Classical targets are spread over streamcodec's measured rates on each clip (x0.5 .. x2), N points
per streamcodec mode evaluated; a target an encoder cannot reach is reported with the rate it did reach. Bitrate is the whole file
each decoder needs (container included) x 8 / duration. Cells are cached in OUT/cache/: a rerun
(with --force, to replace the reports) only computes what is missing, and failed cells are retried.

example:
  streamcodec eval samples/bbb_640x360.mp4 --points 4 --out eval-results
"""


@command(
    cli,
    "eval",
    short_help="compare streamcodec with x264/x265/SVT-AV1 on clips (RD curves, BD-rate, report)",
    epilog=EVAL_EPILOG,
    help="Encode every clip with every codec at several rate points, decode, and measure bitrate (kbps, bpp), "
    "PSNR and MS-SSIM (whole frame, the face region found by the eval's own face detector and, with selective-mode "
    "masks, the kept region), and outside the kept region "
    "PSNR, the frames with a 16x16 block more than 20 luma levels from the source and the worst such block (its frame "
    "beside the source in OUT/worst/), VMAF (when a libvmaf ffmpeg is found), person-mask IoU, temporal flicker and "
    "encode/decode fps. Writes results.csv, results.json, rd_<clip>.png, report.html and summary.md into OUT, with "
    "BD-rates against the anchor.",
)
@argument("clips", "source videos (audio is ignored)", type=click.Path(path_type=Path), nargs=-1, required=True,
          metavar="CLIP...")
@option("--codecs", metavar="LIST", help="comma-separated (default: streamcodec-sc,streamcodec-gc,x264,x265,x265-roi,svtav1)")
@option("--points", type=POSITIVE_INT, default=4, metavar="N", help="rate points per codec (default 4; BD-rate needs 4)")
@option("--out", type=click.Path(path_type=Path), default=Path("eval-results"), metavar="DIR",
        help="output folder (default eval-results/)")
@option("--anchor", default=None, help="BD-rate reference codec (default x265, else the first of --codecs)")
@option("--model", default=None, help="streamcodec model (default: the default model)")
@option("--gop", type=POSITIVE_INT, default=25, metavar="FRAMES", help="keyframe interval for every codec (default 25)")
@option("--vmaf/--no-vmaf", default=True, help="measure VMAF when possible (default on)")
@option("-y", "--force", is_flag=True,
        help="replace the reports and plots a run left in OUT; without it they are refused before any work "
        "(a symlink there is refused either way)")
@click.pass_context
def evaluate(ctx: click.Context, clips: tuple[Path, ...], codecs: str | None, points: int, out: Path, anchor: str | None,
             model: str | None, gop: int, vmaf: bool, force: bool) -> int:  # fmt: skip
    import shlex

    from ..eval import EvalConfig, run_eval
    from ..eval.codecs import CODECS, DEFAULT_CODECS
    from ..models.registry import DEFAULT_MODEL

    names = [name.strip() for name in (codecs or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in CODECS]
    if codecs is not None and (unknown or not names):
        message = f"unknown codec(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CODECS)}"
        raise click.BadParameter(message, ctx, next(p for p in ctx.command.params if p.name == "codecs"))
    config = EvalConfig(
        clips=list(clips),
        codecs=names or list(DEFAULT_CODECS),
        points=points,
        out=out,
        anchor=anchor,
        model=model or DEFAULT_MODEL,
        gop=gop,
        vmaf=vmaf,
        progress=sys.stderr.isatty(),
        command=shlex.join(["streamcodec", *sys.argv[1:]]),
        force=force,
    )
    return _report(run_eval(config))


def _report(run: Any) -> int:
    for name, reason in run.not_available.items():
        print(f"note: {name}: not available: {reason}", file=sys.stderr)
    print(
        f"{len(run.rows)} cells: {run.computed} computed, {run.cached} cached, {run.failed} failed, "
        f"{run.unavailable} not available → {run.outputs['html']}"
    )
    if run.failed:
        print(
            f"streamcodec eval: {run.failed} cell(s) failed; their errors are in {run.outputs['csv']} and the report",
            file=sys.stderr,
        )
    return EXIT_ERROR if run.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `streamcodec` command with `argv` (default: the process's); returns the exit status.

    `--help`, `--version` and usage errors end in SystemExit (0, 0 and 2), as with argparse.
    """
    return run(cli, argv)


add_live_commands(cli)
add_archive_commands(cli)
add_engine_commands(cli)
add_thin_command(cli)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "cli", "main"]
