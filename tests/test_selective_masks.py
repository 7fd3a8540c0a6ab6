"""Selective mode's keep masks: real models on real photos, motion, union, dilation, stability, files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamcodec.errors import ModelError, OutputError, UnreadableInputError
from streamcodec.eval.masks import MaskSource, compute_clip_masks, mask_source, unavailable_reason
from streamcodec.selective.face import FaceDetector
from streamcodec.selective.mask_video import MaskVideo, load_masks, save_masks
from streamcodec.selective.masks import SelectiveMasks, create_mask_source, parse_keep
from streamcodec.selective.motion import MotionMasker
from streamcodec.selective.pedestrian import TiledPersonSegmenter
from streamcodec.selective.person import SelfieSegmenter, create_segmenter
from streamcodec.selective.stabilize import Stabilizer

skimage_data = pytest.importorskip("skimage.data")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _astronaut_person_region() -> np.ndarray:
    """A rough hand-drawn region of the astronaut (head ellipse, torso and the helmet she holds)."""
    region = np.zeros((512, 512), dtype=np.uint8)
    cv2.ellipse(region, (228, 110), (75, 95), 0, 0, 360, 1, -1)
    torso = np.array([[140, 160], [310, 160], [360, 300], [500, 380], [500, 512], [10, 512], [40, 300]], dtype=np.int32)
    cv2.fillPoly(region, [torso], 1)
    return region.astype(bool)


@pytest.fixture(scope="module")
def segmenter() -> SelfieSegmenter:
    return SelfieSegmenter()


def test_person_segmenter_finds_the_astronaut(segmenter: SelfieSegmenter) -> None:
    mask = segmenter.mask(skimage_data.astronaut())
    assert mask.shape == (512, 512) and mask.dtype == bool
    assert _iou(mask, _astronaut_person_region()) > 0.8


def test_person_segmenter_finds_no_person_in_a_photo_without_one(segmenter: SelfieSegmenter) -> None:
    rocket = skimage_data.rocket()
    assert segmenter.mask(rocket).mean() < 0.01


def test_face_detector_finds_the_astronauts_face() -> None:
    detector = FaceDetector()
    boxes = detector.boxes(skimage_data.astronaut())
    face = np.zeros((512, 512), dtype=bool)
    face[75:175, 180:270] = True  # her face, from the brow to the chin, measured by eye
    assert len(boxes) >= 1
    for x0, y0, x1, y1 in boxes:
        box = np.zeros_like(face)
        box[int(y0) : int(y1), int(x0) : int(x1)] = True
        assert _iou(box, face) > 0.6
    assert not detector.mask(skimage_data.rocket()).any()


def _moving_square(frames: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (7, 7), 0)
    for t in range(frames):
        frame = background.copy()
        frame[40:72, 10 + 4 * t : 42 + 4 * t] = (240, 30, 30)
        yield frame


def test_motion_marks_a_moving_square_and_not_the_still_background() -> None:
    motion = MotionMasker()
    masks = [motion.mask(frame) for frame in _moving_square(20)]
    assert not masks[0].any()  # the first frame only starts the background model
    last = masks[-1]
    square = np.zeros_like(last)
    square[40:72, 86:118] = True
    assert last[square].mean() > 0.95
    far_from_start = np.ones_like(last)
    far_from_start[:, :80] = False  # where the square started is uncovered background ("ghost") for a while
    assert last[far_from_start & ~square].mean() < 0.01


def test_stabilizer_never_shrinks_below_the_raw_union_and_holds_a_one_frame_dropout() -> None:
    rng = np.random.default_rng(3)
    stabilizer = Stabilizer(dilate_px=4, block=16, hold=2)
    for _ in range(10):
        raw = rng.random((70, 101)) > 0.995
        kept = stabilizer(raw)
        assert kept.shape == raw.shape and not (raw & ~kept).any()
    stabilizer.reset()
    blob = np.zeros((64, 96), dtype=bool)
    blob[20:30, 40:50] = True
    first, dropped, _ = stabilizer(blob), stabilizer(np.zeros_like(blob)), stabilizer(blob)
    assert np.array_equal(first, dropped) and first[16:32, 32:64].all()
    assert not first[:, :32].any()  # 16-px blocks: 4 px of dilation reach only the neighbouring block edge
    for _ in range(3):
        gone = stabilizer(np.zeros_like(blob))
    assert not gone.any()  # held for `hold` frames only


def test_kept_masks_are_the_union_of_the_kinds_per_frame_in_shape() -> None:
    source = create_mask_source(("face", "motion"), dilate_px=0, block=1, hold=0)
    frames = [np.ascontiguousarray(f) for f in _moving_square(6)]
    kept = list(source.kept_masks(iter(frames)))
    assert [k.shape for k in kept] == [(120, 160)] * 6 and all(k.dtype == bool for k in kept)
    fresh = create_mask_source(("face", "motion"), dilate_px=0, block=1, hold=0)
    assert all(np.array_equal(k, fresh.raw_union(f)) for k, f in zip(kept, frames, strict=True))
    again = list(source.kept_masks(iter(frames)))  # a second clip starts afresh
    assert all(np.array_equal(a, b) for a, b in zip(kept, again, strict=True))


def test_kinds_run_side_by_side_give_the_serial_masks() -> None:
    """parallel=True (the encoder's default) runs the kinds on threads; MOG2's state over time must not notice."""
    frames = [np.ascontiguousarray(f) for f in _moving_square(8)]
    serial = list(create_mask_source(dilate_px=0, block=1, hold=0).kept_masks(iter(frames)))
    parallel = list(create_mask_source(dilate_px=0, block=1, hold=0, parallel=True).kept_masks(iter(frames)))
    assert any(m.any() for m in serial)  # the square moves: motion keeps something
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_evaluation_now_takes_its_masks_from_selective_mode() -> None:
    source = mask_source()
    assert source is not None and unavailable_reason() is None
    assert isinstance(source, MaskSource) and isinstance(source, SelectiveMasks)
    astronaut = skimage_data.astronaut()
    clip = compute_clip_masks(source, [astronaut, astronaut])
    assert clip.kept.shape == clip.person.shape == (2, 512, 512)
    assert not (clip.person[0] & ~clip.kept[0]).any()  # the person is kept


def test_keep_names_are_checked() -> None:
    assert parse_keep("person, face,text") == ("person", "face", "text")
    with pytest.raises(ModelError, match=r"'person,hands'.*bad: hands"):
        parse_keep("person,hands")
    with pytest.raises(ModelError, match="unknown segmenter 'deeplab'"):
        create_segmenter("deeplab")


def test_user_onnx_segmenter_runs_and_keeps_what_it_marks(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # A "model" that calls red pixels people: p = R - (G + B) / 2, NCHW in, (1, 1, H, W) out, any size.
    nodes = [
        helper.make_node("Split", ["x"], ["r", "g", "b"], axis=1, num_outputs=3),
        helper.make_node("Add", ["g", "b"], ["gb"]),
        helper.make_node("Mul", ["gb", "half"], ["gb2"]),
        helper.make_node("Sub", ["r", "gb2"], ["p"]),
    ]
    graph = helper.make_graph(
        nodes, "red", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 1, None, None])],
        [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])],
    )  # fmt: skip
    path = tmp_path / "red.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    frame = np.zeros((64, 96, 3), dtype=np.uint8)
    frame[10:40, 20:60] = (255, 0, 0)
    source = create_mask_source(("person",), segmenter=f"onnx:{path}", dilate_px=0, block=1, hold=0)
    expected = np.zeros((64, 96), dtype=bool)
    expected[10:40, 20:60] = True
    assert _iou(source.person_mask(frame), expected) > 0.9
    with pytest.raises(ModelError, match="no such ONNX model file"):
        create_segmenter(f"onnx:{tmp_path / 'missing.onnx'}")


def _onnx_model(
    path: Path, inputs: list[int | None], output: list[int | None], *, dtype: int = 1, reshape: list[int] | None = None
) -> str:
    """A valid one-node ONNX model: mean over axis 1 (or a Reshape to `reshape`), input of `dtype` (1: float)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
    if reshape is None:
        nodes.append(helper.make_node("ReduceMean", ["xf"], ["p"], axes=[1], keepdims=1))
    else:
        nodes.append(helper.make_node("Reshape", ["xf", "s"], ["p"]))
    init = [helper.make_tensor("s", TensorProto.INT64, [len(reshape)], reshape)] if reshape is not None else []
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", dtype, inputs)],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, output)], init,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return f"onnx:{path}"


def test_user_onnx_models_of_the_wrong_shape_are_refused_when_loaded_naming_both_shapes(tmp_path: Path) -> None:
    from streamcodec.selective.labels import create_labeler

    needs = r"needs one float32 RGB input \(1, 3, H, W\) or \(1, H, W, 3\); this model takes "
    batch2 = _onnx_model(tmp_path / "batch2.onnx", [2, 3, None, None], [2, 1, None, None])
    as_uint8 = _onnx_model(tmp_path / "uint8.onnx", [1, 3, None, None], [1, 1, None, None], dtype=2)
    fixed = _onnx_model(tmp_path / "fixed.onnx", [1, 3, 64, 64], [1, 1, 32, 32], reshape=[1, 1, 32, 32])
    for create, role in ((create_segmenter, "segmenter"), (create_labeler, "labeler")):
        with pytest.raises(ModelError, match=rf"batch2.onnx: the {role} {needs}'x' float32 \(2, 3, \?, \?\)$"):
            create(batch2)
        with pytest.raises(ModelError, match=rf"uint8.onnx: the {role} {needs}'x' uint8 \(1, 3, \?, \?\)$"):
            create(as_uint8)
        cannot_run = rf"the {role} cannot run on a \(1, 3, 64, 64\) float32 input: ONNX Runtime: .*Reshape"
        with pytest.raises(ModelError, match=cannot_run):
            create(fixed)
    two_maps = tmp_path / "two.onnx"
    _onnx_model(two_maps, [1, 3, None, None], [1, 2, None, None], reshape=[1, 2, 96, 64])
    with pytest.raises(ModelError, match=r"needs one person map .* this model gives \(1, 2, 96, 64\)"):
        create_segmenter(f"onnx:{two_maps}")


def test_encode_with_a_segmenter_of_the_wrong_shape_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .conftest import ffmpeg

    clip = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "3", "-c:v", "ffv1", str(clip))
    model = _onnx_model(tmp_path / "fixed.onnx", [1, 3, 64, 64], [1, 1, 32, 32], reshape=[1, 1, 32, 32])
    out = tmp_path / "out.mkv"
    args = ["encode", str(clip), "-o", str(out), "--no-preview", "--keep", "person", "--segmenter", model]
    result = subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    said = f"streamcodec encode: error: {tmp_path / 'fixed.onnx'}: the segmenter cannot run on a (1, 3, 64, 64)"
    assert len(lines) == 1 and lines[0].startswith(said)
    assert not out.exists()


