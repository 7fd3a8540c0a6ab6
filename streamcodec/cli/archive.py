"""The archive commands: `archive` (with its `status` and `find` forms), `verify` and `restore`.

`archive SRC...` takes free positional sources, so `status` and `find` are its first word rather
than argparse sub-commands (which cannot share a parser with free positionals): `archive status
DIR` and `archive find DIR --has KIND` are read as such, and a source folder that happens to be
called `status` or `find` is given as `./status`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .engines import add_engine_argument

EXIT_PROBLEM = 1

ARCHIVE_USAGE = """
  streamcodec archive SRC... --out DIR [--mode sc|gc] [--quality Q] [--jobs N] [--threads-per-job T]
                                [--ray [ADDRESS]] [--engine E]
  streamcodec archive status DIR
  streamcodec archive find DIR --has KIND [--between T1 T2]"""

ARCHIVE_EPILOG = """forms:
  archive SRC... --out DIR   encode every video under the files and folders SRC into DIR, mirroring their
                             layout (a folder keeps its own name), with a catalogue (catalogue.sqlite) in DIR.
                             Kill it at any moment and rerun the same command: finished files are skipped by
                             content hash (a renamed copy is recognised), interrupted ones are redone.
  archive status DIR         done / failed / pending, space saved, throughput, and each failure's reason.
  archive find DIR --has K   the files and times (seconds into each file) where kind K (person, face, motion,
                             text, mask, kept) was seen, from the catalogue: nothing is decoded.
examples:
  streamcodec archive /srv/cctv --out /archive/cctv --jobs 2
  streamcodec archive /srv/cctv --out /archive/cctv --jobs 8 --threads-per-job 2   # 16 cores: 8 files at once
  streamcodec archive /srv/cctv --out /archive/cctv --ray                   # a local Ray instance
  streamcodec archive /srv/cctv --out /archive/cctv --ray ray://head:10001  # a Ray cluster (shared filesystem)
  streamcodec archive find /archive/cctv --has person --between 0:30 2:00
  streamcodec verify /archive/cctv --full
  streamcodec restore /archive/cctv --out /tmp/restored"""


def add_archive_commands(sub: Any) -> None:
    """Register `archive`, `verify` and `restore` on the main parser's sub-command set."""
    _add_archive(sub)
    _add_verify(sub)
    _add_restore(sub)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 1")
    return value


def _add_archive(sub: Any) -> None:
    p = sub.add_parser(
        "archive",
        help="archive folders of footage: batch, resumable, searchable (also: archive status, archive find)",
        usage=ARCHIVE_USAGE,
        description="Offline archival of footage into a folder with a searchable SQLite catalogue.",
        epilog=ARCHIVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="files and folders to archive (or: status DIR, find DIR)")
    p.add_argument("--out", type=Path, metavar="DIR", help="the archive folder (created if needed)")
    p.add_argument("--mode", choices=["sc", "gc"], default="sc", help="sc (default): selective; gc: generative")
    p.add_argument("--quality", type=_positive_int, help="rate point, 1 (smallest) to 4 for sc (default: the highest)")
    p.add_argument("--keep", type=_keep_list, help="sc: kinds to keep, e.g. person,face,motion,text (default person,face,motion)")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="sc: speed preset of the kept region's codec, SVT-AV1 0..13 (default 4: about 2.9x real time on two "
        "cores at 640x480, 10 fps; 2, what encode uses, takes 11-20 %% fewer bytes for about 2.5x the time)",
    )
    p.add_argument("--jobs", type=_positive_int, default=1, help="files encoded at once by local processes (default 1)")
    p.add_argument(
        "--threads-per-job",
        type=_positive_int,
        metavar="T",
        help="CPU threads each job uses (x265's pool, torch, OpenCV, ONNX Runtime; 1: sc's mask kinds and look-ahead "
        "in turn, not beside) and, on Ray, the CPUs each task asks for (default: the cores divided between the jobs; "
        "1 per task on a Ray cluster); the output is the same whatever T is",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the files as Ray tasks: on the cluster at ADDRESS, or alone on a local Ray with --jobs CPUs",
    )
    add_engine_argument(p)
    p.add_argument("--has", metavar="KIND", help="find: the kind to look for")
    p.add_argument("--between", nargs=2, metavar=("T1", "T2"), help="find: seconds or [H:]MM:SS into each file")
    p.set_defaults(run=_run_archive)


