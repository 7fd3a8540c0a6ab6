"""Bjøntegaard delta rate: the average bitrate change of a codec against an anchor at equal quality.

Follows VCEG-M33 as practised in JCTVC/JVET common test conditions: log-rate is interpolated as a
function of quality with a piecewise cubic Hermite (PCHIP, Fritsch–Carlson slopes, monotone and
without the overshoot of M33's original cubic polynomial fit), both curves are integrated over the
quality interval they share, and the mean log-rate difference d gives BD-rate = (e^d − 1) · 100 %.
Negative means the tested codec needs fewer bits than the anchor for the same quality.

PCHIP is written out here (a few lines) rather than taken from SciPy, which is not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_POINTS = 4  # the common practice: four rate points per curve

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BdRate:
    """A BD-rate in percent, or None with the reason it cannot be computed."""

    percent: float | None
    reason: str | None = None


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """One-sided three-point slope at an end, kept shape-preserving (as SciPy's PchipInterpolator)."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


def pchip_slopes(x: Floats, y: Floats) -> Floats:
    """Fritsch–Carlson derivatives at the knots of strictly increasing `x`.

    Args:
        x: (n,) strictly increasing, n ≥ 2.
        y: (n,) values.

    Returns:
        (n,) slopes dy/dx at each knot.
    """
    h = np.diff(x)
    m = np.diff(y) / h
    if len(x) == 2:
        return np.array([m[0], m[0]])
    d = np.zeros_like(x)
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


def pchip_integral(x: Floats, y: Floats, lo: float, hi: float) -> float:
    """∫ from lo to hi of the PCHIP interpolant through (x, y), with x[0] ≤ lo ≤ hi ≤ x[-1]."""
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if a >= b:
            continue
        h = x[k + 1] - x[k]
        m = (y[k + 1] - y[k]) / h
        # y(s) = y_k + d_k s + c2 s² + c3 s³ with s = x − x_k: the cubic Hermite segment.
        c2 = (3 * m - 2 * d[k] - d[k + 1]) / h
        c3 = (d[k] + d[k + 1] - 2 * m) / h**2

        def antiderivative(s: float, k: int = k, c2: float = c2, c3: float = c3) -> float:
            return float(y[k] * s + d[k] * s**2 / 2 + c2 * s**3 / 3 + c3 * s**4 / 4)

        total += antiderivative(b - x[k]) - antiderivative(a - x[k])
    return total


def _curve(rates: Sequence[float], qualities: Sequence[float]) -> tuple[Floats, Floats] | str:
    """(quality, log-rate) sorted by quality, or the reason the points cannot form a curve."""
    points = sorted((float(q), float(r)) for r, q in zip(rates, qualities, strict=True) if math.isfinite(q) and math.isfinite(r))
    if any(r <= 0 for _, r in points):
        return "a rate is not positive"
    unique = {q: r for q, r in points}  # equal qualities cannot be interpolated over; keep one
    if len(unique) < MIN_POINTS:
        return f"{len(unique)} distinct point(s), BD-rate needs ≥ {MIN_POINTS}"
    x = np.array(sorted(unique), dtype=np.float64)
    return x, np.log(np.array([unique[q] for q in x], dtype=np.float64))


def bd_rate(
    anchor_rates: Sequence[float], anchor_quality: Sequence[float], rates: Sequence[float], quality: Sequence[float]
) -> BdRate:
    """BD-rate of a test curve against an anchor curve.

    Args:
        anchor_rates, anchor_quality: the anchor's points (rate in any unit > 0, e.g. kbps; quality
            where higher is better, e.g. PSNR in dB or MS-SSIM).
        rates, quality: the tested codec's points, same units.

    Returns:
        BdRate: percent (+100 = needs twice the anchor's rate), or None and the reason (too few
        points, or quality ranges that do not overlap).
    """
    anchor, test = _curve(anchor_rates, anchor_quality), _curve(rates, quality)
    if isinstance(anchor, str):
        return BdRate(None, f"anchor: {anchor}")
    if isinstance(test, str):
        return BdRate(None, test)
    lo, hi = max(anchor[0][0], test[0][0]), min(anchor[0][-1], test[0][-1])
    if lo >= hi:
        return BdRate(None, "quality ranges do not overlap")
    difference = (pchip_integral(*test, lo, hi) - pchip_integral(*anchor, lo, hi)) / (hi - lo)
    return BdRate((math.exp(difference) - 1.0) * 100.0)
