"""Selective mode (SC) end to end: encode_file/decode_file, Decoder, damage, hostile configs, info, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.bitstream import StreamConfig
from streamcodec.codec import Decoder, Encoder
from streamcodec.errors import CorruptStreamError, OutputError, StreamcodecError, UnsupportedStreamError
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.metrics import psnr_from_mse
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.streaminfo import stream_info

from .conftest import SAMPLE, ffmpeg

GOP = 8
FRAMES = 16


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of the sample scaled to 160x96 (moving content, so the motion mask keeps something)."""
    path = tmp_path_factory.mktemp("sc") / "bbb160.mp4"
    ffmpeg("-i", str(SAMPLE), "-vf", "scale=160:96", "-frames:v", str(FRAMES), "-an", "-c:v", "libx264", "-crf", "12", str(path))
    return path


@pytest.fixture(scope="module")
def encoded(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The clip in SC (default mode) with GOP 8, and the masks the encoder kept; a coarse plate (CRF 45)."""
    folder = tmp_path_factory.mktemp("sc-out")
    out, masks = folder / "sc.mkv", folder / "masks"
    summary = encode_file(clip, out, gop=GOP, preview=False, save_masks=masks, bg_quality=45)
    assert summary.frames == FRAMES
    return out, masks


def source_frames(path: Path) -> list[VideoFrame]:
    with Source(path) as source:
        return [item for item in source.items(with_audio=False) if isinstance(item, VideoFrame)]


def packets_of(path: Path) -> tuple[StreamConfig, list[bytes], list[float]]:
    with MatroskaReader(path) as reader:
        track, config = stream_track(reader, path)
        packets = [(p.data, float(p.time)) for p in reader.packets({track.number})]
    return config, [data for data, _ in packets], [time for _, time in packets]


def decode_all(config: StreamConfig, packets: list[bytes]) -> list[np.ndarray | None]:
    decoder, out = Decoder(config), list[np.ndarray | None]()
    for packet in packets:
        try:
            out.append(decoder.decode(packet))
        except CorruptStreamError:
            out.append(None)
    return out


def region_psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    diff = a[region].astype(np.float64) - b[region].astype(np.float64)
    return psnr_from_mse(float(np.mean(diff**2)))


def test_sc_round_trip_keeps_count_timestamps_and_the_kept_region(clip: Path, encoded: tuple[Path, Path]) -> None:
    out, mask_folder = encoded
    config, packets, times = packets_of(out)
    assert config.mode == "sc" and config.extra["fidelity"] == "hevc" and config.extra["background"] == "plate"
    source = source_frames(clip)
    assert len(packets) == len(source) == FRAMES
    assert times == pytest.approx([float(item.time) for item in source], abs=1e-3)
    first, second = decode_all(config, packets), decode_all(config, packets)
    for a, b in zip(first, second, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)  # deterministic
    masks = [np.asarray(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) > 127 for p in sorted(mask_folder.glob("mask_*.png"))]
    assert len(masks) == FRAMES
    kept = np.stack(masks)
    decoded, originals = np.stack(first), np.stack([item.rgb for item in source])  # type: ignore[arg-type]
    assert 0.02 < kept.mean() < 0.98, "the motion mask should keep part of the clip"
    inside, outside = region_psnr(decoded, originals, kept), region_psnr(decoded, originals, ~kept)
    assert inside > 30 and inside > outside + 3, (inside, outside)


def test_decode_file_decodes_gc_and_sc_streams_from_their_own_config(
    clip: Path, encoded: tuple[Path, Path], tmp_path: Path
) -> None:
    gc = tmp_path / "gc.mkv"
    encode_file(clip, gc, mode="gc", quality=1, gop=GOP, preview=False)  # a GC stream as written before SC existed
    for path, mode in ((gc, "gc"), (encoded[0], "sc")):
        assert packets_of(path)[0].mode == mode
        summary = decode_file(path, tmp_path / f"{mode}.y4m", reference=clip)
        assert summary.frames == FRAMES and summary.damaged_frames == 0
        assert summary.quality["psnr_db"] is not None and summary.quality["psnr_db"] > 18


def test_gc_packets_are_unchanged_by_the_mode_dispatch(clip: Path) -> None:
    """The GC bitstream did not change: GCEncoder and Encoder(mode="gc") write the same bytes."""
    from streamcodec.gc import GCEncoder

    rgb = source_frames(clip)[0].rgb
    assert Encoder(160, 96, mode="gc").encode(rgb).packet == GCEncoder(160, 96).encode(rgb).packet


def test_a_damaged_frame_is_concealed_until_the_next_keyframe(encoded: tuple[Path, Path]) -> None:
    config, packets, _ = packets_of(encoded[0])
    clean = decode_all(config, packets)
    hit = list(packets)
    hit[2] = hit[2][:20] + bytes([hit[2][20] ^ 0x40]) + hit[2][21:]
    out = decode_all(config, hit)
    assert all(frame is None for frame in out[2:GOP])  # refused until the keyframe
    for index in [0, 1, *range(GOP, FRAMES)]:
        np.testing.assert_array_equal(out[index], clean[index])


def test_a_lost_packet_is_refused_by_its_reference(encoded: tuple[Path, Path]) -> None:
    config, packets, _ = packets_of(encoded[0])
    clean = decode_all(config, packets)
    decoder = Decoder(config)
    decoder.decode(packets[0])
    decoder.decode(packets[1])
    with pytest.raises(CorruptStreamError, match="a frame was lost"):
        decoder.decode(packets[3])  # packet 2 dropped at the container level
    with pytest.raises(CorruptStreamError, match="without its reference"):
        decoder.decode(packets[4])
    np.testing.assert_array_equal(decoder.decode(packets[GOP]), clean[GOP])


def test_decode_file_warns_about_a_damaged_sc_frame(encoded: tuple[Path, Path], tmp_path: Path) -> None:
    data = bytearray(encoded[0].read_bytes())
    packets = packets_of(encoded[0])[1]
    where = bytes(data).find(packets[3])
    data[where + 30] ^= 0x01
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    warnings: list[str] = []
    summary = decode_file(damaged, None, on_warning=warnings.append)
    assert summary.frames == FRAMES and summary.damaged_frames == GOP - 3
    assert any("frame 3 at" in w and "showing the last good frame" in w for w in warnings), warnings


HOSTILE_EXTRA: list[dict[str, Any]] = [
    {"fidelity": "h264"},
    {"fidelity": 1},
    {"background": "sky"},
    {"block": 8},
    {"block": True},
    {"fg_crf": 99},
    {"bg_crf": "30"},
    {"feather": -1},
    {"keep": "person"},
    {"keep": [1, 2]},
    {"keep": ["x" * 300]},
    {"fill": None},
    {"surprise": 1},
]


@pytest.mark.parametrize("change", HOSTILE_EXTRA, ids=lambda c: json.dumps(c)[:30])
def test_hostile_selective_extra_gives_project_errors(encoded: tuple[Path, Path], change: dict[str, Any]) -> None:
    config = packets_of(encoded[0])[0]
    fields = asdict(config)
    fields["extra"] = {**fields["extra"], **change}
    with pytest.raises((CorruptStreamError, UnsupportedStreamError)):
        StreamConfig.unpack(b"SCST\x01" + json.dumps(fields).encode())
    missing = dict(asdict(config), extra={k: v for k, v in config.extra.items() if k != "fg_crf"})
    with pytest.raises(CorruptStreamError, match="lacks fg_crf"):
        StreamConfig.unpack(b"SCST\x01" + json.dumps(missing).encode())


def test_sc_config_without_extra_and_gc_frames_are_refused(encoded: tuple[Path, Path]) -> None:
    config = packets_of(encoded[0])[0]
    with pytest.raises(StreamcodecError):
        Decoder(StreamConfig(**{**asdict(config), "extra": {}}))
    gc_frame = bitstream.pack_frame(bitstream.Frame(bitstream.FrameType.INTRA, {bitstream.LATENTS: b"\x02abcd"}))
    with pytest.raises(CorruptStreamError, match="INTRA frame in a selective-mode stream"):
        Decoder(config).decode(gc_frame)


def test_info_shows_layer_bits_that_add_up_to_the_packets(encoded: tuple[Path, Path]) -> None:
    _, packets, _ = packets_of(encoded[0])
    info = stream_info(encoded[0])
    assert [sum(layers.values()) for layers in info.frames_by_layer] == [8 * len(p) for p in packets]
    assert sum(info.layer_bits.values()) == 8 * info.video_bytes
    assert info.layer_bits["fidelity"] > 0 and info.layer_bits["plate"] > 0 and info.layer_bits["latents"] == 0
    assert info.frames_by_layer[1]["plate"] == 0  # plates only on keyframes
    result = run_cli("info", str(encoded[0]), "--json")
    assert json.loads(result.stdout)["layer_bits"] == info.layer_bits
    text = run_cli("info", str(encoded[0]), "--frames").stdout
    assert "layer bits  fidelity" in text and "frame 0 " in text
    assert "frame 0 " not in run_cli("info", str(encoded[0])).stdout  # per-frame lines only when asked


def test_save_masks_refuses_a_folder_that_holds_files(clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a new or empty folder"):
        encode_file(clip, tmp_path / "x.mkv", preview=False, save_masks=folder)
    assert not (tmp_path / "x.mkv").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_cli_encode_defaults_to_sc_and_mode_gc_works(clip: Path, tmp_path: Path) -> None:
    for flags, mode in (([], "sc"), (["--mode", "gc"], "gc")):
        out = tmp_path / f"{mode}.mkv"
        result = run_cli("encode", str(clip), "-o", str(out), "--no-preview", "--quality", "1", *flags)
        assert result.returncode == 0, result.stderr
        assert packets_of(out)[0].mode == mode
    result = run_cli("encode", str(clip), "-o", str(tmp_path / "y.mkv"), "--mode", "gc", "--keep", "person")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["streamcodec encode: error: --keep applies only to --mode sc"]


def test_sc_options_reach_the_stream(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "av1.mkv"
    encode_file(clip, out, preview=False, fidelity="av1", background="synth", fg_quality=40, keep=["motion"], gop=GOP)
    config, packets, _ = packets_of(out)
    assert config.extra == {
        "fidelity": "av1",
        "background": "synth",
        "block": 16,
        "fill": "recon",
        "keep": ["motion"],
        "fg_crf": 40,
        "bg_crf": 50,
        "feather": 4,
    }
    frames = decode_all(config, packets)
    assert all(frame is not None for frame in frames)
    assert stream_info(out).layer_bits["latents"] > 0
