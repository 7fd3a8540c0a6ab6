"""The command line's frame on click: help layout, "did you mean", value checks and the error contract.

Every expected failure ends as one line `streamcodec CMD: error: ...` on stderr and an exit status
(EXIT_ERROR 1, EXIT_USAGE 2 after the command's usage line; 130 for Ctrl-C and 143 for SIGTERM,
EXIT_INTERRUPTED being the first: signals.py), never a traceback.
Nothing here imports torch: `--help`, completion and usage errors stay fast.
"""

from __future__ import annotations

import difflib
import os
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from ..errors import StreamcodecError
from . import signals

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
PROG = "streamcodec"
COMPLETE_VAR = "_STREAMCODEC_COMPLETE"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
F = TypeVar("F", bound=Callable[..., Any])


class HelpFormatter(click.HelpFormatter):
    """click's layout with argparse's "usage:", and lines broken at spaces only (never inside gc-small or SVT-AV1)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, "usage: " if prefix is None else prefix)

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write(_fill(text, max(self.width, self.current_indent + 11), indent, indent) + "\n")

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        column = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        hang = " " * (self.current_indent + column)
        for first, second in rows:
            head = " " * self.current_indent + first
            if not second:
                self.write(head + "\n")
                continue
            head = head + " " * (column - len(first)) if len(first) + col_spacing <= column else head + "\n" + hang
            self.write(head + _fill(second, max(self.width, len(hang) + 10), hang, hang)[len(hang) :] + "\n")


def _fill(text: str, width: int, first: str, rest: str) -> str:
    return textwrap.fill(
        text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False, break_long_words=False
    )


class Context(click.Context):
    formatter_class = HelpFormatter


class Option(click.Option):
    """An option listed under its own heading in `--help` (`section`), e.g. "selective mode (--mode sc)"."""

    def __init__(self, *args: Any, section: str = "Options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section


class Argument(click.Argument):
    """A positional argument with a line of help (click before 8.3 has none)."""

    def __init__(self, *args: Any, doc: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.doc = doc


class GreedyOption(Option):
    """An option that takes every value up to the next option (argparse's nargs="+"): `--data a/ b/ c.mp4`."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            # click's parser has no hook for this: its option objects are wrapped in place.
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            option.process = _greedy(option.process)


def _greedy(process: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def take_all(value: Any, state: Any) -> None:
        process(value, state)
        while state.rargs and not state.rargs[0].startswith("-"):
            process(state.rargs.pop(0), state)

    return take_all


class _Layout:
    """Help as argparse laid it out: usage, description, arguments, option sections, a verbatim epilog."""

    usage_text: str | None = None

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        command: Any = self
        command.format_usage(ctx, formatter)
        command.format_help_text(ctx, formatter)
        rows = [(p.human_readable_name, p.doc) for p in command.get_params(ctx) if isinstance(p, Argument) and p.doc]
        if rows:
            with formatter.section("Arguments"):
                formatter.write_dl(rows)
        command.format_options(ctx, formatter)
        self.format_epilog(ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):
                sections.setdefault(getattr(param, "section", "Options"), []).append(record)
        for title, rows in sorted(sections.items(), key=lambda item: item[0] != "Options"):
            with formatter.section(title):
                formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        epilog = getattr(self, "epilog", None)
        if epilog:  # examples and tables are laid out by hand: written as they are, not re-wrapped
            formatter.write("\n" + epilog.rstrip() + "\n")


class Command(_Layout, click.Command):
    context_class = Context

    def __init__(self, *args: Any, usage: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.usage_text = usage

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.usage_text is None:
            super().format_usage(ctx, formatter)
        else:
            formatter.write(f"usage: {self.usage_text.strip()}\n")


class Group(_Layout, click.Group):
    """Commands in the order they were added; a typo'd command answered with the closest names."""

    context_class = Context
    command_class = Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if self.get_command(ctx, name) is None and not name.startswith("-") and not ctx.resilient_parsing:
            known = self.list_commands(ctx)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"choose from {', '.join(known)}"
            raise click.UsageError(f"no such command {name!r} ({hint})", ctx)
        resolved = super().resolve_command(ctx, args)
        if isinstance(ctx.obj, dict):
            ctx.obj.setdefault("command", resolved[0])  # the top-level name, for the error line
            signals.set_prefix(_prefix(ctx.obj))  # and for the line a signal ends it with
        return resolved


def group(**kwargs: Any) -> Callable[[Callable[..., Any]], Group]:
    return click.group(cls=Group, context_settings=CONTEXT, **kwargs)


def command(parent: click.Group, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """A sub-command of `parent`: `help` is its description, `short_help` its line in the parent's list."""
    return parent.command(name, cls=Command, context_settings=CONTEXT, **kwargs)


def option(*names: str, **kwargs: Any) -> Callable[[F], F]:
    kwargs.setdefault("cls", Option)
    return click.option(*names, **kwargs)


def argument(name: str, doc: str = "", **kwargs: Any) -> Callable[[F], F]:
    return click.argument(name, cls=Argument, doc=doc, **kwargs)


class Checked(click.ParamType):
    """A value checked by `convert(text)`, whose ValueError message becomes the usage error."""

    def __init__(self, name: str, convert: Callable[[str], Any]) -> None:
        self.name, self._convert = name, convert

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default, already converted
        try:
            return self._convert(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class InputPath(click.Path):
    """A path, or `-` (stdin or stdout) passed on as the text `-`, unresolved and unchecked.

    `./-` is the file named `-` (as with ffmpeg): made absolute, since pathlib would shorten it to `-`.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "-":
            return value
        path = super().convert(value, param, ctx)
        return self.coerce_path_result(os.path.abspath(value)) if os.fspath(path) == "-" else path


def number(text: str, kind: type[int] | type[float], what: str = "a number") -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    value = number(text, int, "an integer")
    if value < 1:
        raise ValueError(f"{value} is not ≥ 1")
    return int(value)


def positive_float(text: str) -> float:
    value = number(text, float)
    if not value > 0:
        raise ValueError(f"{value} is not > 0")
    return float(value)


POSITIVE_INT = Checked("N", positive_int)
POSITIVE_FLOAT = Checked("X", positive_float)


def run(root: Group, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run its command under the error contract (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(COMPLETE_VAR):
        from click.shell_completion import shell_complete

        return shell_complete(root, {}, PROG, COMPLETE_VAR, os.environ[COMPLETE_VAR])
    state: dict[str, Any] = {}
    with signals.handled():  # Ctrl-C and SIGTERM: one line, 130 / 143 (signals.py)
        try:
            with root.make_context(PROG, args, obj=state) as ctx:
                return int(root.invoke(ctx) or 0)
        except click.exceptions.Exit as exc:  # --help, --version
            raise SystemExit(exc.exit_code) from None
        except click.UsageError as exc:
            _usage_error(exc, state)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            return _interrupted(state)
        except Exception as exc:
            if signals.received() is not None:  # a library turned the interrupt into its own error
                return _interrupted(state)
            message = _expected(exc)
            if message is None:
                raise
            print(f"{_prefix(state)}: error: {message}", file=sys.stderr)
            return EXIT_ERROR


def _interrupted(state: dict[str, Any]) -> int:
    signals.set_prefix(_prefix(state))
    signals.say()
    return signals.exit_status()


def _prefix(state: dict[str, Any]) -> str:
    return f"{PROG} {state['command']}" if state.get("command") else PROG


def _expected(exc: Exception) -> str | None:
    """The one-line message of an expected failure; None for a bug, which keeps its traceback."""
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)) and not isinstance(exc, StreamcodecError):
        # An OSError raised with only a message has no filename or strerror: print the message.
        return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
    if isinstance(exc, (StreamcodecError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError)):
        return str(exc)
    return None


def _usage_error(exc: click.UsageError, state: dict[str, Any]) -> None:
    no_args_help = getattr(click.exceptions, "NoArgsIsHelpError", None)
    if no_args_help is not None and isinstance(exc, no_args_help):
        print(exc.format_message(), file=sys.stderr)  # `streamcodec` alone: the help, as a usage error
        return
    ctx = exc.ctx
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
    print(f"{ctx.command_path if ctx else _prefix(state)}: error: {_usage_message(exc)}", file=sys.stderr)


def _usage_message(exc: click.UsageError) -> str:
    if isinstance(exc, click.NoSuchOption):
        close = exc.possibilities or []
        return f"no such option {exc.option_name}" + (f" (did you mean {' or '.join(close)}?)" if close else "")
    if isinstance(exc, click.MissingParameter) and exc.param is not None:
        return f"the following arguments are required: {_param(exc.param)}"
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        return f"argument {_param(exc.param)}: {exc.message}"
    text = exc.format_message().rstrip(".")
    return text[:1].lower() + text[1:]


def _param(param: click.Parameter) -> str:
    return "/".join(param.opts) if isinstance(param, click.Option) else param.human_readable_name
