"""Streams stay byte for byte what they were: the packets of the sample under each mode and layer, pinned.

A refactor that moves code must not move a bit. `tests/expected/packets.json` holds the sha256 of every
packet (and of the stream configuration) for a few encodes of the sample's first frames; only
STREAMCODEC_UPDATE_GOLDEN=1 rewrites it, for a deliberate format change (with its CHANGELOG entry). The
selective cases also pin the encoders PyAV's wheel bundles (SVT-AV1, x265): pyproject.toml pins `av` for that.
"""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamcodec.codec import Decoder, Encoder, SelectiveOptions
from streamcodec.io.demux import Source, VideoFrame

from .conftest import SAMPLE

GOLDEN = Path(__file__).parent / "expected" / "packets.json"
FRAMES = 10
GOP = 5

CASES: dict[str, dict[str, Any]] = {
    "gc-q1": {"mode": "gc", "quality": 1},
    "gc-q4": {"mode": "gc", "quality": 4},
    "sc-av1-offline": {"selective": {"fidelity": "av1", "latency": "offline"}},
    "sc-hevc-zero": {"selective": {"fidelity": "hevc", "latency": "zero"}},
    "sc-hevc-whole": {"selective": {"fidelity": "hevc", "latency": "zero", "whole_above": 0.0}},
    "sc-synth": {"selective": {"fidelity": "hevc", "latency": "zero", "background": "synth"}},
    "sc-learned": {"selective": {"fidelity": "learned", "latency": "zero"}},
}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The sample's first frames, downscaled 2x (320x180) to keep the suite quick."""
    with Source(SAMPLE) as source:
        rgb = [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)][:FRAMES]
    return [np.ascontiguousarray(frame[::2, ::2]) for frame in rgb]


def encode(case: dict[str, Any], frames: list[np.ndarray]) -> tuple[bytes, list[bytes]]:
    height, width = frames[0].shape[:2]
    kwargs: dict[str, Any] = {"mode": case.get("mode", "sc"), "gop": GOP, "quality": case.get("quality")}
    if "selective" in case:
        kwargs["selective"] = SelectiveOptions(frame_rate=Fraction(24), parallel=False, **case["selective"])
    encoder = Encoder(width, height, **kwargs)
    packets = [encoded.packet for frame in frames for encoded in encoder.push(frame)]
    packets += [encoded.packet for encoded in encoder.flush()]
    encoder.close()
    return encoder.config.pack(), packets


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_packets_of_the_sample_are_byte_identical_to_the_pinned_ones(name: str, frames: list[np.ndarray]) -> None:
    config, packets = encode(CASES[name], frames)
    assert len(packets) == FRAMES
    got = {"config": digest(config), "packets": [digest(packet) for packet in packets]}
    pinned = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("STREAMCODEC_UPDATE_GOLDEN") == "1":
        pinned[name] = got
        GOLDEN.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    assert got == pinned[name]
    # And they still decode, every frame.
    from streamcodec.bitstream import StreamConfig

    decoder = Decoder(StreamConfig.unpack(config))
    shown = [decoder.decode(packet) for packet in packets]
    assert all(picture.shape == frames[0].shape for picture in shown)
