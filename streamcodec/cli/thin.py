"""`streamcodec thin IN.mkv -o OUT.mkv --iterations K`: a progressive stream cut to fewer iterations, nothing re-encoded.

`-` for IN or OUT: stdin or stdout, as `encode` takes it (`cat all.mkv | streamcodec thin - -o - --iterations 2 > low.mkv`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import CONTEXT, POSITIVE_INT, Command, Group, InputPath, argument, option


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
    "ones an encode at K iterations gives. A damaged input is refused; the output appears only when complete. "
    "`-` reads the stream from stdin (INPUT; held in a temporary file until read) or writes it to stdout (-o -: "
    "the same packets as a file, as a stream without a Segment size or Duration, the Cues last; the input is "
    "checked whole first, so a damaged one sends nothing), the summary then going to stderr.",
)
@argument("input", "a progressive .mkv made by streamcodec encode --mode progressive; - for stdin",
          type=InputPath(path_type=Path))  # fmt: skip
@option("-o", "--output", type=InputPath(path_type=Path), required=True,
        help="the thinned .mkv (never the input), - for stdout")  # fmt: skip
@option("--iterations", type=POSITIVE_INT, required=True, metavar="K", help="iterations to keep, 1..the stream's")
@option("-y", "--force", is_flag=True,
        help="replace an existing output file (by one rename, once the new file is complete); with -o -, "
        "write to a terminal")  # fmt: skip
@option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def thin(input: Path | str, output: Path | str, iterations: int, force: bool, as_json: bool) -> int:
    import json

    from ..pipeline.thin import thin_file

    summary = thin_file(input, output, iterations, force=force, progress=sys.stderr.isatty() and not as_json)
    text = json.dumps(summary.to_dict(), indent=2) if as_json else summary.line()
    print(text, file=sys.stderr if output == "-" else sys.stdout)  # stdout held the stream
    return 0
