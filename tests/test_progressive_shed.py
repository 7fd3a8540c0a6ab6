"""Progressive mode on a short live link: the rate controller's allowance and the packets cut to fit it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamcodec.bitstream import cut_packet, iteration_sections, unpack_frame
from streamcodec.codec import Encoder
from streamcodec.live.rate import RateController, shed_iterations
from streamcodec.models.registry import REGISTRY


def test_allowance_is_the_bucket_plus_one_frames_share() -> None:
    now = [0.0]
    rate = RateController(100.0, clock=lambda: now[0])
    assert rate.allowance(25) == pytest.approx(4000)  # empty bucket: one frame's share of 100 kbps at 25 fps
    now[0] = 0.5
    assert rate.admit()
    assert rate.allowance(25) == pytest.approx(50_000 + 4000)
    rate.spend(60_000)
    assert rate.allowance(25) == pytest.approx(-10_000 + 4000)


def test_shed_iterations_keeps_the_most_that_fit() -> None:
    if "progressive-small" not in REGISTRY.names():
        pytest.skip("progressive-small is not registered")
    torch.set_num_threads(1)
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    packet = Encoder(64, 48, mode="progressive").encode(frame).packet
    total = len(iteration_sections(unpack_frame(packet)))
    assert shed_iterations(packet, 8 * len(packet)) == (packet, 0)
    three = cut_packet(packet, 3)
    assert shed_iterations(packet, 8 * len(three)) == (three, total - 3)
    assert shed_iterations(packet, 8 * len(three) - 1) == (cut_packet(packet, 2), total - 2)
    assert shed_iterations(packet, 0) == (cut_packet(packet, 1), total - 1)  # one iteration always goes
