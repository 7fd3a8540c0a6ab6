"""Selective mode's `learned` fidelity layer: masked GC latents in the FIDELITY section, G's picture in the kept region."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.bitstream import StreamConfig
from streamcodec.codec import Decoder, Encoder, SelectiveOptions
from streamcodec.errors import CorruptStreamError
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.models.registry import REGISTRY
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.selective.learned import LearnedDecoder, keep_cells
from streamcodec.selective.maskcode import decode_mask, expand
from streamcodec.selective.options import BLOCK, composite

from .conftest import SAMPLE, ffmpeg

GOP = 8
FRAMES = 16
OPTIONS = SelectiveOptions(keep=("motion",), fidelity="learned")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of the sample at 160x96 (moving content: the motion mask keeps something)."""
    path = tmp_path_factory.mktemp("learned") / "bbb160.mp4"
    ffmpeg("-i", str(SAMPLE), "-vf", "scale=160:96", "-frames:v", str(FRAMES), "-an", "-c:v", "libx264", "-crf", "12", str(path))
    return path


@pytest.fixture(scope="module")
def frames(clip: Path) -> list[np.ndarray]:
    with Source(clip) as source:
        return [item.rgb for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]


def encode(frames: list[np.ndarray], quality: int = 4, model: str = "gc-small") -> tuple[StreamConfig, list[bytes]]:
    encoder = Encoder(160, 96, mode="sc", model=model, quality=quality, gop=GOP, selective=OPTIONS)
    packets = [encoder.encode(rgb).packet for rgb in frames]
    encoder.close()
    return encoder.config, packets


@pytest.fixture(scope="module")
def coded(frames: list[np.ndarray]) -> tuple[StreamConfig, list[bytes]]:
    return encode(frames)


def blocks_of(packets: list[bytes]) -> list[np.ndarray]:
    """Each frame's 16-px block keep mask, decoded from its MASK section."""
    out, previous = [], None
    for packet in packets:
        frame = bitstream.unpack_frame(packet)
        previous = decode_mask(frame.sections.get(bitstream.MASK, b""), (6, 10), None if frame.is_key else previous)
        out.append(previous)
    return out


def test_the_stream_records_learned_and_the_gc_level(coded: tuple[StreamConfig, list[bytes]]) -> None:
    config, packets = coded
    assert config.extra["fidelity"] == "learned" and config.extra["fg_crf"] == 4
    assert StreamConfig.unpack(config.pack()) == config
    sections = bitstream.unpack_frame(packets[0]).sections
    assert bitstream.PLATE in sections and bitstream.LATENTS not in sections
    assert sections[bitstream.FIDELITY][0] == 16  # gc-small's channels at level 4


@pytest.mark.parametrize("quality", [1, 2, 3])
def test_each_quality_sends_that_gc_levels_channels(frames: list[np.ndarray], quality: int) -> None:
    config, packets = encode(frames[:2], quality)
    channels = REGISTRY.load("gc-small").config.quality_channels[quality - 1]
    assert config.extra["fg_crf"] == quality
    assert [bitstream.unpack_frame(p).sections[bitstream.FIDELITY][0] for p in packets] == [channels, channels]


def test_packets_are_deterministic(frames: list[np.ndarray], coded: tuple[StreamConfig, list[bytes]]) -> None:
    assert encode(frames)[1] == coded[1]


def test_outside_the_keep_cells_every_symbol_is_the_center(coded: tuple[StreamConfig, list[bytes]]) -> None:
    config, packets = coded
    decoder = LearnedDecoder(config.model_id, 4, (160, 96), "auto")
    kept_any = False
    for packet, blocks in zip(packets, blocks_of(packets), strict=True):
        frame = bitstream.unpack_frame(packet)
        sym = decoder.decode_symbols(frame.sections[bitstream.FIDELITY], frame.is_key)
        cells = keep_cells(blocks, sym.shape[1:])
        assert (sym[:, ~cells] == 2).all()
        kept_any |= bool((sym[:, cells] != 2).any())
    assert kept_any  # the motion mask kept something, and its latents are really sent


