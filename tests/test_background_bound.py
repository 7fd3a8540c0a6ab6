"""The background bound (`max_background_error`): outside the kept region the decoder never shows what is not there.

The clips are made here from real photographs (scikit-image's bundled ones: rocket and coffee as
backgrounds, the astronaut and the cameraman as people, public domain), 160x96, 24 frames, with fresh
sensor noise (σ = 2 levels) on every frame and people pasted as rectangles of their photo:
    leaves    a person stands through the first GOP, then walks off
    arrives   a person walks in and stops for the rest of the clip (16 frames)
    light     a still scene whose light switches: a global gain step of 1.3 at frame 10
    crossing  two people crossing in opposite directions
    cut       a scene cut at frame 12 (mid-GOP): rocket with a person, then the coffee photo with one
Each is coded with masks that miss everything (an empty mask video: every phantom is the bound's to
catch) and with the motion mask, at every quality, and decoded by the real decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from streamcodec import bitstream
from streamcodec.bitstream import StreamConfig
from streamcodec.errors import CorruptStreamError
from streamcodec.selective.bound import block_errors, luma
from streamcodec.selective.codec import SelectiveDecoder, SelectiveEncoder, SelectiveOptions
from streamcodec.selective.maskcode import decode_mask

from .conftest import ffmpeg

Image = npt.NDArray[np.uint8]
WIDTH, HEIGHT, FRAMES, GOP = 160, 96, 24, 8
BOUND = 20.0
PERSON = (28, 46)  # width, height in px
SKIPPED = np.zeros((0, 0, 3), np.uint8)  # a frame whose background model was not read (see `_encode`)


def _photo(image: Image, size: tuple[int, int]) -> Image:
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return np.asarray(cv2.resize(rgb[..., :3], size, interpolation=cv2.INTER_AREA))


def _people() -> tuple[Image, Image]:
    astronaut = _photo(data.astronaut()[30:480, 120:400], PERSON)
    cameraman = _photo(data.camera()[40:420, 140:360][:, ::-1], PERSON)
    return astronaut, cameraman


def _scene(backgrounds: list[Image], places: Sequence[Sequence[int | None]], gains: list[float]) -> list[Image]:
    """Frames: backgrounds[i] · gains[i] + noise, each person at x = places[person][i] (None: out of the picture)."""
    rng = np.random.default_rng(7)
    people = _people()
    frames = []
    for index in range(FRAMES):
        picture = backgrounds[index].astype(np.float32) * gains[index] + rng.normal(0, 2, (HEIGHT, WIDTH, 3))
        frame = np.clip(picture + 0.5, 0, 255).astype(np.uint8)
        for person, xs in zip(people, places, strict=False):
            x = xs[index]
            if x is not None and 0 <= x <= WIDTH - PERSON[0]:
                frame[HEIGHT - PERSON[1] - 4 : HEIGHT - 4, x : x + PERSON[0]] = np.clip(person * gains[index], 0, 255)
        frames.append(frame)
    return frames


def _clip(name: str) -> list[Image]:
    rocket, coffee = _photo(data.rocket(), (WIDTH, HEIGHT)), _photo(data.coffee(), (WIDTH, HEIGHT))
    still, lit = [rocket] * FRAMES, [1.0] * FRAMES
    steps = range(FRAMES)
    clips: dict[str, Callable[[], list[Image]]] = {
        "leaves": lambda: _scene(still, [[10 if i < 9 else 10 + 12 * (i - 8) for i in steps]], lit),
        "arrives": lambda: _scene(still, [[max(70, WIDTH - 12 * i) if i >= 2 else None for i in steps]], lit),
        "light": lambda: _scene(still, [[60] * FRAMES], [1.0 if i < 10 else 1.3 for i in steps]),
        "crossing": lambda: _scene(still, [[5 + 6 * i for i in steps], [WIDTH - 30 - 6 * i for i in steps]], lit),
        "cut": lambda: _scene([rocket] * 12 + [coffee] * 12, [[30] * 12 + [100] * 12], lit),
    }
    return clips[name]()


CLIPS = ("leaves", "arrives", "light", "crossing", "cut")


@pytest.fixture(scope="module")
def empty_mask(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mask video that keeps nothing: the detectors miss everyone, and only the bound keeps anything."""
    path = tmp_path_factory.mktemp("bound") / "empty.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=black:s={WIDTH}x{HEIGHT}:r=25", "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p", str(path)
    )
    return path


def _encode(frames: list[Image], options: SelectiveOptions, quality: int) -> tuple[StreamConfig, list[bytes], list[Image | None]]:
    """The stream's packets and, per frame, the encoder's model of the background the decoder shows.

    Offline, the plate's look-ahead codes each frame up to a GOP after it is given: a frame's model is read when
    it is coded, and the frames `flush` codes together are not checked (SKIPPED).
    """
    encoder = SelectiveEncoder(WIDTH, HEIGHT, quality=quality, gop=GOP, options=options)
    packets: list[bytes] = []
    models: list[Image | None] = [SKIPPED] * len(frames)
    try:
        for frame in frames:
            packets += [out.packet for out in encoder.push(frame)]
            if encoder.coded_frames:
                models[encoder.coded_frames - 1] = encoder.shown_background
        packets += [out.packet for out in encoder.flush()]
    finally:
        encoder.close()
    assert len(packets) == len(frames)
    return encoder.config, packets, models