def test_mask_video_is_read_in_step_and_must_cover_the_input(tmp_path: Path) -> None:
    import av

    path = tmp_path / "mask.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "gray"
        for t in range(3):
            luma = np.zeros((32, 48), dtype=np.uint8)
            luma[:, 16 * t : 16 * t + 16] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(luma, format="gray")))
        container.mux(stream.encode())
    video = MaskVideo(path)
    frame = np.zeros((64, 96, 3), dtype=np.uint8)  # twice the mask video's size: scaled
    masks = [video.mask(frame) for _ in range(3)]
    assert video.notes == [f"{path}: mask video is 48x32, the input 96x64: scaled to the input's size (nearest neighbour)"]
    assert [int(m[:, 32 * t : 32 * t + 32].mean() * 100) for t, m in enumerate(masks)] == [100, 100, 100]
    assert all(m.sum() == 64 * 32 for m in masks)
    with pytest.raises(UnreadableInputError, match="mask video ends after 3 frames"):
        video.mask(frame)
    video.reset()
    assert np.array_equal(video.mask(frame), masks[0])


def _mask_video(path: Path, width: int, height: int, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        for _ in range(frames):
            luma = np.zeros((height, width), dtype=np.uint8)
            luma[: height // 2, : width // 2] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(luma, format="gray")))
        container.mux(stream.encode())
    return path


def test_a_mask_video_of_another_size_is_said_once_as_an_encode_warning_and_in_json(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from .conftest import ffmpeg

    clip = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-frames:v", "4", "-c:v", "ffv1", str(clip))
    small = _mask_video(tmp_path / "small.mkv", 48, 32, 4)
    args = ["encode", str(clip), "-o", str(tmp_path / "out.mkv"), "--keep", "motion", "--mask", str(small), "--json"]
    result = subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    said = f"{small}: mask video is 48x32, the input 96x64: scaled to the input's size (nearest neighbour)"
    assert result.stderr.splitlines() == [f"warning: {said}"]  # once, though the rate probe reads it too
    assert json.loads(result.stdout)["warnings"] == [said]
    same = MaskVideo(_mask_video(tmp_path / "same.mkv", 96, 64, 2))
    same.mask(np.zeros((64, 96, 3), dtype=np.uint8))
    assert same.notes == []  # the input's own size: nothing to say


def test_saved_masks_read_back_and_never_overwrite(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random((20, 30)) > 0.5 for _ in range(3)]
    folder = tmp_path / "masks"
    assert save_masks(masks, folder) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["mask_000000.png", "mask_000001.png", "mask_000002.png"]
    assert all(np.array_equal(a, b) for a, b in zip(masks, load_masks(folder), strict=True))
    with pytest.raises(OutputError, match="already holds mask_"):
        save_masks(masks, folder)


def test_text_detector_marks_a_line_of_text_and_not_a_photo_without_text() -> None:
    from streamcodec.errors import BackendUnavailableError
    from streamcodec.selective.text import TextDetector

    try:
        detector = TextDetector()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    frame = np.full((480, 640, 3), 200, dtype=np.uint8)
    cv2.putText(frame, "Hello streamcodec 2024", (40, 240), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
    rows, cols = np.nonzero(frame[..., 0] < 100)
    line = np.zeros((480, 640), dtype=bool)
    line[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    mask = detector.mask(frame)
    # DB marks each line's shrunk core (PP-OCR grows it back by 1.6x; the stabiliser's dilation does here).
    assert mask[line].mean() > 0.25 and mask[~line].mean() < 0.001
    marked = np.nonzero(mask.any(axis=0))[0]
    assert marked.min() < cols.min() + 40 and marked.max() > cols.max() - 40  # the whole line, end to end
    assert detector.mask(skimage_data.rocket()).mean() < 0.01


def _small_astronaut(height: int) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo scaled to `height` rows, and her hand-drawn person region at that size."""
    size = (height, height)  # the photo is square
    rgb = cv2.resize(skimage_data.astronaut(), size, interpolation=cv2.INTER_AREA)
    return rgb, cv2.resize(_astronaut_person_region().astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def _scene(background: np.ndarray, people: list[tuple[int, int, int]], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`background` with the astronaut pasted at each (height, left, top), sensor noise (σ 2); and where she is."""
    frame, truth = background.astype(np.float32), np.zeros(background.shape[:2], dtype=bool)
    for height, left, top in people:
        rgb, region = _small_astronaut(height)
        frame[top : top + height, left : left + height][region] = rgb[region]
        truth[top : top + height, left : left + height] |= region
    frame += np.random.default_rng(seed).normal(0.0, 2.0, frame.shape)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8), truth


def _rocket(width: int, height: int) -> np.ndarray:
    return cv2.resize(skimage_data.rocket()[:, 37:-37], (width, height), interpolation=cv2.INTER_AREA)


def test_pedestrian_kind_finds_a_distant_person_and_not_the_empty_background() -> None:
    """60-100 px tall in 640x480, where the whole-frame segmenter sees her at a third of that size."""
    pedestrian, whole, background = TiledPersonSegmenter(), SelfieSegmenter(), _rocket(640, 480)
    empty = pedestrian.mask(_scene(background, [], 0)[0])
    assert empty.mean() < 0.03  # what it marks of an empty frame is the rocket's nose cone, nowhere near her
    recalls = []
    for height, left, top in [(60, 90, 330), (80, 460, 300), (100, 120, 280)]:
        frame, truth = _scene(background, [(height, left, top)], height)
        pedestrian.reset()
        recalls.append((pedestrian.mask(frame)[truth].mean(), whole.mask(frame)[truth].mean()))
        assert not empty[truth].any()
    assert min(tiled for tiled, _ in recalls) > 0.8, recalls
    assert np.mean([tiled for tiled, _ in recalls]) > np.mean([plain for _, plain in recalls]) + 0.1, recalls


def _stopping_walk(frames_stopped: int, start_here: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A 50-px astronaut on a real photo: walks in 12 frames and stops, or stands from the first frame and walks off."""
    background, stop = _rocket(320, 240), 60
    walk = [stop + 4 * max(0, 12 - i) for i in range(12 + frames_stopped)]
    lefts = [stop] * frames_stopped + [stop + 5 * i for i in range(1, 40)] if start_here else walk
    for i, left in enumerate(lefts):
        yield _scene(background, [(50, left, 150)] if left < 320 - 50 else [], i)


def test_motion_holds_a_person_who_stops_and_lets_go_of_where_one_stood_at_the_start() -> None:
    held, plain = MotionMasker(hold=250), MotionMasker()
    covered = [(held.mask(frame)[truth].mean(), plain.mask(frame)[truth].mean()) for frame, truth in _stopping_walk(60, False)]
    stopped = covered[12:]
    assert min(share for share, _ in stopped) > 0.7, stopped  # MOG2 alone absorbs her within ~20 frames:
    assert max(share for _, share in stopped[40:]) < 0.3, stopped
    spot = np.zeros((240, 320), dtype=bool)
    spot[150:200, 60:110] = True
    held.reset()
    marks = [held.mask(frame) for frame, _ in _stopping_walk(5, True)]
    assert marks[-1][spot].mean() < 0.05  # the ghost she left is let go: its outline is in the past, not the frame


def test_masks_with_every_new_kind_are_deterministic() -> None:
    frames = [frame for frame, _ in _stopping_walk(8, False)]
    keep = ("person", "face", "motion", "pedestrian")
    first = list(create_mask_source(keep).kept_masks(iter(frames)))
    again = list(create_mask_source(keep, parallel=True).kept_masks(iter(frames)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)) and first[-1].any()


def test_motion_starts_afresh_at_a_scene_cut_instead_of_marking_the_whole_new_shot() -> None:
    rocket, coffee = _rocket(320, 240), cv2.resize(skimage_data.coffee(), (320, 240), interpolation=cv2.INTER_AREA)
    shots = [_scene(rocket, [], i)[0] for i in range(10)] + [_scene(coffee, [(50, 60 + 4 * i, 150)], i)[0] for i in range(10)]
    masker = MotionMasker(hold=250)
    marked = [masker.mask(frame).mean() for frame in shots]
    assert max(marked[10:]) < 0.1, marked  # MOG2 alone, learning at 0.005, marks most of the new shot for ~200 frames
    assert marked[-1] > 0.005  # and still finds her walking there
