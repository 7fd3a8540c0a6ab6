"""The live sender: capture → rate controller → Encoder → link (and `--record` to Matroska).

The loop always encodes the newest captured frame; a frame the encoder was too slow for, the rate
cap refused, or the link had no room for is dropped and counted, never queued. On every
(re)connection and on each KEYFRAME_REQUEST the encoder restarts, so the next packet is a
keyframe, preceded by the stream configuration (sent again before every keyframe, for late joiners).
"""

from __future__ import annotations

import select
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..bitstream import iteration_sections, unpack_frame
from ..codec import Encoder, SelectiveOptions
from ..errors import LinkError, StreamcodecError, UnreadableInputError
from ..io.mkv_writer import MatroskaWriter, TrackSpec
from ..io.safe_output import check_file_target
from ..version import __version__
from .capture import Capture, CapturedFrame
from .protocol import TOKEN_ENV, AuthenticationError, Channel, Message, MessageType, answer_greeting, read_message, send_message
from .rate import TARGET_SHARE, RateController, shed_iterations

CODEC_ID = "V_STREAMCODEC"  # as pipeline.encode writes it; `decode` finds our track by it
#: Sender socket buffer: about one keyframe; more would only hold stale frames.
SEND_BUFFER = 256 * 1024
HEARTBEAT_S = 1.0
RETRY_S = 0.5
#: How long the receiver's HELLO may take after the connection opens.
HANDSHAKE_S = 3.0


@dataclass
class SenderSettings:
    """What `streamcodec send` (and `webcam`) asked for."""

    to: tuple[str, int]
    token: str  # the receiver's token (protocol.py)
    mode: str = "sc"
    saliency: str = "off"  # sc: SelectiveOptions.saliency
    quality: int | None = None
    gop: int = 60
    engine: str = "auto"
    max_kbps: float | None = None
    record: Path | None = None
    force: bool = False
    preview: bool = False  # also send camera and mask pictures (for the page; not counted in kbps)
    wait_s: float = 30.0  # how long to try to reach the receiver before giving up


class Recorder:
    """`--record`: the encoded packets into a Matroska file `streamcodec decode` reads, timed by capture."""

    def __init__(self, path: Path, encoder: Encoder, frame_rate: float, force: bool) -> None:
        config = encoder.config
        track = TrackSpec(
            number=1,
            kind="video",
            codec_id=CODEC_ID,
            codec_private=config.pack(),
            default_duration_ns=round(1e9 / frame_rate),
            width=config.width,
            height=config.height,
            name=f"streamcodec {config.mode} q{config.quality} (live)",
        )
        self.writer = MatroskaWriter(path, [track], writing_app=f"streamcodec {__version__}", force=force)
        self.first_us: int | None = None

    def write(self, captured_us: int, packet: bytes, keyframe: bool) -> None:
        self.first_us = captured_us if self.first_us is None else self.first_us
        self.writer.write(1, Fraction(captured_us - self.first_us, 1_000_000), packet, keyframe)

    def close(self) -> int:
        return self.writer.close()