def _keep_list(text: str) -> tuple[str, ...]:
    from ..errors import ModelError
    from ..selective.masks import parse_keep

    try:
        return parse_keep(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_verify(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check an archive: every file's CRCs, size and sha256 against the catalogue (--full: decode all)",
        description="Names every damaged or missing archived file; exits 1 if there is one.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the archive folder")
    p.add_argument("--full", action="store_true", help="also decode every file and report any damaged frame")
    add_engine_argument(p)
    p.set_defaults(run=_run_verify)


def _add_restore(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="decode an archive back to ordinary video (.mp4, mirrored layout)",
        description="Decodes every archived file into RESTORED; existing files there are left as they are.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the archive folder")
    p.add_argument("--out", type=Path, required=True, metavar="RESTORED", help="folder for the restored videos")
    add_engine_argument(p)
    p.set_defaults(run=_run_restore)


def _run_archive(args: argparse.Namespace) -> int:
    first = args.src[0]
    if first in ("status", "find"):
        if len(args.src) != 2:
            raise ValueError(f"archive {first} takes one archive folder, got {len(args.src) - 1}: {args.src[1:]}")
        folder = Path(args.src[1])
        return _status(folder) if first == "status" else _find(folder, args.has, args.between)
    if args.out is None:
        raise ValueError("archive needs --out DIR, the archive folder")
    if args.preset is not None:
        from ..selective.fidelity import PRESETS

        if args.mode != "sc":
            raise ValueError("--preset applies only to --mode sc")
        if args.preset not in PRESETS["av1"]:
            raise ValueError(f"--preset {args.preset} is not an SVT-AV1 preset ({', '.join(PRESETS['av1'])})")
    from ..archive import ArchiveOptions, archive

    options = ArchiveOptions(
        sources=[Path(s) for s in args.src],
        archive=args.out,
        mode=args.mode,
        quality=args.quality,
        backend=args.engine,
        keep=args.keep,
        preset=args.preset,
        jobs=args.jobs,
        threads=args.threads_per_job,
        ray=args.ray,
        progress=sys.stderr.isatty(),
        command=shlex.join(["streamcodec", *sys.argv[1:]]),
    )
    summary = archive(options)
    print(summary.text())
    return EXIT_PROBLEM if summary.failed or summary.disk_full else 0


def _status(folder: Path) -> int:
    from ..archive import Catalogue

    with Catalogue(folder) as catalogue:
        counts = catalogue.counts()
        done = catalogue.rows("done")
        failed = catalogue.rows("failed")
        runs = catalogue.runs()
    bytes_in = sum(row.size for row in done)
    bytes_out = sum(row.output_size or 0 for row in done)
    footage = sum(row.duration_s or 0 for row in done)
    encode = sum(row.encode_s or 0 for row in done)
    print(", ".join(f"{n} {status}" for status, n in counts.items()))
    print(
        f"{footage / 3600:.3f} h of footage, {bytes_in / 1e6:.2f} MB → {bytes_out / 1e6:.2f} MB "
        f"(saved {(bytes_in - bytes_out) / 1e6:.2f} MB, ratio {bytes_in / bytes_out if bytes_out else 0:.1f})"
    )
    if encode:
        print(f"encoding speed {footage / encode:.2f}x real time per worker ({len(runs)} runs)")
    for row in failed:
        print(f"failed: {row.source}: {row.error}")
    return 0


def _find(folder: Path, kind: str | None, between: list[str] | None) -> int:
    from ..archive import Catalogue

    if not kind:
        raise ValueError("archive find needs --has KIND (person, face, motion, text, mask or kept)")
    start, end = (_seconds(between[0]), _seconds(between[1])) if between else (0.0, float("inf"))
    if end < start:
        raise ValueError(f"--between {' '.join(between or [])}: the end is before the start")
    with Catalogue(folder) as catalogue:
        spans = list(_spans(catalogue.seconds_with(kind, start, end)))
        known = catalogue.kinds_seen()
    if not spans and kind not in known:
        print(f"no {kind!r} in this archive's index (kinds indexed: {', '.join(known) or 'none'})", file=sys.stderr)
    for source, first, last, regions in spans:
        print(f"{source}\t{_clock(first)}-{_clock(last + 1)}\tup to {regions} {kind} region{'s' if regions != 1 else ''}")
    return 0 if spans else EXIT_PROBLEM


def _spans(rows: Iterator[tuple[str, int, int]]) -> Iterator[tuple[str, int, int, int]]:
    """Consecutive seconds of one file merged: (source, first second, last second, most regions)."""
    current: tuple[str, int, int, int] | None = None
    for source, second, regions in rows:
        if current is not None and current[0] == source and second == current[2] + 1:
            current = (source, current[1], second, max(current[3], regions))
            continue
        if current is not None:
            yield current
        current = (source, second, second, regions)
    if current is not None:
        yield current


def _seconds(text: str) -> float:
    """'90', '1.5', '1:30' or '0:01:30' → seconds."""
    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise ValueError(f"--between {text!r}: give seconds or [H:]MM:SS") from None
    return value


def _clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _run_verify(args: argparse.Namespace) -> int:
    from ..archive import verify

    report = verify(args.dir, full=args.full, backend=args.engine, progress=sys.stderr.isatty())
    print(report.text())
    return 0 if report.ok else EXIT_PROBLEM


def _run_restore(args: argparse.Namespace) -> int:
    from ..archive import restore

    report = restore(args.dir, args.out, backend=args.engine, progress=sys.stderr.isatty())
    print(report.text())
    return EXIT_PROBLEM if report.failed else 0
