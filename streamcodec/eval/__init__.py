"""`streamcodec eval`: streamcodec against x264, x265, x265-roi and SVT-AV1 on the same clips.

    runner.run_eval ─► codecs (encode/decode) ─► measure (metrics.py + quality.py + worst.py, vmaf.py)
                   ─► cache (one JSON per clip × codec × point) ─► report (CSV, JSON, PNG, HTML)

Imports point one way: runner → report → html_report / plots, all of them on results (EvalConfig,
EvalRun, the columns). Selective-mode pieces (streamcodec-sc, x265-roi, kept-region metrics, PSNR
and blocks over the bound outside the kept region, person IoU, background flicker) take their masks
from one source, `masks.mask_source()`: selective mode's keep masks, the same the encoder uses.
Should they fail to load, those pieces report themselves as not available, with the reason.
The face region is not the encoder's: the eval finds faces itself (`faces.py`, OpenCV's Haar cascade).
"""

from __future__ import annotations

from .results import EvalConfig, EvalRun
from .runner import run_eval

__all__ = ["EvalConfig", "EvalRun", "run_eval"]
