"""The archive commands: `archive` (with its `status`, `find` and `thin` forms), `verify` and `restore`.

`archive SRC...` takes free positional sources, so `status`, `find` and `thin` are its first word rather
than sub-commands (which cannot share a command with free positionals): `archive status
DIR`, `archive find DIR --has KIND` and `archive thin DIR --older-than DAYS --iterations K` are read as
such, and a source folder that happens to be called `status`, `find` or `thin` is given as `./status`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from .base import CONTEXT, POSITIVE_INT, Checked, Command, Group, argument, option
from .engines import engine_option
from .selective import keep_list

EXIT_PROBLEM = 1
#: restore: every file restored, but some with damaged frames concealed (0 with --allow-damaged).
EXIT_CONCEALED = 3

ARCHIVE_USAGE = """
  streamcodec archive SRC... --out DIR [--mode sc|gc|progressive] [--quality Q] [--jobs N] [--threads-per-job T]
                                [--ray [ADDRESS]] [--engine E]
  streamcodec archive status DIR
  streamcodec archive find DIR --has KIND [--between T1 T2]
  streamcodec archive thin DIR --older-than DAYS --iterations K"""

ARCHIVE_EPILOG = """forms:
  archive SRC... --out DIR   encode every video under the files and folders SRC into DIR, mirroring their
                             layout (a folder keeps its own name), with a catalogue (catalogue.sqlite) in DIR.
                             Kill it at any moment and rerun the same command: finished files are skipped by
                             content hash (a renamed copy is recognised), interrupted ones are redone.
  archive status DIR         done / failed / pending, space saved, throughput, and each failure's reason.
  archive find DIR --has K   the files and times (seconds into each file) where kind K (person, face, motion,
                             text, mask, kept) was seen, from the catalogue: nothing is decoded.
  archive thin DIR --older-than DAYS --iterations K
                             cut every progressive file archived at least DAYS ago (the catalogue's archive
                             time) to its first K iterations, in place, nothing decoded; the catalogue follows
                             and verify still passes. Other modes are skipped; a second run does nothing.
examples:
  streamcodec archive /srv/cctv --out /archive/cctv --jobs 2
  streamcodec archive /srv/cctv --out /archive/cctv --jobs 8 --threads-per-job 2   # 16 cores: 8 files at once
  streamcodec archive /srv/cctv --out /archive/cctv --ray                   # a local Ray instance
  streamcodec archive /srv/cctv --out /archive/cctv --ray ray://head:10001  # a Ray cluster (shared filesystem)
  streamcodec archive find /archive/cctv --has person --between 0:30 2:00
  streamcodec archive thin /archive/cctv --older-than 90 --iterations 2
  streamcodec verify /archive/cctv --full
  streamcodec restore /archive/cctv --out /tmp/restored"""


def add_archive_commands(cli: Group) -> None:
    """Register `archive`, `verify` and `restore` on the top-level group."""
    for archive_command in (archive, verify, restore):
        cli.add_command(archive_command)


@click.command(
    "archive",
    cls=Command,
    context_settings=CONTEXT,
    usage=ARCHIVE_USAGE,
    short_help="archive folders of footage: batch, resumable, searchable (also: archive status, find, thin)",
    help="Offline archival of footage into a folder with a searchable SQLite catalogue.",
    epilog=ARCHIVE_EPILOG,
)
@argument("src", "files and folders to archive (or: status DIR, find DIR, thin DIR)", nargs=-1, required=True, metavar="SRC...")
@option("--out", type=click.Path(path_type=Path), metavar="DIR", help="the archive folder (created if needed)")
@option("--mode", type=click.Choice(["sc", "gc", "progressive"]), default="sc",
        help="sc (default): selective; gc: generative; progressive: all intra, thinned later by `archive thin`")
@option("--quality", type=POSITIVE_INT,
        help="rate point, 1 (smallest) to 4 for sc; progressive: the iterations kept (default: the highest)")
@option("--keep", type=Checked("LIST", keep_list), metavar="LIST",
        help="sc: kinds to keep, e.g. person,face,motion,text (default person,face,motion)")
@option("--preset", metavar="NAME",
        help="sc: speed preset of the kept region's codec, SVT-AV1 0..13 (default 4: about 2.9x real time on two "
        "cores at 640x480, 10 fps; 2, what encode uses, takes 11-20 % fewer bytes for about 2.5x the time)")
@option("--jobs", type=POSITIVE_INT, default=1, help="files encoded at once by local processes (default 1)")
@option("--threads-per-job", type=POSITIVE_INT, metavar="T",
        help="CPU threads each job uses (x265's pool, torch, OpenCV, ONNX Runtime; 1: sc's mask kinds and look-ahead "
        "in turn, not beside) and, on Ray, the CPUs each task asks for (default: the cores divided between the jobs; "
        "1 per task on a Ray cluster); the output is the same whatever T is")
@option("--ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
        help="run the files as Ray tasks: on the cluster at ADDRESS, or alone on a local Ray with --jobs CPUs")
@engine_option
@option("--has", metavar="KIND", help="find: the kind to look for")
@option("--between", nargs=2, metavar="T1 T2", help="find: seconds or [H:]MM:SS into each file")
@option("--older-than", type=click.FloatRange(min=0), metavar="DAYS", help="thin: files archived at least DAYS ago")
@option("--iterations", type=POSITIVE_INT, metavar="K", help="thin: the iterations to keep")
@click.pass_context
def archive(ctx: click.Context, src: tuple[str, ...], out: Path | None, mode: str, quality: int | None,
            keep: tuple[str, ...] | None, preset: str | None, jobs: int, threads_per_job: int | None, ray: str | None,
            engine: str, has: str | None, between: tuple[str, str] | None, older_than: float | None,
            iterations: int | None) -> int:  # fmt: skip
    first = src[0]
    if first in ("status", "find", "thin"):
        if len(src) != 2:
            raise ValueError(f"archive {first} takes one archive folder, got {len(src) - 1}: {list(src[1:])}")
        folder = Path(src[1])
        if first == "thin":
            return _thin(folder, older_than, iterations)
        return _status(folder) if first == "status" else _find(folder, has, between)
    if out is None:
        raise ValueError("archive needs --out DIR, the archive folder")
    from ..archive import ArchiveOptions
    from ..archive import archive as run_archive
    from ..codec import FIDELITY_PRESETS

    if preset is not None:
        if mode != "sc":
            raise ValueError("--preset applies only to --mode sc")
        if preset not in FIDELITY_PRESETS["av1"]:
            raise ValueError(f"--preset {preset} is not an SVT-AV1 preset ({', '.join(FIDELITY_PRESETS['av1'])})")
    options = ArchiveOptions(
        sources=[Path(s) for s in src],
        archive=out,
        mode=mode,
        quality=quality,
        backend=engine,
        keep=_kinds(ctx, keep),
        preset=preset,
        jobs=jobs,
        threads=threads_per_job,
        ray=ray,
        progress=sys.stderr.isatty(),
        command=shlex.join(["streamcodec", *sys.argv[1:]]),
    )
    summary = run_archive(options)
    print(summary.text())
    return EXIT_PROBLEM if summary.failed or summary.disk_full else 0


def _kinds(ctx: click.Context, keep: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """`--keep`'s kinds, checked (here, not while parsing: the check loads the codec)."""
    if keep is None:
        return None
    from ..codec import parse_keep
    from ..errors import ModelError

    try:
        return parse_keep(",".join(keep))
    except ModelError as exc:
        raise click.BadParameter(str(exc), ctx, next(p for p in ctx.command.params if p.name == "keep")) from None


