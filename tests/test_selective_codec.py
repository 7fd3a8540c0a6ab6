"""Selective mode (SC) end to end: encode_file/decode_file, Decoder, damage, hostile configs, info, CLI."""

from __future__ import annotations

import itertools
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
from streamcodec.bitstream import Frame, StreamConfig
from streamcodec.codec import Decoder, Encoder, SelectiveOptions
from streamcodec.errors import CorruptStreamError, ModelError, OutputError, StreamcodecError, UnsupportedStreamError
from streamcodec.io.demux import Source, VideoFrame
from streamcodec.io.mkv_reader import MatroskaReader
from streamcodec.metrics import psnr, psnr_from_mse
from streamcodec.pipeline.decode import decode_file, stream_track
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info
from streamcodec.selective.codec import SelectiveDecoder
from streamcodec.selective.maskcode import decode_mask, encode_mask
from streamcodec.selective.synth import SynthesisModel

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
    """The clip in SC (default mode: AV1 offline) with GOP 8, and the masks the encoder kept; a coarse plate (CRF 63)."""
    folder = tmp_path_factory.mktemp("sc-out")
    out, masks = folder / "sc.mkv", folder / "masks"
    summary = encode_file(clip, out, gop=GOP, preview=False, save_masks=masks, selective=SelectiveOptions.for_files(bg_crf=63))
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
    assert config.mode == "sc" and config.extra["fidelity"] == "av1" and config.extra["background"] == "plate"
    assert config.extra["latency"] == "offline"  # files: SVT-AV1 looking ahead, unless asked otherwise
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
    from streamcodec.gc.codec import GCEncoder

    rgb = source_frames(clip)[0].rgb
    assert Encoder(160, 96, mode="gc").encode(rgb).packet == GCEncoder(160, 96).encode(rgb).packet


def sc_packets(
    frames: list[np.ndarray],
    *,
    ahead: bool,
    codec_threads: int = 2,
    latency: str = "zero",
    fidelity: str = "hevc",
    parallel: bool = True,
    sources: list[Any] | None = None,
) -> list[bytes]:
    """Encode in SC (GOP 8); with `ahead`, each frame is given to prepare() one frame early, as a live loop would.

    `sources`: the decoded frames the RGB came from, given with them as encode_file does.
    """
    options = SelectiveOptions(codec_threads=codec_threads, latency=latency, fidelity=fidelity, parallel=parallel)
    encoder = Encoder(160, 96, gop=GOP, selective=options)
    if ahead:
        encoder.prepare(frames[0])
    packets = []
    for index, rgb in enumerate(frames):
        if ahead and index + 1 < len(frames):
            encoder.prepare(frames[index + 1])
        packets += [encoded.packet for encoded in encoder.push(rgb, sources[index] if sources else None)]
    packets += [encoded.packet for encoded in encoder.flush()]
    encoder.close()
    return packets


def test_sc_encoding_is_deterministic_and_masks_found_ahead_change_no_byte(clip: Path) -> None:
    """The same frames give the same packets twice over, with the masks found one frame ahead, and with x265 on one thread."""
    frames = [item.rgb for item in source_frames(clip)]
    serial = sc_packets(frames, ahead=False)
    assert len(serial) == FRAMES and bitstream.unpack_frame(serial[1]).sections.get(bitstream.FIDELITY)
    assert sc_packets(frames, ahead=False) == serial
    assert sc_packets(frames, ahead=True) == serial
    assert sc_packets(frames, ahead=False, codec_threads=1) == serial


def test_encode_file_finds_masks_ahead_and_writes_the_serial_packets(clip: Path, tmp_path: Path) -> None:
    """encode_file gives each frame to prepare() one frame early; the track holds exactly the serial encoder's packets."""
    encode_file(clip, tmp_path / "sc.mkv", gop=GOP, preview=False)
    items = source_frames(clip)
    frames, sources = [item.rgb for item in items], [item.source for item in items]
    serial = sc_packets(frames, ahead=False, latency="offline", fidelity="av1", sources=sources)
    assert packets_of(tmp_path / "sc.mkv")[1] == serial


def test_prepare_refuses_frames_out_of_order(clip: Path) -> None:
    first, second = (item.rgb for item in source_frames(clip)[:2])
    encoder = Encoder(160, 96, gop=GOP)
    encoder.prepare(first)
    with pytest.raises(ValueError, match="other than the one prepare"):
        encoder.encode(second)
    with pytest.raises(ValueError, match="expected \\(96, 160, 3\\)"):
        encoder.prepare(first[:10])
    encoder.close()


