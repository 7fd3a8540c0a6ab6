"""Rate decisions before the first frame: quality for a target bitrate, the preview's budget."""

from __future__ import annotations

from fractions import Fraction

from streamcodec.pipeline.rate import PREVIEW_MAX_WIDTH, PREVIEW_MIN_WIDTH, PREVIEW_SHARE, choose_quality, preview_budget


def test_choose_quality_takes_the_highest_that_fits() -> None:
    rates = [25.0, 49.0, 96.0, 179.0]
    assert (choose_quality(rates, 100).quality, choose_quality(rates, 100).warning) == (3, None)
    assert choose_quality(rates, 1e6).quality == 4
    assert choose_quality(rates, 25.0).quality == 1 and choose_quality(rates, 25.0).warning is None


def test_choose_quality_warns_when_the_target_is_below_the_lowest_rate() -> None:
    choice = choose_quality([6.84, 12.0], 1)
    assert choice.quality == 1
    assert choice.warning == (
        "target 1 kbps cannot be met: the lowest quality needs about 6.8 kbps on this clip; encoding at quality 1"
    )


def test_preview_budget_is_a_share_of_the_codec_rate_and_shrinks_with_it() -> None:
    fps = Fraction(25)
    budgets = [preview_budget(kbps, fps, 640, 360) for kbps in (2.0, 25.0, 50.0, 180.0, 2000.0)]
    assert [kbps for kbps, _ in budgets] == [PREVIEW_SHARE * k for k in (2.0, 25.0, 50.0, 180.0, 2000.0)]
    widths = [width for _, width in budgets]
    assert widths == sorted(widths) and widths[0] == PREVIEW_MIN_WIDTH and widths[-1] == PREVIEW_MAX_WIDTH
    assert preview_budget(2000.0, fps, 96, 64)[1] == 96  # never wider than the source