def test_keep_cells_grow_the_block_mask_by_one_cell() -> None:
    blocks = np.zeros((6, 10), bool)
    blocks[0, 0] = blocks[3, 5] = True
    cells = keep_cells(blocks, (6, 10))
    assert cells.sum() == 4 + 9 and cells[:2, :2].all() and cells[2:5, 4:7].all()
    with pytest.raises(ValueError, match="does not match the latent grid"):
        keep_cells(blocks, (7, 10))


def test_decoder_output_is_g_of_the_decoded_symbols_composited(coded: tuple[StreamConfig, list[bytes]]) -> None:
    config, packets = coded
    decoder, g = Decoder(config), LearnedDecoder(config.model_id, 4, (160, 96), "auto")
    for packet, blocks in zip(packets, blocks_of(packets), strict=True):
        out = decoder.decode(packet)
        frame = bitstream.unpack_frame(packet)
        picture = g.decode(frame.sections[bitstream.FIDELITY], frame.is_key)
        background = decoder.impl.background
        assert background is not None
        kept = expand(blocks, 96, 160, BLOCK)
        np.testing.assert_array_equal(out, composite(picture, background, kept, int(config.extra["feather"])))  # type: ignore[call-overload]
        if kept.any():
            assert not np.array_equal(out[kept], background[kept])  # the kept region really is G's, not the plate


def test_a_lost_packet_is_refused_until_the_next_keyframe(coded: tuple[StreamConfig, list[bytes]]) -> None:
    config, packets = coded
    decoder = Decoder(config)
    decoder.decode(packets[0])
    with pytest.raises(CorruptStreamError):
        decoder.decode(packets[2])
    decoder.decode(packets[GOP])  # the next keyframe starts afresh


def test_a_level_outside_the_model_is_a_corrupt_config(coded: tuple[StreamConfig, list[bytes]]) -> None:
    config = StreamConfig(**{**asdict(coded[0]), "extra": {**coded[0].extra, "fg_crf": 9}})
    with pytest.raises(CorruptStreamError, match=r"fg_crf.*outside 1\.\.4"):
        Decoder(config)


def test_api_round_trip_with_gc_gpu(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.mkv"
    options = SelectiveOptions.for_files(fidelity="learned", keep=("motion",))
    summary = encode_file(clip, out, model="gc-gpu", selective=options, gop=GOP, preview=False)
    assert summary.frames == FRAMES
    with MatroskaReader(out) as reader:
        _, config = stream_track(reader, out)
    assert config.model_name == "gc-gpu" and config.extra["fidelity"] == "learned"
    decoded = tmp_path / "frames"
    decode_file(out, decoded)
    assert len(list(decoded.glob("*.png"))) == FRAMES


def test_cli_round_trip(clip: Path, tmp_path: Path) -> None:
    out, y4m = tmp_path / "l.mkv", tmp_path / "l.y4m"
    done = run_cli("encode", str(clip), "-o", str(out), "--fidelity", "learned", "--gop", str(GOP), "--quality", "2")
    assert done.returncode == 0, done.stderr
    info = run_cli("info", str(out))
    assert "sc mode, model gc-small" in info.stdout and "quality 2" in info.stdout
    done = run_cli("decode", str(out), "-o", str(y4m))
    assert done.returncode == 0, done.stderr
    assert y4m.read_bytes().count(b"FRAME") == FRAMES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fg-quality", "9"], "streamcodec encode: error: --fg-quality 9 is outside 1..4 for learned"),
        (["--model", "gc-gpu", "--background", "synth"], "reads latents of"),
    ],
)
def test_cli_refuses_bad_combinations_in_one_line(clip: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "bad.mkv"
    done = run_cli("encode", str(clip), "-o", str(out), "--fidelity", "learned", *args)
    # One error line (an engine's "engine auto → ..." note may come before it), never a traceback.
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 1 and len(errors) == 1 and message in errors[0] and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()
