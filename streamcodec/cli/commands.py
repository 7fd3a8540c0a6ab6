"""The `streamcodec` command line: a thin layer over the public API.

Every expected failure (bad input, damaged file, unknown model, unwritable output) ends as one
line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import StreamcodecError
from ..version import __version__
from .archive import add_archive_commands
from .engines import add_engine_argument, add_engine_commands, add_workers_argument
from .live import add_live_commands

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

EPILOG = """examples:
  streamcodec encode clip.mp4                      # → clip.mkv, best quality, H.264 preview track
  streamcodec encode clip.mp4 -o low.mkv --quality 1 --no-preview
  streamcodec encode clip.mp4 --bitrate 40         # codec track at most ~40 kbps (preview, audio on top)
  streamcodec decode clip.mkv -o clip.decoded.mp4 --reference clip.mp4   # prints PSNR / MS-SSIM
  streamcodec decode clip.mkv -o frames/           # PNG per frame
  streamcodec info clip.mkv --json
  streamcodec eval clip.mp4 --codecs streamcodec-gc,x264,x265 --out eval-results/
"""


FORCE_FILE_HELP = (
    "replace an existing output file (by one rename, once the new file is complete); "
    "without it an existing output is refused before any work"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


def _add_encode(sub: Any) -> None:
    p = sub.add_parser(
        "encode",
        help="encode a video into a streamcodec .mkv",
        description=(
            "Encode any video PyAV can open into Matroska: our V_STREAMCODEC track (one self-contained packet "
            "per frame), the source's audio copied untouched, and by default a small H.264 preview track so "
            "ordinary players show something. The output appears only when complete."
        ),
    )
    p.add_argument("input", type=Path, help="source video (mp4, mkv, mov, avi, webm, y4m, ...)")
    p.add_argument("-o", "--output", type=Path, help="output .mkv (default: INPUT with .mkv suffix; a .mkv input gets .sc.mkv)")
    p.add_argument(
        "--mode",
        choices=["sc", "gc"],
        default="sc",
        help=(
            "sc (default): selective, the kept region (--keep) coded by HEVC/AV1, the rest from a background layer; "
            "gc: global generative compression, every pixel synthesized"
        ),
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--quality",
        type=_positive_int,
        help=(
            "rate point from 1 (lowest rate) to 4 for sc, to the model's number of levels for gc "
            f"({_gc_levels()} for gc-small) (default: the highest)"
        ),
    )
    rate.add_argument(
        "--bitrate",
        type=_positive_float,
        metavar="KBPS",
        help=(
            "target rate of the codec's own track (not the file: the preview and audio come on top): the highest "
            "quality whose rate, estimated on the first frames, fits KBPS; below the lowest quality's rate, a "
            "warning and quality 1"
        ),
    )
    p.add_argument("--model", default=None, help="registered model name (see `streamcodec models`)")
    _add_selective(p)
    p.add_argument(
        "--gop", type=_positive_int, default=25, metavar="FRAMES", help="an intra frame every FRAMES frames (default 25)"
    )
    p.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add an H.264 preview track, the one players show, capped at about half the codec track's rate (default on)",
    )
    add_engine_argument(p)
    add_workers_argument(p, "encode")
    p.add_argument("-y", "--force", action="store_true", help=FORCE_FILE_HELP)
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a line")
    p.set_defaults(run=_run_encode)


def _gc_levels() -> int:
    from ..codec import quality_levels

    return quality_levels("gc-small")


def _keep_list(text: str) -> tuple[str, ...]:
    from ..errors import ModelError
    from ..selective.masks import parse_keep

    try:
        return parse_keep(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _crf(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 63:
        raise argparse.ArgumentTypeError(f"{value} is not a CRF in 0..63")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is outside 0..1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{value:g} s is outside 0..86400")
    return value


def _feather(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 16:
        raise argparse.ArgumentTypeError(f"feather {value} is outside 0..16 px")
    return value


def _add_selective(p: Any) -> None:
    g = p.add_argument_group("selective mode (--mode sc)")
    g.add_argument(
        "--keep",
        type=_keep_list,
        default=None,
        metavar="LIST",
        help="what to keep at full fidelity, comma-separated from person, face, motion, text (default person,face,motion)",
    )
    g.add_argument(
        "--mask", type=Path, metavar="MASKVIDEO", help="also keep a mask video's white pixels (luma > 127), frame by frame"
    )
    g.add_argument("--segmenter", metavar="onnx:PATH", help="person segmenter: selfie (built in, default) or onnx:PATH")
    g.add_argument(
        "--fidelity",
        choices=["hevc", "av1", "learned"],
        help="codec of the kept region: av1 (SVT-AV1; the default with --latency offline), hevc (x265; the default "
        "with --latency zero) or learned (the GC model's latents inside the mask, zeroed outside; --model picks it; "
        "far below both in quality today)",
    )
    g.add_argument(
        "--latency",
        choices=["offline", "zero"],
        help="offline (default): the kept region's codec looks ahead (x265 lookahead and cu-tree; SVT-AV1 "
        "hierarchical mini-GOPs), fewer bits for the same quality; zero: each frame coded at once, as `webcam` does. "
        "Decoding is the same either way",
    )
    g.add_argument(
        "--background",
        choices=["plate", "synth"],
        help="outside the kept region: plate (a coded background picture per keyframe, default) or synth "
        "(generated by sc-small from a q1 GC latent and a label map)",
    )
    g.add_argument(
        "--labels",
        metavar="SPEC",
        help="labeler of --background synth: builtin (default; the one sc-small is trained on) or onnx:PATH "
        "(needs a synthesis model trained for it)",
    )
    g.add_argument(
        "--fg-quality", type=_crf, metavar="CRF", help="CRF of the kept region, overriding --quality's (learned: GC level 1..4)"
    )
    g.add_argument(
        "--bg-quality",
        type=_crf,
        metavar="CRF",
        help="CRF of the background plate (default: the kept region's + 8 hevc, + 18 av1, 4 less for av1 plates "
        "that are updated between full ones, as in files)",
    )
    g.add_argument(
        "--feather",
        type=_feather,
        metavar="PX",
        help="width of the blend between kept region and background, inside the kept region, 0..16 px (default 0; a "
        "few px hide seams when the background moves or is synthesized, but mix the coarser plate into the kept region)",
    )
    g.add_argument(
        "--whole-above",
        type=_share,
        metavar="SHARE",
        help="code a GOP whole, every block kept and no plate, when its keyframe keeps more than SHARE of the "
        "picture (default 0.6; 1 = never): a talking head or a moving camera keeps most of it anyway, and there "
        "the mask's edge and the plate cost more than the background they leave out",
    )
    g.add_argument(
        "--plate-refresh",
        type=_seconds,
        metavar="SECONDS",
        help="seconds between full background plates; the keyframes between carry small updates of the last one "
        "(default 10 for files, 0 with --latency zero). 0: a full plate at every keyframe, so that a decoder starting "
        "at any keyframe has its background at once; otherwise one starting between full plates shows a grey "
        "background until the next",
    )
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="speed preset of the kept region's codec (and the plate's): SVT-AV1 0..13, x265 ultrafast..placebo. "
        "Default: 2 (av1) / medium (hevc) with --latency offline, 10 / fast live. Faster presets take more bits: "
        "av1 preset 4 about 11-20 %% more than 2 at equal quality, in about 0.4x the encode time",
    )
    g.add_argument(
        "--save-masks",
        type=Path,
        metavar="DIR",
        help="write each frame's kept mask as mask_NNNNNN.png into DIR (a new or empty folder)",
    )


SELECTIVE_FLAGS = (
    "keep",
    "mask",
    "segmenter",
    "fidelity",
    "latency",
    "background",
    "labels",
    "fg_quality",
    "bg_quality",
    "feather",
    "whole_above",
    "preset",
    "plate_refresh",
    "save_masks",
)


def _selective_args(args: argparse.Namespace) -> dict[str, Any]:
    given = [name for name in SELECTIVE_FLAGS if getattr(args, name) is not None]
    if args.mode != "sc":
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} applies only to --mode sc")
        return {}
    names = {"mask": "mask_video", "fidelity": "fidelity", "background": "background"}
    return {names.get(name, name): getattr(args, name) for name in given}


def _add_decode(sub: Any) -> None:
    p = sub.add_parser(
        "decode",
        help="decode a streamcodec .mkv to a video file or PNG frames",
        description=(
            "Reconstruct every frame at the source's size and timestamps. Output by suffix: .mp4/.mkv/.mov "
            "(H.264, audio carried over), .y4m (raw 4:4:4), or a folder (one PNG per frame). Damaged frames are "
            "reported and concealed with the last good frame until the next keyframe."
        ),
    )
    p.add_argument("input", type=Path, help="a .mkv made by streamcodec encode")
    p.add_argument("-o", "--output", help="output file, or a new or empty folder/ for PNGs (default: INPUT with .decoded.mp4)")
    p.add_argument("--reference", type=Path, help="the source video: also print PSNR and MS-SSIM against it")
    add_engine_argument(p)
    add_workers_argument(p, "decode")
    p.add_argument(
        "--salvage",
        action="store_true",
        help="decode what a truncated file holds instead of refusing it (the cut is reported as a warning)",
    )
    p.add_argument(
        "-y",
        "--force",
        action="store_true",
        help=FORCE_FILE_HELP + "; PNG frames go only into a new or empty folder, which --force never empties",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=_run_decode)


def _add_info(sub: Any) -> None:
    p = sub.add_parser(
        "info",
        help="show what a streamcodec .mkv holds",
        description=(
            "Stream configuration, model identifier, format version, frame count, per-frame bits, keyframes "
            "and bitrate of our track (preview and audio bytes listed separately). Every CRC and frame checksum is verified."
        ),
    )
    p.add_argument("input", type=Path, help="a .mkv made by streamcodec encode")
    p.add_argument("--frames", action="store_true", help="also list every frame's bits by layer (JSON always has them)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(run=_run_info)


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a GC model and export it as a registered model",
        description=(
            "Train on folders of images and videos (random crops). Checkpoints go to OUT/checkpoint.pt every "
            "checkpoint_every steps and on Ctrl-C/SIGTERM; --resume continues one. At the end the model is "
            "exported: weights, frozen entropy tables and an identifier from the weights' hash."
        ),
    )
    p.add_argument("--config", type=Path, required=True, help="TOML config (see configs/gc-small.toml)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="folders (or files) of images and videos")
    p.add_argument("--out", type=Path, help="run folder (default runs/NAME)")
    p.add_argument("--resume", type=Path, help="checkpoint to continue from")
    p.add_argument("--export-to", type=Path, help="folder for the exported model (default: the package's weights/)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.set_defaults(run=_run_train)


def _codec_list(text: str) -> list[str]:
    from ..eval.codecs import CODECS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CODECS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown codec(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CODECS)}")
    return names


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
only computes what is missing, and failed cells are retried.

example:
  streamcodec eval samples/bbb_640x360.mp4 --points 4 --out eval-results
"""


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="compare streamcodec with x264/x265/SVT-AV1 on clips (RD curves, BD-rate, report)",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Encode every clip with every codec at several rate points, decode, and measure bitrate (kbps, bpp), "
            "PSNR and MS-SSIM (whole frame and kept region), VMAF (when a libvmaf ffmpeg is found), person-mask IoU, "
            "temporal flicker and encode/decode fps. Writes results.csv, results.json, rd_<clip>.png, report.html "
            "and summary.md into OUT, with BD-rates against the anchor. Metrics that need selective-mode masks are "
            "reported as not available until selective mode exists."
        ),
    )
    p.add_argument("clips", type=Path, nargs="+", metavar="CLIP", help="source videos (audio is ignored)")
    p.add_argument(
        "--codecs",
        type=_codec_list,
        default=None,
        metavar="LIST",
        help="comma-separated (default: streamcodec-sc,streamcodec-gc,x264,x265,x265-roi,svtav1)",
    )
    p.add_argument(
        "--points", type=_positive_int, default=4, metavar="N", help="rate points per codec (default 4; BD-rate needs 4)"
    )
    p.add_argument("--out", type=Path, default=Path("eval-results"), metavar="DIR", help="output folder (default eval-results/)")
    p.add_argument("--anchor", default=None, help="BD-rate reference codec (default x265, else the first of --codecs)")
    p.add_argument("--model", default=None, help="streamcodec model (default: the default model)")
    p.add_argument(
        "--gop", type=_positive_int, default=25, metavar="FRAMES", help="keyframe interval for every codec (default 25)"
    )
    p.add_argument("--vmaf", action=argparse.BooleanOptionalAction, default=True, help="measure VMAF when possible (default on)")
    p.set_defaults(run=_run_eval)


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--json", action="store_true", help="print name, model identifier and weights file of each as JSON")
    p.set_defaults(run=_run_models)


