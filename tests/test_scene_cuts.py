"""Scene cuts start a GOP with a full background of the new shot; offline, a keyframe's plate looks ahead.

The clips are the background bound's (tests/test_background_bound.py: real photos, 160x96, 24 frames,
sensor noise): "cut" switches from the rocket to the coffee photo at frame 12, mid-GOP (GOP 8); "leaves"
has a person stand through the first GOP and walk off from frame 9. The masks miss everything (an empty
mask video), so the background is all there is outside what the bound keeps.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from streamcodec import bitstream
from streamcodec.gc.codec import EncodedFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info
from streamcodec.selective.bound import block_errors, luma
from streamcodec.selective.codec import SelectiveDecoder, SelectiveEncoder, SelectiveOptions
from streamcodec.selective.cuts import DEFAULT_SCENE_CUT, SceneCuts, cut_score, thumbnail
from streamcodec.selective.lookahead import SAMPLES, Lookahead, Waiting, clean_plate
from streamcodec.selective.rate import RATE_STEP, GopRate

from .conftest import ffmpeg
from .test_background_bound import FRAMES, GOP, HEIGHT, WIDTH, _clip

Image = npt.NDArray[np.uint8]
CUT = 12  # the "cut" clip's first frame of the second shot
KEYFRAMES_WITH_CUT = [0, GOP, CUT, CUT + GOP]
LAYERS = [("hevc", "zero"), ("av1", "offline")]


@pytest.fixture(scope="module")
def empty_mask(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mask video that keeps nothing: the detectors miss everyone."""
    path = tmp_path_factory.mktemp("cuts") / "empty.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=black:s={WIDTH}x{HEIGHT}:r=25", "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p", str(path)
    )  # fmt: skip
    return path


def _encode(
    frames: list[Image], options: SelectiveOptions, target_kbps: float | None = None
) -> tuple[SelectiveEncoder, list[EncodedFrame]]:
    encoder = SelectiveEncoder(WIDTH, HEIGHT, quality=2, gop=GOP, options=options)
    if target_kbps is not None:
        encoder.with_target(target_kbps)
    try:
        encoded = [out for frame in frames for out in encoder.push(frame)] + encoder.flush()
    finally:
        encoder.close()
    assert len(encoded) == len(frames)
    return encoder, encoded


def _backgrounds(encoder: SelectiveEncoder, encoded: list[EncodedFrame]) -> list[Image]:
    """The background the decoder shows at each frame."""
    decoder = SelectiveDecoder(encoder.config)
    shown = []
    for out in encoded:
        decoder.decode(out.packet)
        assert decoder.background is not None
        shown.append(decoder.background.copy())
    return shown


def _keyframes(encoded: list[EncodedFrame]) -> list[int]:
    flags = [index for index, out in enumerate(encoded) if out.keyframe]
    assert flags == [i for i, out in enumerate(encoded) if bitstream.unpack_frame(out.packet).is_key]  # the packet says so
    return flags


@pytest.mark.parametrize(("fidelity", "latency"), LAYERS)
def test_a_cut_starts_a_gop_with_a_full_plate_of_the_new_shot(fidelity: str, latency: str, empty_mask: Path) -> None:
    frames = _clip("cut")
    options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity=fidelity, latency=latency)
    encoder, encoded = _encode(frames, options)
    assert _keyframes(encoded) == KEYFRAMES_WITH_CUT  # the GOP count restarts at the cut
    sections = bitstream.unpack_frame(encoded[CUT].packet).sections
    assert bitstream.PLATE in sections and bitstream.PLATE_UPDATE not in sections  # full, not an update of the old shot
    if latency == "offline":  # files send updates between full plates: the cut's is full all the same
        assert bitstream.PLATE_UPDATE in bitstream.unpack_frame(encoded[GOP].packet).sections
    shown = _backgrounds(encoder, encoded)
    old = luma(frames[0])
    for index in range(CUT, FRAMES):
        new_error = block_errors(luma(shown[index]), luma(frames[index]))
        assert new_error.max() < 40, f"frame {index}: a block {new_error.max():.0f} levels from the new shot"
        assert (new_error < block_errors(luma(shown[index]), old)).all(), f"frame {index} shows a block of the old shot"


