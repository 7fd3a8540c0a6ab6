"""`streamcodec thin IN.mkv -o OUT.mkv --iterations K`: a progressive stream cut to fewer iterations, nothing re-encoded."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import CONTEXT, POSITIVE_INT, Command, Group, argument, option


def add_thin_command(cli: Group) -> None:
    """Register `thin` on the top-level group."""
    cli.add_command(thin)


@click.command(
    "thin",
    cls=Command,
    context_settings=CONTEXT,
    short_help="cut a progressive .mkv to fewer iterations (no decode, no encode)",
    help="Rewrites a progressive stream (encode --mode progressive) with every frame cut to its first K iterations: "
    "each packet keeps its first K sections, with a new length and checksum, and the header says K. Audio, the "
    "preview and tags are copied as they are. Far faster than decoding and encoding again, and the frames are the "
    "ones an encode at K iterations gives. A damaged input is refused; the output appears only when complete.",
)
@argument("input", "a progressive .mkv made by streamcodec encode --mode progressive", type=click.Path(path_type=Path))
@option("-o", "--output", type=click.Path(path_type=Path), required=True, help="the thinned .mkv (never the input)")
@option("--iterations", type=POSITIVE_INT, required=True, metavar="K", help="iterations to keep, 1..the stream's")
@option("-y", "--force", is_flag=True, help="replace an existing output file (by one rename, once the new file is complete)")
@option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def thin(input: Path, output: Path, iterations: int, force: bool, as_json: bool) -> int:
    import json

    from ..pipeline.thin import thin_file

    summary = thin_file(input, output, iterations, force=force, progress=sys.stderr.isatty() and not as_json)
    print(json.dumps(summary.to_dict(), indent=2) if as_json else summary.line())
    return 0
