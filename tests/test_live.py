"""Live streaming end to end: `receive`, `send` and `webcam` as real processes on loopback, and the page in Chromium."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import pytest

from streamcodec.cli.live import MODES, _stop_sender
from streamcodec.codec import MODES as CODEC_MODES
from streamcodec.errors import MalformedMessageError
from streamcodec.live import protocol
from streamcodec.live.protocol import (
    HEADER,
    MAX_PAYLOAD,
    TAG_SIZE,
    TOKEN_ENV,
    AuthenticationError,
    Channel,
    Message,
    MessageType,
    pack,
    parse_address,
    seal,
    unpack_header,
)
from streamcodec.live.rate import RateController
from streamcodec.live.receiver import HANDSHAKE_S, TAKEOVER_S
from streamcodec.live.web import IDLE_S, MAX_CLIENTS

from .cdp import CHROMIUM, Browser
from .conftest import ffmpeg

CLI = [sys.executable, "-m", "streamcodec.cli"]


@pytest.fixture(scope="module")
def live_clip(media_dir: Path) -> Path:
    """2 s of moving test pattern, 160x120 at 15 fps."""
    path = media_dir / "live.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


class Live:
    """A live subcommand as a child process, its stdout lines collected by a thread."""

    def __init__(self, *args: str, cwd: Path, token: str | None = None) -> None:
        env = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
        if token is not None:
            env[TOKEN_ENV] = token
        self.process = subprocess.Popen(
            [*CLI, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} in {timeout} s; got {self.seen}")

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout=timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.finish()


def start_receiver(tmp_path: Path, *extra: str) -> tuple[Live, int, str, str]:
    """A `receive` child: (it, its link port, the page's URL as printed, the token it made)."""
    receiver = Live("receive", "--listen", "0", "--port", "0", *extra, cwd=tmp_path)
    listening = receiver.wait_line("listening for a sender on ")
    page = receiver.wait_line("page: ").split(" ", 1)[1]
    assert "127.0.0.1:" in listening and "this machine only" in listening
    return receiver, int(listening.split(":")[1].split()[0]), page, token_of(page)


def token_of(page: str) -> str:
    return parse_qs(urlsplit(page).query)["token"][0]


def at(page: str, path: str, token: str | None = None) -> str:
    """The URL of `path` on the page's server, with the page's token (or `token`; "" for none)."""
    parts = urlsplit(page)
    token = token_of(page) if token is None else token
    return f"http://{parts.netloc}/{path}" + (f"?token={token}" if token else "")


def stats(page: str) -> dict[str, Any]:
    with urllib.request.urlopen(at(page, "stats"), timeout=10) as reply:
        return dict(json.load(reply))


def png_hashes(folder: Path) -> list[str]:
    hashes = []
    for path in sorted(folder.glob("*.png")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        hashes.append(hashlib.sha256(rgb.tobytes()).hexdigest())
    return hashes


def test_cli_choices_match_the_codec_modes_and_engines() -> None:
    assert set(MODES) == set(CODEC_MODES)
    for command in ("webcam", "send", "receive"):
        wrong = subprocess.run([*CLI, command, "--engine", "tpu"], capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2 and "unknown engine 'tpu'" in wrong.stderr


def test_message_round_trips_and_bad_headers_are_refused() -> None:
    message = Message(MessageType.PACKET, b"abc", seq=7, capture_us=123456789, dropped=3, keyframe=True)
    data = pack(message)
    assert unpack_header(data[: HEADER.size]) == (MessageType.PACKET, 7, 123456789, 3, True, 3)
    bad_magic = b"XXXX" + data[4 : HEADER.size]
    bad_version = data[:4] + bytes([protocol.VERSION + 1]) + data[5 : HEADER.size]
    bad_type = data[:5] + bytes([99]) + data[6 : HEADER.size]
    too_long = data[: HEADER.size - 4] + (MAX_PAYLOAD + 1).to_bytes(4, "big")
    for head, words in (
        (bad_magic, "magic"),
        (bad_version, f"version {protocol.VERSION + 1}"),
        (bad_type, "type 99"),
        (too_long, "bound"),
    ):
        with pytest.raises(MalformedMessageError, match=words):
            unpack_header(head)
    with pytest.raises(ValueError, match="bound"):
        pack(Message(MessageType.PACKET, bytes(MAX_PAYLOAD + 1)))


def test_tags_tie_each_message_to_its_token_connection_direction_and_place() -> None:
    nonce, other_nonce = bytes(16), bytes(15) + b"\x01"
    data = seal(Message(MessageType.HEARTBEAT, b"hi"), Channel("token", nonce, b"s2r"))
    body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    Channel("token", nonce, b"s2r").check(body, tag)  # the receiver's matching channel accepts it
    for wrong in (
        Channel("another token", nonce, b"s2r"),  # a stranger's token
        Channel("token", other_nonce, b"s2r"),  # replayed on another connection
        Channel("token", nonce, b"r2s"),  # reflected back in the other direction
    ):
        with pytest.raises(AuthenticationError):
            wrong.check(body, tag)
    replay = Channel("token", nonce, b"s2r")
    replay.check(body, tag)
    with pytest.raises(AuthenticationError):  # the same message again on the same connection
        replay.check(body, tag)
    flipped = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(AuthenticationError):
        Channel("token", nonce, b"s2r").check(flipped, tag)


def test_parse_address_defaults_to_loopback_and_names_bad_ports() -> None:
    assert parse_address("9000") == ("127.0.0.1", 9000)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:81") == ("::1", 81)
    with pytest.raises(ValueError, match="port 'x' is not a number"):
        parse_address("host:x")


@pytest.mark.parametrize("saliency", ["off", "on"])
def test_received_frames_equal_decode_of_the_recording(tmp_path: Path, live_clip: Path, saliency: str) -> None:
    receiver, port, _, token = start_receiver(tmp_path, "--dump-frames", "dump", "--exit-when-done", "--stats-json", "stats.json")
    source = ("--source", str(live_clip), "--record", "rec.mkv", "--saliency", saliency)
    sender = Live("send", "--to", f"127.0.0.1:{port}", *source, cwd=tmp_path, token=token)
    assert sender.finish() == 0, sender.seen
    assert receiver.finish() == 0, receiver.seen
    sent = int(sender.seen[-1].split()[1])
    assert sender.seen[-1].endswith("→ rec.mkv") and sent >= 10
    decoded = subprocess.run([*CLI, "decode", "rec.mkv", "-o", "dec/"], cwd=tmp_path, capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    received = [line.split()[1] for line in (tmp_path / "dump" / "frames.txt").read_text().splitlines()]
    assert len(received) == sent
    assert received == png_hashes(tmp_path / "dec")
    summary = json.loads((tmp_path / "stats.json").read_text())
    assert summary["frames"] == sent and summary["malformed"] == summary["corrupt"] == 0
    assert 0 < summary["latency_ms_median"] < 5000


def test_progressive_sheds_iterations_under_a_rate_cap_and_the_recording_decodes(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, _, token = start_receiver(tmp_path, "--exit-when-done")
    capped = ["--source", str(live_clip), "--record", "rec.mkv", "--mode", "progressive", "--max-kbps", "40"]
    capped += ["--stats-json", "s.json"]
    sender = Live("send", "--to", f"127.0.0.1:{port}", *capped, cwd=tmp_path, token=token)
    assert sender.finish() == 0, sender.seen
    assert receiver.finish() == 0, receiver.seen
    summary = json.loads((tmp_path / "s.json").read_text())
    # How many frames get through depends on the machine's speed (a busy encoder drops frames too): at least 2.
    assert summary["shed"] > 0 and summary["encoded"] >= 2 and "iterations shed" in sender.seen[-1]
    decoded = subprocess.run([*CLI, "decode", "rec.mkv", "-o", "dec/"], cwd=tmp_path, capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert len(list((tmp_path / "dec").glob("*.png"))) == summary["encoded"]


def _closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes `sock` within `timeout` s (whatever it sent first is read and dropped)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:  # closed with our bytes unread: a reset
            return True
    return False


def _raw(port: int, data: bytes, abort: bool) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        if abort:  # an abrupt disconnect: RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        else:
            assert _closed(sock, 10)  # the receiver closes a connection whose header fails


class RawSender:
    """A hand-driven sender that knows the token: the handshake, then messages as the test writes them."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.outbound, self.inbound = protocol.answer_greeting(self.sock, token)

    def send(self, message: Message) -> bytes:
        data = seal(message, self.outbound)
        self.sock.sendall(data)
        return data

    def close(self) -> None:
        self.sock.close()


def test_malformed_messages_and_abrupt_disconnects_do_not_stop_the_receiver(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path, "--exit-when-done", "--stats-json", "stats.json")
    _raw(port, b"GET / HTTP/1.1\r\n\r\n" + bytes(64), abort=False)  # not our magic
    _raw(port, pack(Message(MessageType.PACKET, b"x"))[: HEADER.size - 4] + (1 << 30).to_bytes(4, "big"), abort=False)
    hostile = RawSender(port, token)  # one who knows the token can still send nonsense
    hostile.send(Message(MessageType.CONFIG, b"not a config"))
    hostile.send(Message(MessageType.PACKET, os.urandom(300), keyframe=True))
    hostile.sock.sendall(pack(Message(MessageType.PACKET, b"\x00" * 10))[:20])
    hostile.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    hostile.close()
    _wait(lambda: stats(page)["disconnects"] >= 1 and stats(page)["refused"] >= 2, "the three connections to end", 10)
    sender = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), cwd=tmp_path, token=token)
    assert sender.finish() == 0, sender.seen
    assert receiver.finish() == 0, receiver.seen
    summary = json.loads((tmp_path / "stats.json").read_text())
    assert summary["refused"] == 2  # two bad headers: strangers, never heard
    assert summary["malformed"] == 1  # one bad configuration
    assert summary["disconnects"] == 1 and summary["connections"] == 2
    assert summary["skipped"] >= 1 and summary["keyframe_requests"] >= 1  # the hostile packet, before any configuration
    assert summary["frames"] == int(sender.seen[-1].split()[1])


def test_a_sender_that_vanishes_is_reported_and_a_new_one_is_decoded(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path)
    try:
        first = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), "--loop", cwd=tmp_path, token=token)
        _wait(lambda: stats(page)["frames"] >= 5, "frames from the first sender")
        first.process.kill()  # gone without a BYE
        first.finish()
        _wait(lambda: stats(page)["state"].startswith("sender gone"), "the 'sender gone' state")
        before = stats(page)
        assert before["disconnects"] == 1
        second = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), cwd=tmp_path, token=token)
        assert second.finish() == 0, second.seen
        after = stats(page)
        assert after["frames"] == before["frames"] + int(second.seen[-1].split()[1])
        assert after["state"] == "sender finished" and after["corrupt"] == 0
    finally:
        receiver.stop()


def _wait(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_send_refuses_an_existing_recording_without_force(tmp_path: Path, live_clip: Path) -> None:
    existing = tmp_path / "rec.mkv"
    existing.write_bytes(b"the user's file")
    result = subprocess.run(
        [*CLI, "send", "--to", "127.0.0.1:9", "--token", "t", "--source", str(live_clip), "--record", str(existing)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "streamcodec send: error:" in result.stderr and "rec.mkv" in result.stderr
    assert existing.read_bytes() == b"the user's file"


def test_send_without_a_receiver_fails_in_one_line(tmp_path: Path, live_clip: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [*CLI, "send", "--to", f"127.0.0.1:{port}", "--token", "t", "--source", str(live_clip), "--wait", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == f"streamcodec send: error: no receiver at 127.0.0.1:{port} after 1 s\n"


_PIXELS = """(() => {
  const img = document.getElementById('decoded');
  if (!img || !img.naturalWidth) return null;  // the page may still be loading
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 3) hash = (hash * 31 + data[i]) >>> 0;
  return hash;
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; scripts/setup.sh does)")
def test_webcam_page_in_headless_chromium_shows_live_frames_and_stats_and_records(tmp_path: Path, live_clip: Path) -> None:
    webcam = Live("webcam", "--source", str(live_clip), "--loop", "--port", "0", "--record", "rec.mkv", cwd=tmp_path)
    page = webcam.wait_line("page: ").split(" ", 1)[1]
    (tmp_path / "profile").mkdir()
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=page)
        _wait(lambda: browser.evaluate(_PIXELS) is not None, "a decoded frame on the page")
        first = browser.evaluate(_PIXELS)
        _wait(lambda: browser.evaluate(_PIXELS) != first, "the decoded frame to change")
        _wait(lambda: (browser.evaluate("window.streamcodec.stats") or {}).get("state") == "live", "the live state")
        _wait(lambda: browser.evaluate("window.streamcodec.shown.mask") > 0, "the mask")
        seen = browser.evaluate("window.streamcodec")
        _wait(lambda: browser.evaluate("window.streamcodec.updates") > seen["updates"] + 1, "the stats to update")
        later = browser.evaluate("window.streamcodec.stats")
        assert later["frames"] > seen["stats"]["frames"] and later["kbps"] > 0 and later["fps"] > 0
        assert seen["shown"]["camera"] > 0 and seen["shown"]["decoded"] > 0
        assert browser.evaluate("document.getElementById('kbps').textContent").endswith(" kbps")
        browser.screenshot(tmp_path / "page.png")
    finally:
        browser.close()
        webcam.stop()
    shot = cv2.imread(str(tmp_path / "page.png"))
    assert shot is not None and shot.shape[0] >= 400 and shot.std() > 10
    # Stopped as Ctrl-C stops it, the demo leaves a complete recording.
    assert webcam.process.returncode == 0, webcam.seen
    decoded = subprocess.run([*CLI, "decode", "rec.mkv", "-o", "dec/"], cwd=tmp_path, capture_output=True, text=True)
    assert decoded.returncode == 0 and len(list((tmp_path / "dec").glob("*.png"))) >= 10, decoded.stderr


def test_a_receiver_that_joins_late_gets_a_keyframe_and_decodes(tmp_path: Path, live_clip: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "a-token-both-receivers-are-given"  # by the environment to one, by --token to the other
    first = Live("receive", "--listen", str(port), "--port", "0", cwd=tmp_path, token=token)
    page = first.wait_line("page: ").split(" ", 1)[1]
    sender = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), "--loop", cwd=tmp_path, token=token)
    late: Live | None = None
    try:
        _wait(lambda: stats(page)["frames"] >= 5, "frames at the first receiver")
        first.process.kill()  # the sender is mid-GOP now
        first.finish()
        late = Live("receive", "--listen", str(port), "--port", "0", "--token", token, cwd=tmp_path)
        late_page = late.wait_line("page: ").split(" ", 1)[1]
        _wait(lambda: stats(late_page)["frames"] >= 5, "frames at the late receiver")
        assert stats(late_page)["corrupt"] == 0 and sender.process.poll() is None
    finally:
        sender.stop()
        if late is not None:
            late.stop()
    assert "keyframes" in sender.seen[-1] and int(sender.seen[-1].split("kbps, ")[1].split()[0]) >= 2


def test_webcam_without_its_camera_ends_with_the_senders_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "webcam", "--camera", str(tmp_path / "video9"), "--port", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr == f"streamcodec send: error: {tmp_path / 'video9'}: no such file\n"


def test_rate_controller_holds_the_cap_by_refusing_frames_until_the_bucket_refills() -> None:
    now = [0.0]
    rate = RateController(100, clock=lambda: now[0])  # 100 kbit/s, one second's burst
    assert rate.admit()  # the bucket starts empty, not in debt
    rate.spend(250_000)  # a keyframe overdraws it by 250 kbit
    assert rate.frames_per_second() == 0.5
    now[0] += 2.0
    assert not rate.admit()  # 200 kbit paid back: still 50 short
    now[0] += 0.6
    assert rate.admit() and rate.frames_per_second() == 0.0
    sent, frames = 250_000, 0
    for _ in range(300):  # 10 s of 30 fps frames of 20 kbit offered
        now[0] += 1 / 30
        if rate.admit():
            rate.spend(20_000)
            sent, frames = sent + 20_000, frames + 1
    assert sent <= 100_000 * now[0] + 20_000  # the cap over the whole time, plus one frame
    assert 45 <= frames <= 55
    with pytest.raises(ValueError, match="-5"):
        RateController(-5)
    assert RateController(None).admit()


def _stranger_channel() -> Channel:
    """What someone without the token can do: tag with a token of their own."""
    return Channel("a guess", bytes(16), b"s2r")


def test_a_client_without_the_token_is_refused_and_the_real_senders_frames_keep_coming(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path)
    silent = socket.create_connection(("127.0.0.1", port))  # holds a connection and says nothing
    guesser = socket.create_connection(("127.0.0.1", port))  # heartbeats, as the audit's hijacker sent them
    guess = _stranger_channel()
    guesser.sendall(seal(Message(MessageType.HEARTBEAT), guess))
    sender = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), "--loop", cwd=tmp_path, token=token)
    try:
        assert _closed(guesser, 5)  # a bad tag: closed at once
        _wait(lambda: stats(page)["frames"] >= 10, "the real sender's frames while a stranger holds a connection", 90)
        assert _closed(silent, HANDSHAKE_S + 5)  # silence: closed after the handshake's time
        now = stats(page)
        assert now["state"] == "live" and now["refused"] == 2 and now["connections"] == 1 and now["takeovers"] == 0
        assert now["latency_ms_median"] < 1000  # nothing queued behind the strangers
    finally:
        silent.close()
        guesser.close()
        sender.stop()
        receiver.stop()
    assert "Traceback" not in "\n".join(receiver.seen + sender.seen)


def test_a_message_with_a_wrong_tag_closes_the_connection(tmp_path: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path)
    try:
        client = RawSender(port, token)
        client.send(Message(MessageType.HEARTBEAT))
        _wait(lambda: stats(page)["state"] == "live", "the authenticated client to hold the link")
        data = bytearray(seal(Message(MessageType.HEARTBEAT), client.outbound))
        data[-1] ^= 1
        client.sock.sendall(bytes(data))
        assert _closed(client.sock, 5)
        _wait(lambda: stats(page)["state"].startswith("sender gone"), "the link to be free again")
        assert stats(page)["refused"] == 1 and stats(page)["disconnects"] == 1
    finally:
        receiver.stop()


def test_a_replayed_message_is_refused(tmp_path: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path)
    try:
        client = RawSender(port, token)
        first = client.send(Message(MessageType.HEARTBEAT))
        _wait(lambda: stats(page)["state"] == "live", "the authenticated client to hold the link")
        client.sock.sendall(first)  # the same bytes again, on the same connection
        assert _closed(client.sock, 5)
        _wait(lambda: stats(page)["refused"] == 1, "the replay to be refused")
        with socket.create_connection(("127.0.0.1", port)) as replayer:  # and on a new connection
            replayer.sendall(first)
            assert _closed(replayer, 5)
        _wait(lambda: stats(page)["refused"] == 2, "the replay on a new connection to be refused")
        assert stats(page)["connections"] == 1
    finally:
        receiver.stop()


def test_an_authenticated_sender_takes_over_from_a_silent_one_but_not_from_a_live_one(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, page, token = start_receiver(tmp_path)
    holder = RawSender(port, token)  # knows the token, sends heartbeats and never a frame
    stop = threading.Event()

    def beat() -> None:
        with contextlib.suppress(OSError):
            while not stop.wait(0.5):
                holder.send(Message(MessageType.HEARTBEAT))

    threading.Thread(target=beat, daemon=True).start()
    sender: Live | None = None
    try:
        _wait(lambda: stats(page)["state"] == "live", "the heartbeat-only client to hold the link")
        time.sleep(TAKEOVER_S)
        sender = Live("send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip), "--loop", cwd=tmp_path, token=token)
        _wait(lambda: stats(page)["frames"] >= 10, "the real sender's frames after its takeover", 90)
        assert _closed(holder.sock, 5) and stats(page)["takeovers"] == 1
        late = RawSender(port, token)  # a sender with the token while a live one sends frames: refused
        late.send(Message(MessageType.HEARTBEAT))
        assert protocol.read_message(late.sock, late.inbound).type == MessageType.REFUSED
        assert _closed(late.sock, 5)
        before = stats(page)["frames"]
        _wait(lambda: stats(page)["frames"] >= before + 5, "the live sender's frames to keep coming")
        assert stats(page)["takeovers"] == 1 and stats(page)["state"] == "live"
    finally:
        stop.set()
        if sender is not None:
            sender.stop()
        receiver.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_page_and_its_data_want_the_token(tmp_path: Path) -> None:
    receiver, _, page, _ = start_receiver(tmp_path)
    try:
        for path in ("", "stats", "frame/decoded", "frame/camera?after=0", "nothing"):
            assert _status(at(page, path, token="")) == 403, path
            assert _status(at(page, path, token="wrong")) == 403, path
        assert _status(page) == 200 and _status(at(page, "stats")) == 200
        with urllib.request.urlopen(page, timeout=10) as reply:
            assert b"URLSearchParams" in reply.read() and reply.headers["Referrer-Policy"] == "no-referrer"
    finally:
        receiver.stop()


def _threads(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("Threads:")[1].split()[0])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads through /proc (Linux)")
def test_idle_page_connections_time_out_and_threads_stay_bounded(tmp_path: Path) -> None:
    receiver, _, page, _ = start_receiver(tmp_path)
    address = (urlsplit(page).hostname or "", urlsplit(page).port or 0)
    held: list[socket.socket] = []
    try:
        assert _status(page) == 200
        before = _threads(receiver.process.pid)
        held = [socket.create_connection(address) for _ in range(2 * MAX_CLIENTS)]  # open, and never a byte
        time.sleep(1.0)
        assert _threads(receiver.process.pid) <= before + MAX_CLIENTS
        assert all(_closed(sock, IDLE_S + 5) for sock in held)  # over the bound at once, the others when idle
        _wait(lambda: _threads(receiver.process.pid) <= before, "the page's threads to end", 10)
        assert _status(at(page, "stats")) == 200
    finally:
        for sock in held:
            sock.close()
        receiver.stop()


def test_clients_that_reset_mid_request_print_no_traceback(tmp_path: Path) -> None:
    receiver, _, page, _ = start_receiver(tmp_path)
    address = (urlsplit(page).hostname or "", urlsplit(page).port or 0)
    try:
        for _ in range(50):
            with socket.create_connection(address) as sock:
                sock.sendall(b"GET /stats?tok")  # a request line cut short, then a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        assert _status(at(page, "stats")) == 200
    finally:
        receiver.stop()
    assert receiver.process.returncode == 0
    assert not [line for line in receiver.seen if "Traceback" in line or "Exception" in line], receiver.seen


def test_webcam_exit_when_done_exits_0_after_its_source_ends(tmp_path: Path, live_clip: Path) -> None:
    result = subprocess.run(
        [*CLI, "webcam", "--source", str(live_clip), "--exit-when-done", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "received " in result.stdout


def test_webcam_lets_a_sender_that_finished_exit_by_itself() -> None:
    # A sender that said BYE still closes its recording and prints its summary; a Ctrl-C then made it
    # exit as "interrupted" (130), and `webcam --exit-when-done` with it.
    code = "import time\ntry:\n    time.sleep(1.5)\nexcept KeyboardInterrupt:\n    raise SystemExit(130)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    _stop_sender(child, finished=True)
    assert child.returncode == 0


def test_send_to_a_receiver_with_another_token_fails_in_one_line(tmp_path: Path, live_clip: Path) -> None:
    receiver, port, _, _ = start_receiver(tmp_path)
    try:
        result = subprocess.run(
            [*CLI, "send", "--to", f"127.0.0.1:{port}", "--token", "not-the-token", "--source", str(live_clip)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        missing = subprocess.run(
            [*CLI, "send", "--to", f"127.0.0.1:{port}", "--source", str(live_clip)],
            capture_output=True,
            text=True,
            timeout=120,
            env={key: value for key, value in os.environ.items() if key != TOKEN_ENV},
        )
    finally:
        receiver.stop()
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"streamcodec send: error: the receiver at 127.0.0.1:{port} has another token")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and TOKEN_ENV in missing.stderr
