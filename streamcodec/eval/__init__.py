"""`streamcodec eval`: streamcodec against x264, x265, x265-roi and SVT-AV1 on the same clips.

    runner.run_eval ─► codecs (encode/decode) ─► measure (metrics.py + quality.py, vmaf.py)
                   ─► cache (one JSON per clip × codec × point) ─► report (CSV, JSON, PNG, HTML)

Selective-mode pieces (streamcodec-sc, x265-roi, kept-region metrics, person IoU, background
flicker) depend on one mask source, `masks.mask_source()`, and report themselves as not available
until selective mode provides it (see masks.py for the contract).
"""

from __future__ import annotations

from .runner import EvalConfig, EvalRun, run_eval

__all__ = ["EvalConfig", "EvalRun", "run_eval"]