@click.command(
    "verify",
    cls=Command,
    context_settings=CONTEXT,
    short_help="check an archive: every file's CRCs, size and sha256 against the catalogue (--full: decode all)",
    help="Names every damaged or missing archived file, and every catalogue row whose path leads outside DIR "
    "(refused, not read); exits 1 if there is one.",
)
@argument("dir", "the archive folder", type=click.Path(path_type=Path), metavar="DIR")
@option("--full", is_flag=True, help="also decode every file and report any damaged frame")
@engine_option
def verify(dir: Path, full: bool, engine: str) -> int:
    from ..archive import verify as run_verify

    report = run_verify(dir, full=full, backend=engine, progress=sys.stderr.isatty())
    print(report.text())
    return 0 if report.ok else EXIT_PROBLEM


@click.command(
    "restore",
    cls=Command,
    context_settings=CONTEXT,
    short_help="decode an archive back to ordinary video (.mp4, mirrored layout)",
    help="Decodes every archived source (duplicates too, from their original's file) into RESTORED; existing files "
    "there are left as they are. A file with damaged frames is restored with them concealed and named with their "
    "count. A catalogue row whose path leads outside DIR or RESTORED is refused.",
    epilog=f"""exit status:
  0   every source restored
  {EXIT_PROBLEM}   a file failed, or a catalogue row was refused (named on a `refused:` line)
  {EXIT_CONCEALED}   every source restored, some with damaged frames concealed (0 with --allow-damaged)""",
)
@argument("dir", "the archive folder", type=click.Path(path_type=Path), metavar="DIR")
@option("--out", type=click.Path(path_type=Path), required=True, metavar="RESTORED", help="folder for the restored videos")
@option("--allow-damaged", is_flag=True, help=f"exit 0, not {EXIT_CONCEALED}, when damaged frames were concealed "
        "(each such file is still named)")  # fmt: skip
@engine_option
def restore(dir: Path, out: Path, allow_damaged: bool, engine: str) -> int:
    from ..archive import restore as run_restore

    report = run_restore(dir, out, backend=engine, progress=sys.stderr.isatty())
    print(report.text())
    if not report.ok:
        return EXIT_PROBLEM
    return EXIT_CONCEALED if report.concealed and not allow_damaged else 0


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


def _thin(folder: Path, older_than: float | None, iterations: int | None) -> int:
    from ..archive import thin_archive

    if older_than is None or iterations is None:
        raise ValueError("archive thin needs --older-than DAYS and --iterations K")
    report = thin_archive(folder, older_than, iterations)
    print(report.text())
    return EXIT_PROBLEM if report.failed else 0


def _find(folder: Path, kind: str | None, between: Sequence[str] | None) -> int:
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
