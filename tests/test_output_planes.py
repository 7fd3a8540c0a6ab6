"""Decode outputs carry the decoder's own pixels: a selective stream's 4:2:0 planes (the fidelity codec's in the
kept blocks) go to .y4m as they are and to .mkv / `--lossless` H.264 exactly, and every video file is tagged
with the stream's colour matrix and limited range."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from streamcodec import bitstream, cli
from streamcodec.codec import Decoder, SelectiveOptions
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.selective.fidelity import FidelityDecoder
from streamcodec.selective.options import feather_alpha
from streamcodec.selective.planes import PlanesCompositor, picture_planes, split, to_planes

from .conftest import ffmpeg

Planes = npt.NDArray[np.uint8]


def _source(path: Path, matrix: str) -> Path:
    """12 frames 96x64 of 4:2:0 H.264, a white square moving over still bars, tagged with `matrix` (bt709) or untagged."""
    inputs = [
        "-f",
        "lavfi",
        "-i",
        "smptebars=size=96x64:rate=25:duration=0.48",
        "-f",
        "lavfi",
        "-i",
        "color=white:size=20x20:rate=25",
    ]
    moving = "[0][1]overlay=x='8+n*5':y=20:shortest=1"
    tagged = [f"{moving},scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709", "-color_range", "tv"]
    filters = ["-filter_complex", *(tagged if matrix == "bt709" else [moving])]
    ffmpeg(*inputs, *filters, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module", params=["bt601", "bt709"])
def stream(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A selective stream with kept and background blocks (never coded whole), from a 4:2:0 source, and its matrix."""
    folder = tmp_path_factory.mktemp(f"planes-{request.param}")
    options = SelectiveOptions.for_files(keep=("motion",), whole_above=1.0)
    encode_file(_source(folder / "source.mp4", request.param), folder / "stream.mkv", preview=False, selective=options)
    return folder / "stream.mkv", request.param


def read_planes(path: Path) -> list[Planes]:
    with av.open(str(path)) as container:
        return [np.asarray(frame.to_ndarray(), dtype=np.uint8) for frame in container.decode(video=0)]


def probe(path: Path) -> dict[str, str]:
    entries = ["-select_streams", "v:0", "-show_entries", "stream=pix_fmt,color_space,color_range"]
    result = subprocess.run(
        ["ffprobe", "-v", "error", *entries, "-of", "json", str(path)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout)["streams"][0])


def psnr(a: Planes, b: Planes) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255**2 / mse))


def decoded(path: Path) -> Iterator[tuple[Decoder, bytes]]:
    """The stream's decoder, asked for planes, after each of its packets."""
    with MatroskaReader(path) as reader:
        track, config = stream_track(reader, path)
        decoder = Decoder(config)
        assert decoder.give_planes()
        for packet in reader.packets({track.number}):
            decoder.decode(packet.data)
            yield decoder, packet.data


def test_y4m_of_a_selective_stream_from_a_420_source_is_420_and_holds_the_decoders_planes(
    stream: tuple[Path, str], tmp_path: Path
) -> None:
    path, _ = stream
    decode_file(path, tmp_path / "out.y4m")
    header = (tmp_path / "out.y4m").read_bytes().split(b"\n", 1)[0].split()
    assert b"C420jpeg" in header and b"XCOLORRANGE=LIMITED" in header
    written = read_planes(tmp_path / "out.y4m")
    given = [decoder.last_planes for decoder, _ in decoded(path)]
    assert len(written) == len(given) == 12
    assert all(np.array_equal(planes, own) for planes, own in zip(written, given, strict=True))


def test_kept_blocks_are_the_fidelity_codecs_own_planes_byte_for_byte(stream: tuple[Path, str]) -> None:
    path, matrix = stream
    fidelity: FidelityDecoder | None = None
    partly_kept = 0
    for decoder, packet in decoded(path):
        config = decoder.config
        if fidelity is None:
            fidelity = FidelityDecoder(str(config.extra["fidelity"]), width=config.width, height=config.height, matrix=matrix)
        fidelity.decode(bitstream.unpack_frame(packet).sections[bitstream.FIDELITY])
        own = picture_planes(fidelity.last_picture, config.width, config.height)
        assert own is not None and decoder.blocks is not None and decoder.background is not None
        kept = np.repeat(np.repeat(decoder.blocks, 16, axis=0), 16, axis=1)[: config.height, : config.width]
        partly_kept += bool(kept.any() and not kept.all())
        background = to_planes(decoder.background, matrix)
        cells = kept[::2, ::2]  # U and V: blocks are 16-px aligned, so the same cells at half size
        planes = zip(split(decoder.last_planes), split(own), split(background), (kept, cells, cells), strict=True)
        for got, inside, outside, where in planes:
            assert np.array_equal(got[where], inside[where]) and np.array_equal(got[~where], outside[~where])
    assert partly_kept >= 8  # the composite was exercised, not a frame coded whole


