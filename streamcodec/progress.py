"""Progress bars on stderr for long work; silent when disabled (tests, --json, pipes)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class Progress:
    """A tqdm bar that costs nothing when disabled."""

    def __init__(self, total: int | None, unit: str, enabled: bool, desc: str) -> None:
        self._bar = (
            tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, smoothing=0.1) if enabled else None
        )

    def update(self, n: int = 1, **postfix: Any) -> None:
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: f"{v:.1f}" if isinstance(v, float) else v for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