class Link:
    """The sender's end of the connection: connects, authenticates, sends, and hears the receiver's requests."""

    def __init__(self, address: tuple[str, int], token: str) -> None:
        self.address, self.token = address, token
        self.sock: socket.socket | None = None
        self.outbound: Channel | None = None
        self.keyframe_wanted = threading.Event()
        self.refusals = 0  # times the receiver answered that another sender is live

    def connect(self) -> bool:
        """Try once to connect; True when connected (a new connection also asks for a keyframe).

        Raises LinkError when the receiver's token is not ours: retrying cannot help.
        """
        if self.sock is not None:
            return True
        try:
            sock = socket.create_connection(self.address, timeout=HANDSHAKE_S)
        except OSError:
            return False
        try:
            outbound, inbound = answer_greeting(sock, self.token)
        except AuthenticationError:
            sock.close()
            host, port = self.address
            raise LinkError(
                f"the receiver at {host}:{port} has another token: give send the token that receive printed "
                f"(--token, or the {TOKEN_ENV} environment variable)"
            ) from None
        except (StreamcodecError, OSError):
            sock.close()
            return False
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock, self.outbound = sock, outbound
        self.keyframe_wanted.set()
        threading.Thread(target=self._listen, args=(sock, inbound), name="requests", daemon=True).start()
        return self.send(Message(MessageType.HEARTBEAT, capture_us=time.time_ns() // 1000))  # prompt authentication

    def _listen(self, sock: socket.socket, inbound: Channel) -> None:
        try:
            while True:
                kind = read_message(sock, inbound).type
                if kind == MessageType.KEYFRAME_REQUEST:
                    self.keyframe_wanted.set()
                elif kind == MessageType.REFUSED:
                    self.refusals += 1
                    sock.shutdown(socket.SHUT_RDWR)  # the next send fails, and the link tries again
        except (StreamcodecError, OSError):
            return  # a broken connection shows on the next send

    def has_room(self) -> bool:
        """Whether the socket can take more now (False: the link is behind, drop the frame)."""
        if self.sock is None:
            return False
        _, writable, _ = select.select([], [self.sock], [], 0)
        return bool(writable)

    def send(self, message: Message) -> bool:
        """Send; on failure drop the connection and return False."""
        if self.sock is None or self.outbound is None:
            return False
        try:
            send_message(self.sock, message, self.outbound)
            return True
        except LinkError:
            self.close()
            return False

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock, self.outbound = None, None


def _ignore_further_interrupts() -> None:
    """A second Ctrl-C (the terminal's and `webcam`'s both arrive) must not cut the recording's close short."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _jpeg(rgb: npt.NDArray[np.uint8]) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes() if ok else b""


def _png(mask: npt.NDArray[np.bool_]) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    return data.tobytes() if ok else b""


@dataclass
class SenderSummary:
    encoded: int = 0
    dropped_capture: int = 0
    dropped_rate: int = 0
    dropped_link: int = 0
    keyframes: int = 0
    restarts: int = 0
    shed: int = 0  # progressive: trailing iterations left out of packets to fit the rate cap
    refused: int = 0  # times the receiver had another live sender
    bytes: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    encode_ms: list[float] = field(default_factory=list)  # per encoded frame

    @property
    def fps(self) -> float:
        return self.encoded / self.seconds if self.seconds else 0.0

    @property
    def kbps(self) -> float:
        return 8 * self.bytes / 1000 / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        times = sorted(self.encode_ms) or [0.0]
        figures = {
            "encode_ms_median": times[len(times) // 2],
            "encode_ms_p99": times[min(len(times) - 1, round(0.99 * len(times)))],
        }
        fields = {name: value for name, value in asdict(self).items() if name != "encode_ms"}
        return {**fields, "fps": self.fps, "kbps": self.kbps, **figures}

    def line(self) -> str:
        fps, kbps = self.fps, self.kbps
        return (
            f"sent {self.encoded} frames in {self.seconds:.1f} s ({fps:.1f} fps, {kbps:.1f} kbps, {self.keyframes} keyframes); "
            f"dropped {self.dropped_capture} (encoder busy) + {self.dropped_rate} (rate cap) + {self.dropped_link} (link)"
            + (f"; {self.shed} iterations shed (rate cap)" if self.shed else "")
        )


class Sender:
    """Runs one live stream from `capture` to the receiver at `settings.to` (see the module docstring)."""

    def __init__(self, settings: SenderSettings, capture: Capture) -> None:
        self.settings, self.capture = settings, capture
        self.rate = RateController(settings.max_kbps)
        self.link = Link(settings.to, settings.token)
        self.summary = SenderSummary()
        self.encoder: Encoder | None = None
        self.recorder: Recorder | None = None
        self._seq = 0
        self._last_sent = time.monotonic()
        self._last_try = 0.0
        self._warned = False

    @property
    def dropped(self) -> int:
        s = self.summary
        return self.capture.dropped + s.dropped_rate + s.dropped_link

    def _new_encoder(self) -> Encoder:
        width, height = self.capture.size
        rate = Fraction(self.capture.frame_rate).limit_denominator(1001)
        selective = SelectiveOptions(frame_rate=rate, saliency=self.settings.saliency) if self.settings.mode == "sc" else None
        s = self.settings
        return Encoder(width, height, mode=s.mode, quality=s.quality, gop=s.gop, backend=s.engine, selective=selective)

    def _aim_quality(self) -> None:
        """Give a mode with its own rate target (selective: fidelity CRF at keyframes) the cap's share per frame.

        Its target assumes every frame is coded at the nominal rate; with frames dropped, each
        frame sent may take nominal/actual times more bits, so the target is scaled by that.
        """
        target = getattr(self.encoder, "with_target", None)
        if self.settings.max_kbps is None or target is None:
            return
        sent_fps = max(1.0, self.rate.frames_per_second())
        target(self.settings.max_kbps * TARGET_SHARE * self.capture.frame_rate / sent_fps)

    def run(self) -> SenderSummary:
        """Stream until the source ends (or KeyboardInterrupt); the recording is complete only after this returns."""
        s = self.settings
        if s.record is not None:
            check_file_target(s.record, s.force)
        self.encoder = self._new_encoder()
        self._wait_for_receiver()
        if s.record is not None:
            self.recorder = Recorder(s.record, self.encoder, self.capture.frame_rate, s.force)
        started = time.monotonic()
        self.capture.start()
        try:
            self._loop()
        except KeyboardInterrupt:
            self.summary.interrupted = True  # Ctrl-C is how a live stream ends: the recording is kept
            _ignore_further_interrupts()
        except BaseException:
            if self.recorder is not None:
                self.recorder.writer.abort()
            raise
        finally:
            self.summary.seconds = time.monotonic() - started
            self.summary.dropped_capture = self.capture.dropped
            self.summary.refused = self.link.refusals
            self.link.send(self._message(MessageType.BYE))
            self.link.close()
            self._close_encoder()
        if self.recorder is not None:
            self.recorder.close()
        if self.capture.error is not None:
            raise UnreadableInputError(f"the source stopped: {self.capture.error}")
        return self.summary

    def _wait_for_receiver(self) -> None:
        deadline = time.monotonic() + self.settings.wait_s
        while not self.link.connect():
            if time.monotonic() > deadline:
                host, port = self.settings.to
                raise LinkError(f"no receiver at {host}:{port} after {self.settings.wait_s:.0f} s")
            time.sleep(RETRY_S)

    def _loop(self) -> None:
        while True:
            frame = self.capture.next_frame(HEARTBEAT_S)
            if frame is None and self.capture.ended:
                return
            if frame is not None:
                self._step(frame)
            if time.monotonic() - self._last_sent > HEARTBEAT_S:
                self._send(self._message(MessageType.HEARTBEAT))

    def _connected(self) -> bool:
        if self.link.sock is None and time.monotonic() - self._last_try > RETRY_S:
            self._last_try = time.monotonic()
            try:
                self.link.connect()
            except LinkError as exc:  # the receiver came back with another token: keep recording, say it once
                if not self._warned:
                    print(f"streamcodec send: {exc}; trying again", file=sys.stderr, flush=True)
                    self._warned = True
        return self.link.sock is not None

    def _step(self, frame: CapturedFrame) -> None:
        summary = self.summary
        if not self._connected() or not self.link.has_room():
            summary.dropped_link += 1
            return
        if not self.rate.admit():
            summary.dropped_rate += 1
            return
        if self.link.keyframe_wanted.is_set():
            self._restart()
        assert self.encoder is not None
        self._aim_quality()
        started = time.perf_counter()
        encoded = self.encoder.encode(frame.rgb)
        summary.encode_ms.append(1000 * (time.perf_counter() - started))
        packet = encoded.packet
        if self.settings.mode == "progressive" and self.settings.max_kbps is not None:  # a short link: fewer iterations
            packet, shed = shed_iterations(packet, self.rate.allowance(self.capture.frame_rate))
            summary.shed += shed
            if shed:  # the next inter frame refers to what the receiver gets, not to what was encoded
                self.encoder.sent(len(iteration_sections(unpack_frame(packet))))
        if self.recorder is not None:
            self.recorder.write(frame.captured_us, packet, encoded.keyframe)
        if encoded.keyframe:
            self._send(self._message(MessageType.CONFIG, self.encoder.config.pack(), frame))
            summary.keyframes += 1
        self._send(self._message(MessageType.PACKET, packet, frame, encoded.keyframe))
        self.rate.spend(8 * len(packet))
        summary.encoded, summary.bytes = summary.encoded + 1, summary.bytes + len(packet)
        if self.settings.preview:
            self._send_preview(frame)

    def _send_preview(self, frame: CapturedFrame) -> None:
        self._send(self._message(MessageType.CAMERA, _jpeg(frame.rgb), frame))
        mask = getattr(self.encoder, "last_mask", None)  # selective mode's kept region
        if mask is not None:
            self._send(self._message(MessageType.MASK, _png(mask), frame))

    def _restart(self) -> None:
        """A fresh encoder: its first packet is a keyframe (same configuration, so the recording stays one stream)."""
        self.link.keyframe_wanted.clear()
        if self.summary.encoded == 0:
            return  # the first frame is a keyframe anyway
        self._close_encoder()
        self.encoder = self._new_encoder()
        self.summary.restarts += 1

    def _close_encoder(self) -> None:
        close = getattr(self.encoder, "close", None)
        if close is not None:
            close()

    def _message(self, kind: MessageType, payload: bytes = b"", frame: CapturedFrame | None = None, key: bool = False) -> Message:
        captured = frame.captured_us if frame is not None else time.time_ns() // 1000
        return Message(kind, payload, self._seq, captured, self.dropped, key)

    def _send(self, message: Message) -> None:
        if self.link.send(message):
            self._last_sent = time.monotonic()
        if message.type == MessageType.PACKET:
            self._seq += 1
