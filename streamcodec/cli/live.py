"""The live subcommands: `webcam` (all on this machine), `send` and `receive` (two machines).

streamcodec webcam [--camera DEV | --source FILE|URL] [--size 640x480] [--max-kbps N] [--port 8000] [--record OUT.mkv]
streamcodec receive --listen 9000 [--port 8000]           # serves the page
streamcodec send --to HOST:9000 [--camera DEV | --source FILE|URL] ...
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..io.safe_output import check_file_target
from ..live.protocol import TOKEN_ENV, new_token, parse_address
from .base import CONTEXT, Checked, Command, Group, option
from .engines import engine_option

if TYPE_CHECKING:
    from ..live.receiver import Receiver
    from ..live.stats import LiveState
    from ..live.web import PageServer

#: codec.MODES, spelled out so that `streamcodec --help` does not import torch (tests/test_live.py checks they agree).
MODES = ("sc", "gc", "progressive")
DEFAULT_LINK_PORT = 9000
EXIT_ERROR = 1
DEFAULT_PAGE_PORT = 8000
ANY_HOST = "0.0.0.0"
F = TypeVar("F", bound=Callable[..., Any])


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 16 and int(height) >= 16):
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT with both at least 16 (e.g. 640x480)")
    return int(width), int(height)


def _kbps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"--max-kbps {text!r} must be a positive number")
    return value


def _source_options(function: F) -> F:
    """Where the frames come from and how they are coded: `webcam` and `send`."""
    for decorator in reversed((
        option("--camera", metavar="DEVICE", help="camera device (default: the platform's first camera)"),
        option("--source", metavar="FILE|URL", help="play a file or stream at its own frame rate, as if it were a camera"),
        option("--loop", is_flag=True, help="start --source again at its end"),
        option("--size", type=Checked("WxH", _size), metavar="WxH",
               help="frame size (default: 640x480 for a camera, a file's own)"),
        option("--fps", type=float, default=30.0, help="frames per second asked of a camera (default 30)"),
        option("--max-kbps", type=Checked("N", _kbps), metavar="N",
               help="hold the stream under N kbit/s (drops frames, lowers quality)"),
        option("--record", type=click.Path(path_type=Path), metavar="OUT.mkv",
               help="also write the stream to an .mkv `streamcodec decode` reads"),
        option("-y", "--force", is_flag=True, help="replace an existing --record file"),
        option("--mode", type=click.Choice(list(MODES)), default="sc",
               help="sc (selective, default), gc, or progressive (all intra; with --max-kbps a short link gets "
               "fewer iterations of each frame before frames are dropped)"),
        option("--quality", type=int, help="starting quality level (default: the mode's highest)"),
        option("--gop", type=int, default=60, help="a keyframe every GOP frames (default 60); receivers can ask for more"),
        option("--saliency", default="off", metavar="WEIGHTS",
               help="sc: give faces more of the kept region's bits at about the same total, as `encode --saliency` "
               "('on', or face=6,text=4,...; default off)"),
    )):
        function = decorator(function)
    return function


def _page_options(function: F) -> F:
    """The local web page that shows the stream: `webcam` and `receive`."""
    for decorator in reversed((
        option("--port", type=int, default=DEFAULT_PAGE_PORT, help=f"the page's HTTP port (default {DEFAULT_PAGE_PORT})"),
        option("--listen-any", is_flag=True, help="accept other machines (default: this machine only, 127.0.0.1)"),
        option("--dump-frames", type=click.Path(path_type=Path), metavar="DIR",
               help="write the sha256 of every decoded frame to DIR/frames.txt"),
        option("--exit-when-done", is_flag=True, help="exit when the sender finishes (tests, benchmarks)"),
        option("--stats-json", type=click.Path(path_type=Path), metavar="FILE",
               help="write the final statistics as JSON to a new FILE"),
    )):
        function = decorator(function)
    return function


def add_live_commands(cli: Group) -> None:
    """Add `webcam`, `send` and `receive` to the top-level group."""
    for live_command in (webcam, send, receive):
        cli.add_command(live_command)


@click.command(
    "webcam",
    cls=Command,
    context_settings=CONTEXT,
    short_help="live demo: camera → encode → decode → a local web page",
    help="The live demo on one machine: frames from a camera (or a file played at its own rate) are encoded by a "
    "sender process, decoded here and shown on a local web page with the bitrate, latency and masks. "
    "Ctrl-C stops it; --record also keeps the stream as an .mkv.",
)
@_source_options
@engine_option
@_page_options
def webcam(**values: Any) -> int:
    return run_webcam(SimpleNamespace(**values))


@click.command(
    "send",
    cls=Command,
    context_settings=CONTEXT,
    short_help="stream a camera or file live to `streamcodec receive`",
    help="Encode a camera (or a file played at its own rate) at zero latency and stream it over TCP to "
    "`streamcodec receive` on HOST:PORT, holding --max-kbps by dropping frames and lowering quality; the "
    "receiver can ask for a keyframe. Ctrl-C ends the stream (and completes --record).",
)
@option("--to", required=True, metavar="HOST:PORT", help="the receiver's address")
@option("--token", metavar="TOKEN", envvar=TOKEN_ENV, show_envvar=False,
        help=f"the token `receive` printed (default: ${TOKEN_ENV}, which keeps it out of the process list)")
@option("--preview", is_flag=True, help="also send camera and mask pictures for the page (not counted)")
@option("--wait", type=float, default=30.0, metavar="S", help="seconds to try reaching the receiver (default 30)")
@option("--stats-json", type=click.Path(path_type=Path), metavar="FILE", help="write the sender's summary as JSON to a new FILE")
@_source_options
@engine_option
def send(**values: Any) -> int:
    return run_send(SimpleNamespace(**values))


@click.command(
    "receive",
    cls=Command,
    context_settings=CONTEXT,
    short_help="receive a live stream and show it on a local web page",
    help="Wait for `streamcodec send` on [HOST:]PORT, decode its stream as it comes and show it on a local web "
    "page with the bitrate and latency; damaged or missing frames are concealed until the next keyframe, "
    "which is asked of the sender. Ctrl-C stops it.",
)
@option("--listen", default=str(DEFAULT_LINK_PORT), metavar="[HOST:]PORT", help="where senders connect")
@option("--token", metavar="TOKEN", envvar=TOKEN_ENV, show_envvar=False,
        help=f"the secret senders and the page must show (default: ${TOKEN_ENV}, else a new random one, printed)")
@engine_option
@_page_options
def receive(**values: Any) -> int:
    return run_receive(SimpleNamespace(**values))


def run_send(args: SimpleNamespace) -> int:
    from ..live.capture import Capture, open_input
    from ..live.sender import Sender, SenderSettings

    if args.camera and args.source:
        raise ValueError("give --camera or --source, not both")
    if not args.token:
        raise ValueError(f"send needs the receiver's token (printed by `receive`): --token TOKEN or {TOKEN_ENV}=TOKEN")
    if args.mode == "sc":
        from ..codec import SelectiveOptions

        SelectiveOptions(saliency=args.saliency).check()  # a bad --saliency before any camera or connection
    for path, force in ((args.record, args.force), (args.stats_json, False)):
        if path is not None:
            check_file_target(path, force)
    size = args.size or (None if args.source else (640, 480))
    capture = Capture(open_input(args.source, args.camera, size, args.fps), size, paced=bool(args.source), loop=args.loop)
    settings = SenderSettings(
        to=parse_address(args.to),
        token=args.token,
        mode=args.mode,
        saliency=args.saliency,
        quality=args.quality,
        gop=args.gop,
        engine=args.engine,
        max_kbps=args.max_kbps,
        record=args.record,
        force=args.force,
        preview=args.preview,
        wait_s=args.wait,
    )
    try:
        summary = Sender(settings, capture).run()
    finally:
        capture.close()
    print(summary.line() + (f" → {args.record}" if args.record else ""), flush=True)
    if args.stats_json is not None:
        args.stats_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


def _link_address(text: str, listen_any: bool) -> tuple[str, int]:
    host, port = parse_address(text)
    explicit = ":" in text
    return (ANY_HOST if listen_any and not explicit else host), port


def _start_receiver(args: SimpleNamespace, link: str, token: str) -> tuple[Receiver, PageServer, LiveState]:
    from ..live.receiver import Receiver, ReceiverSettings
    from ..live.stats import LiveState
    from ..live.web import PageServer

    if args.stats_json is not None:
        check_file_target(args.stats_json, False)
    state = LiveState()
    address = _link_address(link, args.listen_any)
    receiver = Receiver(ReceiverSettings(address, token, args.engine, args.dump_frames, args.exit_when_done), state)
    page = PageServer((ANY_HOST if args.listen_any else "127.0.0.1", args.port), state, token).start()
    host, port = receiver.address
    scope = "this machine only; --listen-any to accept others" if host.startswith("127.") else "reachable from other machines"
    print(f"listening for a sender on {host}:{port} ({scope})", flush=True)
    print(f"token: {token} (senders: {TOKEN_ENV}={token} streamcodec send --to HOST:{port} ...)", flush=True)
    print(f"page: {page.url}", flush=True)
    return receiver, page, state


def _finish(args: SimpleNamespace, page: PageServer, state: LiveState) -> None:
    page.close()
    stats = state.snapshot()
    print(
        f"received {stats['frames']} frames, latency median {stats['latency_ms_median']:.0f} ms / "
        f"p99 {stats['latency_ms_p99']:.0f} ms; {stats['malformed']} malformed, {stats['corrupt']} corrupt, "
        f"{stats['disconnects']} disconnects",
        flush=True,
    )
    if args.stats_json is not None:
        check_file_target(args.stats_json, False)
        args.stats_json.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")


def run_receive(args: SimpleNamespace) -> int:
    receiver, page, state = _start_receiver(args, args.listen, args.token or new_token())
    try:
        receiver.run()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a receiver is stopped
    finally:
        _finish(args, page, state)
    return 0


def _sender_command(args: SimpleNamespace, to: tuple[str, int]) -> list[str]:
    command = [sys.executable, "-m", "streamcodec.cli", "send", "--to", f"{to[0]}:{to[1]}", "--preview"]
    command += ["--mode", args.mode, "--gop", str(args.gop), "--engine", args.engine, "--fps", str(args.fps)]
    command += ["--saliency", args.saliency]
    for flag, value in (("--camera", args.camera), ("--source", args.source), ("--record", args.record)):
        if value is not None:
            command += [flag, str(value)]
    if args.size:
        command += ["--size", f"{args.size[0]}x{args.size[1]}"]
    if args.max_kbps:
        command += ["--max-kbps", str(args.max_kbps)]
    if args.quality is not None:
        command += ["--quality", str(args.quality)]
    return command + [flag for flag, on in (("--loop", args.loop), ("--force", args.force)) if on]


def run_webcam(args: SimpleNamespace) -> int:
    if args.record is not None:
        check_file_target(args.record, args.force)
    token = new_token()
    receiver, page, state = _start_receiver(args, "127.0.0.1:0", token)
    # The encoder runs in its own process: capture and encode then use a core the decoder does not.
    # The token goes by the environment: a command line is visible to every user of the machine.
    sender = subprocess.Popen(_sender_command(args, receiver.address), env={**os.environ, TOKEN_ENV: token})
    threading.Thread(target=_stop_on_failure, args=(sender, receiver), daemon=True).start()
    finished = False
    try:
        receiver.run()
        finished = args.exit_when_done  # the sender said BYE (or failed): it is ending by itself
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the demo is stopped
    finally:
        _stop_sender(sender, finished)
        _finish(args, page, state)
    # A failed sender (no camera, unreadable source) has printed its one-line error.
    return 0 if sender.returncode in (0, -signal.SIGINT) else EXIT_ERROR


def _stop_on_failure(sender: subprocess.Popen[bytes], receiver: Receiver) -> None:
    """The demo ends when its sender fails; a sender that finished its file leaves the page up."""
    if sender.wait() != 0:
        receiver.stop()


def _stop_sender(sender: subprocess.Popen[bytes], finished: bool) -> None:
    """Ask the sender to stop as Ctrl-C would (so it completes --record), then insist.

    A sender that `finished` its source is left to end by itself first: interrupted while it prints
    its summary, it would exit as interrupted after a normal finish.
    """
    if finished:
        with contextlib.suppress(subprocess.TimeoutExpired):
            sender.wait(timeout=15)
    if sender.poll() is None:
        sender.send_signal(signal.SIGINT)
    try:
        sender.wait(timeout=15)
    except subprocess.TimeoutExpired:
        sender.kill()
        sender.wait()