@pytest.mark.parametrize(("fidelity", "latency"), LAYERS)
def test_without_cuts_the_old_shot_stays_until_the_next_fixed_keyframe(fidelity: str, latency: str, empty_mask: Path) -> None:
    """Turned off (0): a keyframe every GOP, as before, and the background after the cut is the last shot's."""
    frames = _clip("cut")
    options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity=fidelity, latency=latency, scene_cut=0)
    encoder, encoded = _encode(frames, options)
    assert _keyframes(encoded) == list(range(0, FRAMES, GOP))
    shown = _backgrounds(encoder, encoded)
    assert all(block_errors(luma(shown[i]), luma(frames[i])).max() > 100 for i in range(CUT, 2 * GOP))


@pytest.mark.parametrize("clip", ["light", "crossing", "arrives", "leaves"])
def test_light_steps_noise_and_people_are_not_cuts(clip: str) -> None:
    detector = SceneCuts(DEFAULT_SCENE_CUT)
    scores = []
    for frame in _clip(clip):
        assert not detector.cut(frame)
        scores.append(detector.score)
    assert max(scores) < DEFAULT_SCENE_CUT / 1.5  # with a margin


def test_cut_score_ignores_light_and_sees_a_new_picture() -> None:
    rocket, coffee = _clip("cut")[0], _clip("cut")[CUT]
    brighter = np.clip(rocket.astype(np.float32) * 1.3 + 10, 0, 255).astype(np.uint8)
    assert cut_score(thumbnail(rocket), thumbnail(brighter)) < 0.1
    assert cut_score(thumbnail(rocket), thumbnail(coffee)) > 2 * DEFAULT_SCENE_CUT
    black, grey = np.zeros_like(rocket), np.full_like(rocket, 128)
    assert cut_score(thumbnail(black), thumbnail(grey)) == 0  # flat to flat: light, not a shot (and no NaN)
    assert cut_score(thumbnail(black), thumbnail(rocket)) > DEFAULT_SCENE_CUT  # from black to a picture


@pytest.mark.parametrize(("fidelity", "latency"), LAYERS)
def test_a_clip_without_cuts_codes_the_same_bytes_with_detection_on_or_off(fidelity: str, latency: str, empty_mask: Path) -> None:
    frames = _clip("light")
    streams = []
    for scene_cut in (DEFAULT_SCENE_CUT, 0):
        options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity=fidelity, latency=latency, scene_cut=scene_cut)
        _, encoded = _encode(frames, options)
        streams.append([out.packet for out in encoded])
    assert streams[0] == streams[1]


def test_offline_bitrate_restarts_at_a_cut_and_loses_no_frame(empty_mask: Path) -> None:
    frames = _clip("cut")
    options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity="av1", latency="offline")
    encoder, encoded = _encode(frames, options, target_kbps=20.0)
    assert _keyframes(encoded) == KEYFRAMES_WITH_CUT
    decoder = SelectiveDecoder(encoder.config)
    assert all(decoder.decode(out.packet).shape == (HEIGHT, WIDTH, 3) for out in encoded)


def test_a_gop_cut_short_counts_on_into_the_next() -> None:
    rate = GopRate(SelectiveOptions(frame_rate=Fraction(25)), GOP)
    rate.target_kbps = 10.0
    for _ in range(GOP // 2 - 1):  # far over the target, but too short to judge: its keyframe is most of it
        rate.count(bytes(1000))
    assert rate.next_crf(30) == 30
    for _ in range(GOP):
        rate.count(bytes(1000))
    assert rate.next_crf(30) == 30 + RATE_STEP


def test_the_cli_takes_scene_cut_and_plate_lookahead() -> None:
    from streamcodec.cli.selective import FIELDS

    assert {"scene_cut", "plate_lookahead"} <= set(FIELDS)
    for bad in (SelectiveOptions(scene_cut=-0.1), SelectiveOptions(latency="zero", plate_lookahead=1.0)):
        with pytest.raises(ValueError, match=r"scene cut|look-ahead"):
            bad.check()


def test_an_encoded_file_has_its_keyframes_cues_and_info_at_the_cut(empty_mask: Path, tmp_path: Path) -> None:
    """The Matroska writer, `info` and the decoder go by each packet's own keyframe flag: irregular GOPs are fine."""
    source = tmp_path / "two_shots.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in _clip("cut"):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    out = tmp_path / "two_shots.mkv"
    options = SelectiveOptions.for_files(keep=(), mask_video=empty_mask, frame_rate=Fraction(25))
    encode_file(source, out, gop=GOP, preview=False, selective=options)
    with MatroskaReader(out) as reader:
        assert [time for time, _, _ in reader.cues] == [Fraction(i, 25) for i in KEYFRAMES_WITH_CUT]
    info = stream_info(out)
    assert info.keyframes == len(KEYFRAMES_WITH_CUT) and info.plates.get("full", 0) >= 2
    decoded = tmp_path / "two_shots.y4m"
    assert decode_file(out, decoded).frames == FRAMES


def test_offline_plate_looks_ahead_past_a_person_who_walks_off(empty_mask: Path) -> None:
    """In "leaves" she stands at x 10-38 until frame 8, gone from there by frame 11: keyframe 8 looks ahead."""
    frames = _clip("leaves")
    spot = (slice(3, 6), slice(0, 2))  # her blocks while she stands (rows 46-92, columns 10-38)
    errors = {}
    for lookahead in (None, 0.0):
        options = SelectiveOptions(keep=(), mask_video=empty_mask, fidelity="av1", latency="offline", plate_lookahead=lookahead)
        encoder, encoded = _encode(frames, options)
        shown = _backgrounds(encoder, encoded)
        errors[lookahead] = max(float(block_errors(luma(shown[i]), luma(frames[i]))[spot].max()) for i in range(12, 2 * GOP))
    assert errors[None] < 20 < 40 < errors[0.0]  # ahead: the pavement she hid; without: her phantom


def test_clean_plate_is_each_pixels_median_where_not_kept() -> None:
    rng = np.random.default_rng(1)
    background = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    frames, masks = [], []
    for index in range(12):
        frame = background.copy()
        if index < 4:  # someone stands at the top left for a third of the window
            frame[:16, :16] = 255
        mask = np.zeros((32, 48), bool)
        mask[16:, 32:] = True  # this block is kept in every frame
        frames.append(frame)
        masks.append(mask)
    median, covered = clean_plate(frames, masks, 16)
    assert covered[:16].all() and not covered[16:, 32:].any() and covered[16:, :32].all()
    np.testing.assert_array_equal(median[covered], background[covered])


def test_lookahead_holds_its_window_and_stops_at_a_cut() -> None:
    ahead = Lookahead(4, 16)
    picture = np.zeros((16, 16, 3), np.uint8)
    nothing = np.zeros((16, 16), bool)
    frames = [Waiting(np.full_like(picture, 10 * i), None, nothing, i == 3) for i in range(6)]
    out = []
    for frame in frames:
        ahead.push(frame)
        while (ready := ahead.next()) is not None:
            out.append(ready)
            clean = ahead.clean()
            assert clean is not None
            if ready is frames[0]:  # window 0, 1, 2 (3 starts a new shot): lower median 10
                assert clean[0].max() == 10
    assert out == frames[:3]  # held: 3 frames behind the window's end
    while (ready := ahead.next(end=True)) is not None:
        out.append(ready)
    assert out == frames and SAMPLES >= 9