def test_a_damaged_frame_is_concealed_until_the_next_keyframe(encoded: tuple[Path, Path]) -> None:
    config, packets, _ = packets_of(encoded[0])
    clean = decode_all(config, packets)
    hit = list(packets)
    middle = len(hit[2]) // 2
    hit[2] = hit[2][:middle] + bytes([hit[2][middle] ^ 0x40]) + hit[2][middle + 1 :]
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
    {"matrix": "bt2020"},
    {"keep": "person"},
    {"keep": [1, 2]},
    {"keep": ["x" * 300]},
    {"fill": None},
    {"surprise": 1},
    {"synth_model": "sc-small"},  # a synth generator's field on a plate stream
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


def test_every_selective_flag_of_the_cli_reaches_the_stream(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "flags.mkv"
    flags = ["--keep", "motion", "--fidelity", "hevc", "--latency", "zero", "--fg-quality", "30", "--bg-quality", "45"]
    flags += ["--whole-above", "0"]  # not in the config: the second keyframe (motion by then) carries no plate
    result = run_cli("encode", str(clip), "-o", str(out), "--no-preview", "--gop", str(GOP), *flags, "--feather", "3")
    assert result.returncode == 0, result.stderr
    extra = packets_of(out)[0].extra
    got = {key: extra[key] for key in ("keep", "fidelity", "fg_crf", "bg_crf", "feather")}
    assert got == {"keep": ["motion"], "fidelity": "hevc", "fg_crf": 30, "bg_crf": 45, "feather": 3}
    assert "latency" not in extra  # zero latency is what streams without the key were
    assert bitstream.PLATE not in bitstream.unpack_frame(packets_of(out)[1][GOP]).sections


def test_preset_reaches_the_fidelity_codec_and_a_wrong_one_is_one_line(clip: Path, tmp_path: Path) -> None:
    flags = ["--no-preview", "--gop", str(GOP), "--fidelity", "hevc", "--latency", "zero"]
    units = []
    for index, choice in enumerate(([], ["--preset", "ultrafast"], ["--preset", "fast"])):  # fast: the live default
        out = tmp_path / f"preset{index}.mkv"
        result = run_cli("encode", str(clip), "-o", str(out), *flags, *choice)
        assert result.returncode == 0, result.stderr
        units.append([bitstream.unpack_frame(p).sections[bitstream.FIDELITY] for p in packets_of(out)[1]])
    assert units[0] != units[1] and units[0] == units[2]
    av1_presets = ", ".join(str(level) for level in range(14))
    for fidelity, preset, error in (
        ("av1", "slow", f"--preset slow does not fit the av1 fidelity layer (presets: {av1_presets})"),
        ("learned", "4", "--preset applies to the hevc and av1 fidelity layers, not learned"),
    ):
        out = tmp_path / "bad.mkv"
        result = run_cli("encode", str(clip), "-o", str(out), "--fidelity", fidelity, "--preset", preset)
        assert result.returncode != 0 and not out.exists()
        assert result.stderr.strip().splitlines() == [f"streamcodec encode: error: {error}"]


def test_a_gop_keeping_most_of_the_picture_is_coded_whole_with_no_plate(clip: Path, tmp_path: Path) -> None:
    """Motion only: nothing moves yet at frame 0 (masked, a plate); by frame 8 it does, and whole_above 0 codes that GOP whole."""
    whole, masked = tmp_path / "whole.mkv", tmp_path / "masked.mkv"
    encode_file(clip, whole, gop=GOP, preview=False, selective=SelectiveOptions.for_files(keep=("motion",), whole_above=0.0))
    encode_file(clip, masked, gop=GOP, preview=False, selective=SelectiveOptions.for_files(keep=("motion",), whole_above=1.0))
    assert all(plates_of(packets_of(masked)[1], GOP))  # a full plate or an update at each keyframe
    config, packets, _ = packets_of(whole)
    frames = [bitstream.unpack_frame(packet) for packet in packets]
    assert bitstream.PLATE in frames[0].sections and bitstream.PLATE not in frames[GOP].sections
    shape = (-(-config.height // 16), -(-config.width // 16))
    assert not decode_mask(frames[0].sections.get(bitstream.MASK, b""), shape, None).all()
    assert decode_mask(frames[GOP].sections[bitstream.MASK], shape, None).all()
    assert all(bitstream.MASK not in frame.sections for frame in frames[GOP + 1 :])  # unchanged: all kept
    decoder = SelectiveDecoder(config)
    for index, packet in enumerate(packets):
        out = decoder.decode(packet)
        if index >= GOP:  # the picture is the fidelity layer's, to the byte, and no background is in use
            assert decoder.background is None and decoder.last_fidelity is not None
            np.testing.assert_array_equal(out, decoder.last_fidelity)
    source = [item.rgb for item in source_frames(clip)][GOP:]
    every = np.ones(source[0].shape[:2], dtype=bool)
    pictures = [decode_all(*packets_of(path)[:2])[GOP:] for path in (whole, masked)]
    assert all(picture is not None for out in pictures for picture in out)
    whole_psnr, masked_psnr = (
        [region_psnr(o, s, every) for o, s in zip(out, source, strict=True) if o is not None] for out in pictures
    )
    assert min(whole_psnr) > max(masked_psnr)  # masked shows the frame-0 plate where nothing moved

    # A frame that leaves blocks to a background the whole GOP's keyframe never sent is refused.
    partial = np.ones(shape, dtype=bool)
    partial[0, 0] = False
    sections = {**frames[GOP + 1].sections, bitstream.MASK: encode_mask(partial, np.ones(shape, dtype=bool))}
    crafted = bitstream.pack_frame(Frame(frames[GOP + 1].frame_type, sections, 1))
    decoder = SelectiveDecoder(config)
    decoder.decode(packets[GOP])
    with pytest.raises(CorruptStreamError, match="did not send"):
        decoder.decode(crafted)


def plates_of(packets: list[bytes], gop: int) -> list[list[int]]:
    """The plate sections each keyframe carries."""
    kinds = (bitstream.PLATE, bitstream.PLATE_UPDATE)
    return [[tag for tag in kinds if tag in bitstream.unpack_frame(p).sections] for p in packets[::gop]]


def test_keyframes_between_full_plates_carry_updates_and_live_streams_full_plates(clip: Path, tmp_path: Path) -> None:
    """Files: one full plate per PLATE_REFRESH seconds (10), updates between; --plate-refresh 0 and live: full every time."""
    flags = ["--no-preview", "--gop", str(GOP), "--bg-quality", "63", "--whole-above", "1"]
    streams = {}
    live = ["--latency", "zero", "--fidelity", "av1"]
    for name, extra in (("default", []), ("every", ["--plate-refresh", "0"]), ("live", live)):
        out = tmp_path / f"{name}.mkv"
        result = run_cli("encode", str(clip), "-o", str(out), *flags, *extra)
        assert result.returncode == 0, result.stderr
        streams[name] = packets_of(out)
    full, update = [bitstream.PLATE], [bitstream.PLATE_UPDATE]
    assert plates_of(streams["default"][1], GOP) == [full, update]
    assert plates_of(streams["every"][1], GOP) == plates_of(streams["live"][1], GOP) == [full, full]
    # The plate changes nothing else: the same fidelity layer, frame for frame.
    fidelity = [[bitstream.unpack_frame(p).sections[bitstream.FIDELITY] for p in streams[n][1]] for n in ("default", "every")]
    assert fidelity[0] == fidelity[1]
    update_bytes = bitstream.unpack_frame(streams["default"][1][GOP]).sections[bitstream.PLATE_UPDATE]
    unchanged = int(len(update_bytes) == bitstream.PLATE_CHECK.size)
    assert stream_info(tmp_path / "default.mkv").plates == {"full": 1, "updates": 1, "unchanged": unchanged}
    assert stream_info(tmp_path / "every.mkv").plates == {"full": 2, "updates": 0, "unchanged": 0}
    text = run_cli("info", str(tmp_path / "default.mkv")).stdout.splitlines()
    assert f"  plates      1 full, 1 updates ({unchanged} of them unchanged)" in text
    assert len(update_bytes) < len(bitstream.unpack_frame(streams["every"][1][GOP]).sections[bitstream.PLATE]) / 2
    first, again = decode_all(*streams["default"][:2]), decode_all(*streams["default"][:2])
    for a, b in zip(first, again, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)
    result = run_cli("encode", str(clip), "-o", str(tmp_path / "bad.mkv"), "--plate-refresh", "soon")
    assert result.returncode != 0 and not (tmp_path / "bad.mkv").exists()
    assert result.stderr.strip().splitlines()[-1].endswith("argument --plate-refresh: 'soon' is not a number of seconds")


def test_a_decoder_starting_at_a_plate_update_shows_grey_and_says_so_until_the_next_full_plate(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "chain.mkv"
    # GOP 4 at 25 fps, a full plate at most every 8 frames (0.32 s): keyframes 0, 4, 8, 12 carry full, update, full, update.
    options = SelectiveOptions.for_files(keep=("motion",), whole_above=1.0, plate_refresh=0.32)
    encode_file(clip, out, gop=4, preview=False, selective=options)
    config, packets, _ = packets_of(out)
    assert plates_of(packets, 4) == [[bitstream.PLATE], [bitstream.PLATE_UPDATE]] * 2
    clean = decode_all(config, packets)
    decoder = SelectiveDecoder(config)
    late = [decoder.decode(packet) for packet in packets[4:]]  # as a decoder joining at frame 4 would
    assert len(decoder.notes) == 1 and decoder.notes[0].endswith("showing a grey background until the next full plate")
    sections = bitstream.unpack_frame(packets[4]).sections
    blocks = decode_mask(sections.get(bitstream.MASK, b""), (6, 10), None)
    outside = ~np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:96, :160]
    assert outside.any() and (late[0][outside] == 128).all() and (late[0][~outside] == clean[4][~outside]).all()  # type: ignore[index]
    for index in range(8, FRAMES):  # from the next full plate on, as if decoded from the start, update included
        np.testing.assert_array_equal(late[index - 4], clean[index])
    # A file whose first keyframe is damaged: that frame is concealed, and the update after it is reported.
    data = bytearray(out.read_bytes())
    data[bytes(data).find(packets[0]) + 30] ^= 0x01
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    warnings: list[str] = []
    summary = decode_file(damaged, None, on_warning=warnings.append)
    assert summary.frames == FRAMES and summary.damaged_frames == 4
    assert [w.split(":")[0] for w in warnings if "plate the decoder does not hold" in w] == ["frame 4 at 0.160 s"], warnings


def test_the_kept_region_is_coded_from_the_source_planes_when_given(clip: Path) -> None:
    """A yuv420p source's own planes skip the RGB → 4:2:0 round trip: a whole GOP at a fine CRF comes out closer."""
    items = source_frames(clip)
    assert all(item.source is not None for item in items)
    options = SelectiveOptions(keep=("motion",), fidelity="av1", fg_crf=8, whole_above=0.0, latency="offline")
    runs = []
    for with_source in (True, False, True):
        encoder = Encoder(160, 96, mode="sc", quality=4, gop=GOP, selective=options)
        packets = [ready.packet for item in items for ready in encoder.push(item.rgb, item.source if with_source else None)]
        runs.append(packets + [ready.packet for ready in encoder.flush()])
    assert runs[0] == runs[2] and runs[0] != runs[1]  # deterministic, and the planes change what is coded
    every = np.ones((96, 160), dtype=bool)
    config = Encoder(160, 96, mode="sc", quality=4, gop=GOP, selective=options).config
    planes_out, rgb_out = (decode_all(config, packets)[GOP:] for packets in runs[:2])
    for item, a, b in zip(items[GOP:], planes_out, rgb_out, strict=True):  # 1.6-2.7 dB apart when written
        assert a is not None and b is not None
        assert region_psnr(a, item.rgb, every) > region_psnr(b, item.rgb, every) + 0.5


def test_a_bt709_source_is_coded_from_its_planes_with_the_matrix_recorded(tmp_path: Path) -> None:
    """A source tagged BT.709 (most HD) decodes to RGB by that matrix: the stream records it and uses the planes."""
    clip, out = tmp_path / "hd.mp4", tmp_path / "hd.mkv"
    ffmpeg("-i", str(SAMPLE), "-vf", "scale=160:96", "-frames:v", str(FRAMES), "-an", "-c:v", "libx264", "-crf", "12",
           "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", str(clip))  # fmt: skip
    options = SelectiveOptions.for_files(keep=("motion",), fg_crf=8, whole_above=0.0)
    encode_file(clip, out, gop=GOP, preview=False, selective=options)
    config, packets, _ = packets_of(out)
    assert config.extra["matrix"] == "bt709"
    items = source_frames(clip)
    options = SelectiveOptions(keep=("motion",), fidelity="av1", fg_crf=8, whole_above=0.0, latency="offline")
    encoder = Encoder(160, 96, mode="sc", quality=4, gop=GOP, selective=options)  # BT.601: the RGB round trip
    old = [ready.packet for item in items for ready in encoder.push(item.rgb, item.source)] + [r.packet for r in encoder.flush()]
    every = np.ones((96, 160), dtype=bool)
    for item, a, b in zip(items[GOP:], decode_all(config, packets)[GOP:], decode_all(encoder.config, old)[GOP:], strict=True):
        assert a is not None and b is not None
        assert region_psnr(a, item.rgb, every) > region_psnr(b, item.rgb, every) + 0.5


def test_sc_options_reach_the_stream(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "av1.mkv"
    options = SelectiveOptions.for_files(fidelity="av1", background="synth", fg_crf=40, keep=("motion",))
    encode_file(clip, out, preview=False, selective=options, gop=GOP)
    config, packets, _ = packets_of(out)
    assert config.extra == {
        "fidelity": "av1",
        "background": "synth",
        "block": 16,
        "fill": "hold",
        "latency": "offline",
        "keep": ["motion"],
        "fg_crf": 40,
        "bg_crf": 58,
        "feather": 0,
        "synth_model": "sc-small",
        "synth_model_id": SynthesisModel("sc-small").model_id,
        "labeler": "builtin",
        "label_classes": 30,
        "max_background_error": 20.0,  # the default background bound
    }
    frames = decode_all(config, packets)
    assert all(frame is not None for frame in frames)
    assert stream_info(out).layer_bits["latents"] > 0


SYNTH_FRAMES, SYNTH_GOP = 12, 6


@pytest.fixture(scope="module")
def synth_encoded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of the sample at 96x64 with --background synth, GOP 6."""
    folder = tmp_path_factory.mktemp("synth")
    clip, out = folder / "bbb96.mp4", folder / "synth.mkv"
    ffmpeg(
        "-i", str(SAMPLE), "-vf", "scale=96:64", "-frames:v", str(SYNTH_FRAMES), "-an", "-c:v", "libx264", "-crf", "12", str(clip)
    )
    options = SelectiveOptions.for_files(background="synth")
    summary = encode_file(clip, out, gop=SYNTH_GOP, preview=False, selective=options, quality=1)
    assert summary.frames == SYNTH_FRAMES
    return out


def gc_background(config: StreamConfig, latents: bytes) -> np.ndarray:
    """What gc-small's own generator paints from a keyframe's LATENTS (the pre-SC synth background)."""
    from streamcodec.gc.codec import GCDecoder
    from streamcodec.selective.background import gc_config

    return GCDecoder(gc_config(config)).decode(bitstream.pack_frame(bitstream.Frame(bitstream.FrameType.INTRA, {1: latents})))


def test_synth_round_trip_sends_latents_and_labels_on_keyframes(synth_encoded: Path) -> None:
    from streamcodec.gc.codec import GCDecoder
    from streamcodec.selective.background import gc_config
    from streamcodec.selective.labelcode import decode_labels

    config, packets, _ = packets_of(synth_encoded)
    assert config.extra["background"] == "synth" and config.extra["labeler"] == "builtin"
    assert config.extra["label_classes"] == 30 and config.extra["synth_model"] == "sc-small"
    assert len(packets) == SYNTH_FRAMES
    frames = [bitstream.unpack_frame(p) for p in packets]
    for index, frame in enumerate(frames):
        key = index % SYNTH_GOP == 0
        assert (bitstream.LABELS in frame.sections) == key and (bitstream.LATENTS in frame.sections) == key, index
    first, second = decode_all(config, packets), decode_all(config, packets)
    for a, b in zip(first, second, strict=True):
        assert a is not None and b is not None and a.shape == (64, 96, 3)
        np.testing.assert_array_equal(a, b)
    # The background is sc-small's painting of the latents and the label map, not gc-small's q1 picture.
    decoder = Decoder(config)
    decoder.decode(packets[0])
    latents, labels = frames[0].sections[bitstream.LATENTS], frames[0].sections[bitstream.LABELS]
    symbols, _ = GCDecoder(gc_config(config)).decode_symbols(
        bitstream.pack_frame(bitstream.Frame(bitstream.FrameType.INTRA, {bitstream.LATENTS: latents}))
    )
    label_map = decode_labels(labels, (8, 12), None, 30)
    expected = SynthesisModel("sc-small").synthesize_symbols(symbols, label_map)[:64, :96]
    np.testing.assert_array_equal(decoder.impl.background, expected)
    assert not np.array_equal(expected, gc_background(config, latents))
    info = stream_info(synth_encoded)
    assert [sum(layers.values()) for layers in info.frames_by_layer] == [8 * len(p) for p in packets]
    assert info.layer_bits["labels"] > 0 and info.layer_bits["latents"] > 0 and info.layer_bits["plate"] == 0
    assert all(layers["labels"] == 0 for i, layers in enumerate(info.frames_by_layer) if i % SYNTH_GOP)


def old_style(config: StreamConfig, packets: list[bytes]) -> tuple[StreamConfig, list[bytes]]:
    """The stream as the encoder wrote it before sc-small: no LABELS, no generator in `extra`, references re-chained."""
    synth_keys = set(bitstream.SC_SYNTH_EXTRA)
    old_config = StreamConfig(**{**asdict(config), "extra": {k: v for k, v in config.extra.items() if k not in synth_keys}})
    out: list[bytes] = []
    for packet in packets:
        frame = bitstream.unpack_frame(packet)
        sections = {tag: data for tag, data in frame.sections.items() if tag != bitstream.LABELS}
        if not frame.is_key:
            sections[bitstream.REFERENCE] = out[-1][-1:]
        out.append(bitstream.pack_frame(bitstream.Frame(frame.frame_type, sections, frame.reference_distance)))
    return old_config, out


def test_an_old_style_synth_stream_still_decodes_with_gc_small(synth_encoded: Path) -> None:
    config, packets, _ = packets_of(synth_encoded)
    old_config, old_packets = old_style(config, packets)
    StreamConfig.unpack(old_config.pack())  # still a valid configuration
    decoder = Decoder(old_config)
    for index, packet in enumerate(old_packets):
        assert decoder.decode(packet).shape == (64, 96, 3)
        if index == 0:
            latents = bitstream.unpack_frame(packet).sections[bitstream.LATENTS]
            np.testing.assert_array_equal(decoder.impl.background, gc_background(old_config, latents))
    # And a new-style stream's keyframe without its LABELS is refused, not painted by the wrong generator.
    with pytest.raises(CorruptStreamError, match="no labels section"):
        Decoder(config).decode(old_packets[0])


HOSTILE_SYNTH_EXTRA: list[dict[str, Any]] = [
    {"synth_model_id": 5},
    {"synth_model": ""},
    {"synth_model": "x" * 300},
    {"labeler": "onnx-1a2b3c4d-s8"},
    {"labeler": None},
    {"label_classes": 0},
    {"label_classes": 257},
    {"label_classes": True},
    {"label_classes": "30"},
    {"labeler": "<drop>"},
]


@pytest.mark.parametrize("change", HOSTILE_SYNTH_EXTRA, ids=lambda c: json.dumps(c)[:30])
def test_hostile_synth_extra_gives_project_errors(synth_encoded: Path, change: dict[str, Any]) -> None:
    config = packets_of(synth_encoded)[0]
    extra = {k: v for k, v in {**config.extra, **change}.items() if v != "<drop>"}
    with pytest.raises((CorruptStreamError, UnsupportedStreamError)):
        StreamConfig.unpack(b"SCST\x01" + json.dumps(dict(asdict(config), extra=extra)).encode())


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"synth_model_id": "sc-000000000000000000000000"}, ModelError, "which this installation does not have"),
        ({"synth_model": "sc-large"}, UnsupportedStreamError, "with the id of 'sc-small'"),
        ({"label_classes": 19}, UnsupportedStreamError, "19 classes"),
    ],
)
def test_a_synth_generator_this_installation_lacks_is_refused(
    synth_encoded: Path, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    config = packets_of(synth_encoded)[0]
    bad = StreamConfig.unpack(StreamConfig(**{**asdict(config), "extra": {**config.extra, **change}}).pack())
    with pytest.raises(error, match=message):
        Decoder(bad)


def test_cli_refuses_an_onnx_labeler_in_one_line(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.mkv"
    result = run_cli("encode", str(clip), "-o", str(out), "--background", "synth", "--labels", "onnx:x", "--no-preview")
    assert result.returncode != 0 and not out.exists()
    assert result.stderr.strip().splitlines() == [
        "streamcodec encode: error: --labels onnx:x: no synthesis model is trained for that labeler (sc-small was "
        'trained on the built-in one); train one with streamcodec train (kind = "sc", labels = "onnx:x") first'
    ]


@pytest.mark.parametrize("fidelity", ["hevc", "av1"])
def test_offline_latency_packets_are_deterministic_one_per_frame_and_decode_one_in_one_out(clip: Path, fidelity: str) -> None:
    """Offline (lookahead; AV1 mini-GOPs): packets come out late but one per frame, in order, the same with
    masks found ahead and on one codec thread; the decoder gives each packet's picture at once."""
    frames = [item.rgb for item in source_frames(clip)]
    offline = sc_packets(frames, ahead=False, latency="offline", fidelity=fidelity)
    assert len(offline) == FRAMES
    assert sc_packets(frames, ahead=True, latency="offline", fidelity=fidelity) == offline
    assert sc_packets(frames, ahead=False, latency="offline", fidelity=fidelity, codec_threads=1) == offline
    # All on the caller's thread: the plate is coded from the estimate as it was at its keyframe, not later.
    assert sc_packets(frames, ahead=False, latency="offline", fidelity=fidelity, parallel=False) == offline
    assert offline != sc_packets(frames, ahead=False, fidelity=fidelity)  # the codec really ran differently
    keys = [bitstream.unpack_frame(packet).is_key for packet in offline]
    assert keys == [index % GOP == 0 for index in range(FRAMES)]
    config = Encoder(160, 96, gop=GOP, selective=SelectiveOptions(latency="offline", fidelity=fidelity)).config
    assert config.extra["latency"] == "offline" and config.extra["fill"] == "hold"
    decoder = Decoder(config)
    pictures = [decoder.decode(packet) for packet in offline]
    quality = [psnr(picture, rgb) for picture, rgb in zip(pictures, frames, strict=True)]
    assert min(quality) > 18, quality


def test_offline_encoder_refuses_encode_and_learned_has_no_offline_mode() -> None:
    encoder = Encoder(160, 96, gop=GOP, selective=SelectiveOptions(latency="offline"))
    with pytest.raises(ValueError, match="push"):
        encoder.encode(np.zeros((96, 160, 3), np.uint8))
    encoder.close()
    with pytest.raises(ValueError, match="no offline latency"):
        SelectiveOptions(fidelity="learned", latency="offline").check()


def test_offline_bitrate_restarts_the_coder_at_keyframes_and_loses_no_frame(clip: Path, tmp_path: Path) -> None:
    """--bitrate with an offline coder drains it at each keyframe to count the GOP: still one packet per frame."""
    options = SelectiveOptions.for_files(fidelity="hevc")
    summary = encode_file(clip, tmp_path / "rate.mkv", gop=GOP, preview=False, bitrate_kbps=40, selective=options)
    config, packets, _ = packets_of(tmp_path / "rate.mkv")
    assert summary.frames == len(packets) == FRAMES and config.extra["latency"] == "offline"
    decoder = Decoder(config)
    assert all(decoder.decode(packet).shape == (96, 160, 3) for packet in packets)


def test_offline_plate_is_coded_from_the_estimate_at_its_keyframe_however_late_the_worker_runs(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, later frames update the background estimate before a keyframe's plate worker runs: it must not see them."""
    import time as time_module

    from streamcodec.selective.plate import PlateBackground

    frames = [item.rgb for item in source_frames(clip)]
    serial = sc_packets(frames, ahead=False, latency="offline", parallel=False)
    real = PlateBackground._background_section

    def late(self: PlateBackground, *args: Any) -> dict[int, bytes]:
        time_module.sleep(0.3)  # the caller's thread codes several frames meanwhile
        return real(self, *args)

    monkeypatch.setattr(PlateBackground, "_background_section", late)
    assert sc_packets(frames, ahead=False, latency="offline") == serial


def test_offline_bitrate_restart_codes_a_changed_background_as_a_full_plate(tmp_path: Path) -> None:
    """An offline `--bitrate` restart at an unchanged CRF reopens the plate codec inside an update chain: a
    background that changed then comes as a full plate (a fresh codec has no picture to code an update against)."""
    import av

    frames, gop = 20, 2
    mask_path = tmp_path / "mask.mkv"
    with av.open(str(mask_path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "gray"
        for _ in range(frames):
            luma = np.zeros((96, 160), dtype=np.uint8)
            luma[16:80, 48:112] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(luma, format="gray")))
        container.mux(stream.encode())
    options = SelectiveOptions(keep=(), mask_video=mask_path, latency="offline", parallel=False)
    encoder = Encoder(160, 96, gop=gop, quality=1, selective=options)
    encoder.with_target(0.001)  # far under any rate: the CRF climbs to its bound within a few GOPs, then stays
    pictures = [np.full((96, 160, 3), (index * 37) % 256, np.uint8) for index in range(frames)]  # the background changes
    packets = [e.packet for rgb in pictures for e in encoder.push(rgb)] + [e.packet for e in encoder.flush()]
    encoder.close()
    assert len(packets) == frames
    keyframes = [bitstream.unpack_frame(packet).sections for packet in packets[::gop]]
    assert all(bitstream.PLATE in sections for sections in keyframes)
    decoder = Decoder(encoder.config)
    backgrounds = []
    for index, packet in enumerate(packets):
        assert decoder.decode(packet).shape == (96, 160, 3)
        if index % gop == 0:
            backgrounds.append(float(decoder.background.mean()))
    assert not decoder.notes
    assert all(abs(a - b) > 1 for a, b in itertools.pairwise(backgrounds))  # each keyframe's plate follows the change


def test_zero_latency_files_default_to_hevc(clip: Path, tmp_path: Path) -> None:
    """`--latency zero` without --fidelity: x265, as the live demo codes; the stream says so."""
    options = SelectiveOptions.for_files(latency="zero")
    encode_file(clip, tmp_path / "zero.mkv", gop=GOP, preview=False, selective=options, quality=1)
    config = packets_of(tmp_path / "zero.mkv")[0]
    assert config.extra["fidelity"] == "hevc" and config.extra["fill"] == "recon" and "latency" not in config.extra


def test_plate_blurs_what_was_never_background_and_keeps_what_was(tmp_path: Path) -> None:
    """A region kept since the first frame is blurred in the plate (its pixels were never background);
    the rest of the plate is the background itself, close to the source."""
    import av

    mask_path = tmp_path / "mask.mkv"
    with av.open(str(mask_path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "gray"
        for _ in range(GOP + 1):
            luma = np.zeros((96, 160), dtype=np.uint8)
            luma[16:80, 48:112] = 255  # always kept: 4 x 4 blocks of 16 px
            container.mux(stream.encode(av.VideoFrame.from_ndarray(luma, format="gray")))
        container.mux(stream.encode())
    from skimage import data

    picture = np.ascontiguousarray(cv2.resize(data.astronaut(), (160, 96), interpolation=cv2.INTER_AREA))  # a real photo
    options = SelectiveOptions(keep=(), mask_video=mask_path, bg_crf=20, latency="offline")
    encoder = Encoder(160, 96, gop=GOP, selective=options)
    packets = [e.packet for _ in range(GOP + 1) for e in encoder.push(picture)] + [e.packet for e in encoder.flush()]
    encoder.close()
    decoder = Decoder(encoder.config)
    for packet in packets:
        decoder.decode(packet)
    plate = decoder.background
    inside, outside = np.zeros((96, 160), bool), np.ones((96, 160), bool)
    inside[16:80, 56:104] = True  # the kept blocks are columns 32..127 (8-px dilation, 16-px blocks), all rows
    outside[:, 24:136] = False
    assert region_psnr(plate, picture, outside) > 30  # the background itself
    assert region_psnr(plate, picture, inside) < 20  # a blur of the never-seen face, not its texture


def as_format_1(config: StreamConfig, packets: list[bytes]) -> tuple[StreamConfig, list[bytes]]:
    """The stream as format 1 wrote it: magic headers, the reference check as section 0x81."""
    old: list[bytes] = []
    for packet in packets:
        frame = bitstream.unpack_frame(packet)
        sections = dict(frame.sections)
        if config.mode == "sc" and not frame.is_key:  # SC names the previous packet by its CRC's last byte
            sections[bitstream.REFERENCE] = old[-1][-1:]
        old.append(bitstream.pack_frame(Frame(frame.frame_type, sections, frame.reference_distance), 1))
    return StreamConfig(**{**asdict(config), "format_version": 1}), old


def test_format_1_streams_still_decode_to_the_same_pixels(clip: Path, encoded: tuple[Path, Path], tmp_path: Path) -> None:
    gc = tmp_path / "gc.mkv"
    encode_file(clip, gc, mode="gc", quality=1, gop=GOP, preview=False)
    for path in (gc, encoded[0]):
        config, packets, _ = packets_of(path)
        assert config.format_version == 2 and all(p[0] >> 4 == 2 for p in packets)
        old_config, old_packets = as_format_1(config, packets)
        # Format 2 saves 7 bytes a keyframe (13 against 6 of head, length, CRC) and 8 an inter frame (its check
        # in 2 bytes with the distance, not a 3-byte section); one more where format 1's length field is wider.
        saved = [len(o) - len(n) - (7 if i % GOP == 0 else 8) for i, (o, n) in enumerate(zip(old_packets, packets, strict=True))]
        assert set(saved) <= {0, 1} and saved.count(0) > FRAMES // 2, (config.mode, saved)
        new, old = decode_all(config, packets), decode_all(old_config, old_packets)
        for a, b in zip(new, old, strict=True):
            assert a is not None and b is not None
            np.testing.assert_array_equal(a, b)
