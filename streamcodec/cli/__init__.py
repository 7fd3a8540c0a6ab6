"""The `streamcodec` command: encode, decode, info, eval, train, engines, bench, archive and the live demo.

Built on click (commands.py, with live.py, archive.py, engines.py); base.py holds the error contract.
"""

from __future__ import annotations

from .base import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .commands import cli, main

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "cli", "main"]