def _print(summary: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(summary.line() if hasattr(summary, "line") else summary.text())


def _run_encode(args: argparse.Namespace) -> int:
    from ..models.registry import DEFAULT_MODEL
    from ..pipeline.encode import encode_file

    output = args.output or args.input.with_suffix(".sc.mkv" if args.input.suffix.lower() == ".mkv" else ".mkv")
    summary = encode_file(
        args.input,
        output,
        mode=args.mode,
        model=args.model or DEFAULT_MODEL,
        quality=args.quality,
        bitrate_kbps=args.bitrate,
        gop=args.gop,
        preview=args.preview,
        backend=args.engine,
        progress=_progress(args),
        on_warning=_warn,
        force=args.force,
        workers=_workers(args),
        **_selective_args(args),
    )
    _print(summary, args.json)
    return 0


def _workers(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: at least 1")
    return int(args.workers)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _run_decode(args: argparse.Namespace) -> int:
    from ..pipeline.decode import decode_file

    output = args.output or args.input.with_suffix(".decoded.mp4")
    summary = decode_file(
        args.input,
        output,
        reference=args.reference,
        backend=args.engine,
        progress=_progress(args),
        on_warning=_warn,
        salvage=args.salvage,
        force=args.force,
        workers=_workers(args),
    )
    _print(summary, args.json)
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from ..pipeline.info import stream_info

    info = stream_info(args.input)
    print(json.dumps(info.to_dict(), indent=2, default=str) if args.json else info.text(per_frame=args.frames))
    return 1 if info.damaged else 0


def _run_models(args: argparse.Namespace) -> int:
    from ..models.registry import REGISTRY

    rows = [{"name": n, "model_id": REGISTRY.entry(n).model_id, "file": str(REGISTRY.entry(n).path)} for n in REGISTRY.names()]
    print(json.dumps(rows, indent=2) if args.json else "\n".join(f"{r['name']}\t{r['model_id']}" for r in rows))
    return 0


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from ..models.registry import WEIGHTS_DIR
    from ..train.export import export_checkpoint
    from ..train.gc import Trainer, load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    name, model_cfg, train_cfg = load_config(args.config)
    trainer = Trainer(name, model_cfg, train_cfg, args.data, args.out or Path("runs") / name)
    if args.resume:
        trainer.load(args.resume)
    checkpoint = trainer.run()
    if trainer.step < train_cfg.steps:
        print(f"stopped at step {trainer.step}/{train_cfg.steps}: resume with --resume {checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    exported = export_checkpoint(checkpoint, args.data, name, args.export_to or WEIGHTS_DIR)
    print(json.dumps(exported))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    import shlex

    from ..eval import EvalConfig, run_eval
    from ..eval.codecs import DEFAULT_CODECS
    from ..models.registry import DEFAULT_MODEL

    config = EvalConfig(
        clips=args.clips,
        codecs=args.codecs or list(DEFAULT_CODECS),
        points=args.points,
        out=args.out,
        anchor=args.anchor,
        model=args.model or DEFAULT_MODEL,
        gop=args.gop,
        vmaf=args.vmaf,
        progress=sys.stderr.isatty(),
        command=shlex.join(["streamcodec", *sys.argv[1:]]),
    )
    run = run_eval(config)
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


def _progress(args: argparse.Namespace) -> bool:
    return not args.json and sys.stderr.isatty()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamcodec",
        description="streamcodec: a learned generative video codec in Matroska (CodecID V_STREAMCODEC).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"streamcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (_add_encode, _add_decode, _add_info, _add_models, _add_train, _add_eval)
    for add in (*commands, add_live_commands, add_archive_commands, add_engine_commands):
        add(sub)
    return parser


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except StreamcodecError as exc:
        print(f"streamcodec {args.command}: error: {exc}", file=sys.stderr)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # An OSError raised with only a message has no filename or strerror: print the message.
        detail = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        print(f"streamcodec {args.command}: error: {detail}", file=sys.stderr)
    except ValueError as exc:
        print(f"streamcodec {args.command}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"streamcodec {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR

