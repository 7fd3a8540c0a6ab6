"""The `streamcodec` command: encode, decode, info, eval, train, engines, bench, archive and the live demo."""

from __future__ import annotations

from .commands import EXIT_ERROR, EXIT_INTERRUPTED, main

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "main"]
