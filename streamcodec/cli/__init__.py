"""The `streamcodec` command: encode, decode, info, eval, train, engines, bench, archive and the live demo.

Built on click (commands.py, with live.py, archive.py, engines.py); base.py holds the error contract,
signals.py Ctrl-C and SIGTERM. `main` handles both before it imports anything else, so that one
landing while the commands are still being imported is one line too, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import signals

if TYPE_CHECKING:
    from .base import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
    from .commands import cli

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `streamcodec` command with `argv` (default: the process's); returns the exit status.

    `--help`, `--version` and usage errors end in SystemExit (0, 0 and 2), as with argparse.
    """
    with signals.handled():
        try:
            from .commands import main as run_command
        except KeyboardInterrupt:
            signals.say()
            return signals.exit_status()
        return run_command(argv)


def __getattr__(name: str) -> Any:
    # Lazy: importing click and the commands is what `main` guards.
    if name in ("EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "cli"):
        from . import base, commands

        return getattr(commands if name == "cli" else base, name)
    raise AttributeError(name)