def test_mkv_and_lossless_mp4_are_exact_and_mp4_costs_what_help_says(stream: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = stream
    for name, extra in (("out.y4m", ()), ("out.mkv", ()), ("exact.mp4", ("--lossless",)), ("out.mp4", ())):
        assert cli.main(["decode", str(path), "-o", str(tmp_path / name), *extra]) == 0
    reference = read_planes(tmp_path / "out.y4m")
    for exact in ("out.mkv", "exact.mp4"):
        assert all(np.array_equal(a, b) for a, b in zip(read_planes(tmp_path / exact), reference, strict=True))
    lossy = read_planes(tmp_path / "out.mp4")
    assert len(lossy) == 12 and min(psnr(a, b) for a, b in zip(lossy, reference, strict=True)) >= 45.0
    assert (tmp_path / "out.mp4").stat().st_size < (tmp_path / "exact.mp4").stat().st_size


def test_outputs_are_tagged_with_the_streams_matrix_and_limited_range(stream: tuple[Path, str], tmp_path: Path) -> None:
    path, matrix = stream
    space = {"bt601": "smpte170m", "bt709": "bt709"}[matrix]
    for name in ("out.mp4", "out.mkv", "out.mov", "out.y4m"):
        decode_file(path, tmp_path / name)
        tags = probe(tmp_path / name)
        assert tags["pix_fmt"] == "yuv420p" and tags["color_range"] == "tv", (name, tags)
        if name != "out.y4m":  # y4m has no field for the matrix
            assert tags["color_space"] == space, (name, tags)


def test_a_global_mode_stream_still_writes_444_y4m_from_its_rgb(clip_with_audio: Path, tmp_path: Path) -> None:
    encode_file(clip_with_audio, tmp_path / "gc.mkv", preview=False, quality=1, mode="gc")
    decode_file(tmp_path / "gc.mkv", tmp_path / "gc.y4m")
    assert b"C444" in (tmp_path / "gc.y4m").read_bytes().split(b"\n", 1)[0]
    decode_file(tmp_path / "gc.mkv", tmp_path / "gc.mp4")
    assert probe(tmp_path / "gc.mp4") == {"pix_fmt": "yuv420p", "color_space": "smpte170m", "color_range": "tv"}


def test_planes_composite_keeps_the_fidelity_planes_where_alpha_is_one_and_blends_the_feathered_edge() -> None:
    rng = np.random.default_rng(7)
    height, width, feather = 48, 64, 3
    fidelity, background = (rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8) for _ in range(2))
    blocks = np.array([[False, True, True, False], [False, True, True, False], [False, False, False, False]])
    out = PlanesCompositor(feather)(fidelity, background, blocks)
    alpha = feather_alpha(np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1), feather)
    chroma = alpha.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    assert np.count_nonzero((alpha > 0) & (alpha < 1)) > 0  # there is a feathered band
    for got, over, under, weight in zip(split(out), split(fidelity), split(background), (alpha, chroma, chroma), strict=True):
        assert np.array_equal(got[weight >= 1], over[weight >= 1]) and np.array_equal(got[weight == 0], under[weight == 0])
        band = (weight > 0) & (weight < 1)
        expected = np.clip(under[band] + weight[band] * (over[band].astype(np.float32) - under[band]) + 0.5, 0, 255)
        assert np.array_equal(got[band], expected.astype(np.uint8))


def test_an_odd_sized_selective_stream_has_no_420_of_its_own_and_writes_444_y4m(odd_clip: Path, tmp_path: Path) -> None:
    encode_file(odd_clip, tmp_path / "odd.mkv", preview=False)
    decode_file(tmp_path / "odd.mkv", tmp_path / "odd.y4m")
    assert b"C444" in (tmp_path / "odd.y4m").read_bytes().split(b"\n", 1)[0]
    assert len(read_planes(tmp_path / "odd.y4m")) == 7
