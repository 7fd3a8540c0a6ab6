"""The command line: clear one-line errors, non-zero exits, no partial output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from streamcodec import cli
from streamcodec.bitstream import StreamConfig
from streamcodec.codec import Encoder, SelectiveOptions
from streamcodec.io.mkv_writer import MatroskaWriter, TrackSpec
from streamcodec.pipeline import encode as encode_module

from .conftest import ffmpeg


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_encode_decode_info_from_the_command_line(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.mkv"
    result = run_cli("encode", str(clip_with_audio), "-o", str(out), "--quality", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 12 and summary["quality"] == 1 and out.exists()
    info = run_cli("info", str(out), "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["frames"] == 12
    decoded = run_cli("decode", str(out), "-o", str(tmp_path / "a.mp4"), "--reference", str(clip_with_audio))
    assert decoded.returncode == 0 and "psnr_db" in decoded.stdout


def test_unreachable_bitrate_is_one_warning_line_and_still_encodes(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "low.mkv"
    result = run_cli("encode", str(clip_with_audio), "-o", str(out), "--bitrate", "1", "--no-preview")
    assert result.returncode == 0 and out.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: target 1 kbps cannot be met: the lowest quality needs about ")
    assert "quality 1)" in result.stdout


def test_missing_input_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("encode", str(tmp_path / "nope.mp4")), "nope.mp4", "no such file")
    assert_one_line_error(run_cli("decode", str(tmp_path / "nope.mkv")), "nope.mkv", "no such file")
    assert _only(tmp_path) == []


def test_non_video_input_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    assert_one_line_error(run_cli("encode", str(text), "-o", str(tmp_path / "x.mkv")), "notes.mp4", "not a readable media file")
    audio_only = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", str(audio_only))
    assert_one_line_error(run_cli("encode", str(audio_only), "-o", str(tmp_path / "y.mkv")), "has no video stream")
    assert _only(tmp_path) == ["notes.mp4", "tone.m4a"]


def test_zero_frame_input_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    assert_one_line_error(run_cli("encode", str(empty), "-o", str(tmp_path / "e.mkv")), "no decodable video frames")
    assert _only(tmp_path) == ["empty.y4m"]


def test_truncated_mkv_is_an_error_with_no_output(clip_with_audio: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.mkv"
    assert cli.main(["encode", str(clip_with_audio), "-o", str(good), "--no-preview"]) == 0
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = run_cli("decode", str(cut), "-o", str(tmp_path / "cut.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cut.mkv" in result.stderr and "truncated" in result.stderr
    assert not (tmp_path / "cut.mp4").exists()
    assert _only(tmp_path) == ["cut.mkv", "good.mkv"]
    salvaged = run_cli("decode", str(cut), "-o", str(tmp_path / "part.mp4"), "--salvage", "--json")
    assert salvaged.returncode == 0 and "truncated" in salvaged.stderr
    assert 0 < json.loads(salvaged.stdout)["frames"] < 12
    assert (tmp_path / "part.mp4").exists()


def test_garbage_mkv_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x00" * 4096)
    assert_one_line_error(run_cli("decode", str(junk), "-o", str(tmp_path / "j.mp4")), "junk.mkv", "not a Matroska file")
    assert_one_line_error(run_cli("info", str(junk)), "not a Matroska file")


def _mkv_with_config(path: Path, config: StreamConfig) -> None:
    track = TrackSpec(
        number=1,
        kind="video",
        codec_id="V_STREAMCODEC",
        codec_private=config.pack(),
        default_duration_ns=40_000_000,
        width=config.width,
        height=config.height,
    )
    with MatroskaWriter(path, [track], writing_app="test") as writer:
        writer.write(1, Fraction(0), b"SCFR", True)


def test_stream_from_unknown_model_or_newer_format_is_refused(tmp_path: Path) -> None:
    config = Encoder(64, 48, mode="gc").config
    unknown_model = tmp_path / "unknown_model.mkv"
    _mkv_with_config(unknown_model, replace(config, model_id="gc-ffffffffffffffffffffffff"))
    assert_one_line_error(run_cli("decode", str(unknown_model), "-o", str(tmp_path / "u.mp4")), "gc-ffffffffffffffffffffffff")
    newer = tmp_path / "newer.mkv"
    _mkv_with_config(newer, replace(config, format_version=9))
    assert_one_line_error(run_cli("decode", str(newer), "-o", str(tmp_path / "n.mp4")), "format version 9")
    assert _only(tmp_path) == ["newer.mkv", "unknown_model.mkv"]


def test_failed_encode_leaves_no_partial_output_and_keeps_an_old_file(
    clip_with_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "keep.mkv"
    out.write_bytes(b"previous contents")
    calls = {"n": 0}
    real = encode_module.Encoder.push

    def failing(self: Encoder, rgb: object, source: object = None) -> object:
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, rgb, source)  # type: ignore[arg-type]

    monkeypatch.setattr(encode_module.Encoder, "push", failing)
    assert cli.main(["encode", str(clip_with_audio), "-o", str(out), "--force"]) == cli.EXIT_INTERRUPTED
    assert out.read_bytes() == b"previous contents"
    assert _only(tmp_path) == ["keep.mkv"]


def test_bad_arguments_name_the_value_and_range(clip_with_audio: Path, tmp_path: Path) -> None:
    result = run_cli("encode", str(clip_with_audio), "-o", str(tmp_path / "q.mkv"), "--quality", "9")
    assert_one_line_error(result, "quality 9 is outside 1..4")
    for flag, value, message in (
        ("--whole-above", "1.5", "1.5 is outside 0..1"),
        ("--feather", "17", "feather 17 is outside 0..16 px"),
    ):
        result = run_cli("encode", str(clip_with_audio), "-o", str(tmp_path / "q.mkv"), flag, value)
        # argparse's own check: the usage, then one error line naming the flag
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1] == f"streamcodec encode: error: argument {flag}: {message}"
    result = run_cli("decode", str(tmp_path / "x.mkv"), "-o", str(tmp_path / "missing_dir" / "x.mp4"))
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_help_explains_every_command() -> None:
    for command in ("encode", "decode", "info", "train", "models"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage: streamcodec " + command in result.stdout


def test_encode_refuses_a_streamcodec_file_and_says_decode_it_first(clip_with_audio: Path, tmp_path: Path) -> None:
    ours = tmp_path / "ours.mkv"
    assert cli.main(["encode", str(clip_with_audio), "-o", str(ours), "--quality", "1"]) == 0
    result = run_cli("encode", str(ours), "-o", str(tmp_path / "again.mkv"))
    assert_one_line_error(result, f"{ours}: is already a streamcodec file; decode it first (streamcodec decode {ours})")
    assert _only(tmp_path) == ["ours.mkv"]


def test_train_with_missing_data_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = run_cli("train", "--config", "configs/gc-small.toml", "--data", f"{missing}/", "--out", str(tmp_path / "run"))
    assert result.stderr.strip() == f"streamcodec train: error: {missing}: no such training data folder or file (--data)"
    assert result.returncode == cli.EXIT_ERROR and _only(tmp_path) == []


FFV1_RGB = ("-pix_fmt", "rgb24", "-c:v", "ffv1")  # lossless and any size, odd ones included


def test_one_pixel_video_encodes_with_a_2x2_preview_and_decodes_back(tmp_path: Path) -> None:
    source = tmp_path / "dot.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=16x16:rate=25", "-frames:v", "3", "-vf", "scale=1:1", *FFV1_RGB, str(source))
    encoded = tmp_path / "dot.sc.mkv"
    result = run_cli("encode", str(source), "-o", str(encoded), "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", str(encoded)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["h264,2,2", "unknown,1,1"]  # the preview is the first track
    decoded = run_cli("decode", str(encoded), "-o", str(tmp_path / "frames/"), "--json")
    assert decoded.returncode == 0 and json.loads(decoded.stdout)["frames"] == 3


def test_tiny_frames_report_psnr_and_say_ms_ssim_is_not_available(tmp_path: Path) -> None:
    source = tmp_path / "tiny.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=25", "-frames:v", "3", "-vf", "scale=17:9", *FFV1_RGB, str(source))
    encoded, decoded = tmp_path / "tiny.sc.mkv", tmp_path / "tiny.decoded.mp4"
    assert cli.main(["encode", str(source), "-o", str(encoded), "--no-preview"]) == 0
    result = run_cli("decode", str(encoded), "-o", str(decoded), "--reference", str(source))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "psnr_db " in result.stdout and "ms_ssim n/a (frames 17x9 are smaller than its 11x11 window)" in result.stdout
    assert decoded.exists()
    again = run_cli("decode", str(encoded), "-o", str(decoded), "--reference", str(source), "--json", "--force")
    as_json = json.loads(again.stdout)
    assert as_json["quality"]["ms_ssim"] is None and as_json["quality"]["psnr_db"] > 0
    assert as_json["quality_notes"] == {"ms_ssim": "frames 17x9 are smaller than its 11x11 window"}


def test_help_of_quality_models_json_and_info_input() -> None:
    from streamcodec.codec import quality_levels

    assert f"{quality_levels('gc-small')} for gc-small" in " ".join(run_cli("encode", "--help").stdout.split())
    assert "print name, model identifier" in run_cli("models", "--help").stdout
    assert "a .mkv made by streamcodec encode" in run_cli("info", "--help").stdout


# --- the front door: click, "did you mean", completion, fast help, pipes -----------------------------


def _imports_torch(*args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "streamcodec.cli", *args], capture_output=True, text=True, timeout=120
    )
    return result, any(line.rstrip().endswith(" torch") for line in result.stderr.splitlines())


def test_help_and_usage_errors_do_not_import_torch(tmp_path: Path) -> None:
    for args in (["--help"], ["encode", "--help"], ["eval", "--help"], ["encode", "x.mp4", "--feather", "99"], ["encdoe"]):
        result, torch_loaded = _imports_torch(*args)
        assert result.returncode in (0, 2) and not torch_loaded, args


def test_a_typo_is_answered_with_the_usage_and_did_you_mean() -> None:
    command = run_cli("encdoe", "clip.mp4")
    assert command.returncode == 2 and "Traceback" not in command.stderr
    assert command.stderr.splitlines() == [
        "usage: streamcodec [OPTIONS] COMMAND [ARGS]...",
        "streamcodec: error: no such command 'encdoe' (did you mean encode or send?)",
    ]
    flag = run_cli("encode", "clip.mp4", "--qualty", "2")
    assert flag.returncode == 2 and flag.stderr.splitlines()[0] == "usage: streamcodec encode [OPTIONS] INPUT"
    assert flag.stderr.splitlines()[-1].startswith("streamcodec encode: error: no such option --qualty (did you mean --quality")
    sub = run_cli("engines", "biuld")
    assert sub.returncode == 2
    assert sub.stderr.splitlines()[-1] == "streamcodec engines: error: no such command 'biuld' (did you mean build?)"


def test_quality_and_bitrate_together_are_a_usage_error(clip_with_audio: Path, tmp_path: Path) -> None:
    result = run_cli("encode", str(clip_with_audio), "-o", str(tmp_path / "x.mkv"), "--quality", "1", "--bitrate", "9")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "streamcodec encode: error: argument --bitrate: not allowed with argument --quality"
    assert _only(tmp_path) == []


def test_live_commands_and_eval_describe_themselves() -> None:
    for command, words in (("webcam", "live demo on one machine"), ("send", "stream it over TCP"), ("receive", "Wait for")):
        shown = run_cli(command, "--help")
        assert shown.returncode == 0 and words in " ".join(shown.stdout.split()), command
    evaluation = " ".join(run_cli("eval", "--help").stdout.split())
    assert "kept region" in evaluation and "until selective mode exists" not in evaluation


def test_root_help_documents_shell_completion_and_the_script_is_generated() -> None:
    assert "_STREAMCODEC_COMPLETE=bash_source streamcodec" in run_cli("--help").stdout
    env = {**os.environ, "_STREAMCODEC_COMPLETE": "bash_source"}
    script = subprocess.run([sys.executable, "-m", "streamcodec.cli"], capture_output=True, text=True, env=env, timeout=60)
    assert script.returncode == 0 and "complete -o nosort -F _streamcodec_completion streamcodec" in script.stdout
    query = {**os.environ, "_STREAMCODEC_COMPLETE": "bash_complete", "COMP_WORDS": "streamcodec enc", "COMP_CWORD": "1"}
    words = subprocess.run([sys.executable, "-m", "streamcodec.cli"], capture_output=True, text=True, env=query, timeout=60)
    assert words.stdout.split() == ["plain,encode"]


class _FakeSummary:
    def line(self) -> str:
        return "summary line"

    def to_dict(self) -> dict[str, str]:
        return {"summary": "json"}


def _fake_encode(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake(input: object, output: object, **kwargs: Any) -> _FakeSummary:
        seen.update(kwargs, input=input, output=output)
        return _FakeSummary()

    monkeypatch.setattr(encode_module, "encode_file", fake)
    return seen


def test_dash_reads_stdin_and_writes_stdout_with_the_summary_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _fake_encode(monkeypatch)
    assert cli.main(["encode", "-", "-o", "-", "--mode", "gc"]) == 0
    assert seen["input"] == "-" and seen["output"] == "-"  # passed on as they are: no Path, no checks
    out, err = capsys.readouterr()
    assert out == "" and err == "summary line\n"
    assert cli.main(["encode", "-", "-o", str(Path("x.mkv"))]) == 0
    assert seen["input"] == "-" and capsys.readouterr().out == "summary line\n"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["encode", "-"])
    assert exit_info.value.code == cli.EXIT_USAGE and "needs -o OUTPUT" in capsys.readouterr().err


def test_encode_flags_build_one_selective_options_object(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = _fake_encode(monkeypatch)
    flags = ["--keep", "motion,face", "--fg-quality", "30", "--latency", "zero", "--mask", str(tmp_path / "m.mp4")]
    assert cli.main(["encode", "in.mp4", *flags]) == 0
    expected = SelectiveOptions.for_files(keep=("motion", "face"), fg_crf=30, latency="zero", mask_video=tmp_path / "m.mp4")
    assert seen["selective"] == expected and seen["output"] == Path("in.mkv")
    assert cli.main(["encode", "in.mp4"]) == 0
    assert seen["selective"] == SelectiveOptions.for_files() and seen["selective"].fidelity == "av1"
    assert cli.main(["encode", "in.mp4", "--mode", "gc"]) == 0 and seen["selective"] is None


def test_selective_options_for_files_pick_the_fidelity_latency_and_threads() -> None:
    assert (SelectiveOptions.for_files().fidelity, SelectiveOptions.for_files().latency) == ("av1", "offline")
    assert SelectiveOptions.for_files(latency="zero").fidelity == "hevc"
    assert SelectiveOptions.for_files(fidelity="learned").latency == "zero"
    one = SelectiveOptions.for_files().with_thread_budget(1)
    assert (one.codec_threads, one.parallel) == (1, False)
    assert SelectiveOptions.for_files().with_thread_budget(None) == SelectiveOptions.for_files()


def test_gc_small_levels_in_help_match_the_model() -> None:
    from streamcodec.cli.commands import GC_SMALL_LEVELS
    from streamcodec.codec import quality_levels

    assert quality_levels("gc-small") == GC_SMALL_LEVELS


class _Child:
    """A CLI subprocess whose stderr is read as it comes: `-X importtime` lines say where its imports are."""

    def __init__(self, *args: str) -> None:
        import queue
        import threading

        command = [sys.executable, "-X", "importtime", "-m", "streamcodec.cli", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_import(self, module: str) -> None:
        """Return once `module` has been imported (its importtime line came)."""
        while (line := self.lines.get(timeout=120)) is not None:
            if not line.startswith("import time:"):
                self.said.append(line)
            elif line.split("|")[-1].strip() == module:
                return
        raise AssertionError(f"exited before importing {module}: {self.said}")

    def stopped_by(self, signum: int, timeout: float = 30) -> tuple[int, list[str]]:
        """Send `signum`; the exit status and the stderr lines that are not importtime's."""
        self.process.send_signal(signum)
        status = self.process.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            if not line.startswith("import time:"):
                self.said.append(line)
        return status, self.said


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["click", "numpy"], ids=["importing-the-cli", "importing-torch-for-the-command"])
def test_a_signal_while_importing_is_one_line_and_130_or_143(signum: int, moment: str, tmp_path: Path) -> None:
    """click: the command line's own imports (in `main`, before the command runs); numpy: the command's lazy ones."""
    clip = tmp_path / "in.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "2", "-c:v", "ffv1", str(clip))
    child = _Child("encode", str(clip), "-o", str(tmp_path / "out.mkv"), "--no-preview")
    child.wait_for_import(moment)
    status, said = child.stopped_by(signum)
    prefix = "streamcodec encode" if moment == "numpy" else "streamcodec"
    assert (status, said) == (128 + signum, [f"{prefix}: interrupted; no partial output was left"])
    assert _only(tmp_path) == ["in.mkv"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_reading_a_fifo_that_never_ends_is_one_line_and_leaves_no_partial(signum: int, tmp_path: Path) -> None:
    frames = tmp_path / "frames.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "12", "-pix_fmt", "yuv420p", str(frames))
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    gc = ["--mode", "gc", "--engine", "onnxruntime", "--no-preview"]
    child = _Child("encode", str(fifo), "-o", str(tmp_path / "out.mkv"), *gc)
    with open(fifo, "wb") as writer:  # opened once the child opens it; held open, never ended
        writer.write(frames.read_bytes())
        writer.flush()
        deadline = time.monotonic() + 120
        while not any(name.startswith(".out.mkv.partial-") for name in _only(tmp_path)):  # it is writing the output
            assert time.monotonic() < deadline and child.process.poll() is None, child.said
            time.sleep(0.1)
        time.sleep(1)  # and blocked in FFmpeg's read of the FIFO, in C, where Python runs no handler
        status, said = child.stopped_by(signum)
    assert (status, said) == (128 + signum, ["streamcodec encode: interrupted; no partial output was left"])
    assert _only(tmp_path) == ["frames.y4m", "live.y4m"]