def _over_bound(config: StreamConfig, packets: list[bytes], frames: list[Image], models: list[Image | None] | None) -> int:
    """Blocks outside the decoded keep mask more than BOUND from the source; checks the encoder's model on the way."""
    decoder = SelectiveDecoder(config)
    shape = (-(-HEIGHT // 16), -(-WIDTH // 16))
    previous = None
    over = 0
    for index, (packet, source) in enumerate(zip(packets, frames, strict=True)):
        decoded = decoder.decode(packet)
        frame = bitstream.unpack_frame(packet)
        blocks = decode_mask(frame.sections.get(bitstream.MASK, b""), shape, None if frame.is_key else previous)
        previous = blocks
        over += int((block_errors(luma(decoded), luma(source))[~blocks] > BOUND).sum())
        if models is not None and models[index] is not SKIPPED:
            model, shown = models[index], decoder.background
            assert (model is None) == (shown is None), f"frame {index}"
            if model is not None and shown is not None:
                assert np.array_equal(model, shown), f"frame {index}: the encoder's background is not the decoder's"
                outside = ~np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:HEIGHT, :WIDTH]
                assert np.array_equal(decoded[outside], model[outside]), f"frame {index}"
    return over


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize(("fidelity", "latency"), [("hevc", "zero"), ("av1", "offline")])
def test_bound_holds_at_every_quality_when_the_masks_miss_everyone(
    clip: str, fidelity: str, latency: str, empty_mask: Path
) -> None:
    frames = _clip(clip)
    options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity=fidelity, latency=latency, max_background_error=BOUND)
    for quality in range(1, 5):
        config, packets, models = _encode(frames, options, quality)
        assert _over_bound(config, packets, frames, models) == 0, f"quality {quality}"


@pytest.mark.parametrize("clip", CLIPS)
def test_bound_holds_at_every_quality_with_the_motion_mask(clip: str) -> None:
    frames = _clip(clip)
    options = SelectiveOptions(keep=("motion",), max_background_error=BOUND)
    for quality in range(1, 5):
        config, packets, models = _encode(frames, options, quality)
        assert _over_bound(config, packets, frames, models) == 0, f"quality {quality}"


@pytest.mark.parametrize("clip", ["leaves", "cut"])
def test_bound_holds_with_a_synthesized_background(clip: str, empty_mask: Path) -> None:
    frames = _clip(clip)
    options = SelectiveOptions(keep=(), mask_video=empty_mask, background="synth", max_background_error=BOUND)
    config, packets, models = _encode(frames, options, 1)
    assert _over_bound(config, packets, frames, models) == 0


def test_bound_holds_with_the_learned_fidelity_layer(empty_mask: Path) -> None:
    frames = _clip("leaves")
    options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity="learned", max_background_error=BOUND)
    config, packets, models = _encode(frames, options, 2)
    # The learned layer's own error inside kept blocks is its business; outside them the bound holds.
    assert _over_bound(config, packets, frames, models) == 0


@pytest.mark.parametrize("clip", ["leaves", "cut"])
def test_without_the_bound_the_phantoms_show(clip: str, empty_mask: Path) -> None:
    """The clips are real tests: with the bound turned off (0), the decoder shows the person who left and the last shot."""
    frames = _clip(clip)
    config, packets, _ = _encode(frames, SelectiveOptions(keep=(), mask_video=empty_mask, max_background_error=0), 2)
    assert "max_background_error" not in config.extra  # off: the stream exactly as before
    assert _over_bound(config, packets, frames, None) > 0


def test_stream_config_records_the_bound_and_rejects_a_bad_one(empty_mask: Path) -> None:
    options = SelectiveOptions(keep=(), mask_video=empty_mask, max_background_error=12)
    config, _, _ = _encode(_clip("light")[:3], options, 1)
    assert config.extra["max_background_error"] == 12.0
    assert StreamConfig.unpack(config.pack()).extra["max_background_error"] == 12.0  # round trip, validated
    for bad in (0, -1.0, 256, float("nan"), True, "20"):
        hostile = replace(config, extra={**config.extra, "max_background_error": bad})
        with pytest.raises(CorruptStreamError):
            hostile.validate()


@pytest.mark.parametrize("bad", [-1.0, 255.5, float("nan")])
def test_options_reject_a_bound_outside_0_to_255(bad: float) -> None:
    with pytest.raises(ValueError, match="max background error"):
        SelectiveOptions(max_background_error=bad).check()


def test_a_damaged_packet_recovers_at_the_next_keyframe_with_the_bound(empty_mask: Path) -> None:
    frames = _clip("leaves")
    options = SelectiveOptions(keep=(), mask_video=empty_mask, max_background_error=BOUND)
    config, packets, _ = _encode(frames, options, 2)
    damaged = bytearray(packets[3])
    damaged[len(damaged) // 2] ^= 0xFF
    decoder = SelectiveDecoder(config)
    shown = []
    for index, packet in enumerate(packets):
        try:
            decoder.decode(bytes(damaged) if index == 3 else packet)
            shown.append(index)
        except CorruptStreamError:
            pass
    assert 3 not in shown and set(range(GOP, FRAMES)) <= set(shown)


@pytest.mark.parametrize(("height", "width"), [(96, 160), (97, 161), (15, 9)])
def test_block_errors_are_each_blocks_mean_absolute_difference(height: int, width: int) -> None:
    rng = np.random.default_rng(height)
    first = rng.integers(0, 256, (height, width), dtype=np.uint8)
    second = rng.integers(0, 256, (height, width), dtype=np.uint8)
    diff = np.abs(first.astype(np.int64) - second)
    expected = [[diff[r : r + 16, c : c + 16].mean() for c in range(0, width, 16)] for r in range(0, height, 16)]
    np.testing.assert_allclose(block_errors(first, second), expected, rtol=1e-6)
